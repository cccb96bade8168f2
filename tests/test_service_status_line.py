"""``systemctl status`` says this run's count and the ledger's all-time totals, each named.

The grid shows this run's "done N" (``run_done``) while the totals page shows the
ledger's all-time figures; the STATUS= line names both, so a technician reading
``systemctl status`` after a restart cannot mistake one for the other.
"""

from __future__ import annotations

from appliance.service.ledger import Totals
from appliance.service.station_host import StationHost
from appliance.station import events as ev
from appliance.station.fakes import GB, ManualWatcher, SimLoader, SimStick
from appliance.station.machine import Station
from appliance.station.runtime import StationRunner

TIERS = (("small", 4 * GB, 2 * GB),)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _run_until_idle(host: StationHost, loader: SimLoader, clock: Clock) -> None:
    for _ in range(200):
        clock.t += 0.5
        loader.advance(clock.t)
        host.runner.drain()


def test_status_line_names_this_run_and_all_time() -> None:
    clock = Clock()
    loader = SimLoader(
        tiers=TIERS,
        sticks={
            1: SimStick(8 * GB),
            2: SimStick(8 * GB),
            3: SimStick(64 * GB, real_capacity=8 * GB),
        },
    )
    station = Station(slots=4, feeding="auto", batch_window=1.0, clock=clock)
    watcher = ManualWatcher()
    host = StationHost(StationRunner(station, loader, [watcher]), clock=clock)
    host.runner.open()
    for e in (ev.ContentInserted("Films", "7", TIERS), ev.ContentVerified()):
        watcher.emit(e)
    host.runner.drain()
    # no ledger totals yet (or no ledger at all): every figure is this run's
    assert host.status_line() == "ready: 0 loading, 0 done this run, 0 failed this run"
    # the ledger's all-time totals arrive (as the hosted station's totals feed posts them)
    host.show_totals(Totals(1287, 41, 3, 2, failed_by_reason={"fake capacity": 41}))
    host.runner.drain()
    line = host.status_line()
    assert line == "ready: 0 loading, 0 done this run, 1287 done in all, 46 failed in all"
    for slot in (1, 2, 3):
        watcher.emit(ev.DriveArrived(slot, loader.sticks[slot].capacity, f"/dev/sd{slot}"))
    host.runner.drain()
    clock.t += 1.5
    host.runner.drain()
    assert host.status_line().startswith("busy: 3 loading, 0 done this run, 1287 done in all")
    _run_until_idle(host, loader, clock)
    # two sticks done in this run; the station counts them into its all-time copy too
    # until the ledger's next totals replace it (the hosted feed re-reads after each job)
    line = host.status_line()
    assert line.startswith("ready: 0 loading, 2 done this run, 1289 done in all, ")
    assert line.endswith(" 47 failed in all")
    # a refresh from the ledger replaces the all-time figures, never this run's count
    host.show_totals(Totals(1289, 42, 3, 2, failed_by_reason={"fake capacity": 42}))
    host.runner.drain()
    assert host.status_line() == (
        "ready: 0 loading, 2 done this run, 1289 done in all, 47 failed in all"
    )
    host.runner.close()
