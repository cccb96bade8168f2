"""MENU held ends with the Pi powered off: jobs cancelled, the ledger closed, then power-off.

Three levels: the state machine (shutting_down -> stopped -> poweroff_failed),
the hosted station's hook (MENU held asks the service, never signals itself),
and the service with a fake power-off that records when it was called. No test
here runs systemctl: every ``Service`` gets a fake, and ``SystemctlPowerOff`` is
only ever given harmless stand-in commands.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.commands.hosting import station as hosting
from appliance.config.schema import (
    DisplayConfig,
    ServiceConfig,
    StationConfig,
    StationSection,
    UiConfig,
)
from appliance.service.app import Service, ServiceContext, StationBuild
from appliance.service.fake import FakeStation
from appliance.service.interface import JobStarted
from appliance.service.poweroff import (
    EXIT_POWEROFF_FAILED,
    EXIT_SHUT_DOWN,
    SYSTEMCTL_POWEROFF,
    PowerOffError,
    SystemctlPowerOff,
    poweroff_refusal,
)
from appliance.service.settings import LoadedConfig
from appliance.station import events as ev
from appliance.station.machine import Station
from appliance.station.states import FailReason, SlotState, StationState
from appliance.ui.display import SHIFTS, compose
from appliance.ui.messages import catalogue
from appliance.ui.screens import choose, render

GB = 1000**3
SYSTEMD = {"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- the state machine ---------------------------------------------------------------------------


def _busy_station() -> Station:
    station = Station(slots=4, batch_window=0.0)
    for event in (ev.Started(), ev.ContentInserted("P", "1", ()), ev.ContentVerified()):
        station.apply(event)
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.JobProgress(1, "load", 1, 2, fraction=0.5))
    assert station.snapshot().slot(1).state is SlotState.LOADING
    return station


def test_menu_held_then_stopped_then_safe_screen() -> None:
    station = _busy_station()
    station.apply(ev.MenuHeld())
    assert station.state is StationState.SHUTTING_DOWN
    assert choose(station.snapshot()) == "shutdown"
    # the engine's late "done" for the cancelled stick changes nothing: it was cancelled
    station.apply(ev.JobDone(1, "full"))
    assert station.snapshot().slot(1).reason is FailReason.CANCELLED
    assert station.run_done == 0
    station.apply(ev.ServiceStopped(powering_off=True))
    snap = station.snapshot()
    assert snap.state is StationState.STOPPED and snap.powering_off
    assert choose(snap) == "stopped"
    # nothing the operator or the hub does brings the station back
    for event in (
        ev.StartPressed(),
        ev.MenuPressed(),
        ev.CancelPressed(),
        ev.DriveArrived(2, 8 * GB),
        ev.ContentRemoved(),
        ev.Shutdown(),
    ):
        assert station.apply(event) == []
    assert station.state is StationState.STOPPED
    assert choose(station.snapshot()) == "stopped"


def test_poweroff_failed_only_after_stopped() -> None:
    station = _busy_station()
    station.apply(ev.PowerOffFailed("too early"))  # not even shutting down: ignored
    assert station.state is StationState.BUSY
    station.apply(ev.MenuHeld())
    station.apply(ev.PowerOffFailed("still cancelling"))  # the ledger is not closed yet
    assert station.state is StationState.SHUTTING_DOWN
    station.apply(ev.ServiceStopped(powering_off=True))
    station.apply(ev.PowerOffFailed("systemctl exit status 1: Access denied"))
    snap = station.snapshot()
    assert snap.state is StationState.POWEROFF_FAILED and not snap.powering_off
    assert choose(snap) == "poweroff_failed"
    station.apply(ev.StartPressed())
    assert station.state is StationState.POWEROFF_FAILED


def test_service_stopped_outside_a_shutdown_is_ignored() -> None:
    station = _busy_station()
    station.apply(ev.ServiceStopped())
    assert station.state is StationState.BUSY


@pytest.mark.parametrize("language", ["en", "ko"])
def test_shutdown_screens_say_when_to_unplug(language: str) -> None:
    m = catalogue(language)
    station = _busy_station()
    station.apply(ev.MenuHeld())
    during = render(station.snapshot(), m)
    station.apply(ev.ServiceStopped(powering_off=True))
    safe = render(station.snapshot(), m)
    station.apply(ev.PowerOffFailed("refused"))
    failed = render(station.snapshot(), m)
    assert (during.name, safe.name, failed.name) == ("shutdown", "stopped", "poweroff_failed")
    for frame in (during, safe, failed):
        assert frame.overflows == []
    # three different pictures: the operator can tell "wait" from "unplug" from "failed"
    pictures = {frame.image.tobytes() for frame in (during, safe, failed)}
    assert len(pictures) == 3


# -- the guard and the command -------------------------------------------------------------------


def test_poweroff_only_when_systemd_started_us_and_the_config_allows() -> None:
    assert poweroff_refusal(ServiceConfig(), SYSTEMD) is None
    assert "INVOCATION_ID" in (poweroff_refusal(ServiceConfig(), {}) or "")
    assert "INVOCATION_ID" in (poweroff_refusal(ServiceConfig(), {"INVOCATION_ID": ""}) or "")
    refused = poweroff_refusal(ServiceConfig(poweroff=False), SYSTEMD)
    assert refused is not None and "service.poweroff" in refused


def test_systemctl_command_goes_to_pid1_without_blocking() -> None:
    """Only compared, never run: the job ``systemctl poweroff`` queues, without waiting."""
    assert SystemctlPowerOff().command == SYSTEMCTL_POWEROFF
    assert SYSTEMCTL_POWEROFF[0] == "systemctl"
    assert "--no-block" in SYSTEMCTL_POWEROFF
    assert "--job-mode=replace-irreversibly" in SYSTEMCTL_POWEROFF
    assert SYSTEMCTL_POWEROFF[-2:] == ("start", "poweroff.target")


def test_systemctl_poweroff_reports_missing_refused_and_hanging(tmp_path: Path) -> None:
    SystemctlPowerOff((sys.executable, "-c", "pass"))()  # exit 0: the job was queued
    with pytest.raises(PowerOffError, match="not found"):
        SystemctlPowerOff((str(tmp_path / "no-systemctl"), "poweroff"))()
    refuse = "import sys; print('Access denied', file=sys.stderr); sys.exit(1)"
    with pytest.raises(PowerOffError, match="exit status 1: Access denied"):
        SystemctlPowerOff((sys.executable, "-c", refuse))()
    with pytest.raises(PowerOffError, match="did not answer"):
        SystemctlPowerOff((sys.executable, "-c", "import time; time.sleep(30)"), timeout=0.5)()


# -- the hosted station's hook -------------------------------------------------------------------


def test_menu_hold_asks_the_service_and_never_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed: list[int] = []
    monkeypatch.setattr(hosting.os, "kill", lambda pid, sig: killed.append(sig))
    asked: list[str] = []
    host, hardware = hosting.build(
        StationConfig(), tmp_path / "state", request_shutdown=lambda: asked.append("shutdown")
    )
    host.runner.open()
    host.runner.drain()
    hardware.post(ev.MenuHeld())
    host.runner.drain()
    assert asked == ["shutdown"] and killed == []
    assert host.station.state is StationState.SHUTTING_DOWN
    host.runner.close()


class NoMonitor:
    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class Hosted:
    """``hosting.service_build`` as the service calls it, keeping a handle on the hardware."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(hosting, "make_monitor", lambda *a, **k: NoMonitor())
        self.hardware: Any = None
        self.build: StationBuild | None = None
        real = hosting.build

        def spy(*args: Any, **kwargs: Any) -> Any:
            host, self.hardware = real(*args, **kwargs)
            return host, self.hardware

        monkeypatch.setattr(hosting, "build", spy)

    def __call__(self, context: ServiceContext) -> StationBuild:
        self.build = hosting.service_build(context)
        return self.build

    def last_frame(self) -> Any:
        return self.hardware.screen.device.image


def _config(poweroff: bool = True) -> StationConfig:
    return StationConfig(
        station=StationSection(slots=4),
        ui=UiConfig(display=DisplayConfig(driver="dummy")),
        service=ServiceConfig(poweroff=poweroff, stagger=0.0),
    )


class Recorder:
    """A fake power-off: records each call and what the ledger looked like then."""

    def __init__(self, state_dir: Path, fail: str | None = None) -> None:
        self.state_dir = state_dir
        self.fail = fail
        self.calls: list[dict[str, Any]] = []
        self.service: Service | None = None

    def __call__(self) -> None:
        assert self.service is not None and self.service.ledger is not None
        try:
            self.service.ledger._db.execute("SELECT 1")
            closed = False
        except sqlite3.ProgrammingError:  # "Cannot operate on a closed database"
            closed = True
        db = sqlite3.connect(f"file:{self.state_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
        try:
            jobs = db.execute("SELECT state, reason FROM jobs ORDER BY id").fetchall()
        finally:
            db.close()
        self.calls.append(
            {
                "ledger_closed": closed,
                "jobs": jobs,
                "station_stopped": self.service.station is not None
                and self.service.station.status_line().startswith("stopped"),
            }
        )
        if self.fail is not None:
            raise PowerOffError(self.fail)


def _shown(device: Any, frame: Any) -> bool:
    """The device shows ``frame`` (moved by whichever burn-in shift was due)."""
    shown = device.image.convert("1").tobytes()
    return any(compose(frame.image, offset).tobytes() == shown for offset in SHIFTS)


def _run_in_thread(service: Service) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()), daemon=True)
    thread.start()
    return thread, result


def _hosted_service(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    poweroff: bool = True,
    fail: str | None = None,
) -> tuple[Service, Hosted, Recorder]:
    hosted = Hosted(monkeypatch)
    state = tmp_path / "state"
    recorder = Recorder(state, fail)
    service = Service(
        LoadedConfig(_config(poweroff), "files", ()),
        hosted,
        loop_period=0.05,
        state_dir=state,
        power_off=recorder,
        environ=environ,
    )
    recorder.service = service
    return service, hosted, recorder


def _hold_menu(service: Service, hosted: Hosted) -> int:
    thread, result = _run_in_thread(service)
    wait_until(lambda: "watchdog" in service.started)
    hosted.hardware.post(ev.MenuHeld())
    thread.join(60)
    assert not thread.is_alive() and len(result) == 1
    return result[0]


def test_menu_hold_on_the_service_powers_off_after_the_ledger_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, hosted, recorder = _hosted_service(tmp_path, monkeypatch, SYSTEMD)
    assert _hold_menu(service, hosted) == EXIT_SHUT_DOWN
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert call["ledger_closed"]
    assert call["station_stopped"]  # "Safe to unplug" was drawn before the power-off
    # the last frame on the OLED is the safe one, kept after the process exits
    device = hosted.hardware.screen.device
    assert device.persist is True
    assert hosted.hardware.screen.dimmed  # left on for hours: no burn-in
    station = hosted.hardware.station
    assert station.state is StationState.STOPPED and station.powering_off
    expected = render(station.snapshot(), catalogue("en"))
    assert expected.name == "stopped"
    assert _shown(device, expected)


def test_a_refused_poweroff_is_shown_and_not_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, hosted, recorder = _hosted_service(
        tmp_path, monkeypatch, SYSTEMD, fail="systemctl exit status 1: Access denied"
    )
    assert _hold_menu(service, hosted) == EXIT_POWEROFF_FAILED
    assert len(recorder.calls) == 1 and recorder.calls[0]["ledger_closed"]
    station = hosted.hardware.station
    assert station.state is StationState.POWEROFF_FAILED
    frame = render(station.snapshot(), catalogue("en"))
    assert frame.name == "poweroff_failed"
    device = hosted.hardware.screen.device
    assert _shown(device, frame) and device.persist is True


@pytest.mark.parametrize(
    ("environ", "poweroff"),
    [({}, True), (SYSTEMD, False)],
    ids=["by-hand", "config-off"],
)
def test_no_poweroff_by_hand_or_when_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], poweroff: bool
) -> None:
    service, hosted, recorder = _hosted_service(tmp_path, monkeypatch, environ, poweroff)
    assert _hold_menu(service, hosted) == EXIT_SHUT_DOWN
    assert recorder.calls == []
    station = hosted.hardware.station
    assert station.state is StationState.STOPPED and not station.powering_off


def test_sigterm_is_not_an_operator_shutdown(tmp_path: Path) -> None:
    """``systemctl stop`` (request_stop) stops in order, exits 0 and never powers off."""
    state = tmp_path / "state"
    recorder = Recorder(state)
    service = Service(
        LoadedConfig(_config(), "files", ()),
        lambda context: StationBuild(FakeStation()),
        loop_period=0.05,
        state_dir=state,
        power_off=recorder,
        environ=SYSTEMD,
    )
    recorder.service = service
    thread, result = _run_in_thread(service)
    wait_until(lambda: "watchdog" in service.started)
    service.request_stop()
    thread.join(30)
    assert result == [0] and recorder.calls == []


def test_running_jobs_are_recorded_cancelled_before_the_poweroff(tmp_path: Path) -> None:
    """The service path with a stand-in station: its running job reaches the ledger as
    cancelled, the ledger is closed, and only then is the power-off asked for."""
    state = tmp_path / "state"
    recorder = Recorder(state)
    stations: list[FakeStation] = []
    told: list[object] = []
    contexts: list[ServiceContext] = []

    def factory(context: ServiceContext) -> StationBuild:
        contexts.append(context)
        stations.append(FakeStation())
        return StationBuild(stations[-1], on_stopped=told.append)

    service = Service(
        LoadedConfig(_config(), "files", ()),
        factory,
        loop_period=0.05,
        state_dir=state,
        power_off=recorder,
        environ=SYSTEMD,
    )
    recorder.service = service
    thread, result = _run_in_thread(service)
    wait_until(lambda: "watchdog" in service.started)
    stations[0].emit(JobStarted("j1", "b1", "SERIAL-NEVER-STORED", 8 * GB, "full"))
    contexts[0].request_shutdown()  # what the hosted station's MENU hook calls
    thread.join(30)
    assert result == [EXIT_SHUT_DOWN]
    assert told == [True]
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert call["ledger_closed"]
    assert [state for state, _ in call["jobs"]] == ["cancelled"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--fake-poweroff", "/nonexistent/x"],  # the real station would be hosted
        ["run", "--fake-station", "--fake-shutdown-after", "1"],  # would run systemctl
    ],
)
def test_the_stand_in_shutdown_never_reaches_the_real_power_off(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from appliance.cli import main

    assert main(argv) == 2
    assert "fake" in capsys.readouterr().err


class GateObserver:
    """The content observer, held at the first chunk: the engine is mid-load (sector 0
    already zeroed, the partition table not yet written) for as long as the test wants."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def chunk(self, source: Any, offset: int, data: bytes) -> None:
        self.reached.set()
        self.release.wait(30)

    def file_done(self, source: Any) -> None:
        pass


def _sector0(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(512)


def _partition_table(path: Path) -> str:
    """blkid, an independent judge: the partition table type on ``path``, or ''."""
    out = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "PTTYPE", str(path)], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else ""


@pytest.mark.skipif(not shutil.which("sfdisk") or not shutil.which("blkid"), reason="util-linux")
def test_menu_hold_mid_load_leaves_the_stick_blank_and_counted_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole chain: a stick the real engine is loading, MENU held, the service's stop,
    the ledger closed, then the (fake) power-off. The stick, a donor's with a partition
    table, ends with none (commit last), and the ledger counts it cancelled, never done."""
    from appliance.content import load_trusted, open_pack
    from appliance.ui.simulator import SAMPLE_PACK, TEST_KEY

    stick = tmp_path / "stick.img"
    with open(stick, "wb") as f:
        f.truncate(80 * 1024 * 1024)
    subprocess.run(["sfdisk", "-q", str(stick)], input="2048,,c\n", text=True, check=True)
    assert _partition_table(stick) == "dos"  # the donor's table
    service, hosted, recorder = _hosted_service(tmp_path, monkeypatch, SYSTEMD)
    gate = GateObserver()
    thread, result = _run_in_thread(service)
    try:
        wait_until(lambda: "watchdog" in service.started)
        hardware = hosted.hardware
        assert hosted.build is not None
        hosted.build.station.runner.loader.observer = lambda: gate  # type: ignore[attr-defined]
        pack = open_pack(SAMPLE_PACK, load_trusted([TEST_KEY]))
        hardware.content = SimpleNamespace(
            ready=True, source=pack, root=SAMPLE_PACK, device="/dev/fake", close=lambda: None
        )
        hardware.post(ev.ContentInserted("Sample", "1", ()))
        hardware.post(ev.ContentVerified())
        hardware.post(ev.DriveArrived(2, 80 * 1024 * 1024, device=str(stick), drive_id="d2"))
        if not gate.reached.wait(30):
            service.request_stop()
            pytest.fail("the engine never started reading the content")
        # mid-load: the worker has zeroed sector 0 (a stick cancelled while still probing
        # was never written and keeps the donor's table; that is the engine's business)
        wait_until(lambda: _sector0(stick) == bytes(512))
        hardware.post(ev.MenuHeld())
        wait_until(lambda: hardware.station.state is not StationState.BUSY)
    finally:
        gate.release.set()
        thread.join(60)
    assert result == [EXIT_SHUT_DOWN]
    assert len(recorder.calls) == 1
    call = recorder.calls[0]
    assert call["ledger_closed"]
    assert [state for state, _ in call["jobs"]] == ["cancelled"]
    assert _partition_table(stick) == ""  # no table: no reader sees a half-loaded stick
    assert hardware.station.state is StationState.STOPPED
