"""``flashstation run``: notify protocol on a fake NOTIFY_SOCKET, watchdog, signals, logging."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.config import StationConfig
from appliance.service.app import Component, Service, ServiceContext, StationBuild
from appliance.service.fake import FakeStation
from appliance.service.interface import JobFinished, JobStarted
from appliance.service.ledger import Ledger
from appliance.service.logsetup import setup_logging
from appliance.service.notify import Notifier
from appliance.service.power import PowerFlags
from appliance.service.settings import LoadedConfig
from appliance.service.watchdog import Heartbeat, Watchdog

REPO = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Poll ``predicate`` (generous timeout: CI machines are loaded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def drain(self, until: str | None = None, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                if until is None:
                    break
            if until is not None and any(until in m for m in self.messages):
                break
        return self.messages

    def fields(self, name: str) -> list[str]:
        return [
            line.split("=", 1)[1]
            for m in self.messages
            for line in m.splitlines()
            if line.startswith(f"{name}=")
        ]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.sock.close()


def _run_cli(tmp_path: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "run",
            "--fake-station",
            "0.1",
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(tmp_path / "none.yaml"),
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=tmp_path,
    )


def test_run_speaks_notify_protocol_with_systemd_module(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    proc = _run_cli(tmp_path, {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "400000"})
    try:
        notify_socket.drain(until="READY=1")
        notify_socket.drain(until=" 1 done")
        time.sleep(0.5)
        notify_socket.drain()
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    notify_socket.drain()
    _, err = proc.communicate()
    messages = notify_socket.messages
    assert any("READY=1" in m for m in messages)
    assert any(m == "WATCHDOG=1" for m in messages)
    assert sum(m == "WATCHDOG=1" for m in messages) >= 3  # every 0.1 s for 0.8 s+
    statuses = notify_socket.fields("STATUS")
    assert statuses[0].startswith("ready:")
    assert any(" done" in s and not s.endswith(" 0 done, 0 failed") for s in statuses)
    assert "STOPPING=1" in messages[-1] or any("STOPPING=1" in m for m in messages[-3:])
    # SIGUSR1: every thread's stack and the state are logged
    assert "state dump (SIGUSR1)" in err
    assert "thread MainThread" in err and "thread watchdog" in err and "ledger totals" in err


def test_run_without_systemd_module_uses_socket_fallback(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    code = (
        "import sys; sys.modules['systemd'] = None; "
        "from appliance.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "run",
            "--fake-station",
            "0.1",
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(tmp_path / "x.yaml"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(notify_socket.path)},
    )
    try:
        notify_socket.drain(until="READY=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    notify_socket.drain()
    assert any("READY=1" in m for m in notify_socket.messages)
    assert any("STOPPING=1" in m for m in notify_socket.messages)


def test_run_without_notify_socket_is_silent_and_works(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "run",
            "--fake-station",
            "0.05",
            "--state-dir",
            str(tmp_path / "state"),
            "--config",
            str(tmp_path / "x.yaml"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 20  # generous: a loaded CI machine starts Python slowly
    while time.monotonic() < deadline and _done(tmp_path / "state") < 1:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-3000:]
    assert "flashstation running" in err and "Traceback" not in err
    with Ledger(tmp_path / "state") as led:
        assert led.totals().done >= 1
        assert led.interrupted_on_open == 0  # SIGTERM: the running job was recorded cancelled


def _done(state: Path) -> int:
    """Jobs done so far, read without taking any lock the running service needs."""
    path = state / "ledger.sqlite3"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            row = db.execute("SELECT COUNT(*) FROM jobs WHERE state='done'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:  # not created yet, or mid-migration on first start
        return 0
    return int(row[0])


def test_notifier_fallback_abstract_and_status_dedup(tmp_path: Path) -> None:
    name = f"@flashstation-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(1)
    try:
        n = Notifier({"NOTIFY_SOCKET": name}, use_module=False)
        assert n.enabled
        assert n.status("ready:\n 3 done")
        assert not n.status("ready: 3 done")  # unchanged: not sent again
        assert n.watchdog()
        assert sock.recv(100) == b"STATUS=ready: 3 done"
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()
    silent = Notifier({})
    assert not silent.enabled and not silent.ready() and silent.watchdog_interval is None


def test_watchdog_usec_only_for_our_pid() -> None:
    assert Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_interval == 2.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_interval == 2.0
    assert Notifier({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).watchdog_interval is None


def test_watchdog_pets_only_while_heartbeat_is_fresh() -> None:
    now = [0.0]
    beat = Heartbeat(lambda: now[0])
    sent: list[str] = []
    notifier = Notifier({})
    notifier._send = lambda m: sent.append(m) or True
    dog = Watchdog(notifier, beat, interval=10.0)
    assert dog.tick() and sent == ["WATCHDOG=1"]
    now[0] = 4.9
    assert dog.tick()
    now[0] = 5.1  # main loop silent for more than half the interval
    assert not dog.tick() and not dog.tick()
    assert sent == ["WATCHDOG=1"] * 2 and dog.missed == 2
    beat.beat()
    assert dog.tick()


class HangingStation(FakeStation):
    """A station whose status call deadlocks after a while (as a stuck lock would)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.release = threading.Event()

    def status_line(self) -> str:
        self.calls += 1
        if self.calls > 3:
            self.release.wait()
        return super().status_line()


def _service(station: FakeStation, tmp_path: Path, **kw: object) -> Service:
    config = StationConfig()
    loaded = LoadedConfig(config, "files", ())
    return Service(
        loaded,
        lambda ctx: StationBuild(station),
        state_dir=tmp_path / "state",
        loop_period=0.02,
        **kw,  # type: ignore[arg-type]
    )


def test_stuck_main_loop_stops_the_watchdog(tmp_path: Path) -> None:
    station = HangingStation()
    sent: list[str] = []
    notifier = Notifier({"WATCHDOG_USEC": "200000"})
    notifier._send = lambda m: sent.append(m) or True
    service = _service(station, tmp_path, notifier=notifier, power_reader=lambda: None)
    thread = threading.Thread(target=service.run)
    thread.start()
    wait_until(lambda: service.watchdog is not None and service.watchdog.missed > 0)
    assert station.calls == 4  # stuck in the 4th status call
    pets_when_stuck = sent.count("WATCHDOG=1")
    assert pets_when_stuck >= 1  # it did pet while the loop ran
    time.sleep(0.5)
    assert sent.count("WATCHDOG=1") == pets_when_stuck  # no petting while stuck
    service.request_stop()
    station.release.set()
    thread.join(10)
    assert not thread.is_alive()


def test_ordered_start_and_reverse_stop_even_when_a_part_fails(tmp_path: Path) -> None:
    order: list[str] = []

    def part(name: str, fail: bool = False) -> Component:
        def start() -> None:
            order.append(f"start {name}")
            if fail:
                raise RuntimeError(f"{name} broke")

        return Component(name, start, lambda: order.append(f"stop {name}"))

    def factory(ctx: ServiceContext) -> StationBuild:
        assert isinstance(ctx.ledger, Ledger)  # the ledger is open before anything else
        parts = [part("hardware"), part("hotplug"), part("engine", fail=True), part("ui")]
        return StationBuild(FakeStation(), parts)

    service = Service(
        LoadedConfig(StationConfig(), "files", ()),
        factory,
        state_dir=tmp_path / "s",
        notifier=Notifier({}),
        power_reader=lambda: None,
    )
    assert service.run() == 1
    assert order == [
        "start hardware",
        "start hotplug",
        "start engine",
        "stop hotplug",
        "stop hardware",
    ]
    assert service.started == ["ledger", "hardware", "hotplug"]


def test_undervoltage_pauses_station_and_shows_in_status(tmp_path: Path) -> None:
    station = FakeStation()
    flags = [PowerFlags(0)]
    sent: list[str] = []
    notifier = Notifier({})
    notifier._send = lambda m: sent.append(m) or True
    service = _service(station, tmp_path, notifier=notifier, power_reader=lambda: flags[0])
    service.config = StationConfig()
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        wait_until(lambda: service.power is not None and service.power.flags is not None)
        assert station.paused is None
        flags[0] = PowerFlags(0x50005)
        # power_poll defaults to 2 s: poll now rather than wait
        assert service.power is not None
        service.power.poll()
        assert station.paused == "under-voltage: check the power supply"
        wait_until(lambda: any("under-voltage" in m for m in sent if m.startswith("STATUS=")))
        flags[0] = PowerFlags(0x50000)  # occurred, not now
        service.power.poll()
        assert station.paused is None
    finally:
        service.request_stop()
        thread.join(10)


def test_ledger_listener_records_station_events(tmp_path: Path) -> None:
    station = FakeStation()
    service = _service(station, tmp_path, notifier=Notifier({}), power_reader=lambda: None)
    thread = threading.Thread(target=service.run)
    thread.start()
    wait_until(lambda: station.started)
    station.emit(JobStarted("j1", "b", "SERIAL-1", 4 * 10**9, "4GB"))
    station.emit(JobFinished("j1", "done"))
    station.emit(JobStarted("j2", "b", "SERIAL-2", 4 * 10**9, "4GB"))
    service.request_stop()
    thread.join(10)
    with Ledger(tmp_path / "state") as led:
        totals = led.totals()
    assert (totals.done, totals.cancelled, totals.running) == (1, 1, 0)


def test_logging_picks_journal_only_when_journald_listens(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        assert setup_logging(socket=tmp_path / "missing") == "stderr"
        assert isinstance(root.handlers[0], logging.StreamHandler)
        fake_journal = tmp_path / "socket"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(fake_journal))
        try:
            assert setup_logging(socket=fake_journal) == "journal"
            assert type(root.handlers[0]).__name__ == "JournalHandler"
        finally:
            sock.close()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
