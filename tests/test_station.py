"""The station state machine: feeding modes, batches, failures, buttons, shutdown."""

from __future__ import annotations

import pytest

from appliance.station import events as ev
from appliance.station.effects import CancelAll, CancelJob, RunShutdownHooks, StartBatch
from appliance.station.fakes import GB, SimLoader, SimStick
from appliance.station.machine import Station, TransitionError
from appliance.station.runtime import StationRunner
from appliance.station.states import FailReason, SlotState, StationState

TIERS = (("small", 4 * GB, 2 * GB), ("large", 16 * GB, 10 * GB))


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(feeding: str = "auto", window: float = 5.0, slots: int = 8) -> tuple[Station, Clock]:
    clock = Clock()
    station = Station(slots=slots, feeding=feeding, batch_window=window, clock=clock)
    return station, clock


def ready(station: Station) -> None:
    for event in (
        ev.Started(),
        ev.ContentInserted("Pack", "1", TIERS),
        ev.ContentVerified(),
    ):
        station.apply(event)
    assert station.state is StationState.READY


def batches(effects: list[object]) -> list[StartBatch]:
    return [e for e in effects if isinstance(e, StartBatch)]


def test_starts_without_content_and_checks_it() -> None:
    station, _ = make()
    assert station.state is StationState.STARTING
    station.apply(ev.Started())
    assert station.state is StationState.NO_CONTENT
    station.apply(ev.ContentInserted("Pack", "3", TIERS))
    station.apply(ev.ContentProgress(5, 10))
    snap = station.snapshot()
    assert snap.state is StationState.CHECKING_CONTENT
    assert (snap.content.done, snap.content.total) == (5, 10)
    station.apply(ev.ContentVerified())
    assert station.state is StationState.READY


def test_every_change_is_logged_in_history() -> None:
    station, _ = make()
    ready(station)
    station.apply(ev.DriveArrived(2, 8 * GB))
    kinds = [(who, old, trigger, new) for _, who, old, trigger, new in station.history]
    assert ("station", "starting", "started", "no_content") in kinds
    assert ("slot 2", "empty", "drive_arrived", "detected") in kinds
    assert ("slot 2", "detected", "queued", "waiting") in kinds


def test_auto_feeding_sticks_in_one_window_share_a_batch() -> None:
    station, clock = make(window=5.0)
    ready(station)
    assert batches(station.apply(ev.DriveArrived(1, 8 * GB))) == []
    clock.t = 3.0
    assert batches(station.apply(ev.DriveArrived(2, 16 * GB))) == []
    assert station.snapshot().slot(1).state is SlotState.WAITING
    clock.t = 5.0
    started = batches(station.apply(ev.Tick()))
    assert len(started) == 1
    assert [j.slot for j in started[0].jobs] == [1, 2]
    assert station.state is StationState.BUSY
    assert station.snapshot().slot(2).state is SlotState.PROBING


def test_continuous_feeding_does_not_wait_for_running_batch() -> None:
    station, clock = make(window=2.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    clock.t = 2.0
    first = batches(station.apply(ev.Tick()))
    clock.t = 10.0
    station.apply(ev.DriveArrived(3, 8 * GB))
    clock.t = 12.0
    second = batches(station.apply(ev.Tick()))
    assert first[0].batch != second[0].batch
    assert [j.slot for j in second[0].jobs] == [3]
    assert station.snapshot().slot(1).state is SlotState.PROBING  # still running


def test_button_feeding_waits_for_start() -> None:
    station, clock = make(feeding="button")
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.DriveArrived(4, 8 * GB))
    clock.t = 100.0
    assert batches(station.apply(ev.Tick())) == []
    started = batches(station.apply(ev.StartPressed()))
    assert [j.slot for j in started[0].jobs] == [1, 4]


def test_sticks_before_content_wait_until_verified() -> None:
    station, _clock = make(window=0.0)
    station.apply(ev.Started())
    station.apply(ev.DriveArrived(1, 8 * GB))
    assert station.snapshot().slot(1).state is SlotState.DETECTED
    station.apply(ev.ContentInserted("P", "1", TIERS))
    effects = station.apply(ev.ContentVerified())
    assert [j.slot for j in batches(effects)[0].jobs] == [1]


def test_phases_done_and_totals() -> None:
    station, _clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    for phase, state in (("wipe", SlotState.WIPING), ("load", SlotState.LOADING)):
        station.apply(ev.JobProgress(1, phase, 10, 100, 5e6, 60.0, tier="small", fraction=0.4))
        assert station.snapshot().slot(1).state is state
    station.apply(ev.JobProgress(1, "verify", 10, 100, 5e6, 6.0, fraction=0.9))
    assert station.snapshot().slot(1).percent == 90
    station.apply(ev.JobDone(1))
    snap = station.snapshot()
    assert snap.slot(1).state is SlotState.DONE and snap.slot(1).percent == 100
    assert snap.slot(1).tier == "small"
    assert snap.totals_done == 1 and snap.state is StationState.READY


def test_fail_and_removed_mid_write_count_by_reason() -> None:
    station, _clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 64 * GB))
    station.apply(ev.DriveArrived(2, 8 * GB))
    station.apply(ev.JobFailed(1, FailReason.FAKE_CAPACITY, {"real": 8e9, "claimed": 64e9}))
    station.apply(ev.JobProgress(2, "load", 1, 10))
    effects = station.apply(ev.DriveGone(2))
    assert CancelJob(2) in effects
    snap = station.snapshot()
    assert snap.slot(1).state is SlotState.FAILED
    assert snap.slot(1).reason is FailReason.FAKE_CAPACITY
    assert snap.slot(2).state is SlotState.REMOVED
    assert snap.slot(2).reason is FailReason.REMOVED
    assert dict(snap.totals_failed) == {FailReason.FAKE_CAPACITY: 1, FailReason.REMOVED: 1}
    assert snap.state is StationState.READY
    station.apply(ev.JobFailed(2, FailReason.WRITE_ERROR))  # late result after removal: ignored
    assert station.snapshot().slot(2).reason is FailReason.REMOVED
    station.apply(ev.DriveArrived(2, 8 * GB))  # re-inserted: starts clean
    assert station.snapshot().slot(2).reason is None


def test_rejected_device_alert_and_unplug() -> None:
    station, clock = make()
    ready(station)
    station.apply(ev.DeviceRejected(5, "not_storage"))
    snap = station.snapshot()
    assert snap.slot(5).state is SlotState.REJECTED and snap.alert is not None
    clock.t = 100.0
    station.apply(ev.Tick())
    assert station.snapshot().alert is None
    station.apply(ev.DriveGone(5))
    assert station.snapshot().slot(5).state is SlotState.EMPTY


def test_cancel_asks_then_cancels_all_or_selected() -> None:
    station, _clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.DriveArrived(2, 8 * GB))
    assert station.apply(ev.CancelPressed()) == []
    assert station.snapshot().confirm is not None
    station.apply(ev.MenuPressed())  # MENU answers "no"
    assert station.snapshot().confirm is None
    station.apply(ev.MenuPressed())  # -> detail of slot 1
    assert (station.view, station.selected) == ("detail", 1)
    station.apply(ev.CancelPressed())
    assert station.snapshot().confirm.slot == 1  # type: ignore[union-attr]
    effects = station.apply(ev.CancelPressed())
    assert effects == [CancelJob(1)]
    snap = station.snapshot()
    assert snap.slot(1).reason is FailReason.CANCELLED
    assert snap.slot(2).state is SlotState.PROBING
    station.apply(ev.MenuPressed())  # detail 2
    station.apply(ev.MenuPressed())  # totals
    station.apply(ev.CancelPressed())
    station.apply(ev.CancelPressed())
    assert station.snapshot().slot(2).reason is FailReason.CANCELLED


def test_confirmation_expires() -> None:
    station, clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.CancelPressed())
    clock.t = 60.0
    station.apply(ev.Tick())
    assert station.apply(ev.CancelPressed()) == []  # asks again, does not cancel
    assert station.snapshot().slot(1).state is SlotState.PROBING


def test_menu_cycles_main_details_totals_ports() -> None:
    station, _ = make()
    ready(station)
    station.apply(ev.DriveArrived(3, 8 * GB))
    seen = []
    for _ in range(5):
        station.apply(ev.MenuPressed())
        seen.append((station.view, station.selected))
    assert seen == [
        ("detail", 3),
        ("totals", None),
        ("ports", None),  # "Number the ports"
        ("main", None),
        ("detail", 3),
    ]


def test_content_removed_mid_batch_fails_jobs_and_waits_for_content() -> None:
    station, _clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    effects = station.apply(ev.ContentRemoved())
    assert CancelAll() in effects
    snap = station.snapshot()
    assert snap.state is StationState.NO_CONTENT
    assert snap.slot(1).reason is FailReason.CONTENT_REMOVED


def test_content_damaged_mid_batch_is_an_error_until_swapped() -> None:
    station, _clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.ContentDamaged("영상/a.mp4"))
    assert station.state is StationState.ERROR
    assert station.snapshot().slot(1).reason is FailReason.CONTENT_DAMAGED
    station.apply(ev.DriveArrived(2, 8 * GB))
    assert station.snapshot().slot(2).state is SlotState.DETECTED  # nothing starts
    station.apply(ev.ContentRemoved())
    station.apply(ev.ContentInserted("P", "2", TIERS))
    effects = station.apply(ev.ContentVerified())
    assert [j.slot for j in batches(effects)[0].jobs] == [2]


def test_undervoltage_pauses_new_batches() -> None:
    station, _clock = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.Undervoltage())
    assert station.state is StationState.PAUSED
    assert batches(station.apply(ev.DriveArrived(2, 8 * GB))) == []
    station.apply(ev.PowerOk())
    assert station.state is StationState.BUSY
    assert station.snapshot().slot(2).state is SlotState.PROBING


def test_config_error_and_shutdown() -> None:
    station, _ = make()
    station.apply(ev.ConfigError("/boot/flashstation.yaml", 12, "unknown key"))
    assert station.state is StationState.ERROR
    effects = station.apply(ev.MenuHeld())
    assert station.state is StationState.SHUTTING_DOWN
    assert RunShutdownHooks() in effects


def test_menu_held_cancels_running_jobs() -> None:
    station, _ = make(window=0.0)
    ready(station)
    station.apply(ev.DriveArrived(1, 8 * GB))
    effects = station.apply(ev.MenuHeld())
    assert CancelAll() in effects
    assert station.snapshot().slot(1).reason is FailReason.CANCELLED
    assert station.apply(ev.DriveArrived(2, 8 * GB)) == []  # ignored while shutting down


def test_illegal_transition_raises() -> None:
    station, _ = make()
    with pytest.raises(TransitionError):
        station._slot_to(1, "job_done")


def test_runner_with_sim_loader_runs_a_session() -> None:
    station, clock = make(window=1.0)
    loader = SimLoader(
        tiers=TIERS,
        sticks={
            1: SimStick(8 * GB),
            2: SimStick(64 * GB, real_capacity=8 * GB),
            3: SimStick(16 * GB, bad_at=0.5),
            4: SimStick(8 * GB, read_only=True),
        },
    )
    runner = StationRunner(station, loader).open()
    hooks: list[str] = []
    runner.shutdown_hooks.append(lambda: hooks.append("ledger"))
    runner.drain()
    station.post(ev.ContentInserted("P", "1", TIERS))
    station.post(ev.ContentVerified())
    for slot in (1, 2, 3, 4):
        station.post(ev.DriveArrived(slot, loader.sticks[slot].capacity))
    runner.drain()
    for t in range(1, 400):
        clock.t = t * 0.5
        loader.advance(clock.t)
        runner.drain()
    snap = station.snapshot()
    assert snap.slot(1).state is SlotState.DONE and snap.slot(1).tier == "small"
    assert snap.slot(2).reason is FailReason.FAKE_CAPACITY
    assert snap.slot(3).reason is FailReason.VERIFY_FAILED
    assert snap.slot(4).reason is FailReason.READ_ONLY
    assert snap.state is StationState.READY
    assert len(loader.batches) == 1
    station.post(ev.MenuHeld())
    runner.drain()
    assert hooks == ["ledger"]
    runner.close()


def test_config_error_while_running_is_shown_until_a_button() -> None:
    station, _ = make()
    ready(station)
    station.apply(ev.ConfigError("/boot/flashstation.yaml", 3, "bad"))
    assert station.state is StationState.READY  # carries on with the last good values
    assert station.snapshot().config_error is not None
    station.apply(ev.MenuPressed())
    snap = station.snapshot()
    assert snap.config_error is None and snap.view == "main"  # the press only dismissed it
