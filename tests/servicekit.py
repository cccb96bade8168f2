"""Running the real :class:`Service` in a thread for tests, and waiting on what it shows."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.service.app import Service, ServiceContext, StationBuild
from appliance.service.notify import Notifier
from appliance.service.settings import LoadedConfig
from appliance.station.machine import Snapshot


@contextmanager
def running_service(
    loaded: LoadedConfig, factory: Callable[[ServiceContext], StationBuild], state_dir: Path
) -> Iterator[Service]:
    """``Service.run`` on a thread (no systemd, no power reader); stopped and joined after."""
    service = Service(
        loaded,
        factory,
        state_dir=state_dir,
        notifier=Notifier({}),
        power_reader=lambda: None,
        loop_period=0.02,
    )
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        yield service
    finally:
        service.request_stop()
        thread.join(10)
    assert not thread.is_alive()


def wait_all_time_totals(snaps: list[Snapshot], timeout: float = 10.0) -> Snapshot:
    """The first snapshot that shows the ledger's all-time totals."""
    deadline = time.monotonic() + timeout
    while not (snaps and snaps[-1].totals_all_time):
        assert time.monotonic() < deadline, "the ledger's totals never reached the station"
        time.sleep(0.02)
    return snaps[-1]
