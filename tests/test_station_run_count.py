"""The grid's "done N" counts this run's finished sticks; the totals page keeps all time.

Counted once per job, when the stick is verified and committed (``JobDone``);
failures, pulled and cancelled sticks are not. The hosted station's totals come
from the ledger (``TotalsLoaded``) and survive a restart; this run's count does
not, and jobs a power cut interrupted (marked ``interrupted`` by the ledger's
recovery) count in neither.
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image, ImageDraw
from servicekit import running_service, wait_all_time_totals

from appliance.commands.hosting import station as hosting
from appliance.config import StationConfig
from appliance.service.app import ServiceContext, StationBuild
from appliance.service.interface import BatchFinished, BatchStarted, JobFinished, JobStarted
from appliance.service.ledger import Ledger
from appliance.service.settings import LoadedConfig
from appliance.service.station_host import StationHost
from appliance.station import events as ev
from appliance.station.fakes import GB, ManualWatcher, SimLoader, SimStick
from appliance.station.machine import Snapshot, Station
from appliance.station.runtime import StationRunner
from appliance.station.states import FailReason, SlotState
from appliance.ui.messages import catalogue
from appliance.ui.screens import Painter, grid, totals

TIERS = (("small", 4 * GB, 2 * GB),)


def _ready(slots: int = 8) -> Station:
    station = Station(slots=slots, feeding="button", batch_window=1.0)
    for e in (ev.Started(), ev.ContentInserted("Films", "7", TIERS), ev.ContentVerified()):
        station.apply(e)
    return station


def _start(station: Station, *slots: int) -> None:
    for n in slots:
        station.apply(ev.DriveArrived(n, 8 * GB, f"/dev/sd{n}", f"id{n}"))
    station.apply(ev.StartPressed())
    for n in slots:
        assert station.snapshot().slot(n).state is SlotState.PROBING


def _finish(station: Station, slot: int) -> None:
    station.apply(ev.JobProgress(slot, "load", 1, 2))
    station.apply(ev.JobProgress(slot, "verify", 2, 2))
    station.apply(ev.JobDone(slot, "small"))


def test_a_finished_stick_counts_failed_pulled_and_cancelled_ones_do_not() -> None:
    station = _ready()
    station.apply(ev.TotalsLoaded(1287, ((FailReason.FAKE_CAPACITY, 41),)))  # the ledger's
    _start(station, 1, 2, 3, 4, 5)
    assert station.snapshot().run_done == 0
    _finish(station, 1)
    assert station.snapshot().run_done == 1
    station.apply(ev.JobFailed(2, FailReason.VERIFY_FAILED))
    station.apply(ev.JobProgress(3, "load", 1, 2))
    station.apply(ev.DriveGone(3))  # pulled mid-job
    station.apply(ev.JobDone(3, "small"))  # the engine's late word for it: not counted
    station.apply(ev.CancelPressed())
    station.apply(ev.CancelPressed())  # slots 4 and 5 cancelled
    station.apply(ev.JobDone(4, "small"))  # late too
    snap = station.snapshot()
    assert snap.run_done == 1
    assert [snap.slot(n).state for n in (1, 2, 3, 4, 5)] == [
        SlotState.DONE,
        SlotState.FAILED,
        SlotState.REMOVED,
        SlotState.FAILED,
        SlotState.FAILED,
    ]
    station.apply(ev.JobDone(1, "small"))  # a duplicate for a done slot counts once
    assert station.snapshot().run_done == 1
    # the ledger's all-time totals move with their own feed, never this run's count
    station.apply(ev.TotalsLoaded(1288, ((FailReason.FAKE_CAPACITY, 41),)))
    snap = station.snapshot()
    assert (snap.run_done, snap.totals_done, snap.totals_all_time) == (1, 1288, True)
    # a new stick in a freed slot counts again
    station.apply(ev.DriveGone(1))
    _start(station, 1)
    _finish(station, 1)
    assert station.snapshot().run_done == 2


def _texts(screen: object, snap: Snapshot, language: str = "en") -> list[str]:
    painter = Painter(ImageDraw.Draw(Image.new("1", (128, 64))))
    screen(painter, snap, catalogue(language))  # type: ignore[operator]
    assert painter.overflows == []
    return [text for text, _box in painter.texts]


def test_grid_shows_this_runs_count_and_totals_the_ledgers() -> None:
    station = _ready()
    _start(station, 1, 2)
    _finish(station, 1)
    station.apply(ev.TotalsLoaded(1287, ((FailReason.FAKE_CAPACITY, 41),)))
    snap = station.snapshot()
    assert "done 1" in _texts(grid, snap)
    assert "완료 1" in _texts(grid, snap, "ko")
    assert not any("1287" in t for t in _texts(grid, snap))
    assert "Done 1287" in _texts(totals, snap)


def _past_run_with_a_power_cut(state: Path) -> None:
    """Two sticks done, one failed; a fourth was being written when the power went."""
    with Ledger(state) as led:
        led.record(BatchStarted("1", "Films", "7"))
        for job, result, reason in (
            ("b1-s1", "done", ""),
            ("b1-s2", "done", ""),
            ("b1-s3", "failed", "fake capacity"),
        ):
            led.record(JobStarted(job, "1", f"serial-{job}", 8 * GB, "small"))
            led.record(JobFinished(job, result, reason, {"write": 1.0}, tier="small"))
        led.record(JobStarted("b1-s4", "1", "serial-b1-s4", 8 * GB, "small"))  # never finished
        led.record(BatchFinished("1"))
    with Ledger(state, recover=False) as led:
        assert led.totals().interrupted == 0  # still "running" until the next start recovers it


def test_after_a_restart_the_grid_starts_from_zero_and_interrupted_jobs_count_nowhere(
    tmp_path: Path,
) -> None:
    _past_run_with_a_power_cut(tmp_path)
    loader = SimLoader(TIERS, sticks={1: SimStick(8 * GB, speed=50e9)})
    watcher = ManualWatcher()
    snaps: list[Snapshot] = []

    def factory(context: ServiceContext) -> StationBuild:
        station = Station(slots=4, feeding="auto", batch_window=0.05, clock=time.monotonic)
        runner = StationRunner(station, loader, [watcher])
        runner.observers.append(snaps.append)
        host = StationHost(runner, stop_timeout=5)
        return StationBuild(host, [hosting.totals_feed(context, host)])

    with running_service(LoadedConfig(StationConfig(), "files", (), ()), factory, tmp_path):
        first = wait_all_time_totals(snaps)
        # the grid: nothing this run; the totals: the two done before, not the interrupted one
        assert (first.run_done, first.totals_done) == (0, 2)
        assert dict(first.totals_failed) == {FailReason.FAKE_CAPACITY: 1, FailReason.UNKNOWN: 1}
        watcher.emit(ev.ContentInserted("Films", "7", TIERS))
        watcher.emit(ev.ContentVerified())
        watcher.emit(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))
        t0 = time.monotonic()
        while not (snaps[-1].run_done == 1 and snaps[-1].totals_done == 3):
            assert time.monotonic() - t0 < 20, "the stick never counted"
            loader.advance(time.monotonic() - t0 + 10)
            time.sleep(0.02)
        assert snaps[-1].slot(1).state is SlotState.DONE
    with Ledger(tmp_path, recover=False) as led:
        t = led.totals()
        assert (t.done, t.interrupted) == (3, 1)
