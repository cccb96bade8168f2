"""The station as ``flashstation run`` hosts it: real engine, ledger events, MENU-hold shutdown."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from appliance.commands.hosting import station as hosting
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


@pytest.fixture
def mock_pins() -> Any:
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = old


def test_hosted_station_loads_and_reports_to_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mock_pins: Any
) -> None:
    monkeypatch.setattr(hosting, "make_monitor", lambda *a, **k: NoMonitor())
    config = StationConfig(
        station=StationSection(batch_window=0.1, slots=4),
        ui=UiConfig(display=DisplayConfig(driver="dummy")),
    )
    host, hardware = hosting.build(config, tmp_path / "state")
    events: list[Any] = []
    host.add_listener(events.append)
    stick = tmp_path / "stick.img"
    with open(stick, "wb") as f:
        f.truncate(80 * MiB)
    hardware.start(host.runner)
    host.start()
    try:
        pack = open_pack(SAMPLE_PACK, load_trusted([TEST_KEY]))
        hardware.content = SimpleNamespace(  # type: ignore[assignment]
            ready=True, source=pack, root=SAMPLE_PACK, device="/dev/fake", close=lambda: None
        )
        hardware.post(ev.ContentInserted("Sample", "1", ()))
        hardware.post(ev.ContentVerified())
        hardware.post(ev.DriveArrived(2, 80 * MiB, device=str(stick), drive_id="abc"))
        end = time.monotonic() + 60
        while time.monotonic() < end and not any(
            type(e).__name__ == "BatchFinished" for e in events
        ):
            time.sleep(0.1)
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["BatchStarted", "JobStarted", "JobFinished", "BatchFinished"]
        assert events[2].result == "done"
        assert "1 done" in host.status_line()
        assert hardware.screen is not None and hardware.screen.frames > 0
        assert hardware.buttons is not None  # mock pins
    finally:
        host.stop()
        hardware.stop()


def test_menu_hold_stops_the_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(hosting.os, "kill", lambda pid, sig: killed.append(sig))
    host, hardware = hosting.build(StationConfig(), tmp_path / "state")
    host.runner.open()
    host.runner.drain()
    hardware.post(ev.MenuHeld())
    host.runner.drain()
    assert killed == [hosting.signal.SIGTERM]
    host.runner.close()


def test_service_stopping_the_station_does_not_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed: list[int] = []
    monkeypatch.setattr(hosting.os, "kill", lambda pid, sig: killed.append(sig))
    host, _hardware = hosting.build(StationConfig(), tmp_path / "state")
    host.start()
    host.stop()
    assert killed == []
