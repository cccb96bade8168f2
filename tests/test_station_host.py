"""The station as the service hosts it: ledger events, status line, on the real engine."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from appliance.commands.hosting import station as station_host
from appliance.config.schema import DisplayConfig, StationConfig, StationSection, UiConfig
from appliance.content import load_trusted, open_pack
from appliance.station import events as ev
from appliance.ui.simulator import SAMPLE_PACK, TEST_KEY

MiB = 1024 * 1024


class NoMonitor:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def test_hosted_station_reports_jobs_to_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(station_host, "make_monitor", lambda *a, **k: NoMonitor())
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    config = StationConfig(
        station=StationSection(batch_window=0.1, slots=4),
        ui=UiConfig(display=DisplayConfig(driver="dummy")),
    )
    host = station_host.HostedStation(config, tmp_path / "state")
    events: list[Any] = []
    host.add_listener(events.append)
    stick = tmp_path / "stick.img"
    with open(stick, "wb") as f:
        f.truncate(80 * MiB)
    try:
        host.start()
        pack = open_pack(SAMPLE_PACK, load_trusted([TEST_KEY]))
        host._content = SimpleNamespace(  # type: ignore[assignment]
            ready=True, source=pack, root=SAMPLE_PACK, device="/dev/fake", close=lambda: None
        )
        host.station.post(ev.ContentInserted("Sample", "1", ()))
        host.station.post(ev.ContentVerified())
        host.station.post(ev.DriveArrived(2, 80 * MiB, device=str(stick)))
        end = time.monotonic() + 60
        while time.monotonic() < end and not any(
            type(e).__name__ == "BatchFinished" for e in events
        ):
            time.sleep(0.1)
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["BatchStarted", "JobStarted", "JobFinished", "BatchFinished"]
        assert events[2].result == "done"
        assert "1 done" in host.status_line()
        assert host.screen is not None and host.screen.frames > 0
    finally:
        host.stop()
        Device.pin_factory.reset()
        Device.pin_factory = old


def test_menu_hold_stops_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(station_host.os, "kill", lambda pid, sig: killed.append(sig))
    host = station_host.HostedStation(StationConfig(), tmp_path / "state")
    host.runner.open()
    host.station.post(ev.MenuHeld())
    host.runner.drain()
    assert killed == [station_host.signal.SIGTERM]
    host._stopping = True
    host.runner.close()
