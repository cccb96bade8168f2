"""The real station (state machine + runner, with its simulated loader) hosted by the service."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from servicekit import running_service, wait_all_time_totals

from appliance.commands.hosting import station as hosting
from appliance.config import StationConfig
from appliance.config.loader import ConfigProblem
from appliance.service.app import ServiceContext, StationBuild
from appliance.service.interface import (
    BatchFinished,
    BatchStarted,
    JobFinished,
    JobStarted,
    StationEvent,
)
from appliance.service.ledger import Ledger, Totals
from appliance.service.settings import LoadedConfig
from appliance.service.station_host import StationHost, failed_reasons
from appliance.station import events as ev
from appliance.station.fakes import GB, ManualWatcher, SimLoader, SimStick
from appliance.station.machine import Snapshot, Station
from appliance.station.runtime import StationRunner
from appliance.station.states import FailReason, StationState

TIERS = (("small", 4 * GB, 2 * GB), ("large", 16 * GB, 10 * GB))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _host(clock: Clock, loader: SimLoader) -> tuple[StationHost, ManualWatcher, list[StationEvent]]:
    station = Station(slots=4, feeding="auto", batch_window=1.0, clock=clock)
    watcher = ManualWatcher()
    runner = StationRunner(station, loader, [watcher])
    host = StationHost(runner, clock=clock)
    seen: list[StationEvent] = []
    host.add_listener(seen.append)
    runner.open()
    return host, watcher, seen


def test_slot_changes_become_ledger_events(tmp_path: Path) -> None:
    clock = Clock()
    loader = SimLoader(
        TIERS,
        sticks={
            1: SimStick(8 * GB, speed=1e9),
            2: SimStick(64 * GB, real_capacity=4 * GB),
            3: SimStick(8 * GB, speed=1e9),
            4: SimStick(8 * GB, speed=1e6),
        },
    )
    host, watcher, seen = _host(clock, loader)
    led = Ledger(tmp_path)
    host.add_listener(led.record)
    runner = host.runner
    for e in (ev.ContentInserted("Films", "7", TIERS), ev.ContentVerified()):
        watcher.emit(e)
    for slot, cap in ((1, 8 * GB), (2, 64 * GB), (3, 8 * GB), (4, 8 * GB)):
        watcher.emit(ev.DriveArrived(slot, cap, f"/dev/sd{'abcd'[slot - 1]}", f"id{slot}"))
    runner.drain()
    clock.t = 1.5  # batch window over: one batch of four
    runner.drain()
    assert host.station.state is StationState.BUSY
    starts = [e for e in seen if isinstance(e, JobStarted)]
    assert len(starts) == 4 and len({e.batch for e in starts}) == 1
    assert [e for e in seen if isinstance(e, BatchStarted)] == [BatchStarted("1", "Films", "7")]
    assert {e.serial for e in starts} == {"id1", "id2", "id3", "id4"}
    assert "busy: 4 loading" in host.status_line()
    assert len(host.snapshot()) == 4
    # run the simulated engine: slot 2 fails its probe, slot 3 is pulled mid-write
    for t in (2.0, 3.0, 4.0, 5.0):
        clock.t = t
        loader.advance(t)
        runner.drain()
        if t == 3.0:
            watcher.emit(ev.DriveGone(3))
            runner.drain()
    for t in range(6, 40):
        clock.t = float(t)
        loader.advance(clock.t)
        runner.drain()
    finished = {e.job: e for e in seen if isinstance(e, JobFinished)}
    assert finished["b1-s1"].result == "done" and finished["b1-s1"].tier == "small"
    assert finished["b1-s2"].result == "failed" and finished["b1-s2"].reason == "fake capacity"
    assert finished["b1-s3"].result == "failed" and "removed" in finished["b1-s3"].reason
    assert "b1-s4" not in finished  # slow stick still writing
    assert set(finished["b1-s1"].seconds) >= {"probe", "write", "verify"}
    assert finished["b1-s1"].seconds["probe"] == 0.5  # started at 1.5, wiping seen at 2.0
    # shutdown cancels the running job
    host.station.post(ev.Shutdown())
    runner.drain()
    finished = {e.job: e for e in seen if isinstance(e, JobFinished)}
    assert finished["b1-s4"].result == "cancelled"
    assert seen[-1] == BatchFinished("1")
    totals = led.totals()
    assert (totals.done, totals.failed, totals.cancelled, totals.running) == (1, 2, 1, 0)
    assert totals.failed_by_reason == {"fake capacity": 1, "removed": 1}
    assert led.jobs()[0]["tier"] == "small"
    led.close()


def test_service_hosts_the_real_station(tmp_path: Path) -> None:
    loader = SimLoader(TIERS, sticks={1: SimStick(8 * GB, speed=50e9)})
    watcher = ManualWatcher()
    holder: dict[str, StationHost] = {}

    def factory(context: ServiceContext) -> StationBuild:
        station = Station(slots=4, feeding="auto", batch_window=0.05, clock=time.monotonic)
        runner = StationRunner(station, loader, [watcher])
        holder["host"] = StationHost(runner, stop_timeout=5)
        return StationBuild(holder["host"])

    problem = ConfigProblem("/boot/firmware/flashstation.yaml", 3, "ui.language", "bad value")
    loaded = LoadedConfig(StationConfig(), "last good", (), (problem,))
    with running_service(loaded, factory, tmp_path) as service:
        deadline = time.monotonic() + 5
        while "host" not in holder or not host_started(holder["host"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        host = holder["host"]
        watcher.emit(ev.ContentInserted("Films", "7", TIERS))
        watcher.emit(ev.ContentVerified())
        watcher.emit(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))
        watcher.emit(ev.DriveArrived(2, 8 * GB, "/dev/sdb", "def"))
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20 and ledger_done(tmp_path) < 1:
            loader.advance(time.monotonic() - t0 + 10)  # simulated time runs ahead
            time.sleep(0.02)
        # the bad config is on the station's screen, the line in systemd's STATUS
        assert "bad config /boot/firmware/flashstation.yaml:3" in host.status_line()
        service.power_reader = lambda: None
        host.set_paused("under-voltage")
        deadline = time.monotonic() + 20
        while "under-voltage" not in host.status_line():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    with Ledger(tmp_path, recover=False) as led:
        totals = led.totals()
    assert totals.done >= 1 and totals.running == 0


def host_started(host: StationHost) -> bool:
    return host.runner._thread is not None


def ledger_done(state: Path) -> int:
    try:
        with Ledger(state, recover=False) as led:
            return led.totals().done
    except Exception:
        return 0


def _past_run(state: Path) -> None:
    """A ledger as an earlier run left it: two sticks done, one fake, one cancelled."""
    with Ledger(state) as led:
        led.record(BatchStarted("1", "Films", "7"))
        for job, result, reason in (
            ("b1-s1", "done", ""),
            ("b1-s2", "done", ""),
            ("b1-s3", "failed", "fake capacity"),
            ("b1-s4", "cancelled", "cancelled"),
        ):
            led.record(JobStarted(job, "1", f"serial-{job}", 8 * GB, "small"))
            led.record(JobFinished(job, result, reason, {"write": 1.0}, tier="small"))
        led.record(BatchFinished("1"))


def test_failed_reasons_map_ledger_codes_to_the_screens_reasons(tmp_path: Path) -> None:
    _past_run(tmp_path)
    with Ledger(tmp_path, recover=False) as led:
        totals = led.totals()
    assert totals.done == 2
    assert dict(failed_reasons(totals)) == {
        FailReason.FAKE_CAPACITY: 1,
        FailReason.CANCELLED: 1,
    }


def test_totals_screen_is_fed_from_the_ledger_across_restarts(tmp_path: Path) -> None:
    _past_run(tmp_path)
    loader = SimLoader(TIERS, sticks={1: SimStick(8 * GB, speed=50e9)})
    watcher = ManualWatcher()
    holder: dict[str, StationHost] = {}
    snaps: list[Snapshot] = []
    threads: list[str] = []

    def factory(context: ServiceContext) -> StationBuild:
        station = Station(slots=4, feeding="auto", batch_window=0.05, clock=time.monotonic)
        runner = StationRunner(station, loader, [watcher])
        runner.observers.append(snaps.append)
        host = holder["host"] = StationHost(runner, stop_timeout=5)
        show = host.show_totals

        def spy(totals: Totals) -> None:
            threads.append(threading.current_thread().name)
            show(totals)

        host.show_totals = spy  # type: ignore[method-assign]
        return StationBuild(host, [hosting.totals_feed(context, host)])

    loaded = LoadedConfig(StationConfig(), "files", (), ())
    with running_service(loaded, factory, tmp_path):
        first = wait_all_time_totals(snaps)
        # this run has loaded nothing: the screen shows the earlier run's numbers
        assert first.totals_done == 2
        assert dict(first.totals_failed) == {
            FailReason.FAKE_CAPACITY: 1,
            FailReason.CANCELLED: 1,
        }
        watcher.emit(ev.ContentInserted("Films", "7", TIERS))
        watcher.emit(ev.ContentVerified())
        watcher.emit(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))
        t0 = time.monotonic()
        while "ledger" not in threads:
            assert time.monotonic() - t0 < 20, "the ledger never refreshed the totals"
            loader.advance(time.monotonic() - t0 + 10)
            time.sleep(0.02)
        deadline = time.monotonic() + 5
        while snaps[-1].totals_done != 3:  # the ledger's count, now with this run's stick
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert snaps[-1].totals_all_time
        # read at start (the service's thread) and after the job (the ledger's), never
        # on the station's thread
        assert "station" not in threads
    with Ledger(tmp_path, recover=False) as led:
        assert led.totals().done == 3
