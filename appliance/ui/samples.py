"""Representative snapshots of every screen, reached through the real state machine.

Used by ``flashstation screens`` (golden PNGs, docs) and the tests. Each
sample drives a :class:`Station` with events, exactly as the hardware
would, so a sample can only show a state the station can really be in.
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.station import events as ev
from appliance.station.machine import Snapshot, Station
from appliance.station.states import ACTIVE, FailReason

GB = 1000**3
TIERS = (
    ("basic", 4 * GB, 3_200_000_000),
    ("standard", 8 * GB, 7_100_000_000),
    ("full", 16 * GB, 14_500_000_000),
)
TITLE, VERSION = "Freedom Pack", "2026.11"


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _station(slots: int = 16, feeding: str = "auto") -> tuple[Station, _Clock]:
    clock = _Clock()
    return Station(slots=slots, feeding=feeding, batch_window=0.0, clock=clock), clock


def _ready(slots: int = 16, feeding: str = "auto") -> tuple[Station, _Clock]:
    station, clock = _station(slots, feeding)
    for e in (ev.Started(), ev.ContentInserted(TITLE, VERSION, TIERS), ev.ContentVerified()):
        station.apply(e)
    return station, clock


def _busy() -> Station:
    """16 slots in every state a running station shows."""
    station, clock = _ready()
    apply = station.apply
    caps = {1: 8, 2: 16, 3: 32, 4: 8, 5: 64, 6: 16, 7: 8, 8: 4, 9: 16, 10: 8, 11: 32, 12: 8}
    for slot, gb in caps.items():
        apply(ev.DriveArrived(slot, gb * GB))
    progress = {
        1: ("load", 0.42),
        2: ("wipe", 0.18),
        3: ("verify", 0.91),
        4: ("probe", 0.01),
        6: ("load", 0.67),
        9: ("verify", 0.75),
        11: ("wipe", 0.05),
    }
    order = ["probe", "wipe", "load", "verify"]
    for slot, (phase, fraction) in progress.items():
        cap = caps[slot] * GB
        for earlier in order[1 : order.index(phase)]:
            apply(ev.JobProgress(slot, earlier, 0, cap, fraction=fraction / 2))
        apply(
            ev.JobProgress(
                slot,
                phase,
                int(cap * fraction),
                cap,
                speed=11.4e6,
                eta=1234.0 * (1 - fraction),
                tier="standard",
                real_capacity=cap,
                fraction=fraction,
            )
        )
    for slot in (7, 10):
        apply(ev.JobProgress(slot, "verify", 1, 1, fraction=0.99, tier="standard"))
        apply(ev.JobDone(slot, "standard"))
    apply(ev.JobFailed(5, FailReason.FAKE_CAPACITY, {"real": 7.8 * GB, "claimed": 64 * GB}))
    apply(ev.DriveGone(8))
    apply(ev.JobFailed(12, FailReason.VERIFY_FAILED))
    clock.t += 30
    apply(ev.DeviceRejected(14, "not_storage"))
    clock.t += 60  # the alert has expired; the slot stays refused
    apply(ev.Tick())
    return station


def _select(station: Station, slot: int) -> Snapshot:
    while (station.view, station.selected) != ("detail", slot):
        station.apply(ev.MenuPressed())
    return station.snapshot()


def _totals() -> Snapshot:
    station = _busy()
    while station.view != "totals":
        station.apply(ev.MenuPressed())
    return station.snapshot()


def _totals_all_time() -> Snapshot:
    """The totals screen as the hosted station shows it: the ledger's all-time numbers."""
    station = _busy()
    station.apply(
        ev.TotalsLoaded(
            1287,
            ((FailReason.FAKE_CAPACITY, 41), (FailReason.REMOVED, 9), (FailReason.CANCELLED, 3)),
        )
    )
    while station.view != "totals":
        station.apply(ev.MenuPressed())
    return station.snapshot()


def _report(outcome: str) -> Callable[[], Snapshot]:
    """The ledger's totals after START asked for the report (``outcome`` as reported).

    ``busy``: sticks are still loading, so the export is refused at once. Any
    other outcome: the running sticks were cancelled first (the station idle),
    then START exported.
    """

    def make() -> Snapshot:
        station = _busy()
        if outcome != "busy":
            for slot in station.snapshot().slots:
                if slot.state in ACTIVE:
                    station.apply(ev.JobFailed(slot.number, FailReason.CANCELLED))
        station.apply(ev.TotalsLoaded(1287, ((FailReason.FAKE_CAPACITY, 41),)))
        while station.view != "totals":
            station.apply(ev.MenuPressed())
        station.apply(ev.StartPressed())
        if outcome not in ("exporting", "busy"):
            station.apply(ev.ReportExported(outcome))
        assert station.report == outcome
        return station.snapshot()

    return make


def _report_while_checking() -> Snapshot:
    """START on the ledger's totals while the content SSD is still being checked."""
    station, _ = _station()
    station.apply(ev.Started())
    station.apply(ev.ContentInserted(TITLE, VERSION, TIERS))
    station.apply(ev.ContentProgress(412, 1024))
    station.apply(ev.TotalsLoaded(1287, ((FailReason.FAKE_CAPACITY, 41),)))
    while station.view != "totals":
        station.apply(ev.MenuPressed())
    station.apply(ev.StartPressed())
    assert station.report == "checking"
    return station.snapshot()


def _started() -> Snapshot:
    station, _ = _station()
    station.apply(ev.Started())
    return station.snapshot()


def _checking() -> Snapshot:
    station, _ = _station()
    station.apply(ev.Started())
    station.apply(ev.ContentInserted(TITLE, VERSION, TIERS))
    station.apply(ev.ContentProgress(412, 1024))
    return station.snapshot()


def _grid8() -> Snapshot:
    station, _ = _ready(slots=8, feeding="button")
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.DriveArrived(2, 16 * GB))
    station.apply(ev.StartPressed())
    station.apply(ev.JobProgress(1, "load", 5, 10, 9e6, 300.0, fraction=0.55))
    station.apply(ev.DriveArrived(3, 32 * GB))
    station.apply(ev.DriveArrived(5, 8 * GB))
    return station.snapshot()


def _config_error() -> Snapshot:
    station, _ = _station()
    station.apply(
        ev.ConfigError("/boot/flashstation.yaml", 23, "station.feeding: must be auto or button")
    )
    return station.snapshot()


def _undervoltage() -> Snapshot:
    station, _ = _ready()
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.Undervoltage())
    return station.snapshot()


def _damaged() -> Snapshot:
    station, _ = _ready()
    station.apply(ev.DriveArrived(1, 8 * GB))
    station.apply(ev.ContentDamaged("영상/시험 화면.mp4"))
    return station.snapshot()


def _rejected(code: str = "not_storage") -> Callable[[], Snapshot]:
    def make() -> Snapshot:
        station, _ = _ready()
        station.apply(ev.DeviceRejected(3, code))
        return station.snapshot()

    return make


def _to_ports(station: Station) -> Station:
    while station.view != "ports":
        station.apply(ev.MenuPressed())
    return station


def _ports_idle() -> Snapshot:
    station, _ = _ready(slots=8)
    return _to_ports(station).snapshot()


def _ports_busy() -> Snapshot:
    return _to_ports(_busy()).snapshot()


def _numbering(plugged: int) -> Callable[[], Snapshot]:
    """Numbering the ports of an 8-slot station, ``plugged`` ports done (slot 2 configured)."""

    def make() -> Snapshot:
        clock = _Clock()
        station = Station(slots=8, batch_window=0.0, clock=clock, fixed_slots=frozenset({2}))
        for e in (ev.Started(), ev.ContentInserted(TITLE, VERSION, TIERS), ev.ContentVerified()):
            station.apply(e)
        _to_ports(station).apply(ev.StartPressed())
        for i in range(plugged):
            station.apply(ev.DriveArrived(9 + i, 8 * GB, port=f"usb-0:1.{i + 1}"))
        return station.snapshot()

    return make


def _numbered_done() -> Snapshot:
    station, _ = _ready(slots=8)
    _to_ports(station).apply(ev.StartPressed())
    for i in range(3):
        station.apply(ev.DriveArrived(1, 8 * GB, port=f"usb-0:1.{i + 1}"))
    station.apply(ev.StartPressed())  # finish: the three sticks are still in
    return station.snapshot()


def _numbered_grid() -> Snapshot:
    station, _ = _ready(slots=8)
    _to_ports(station).apply(ev.StartPressed())
    for i in range(3):
        station.apply(ev.DriveArrived(1, 8 * GB, port=f"usb-0:1.{i + 1}"))
    station.apply(ev.StartPressed())
    station.apply(ev.MenuPressed())  # back to the grid
    return station.snapshot()


def _numbered_detail() -> Snapshot:
    station, _ = _ready(slots=8)
    _to_ports(station).apply(ev.StartPressed())
    station.apply(ev.DriveArrived(1, 8 * GB, port="usb-0:1.1"))
    station.apply(ev.StartPressed())
    return _select(station, 1)


def _ports_fixed() -> Snapshot:
    clock = _Clock()
    station = Station(slots=2, batch_window=0.0, clock=clock, fixed_slots=frozenset({1, 2}))
    station.apply(ev.Started())
    return _to_ports(station).snapshot()


def _beyond() -> Snapshot:
    station, _ = _ready(slots=8)
    station.apply(ev.DriveArrived(9, 8 * GB, port="usb-0:1.9"))
    return station.snapshot()


def _confirm(slot: int | None) -> Snapshot:
    station = _busy()
    if slot is not None:
        _select(station, slot)
    else:
        station.apply(ev.MenuPressed())
        while station.view != "main":
            station.apply(ev.MenuPressed())
    station.apply(ev.CancelPressed())
    return station.snapshot()


def _shutdown() -> Snapshot:
    station = _busy()
    station.apply(ev.MenuHeld())
    return station.snapshot()


def _stopped() -> Snapshot:
    """MENU held, then the service stopped everything in order and closed the ledger."""
    station = _busy()
    station.apply(ev.MenuHeld())
    station.apply(ev.ServiceStopped(powering_off=True))
    return station.snapshot()


def _poweroff_failed() -> Snapshot:
    station = _busy()
    station.apply(ev.MenuHeld())
    station.apply(ev.ServiceStopped(powering_off=True))
    station.apply(ev.PowerOffFailed("systemctl: exit status 1"))
    return station.snapshot()


def _splash() -> Snapshot:
    return _station()[0].snapshot()


def _ready_snapshot(feeding: str) -> Callable[[], Snapshot]:
    return lambda: _ready(feeding=feeding)[0].snapshot()


SAMPLES: dict[str, tuple[str, Callable[[], Snapshot]]] = {
    # sample name: (screen it must show, how to reach it)
    "splash": ("splash", _splash),
    "no_content": ("no_content", _started),
    "checking": ("checking", _checking),
    "ready": ("ready", _ready_snapshot("auto")),
    "ready_button": ("ready", _ready_snapshot("button")),
    "grid": ("grid", lambda: _busy().snapshot()),
    "grid_8": ("grid", _grid8),
    "detail_loading": ("detail", lambda: _select(_busy(), 1)),
    "detail_verifying": ("detail", lambda: _select(_busy(), 3)),
    "detail_done": ("detail", lambda: _select(_busy(), 7)),
    "detail_fake": ("detail", lambda: _select(_busy(), 5)),
    "detail_removed": ("detail", lambda: _select(_busy(), 8)),
    "detail_verify_failed": ("detail", lambda: _select(_busy(), 12)),
    "detail_rejected": ("detail", lambda: _select(_busy(), 14)),
    "totals": ("totals", _totals),
    "totals_all_time": ("totals", _totals_all_time),
    "totals_report_saved": ("totals", _report("saved")),
    "totals_report_no_content": ("totals", _report("no_content")),
    "totals_report_busy": ("totals", _report("busy")),
    "totals_report_checking": ("totals", _report_while_checking),
    "error_config": ("error_config", _config_error),
    "error_power": ("error_power", _undervoltage),
    "error_damaged": ("error_damaged", _damaged),
    "error_rejected": ("error_rejected", _rejected()),
    "error_content_port": ("error_rejected", _rejected("content_port")),
    "confirm_slot": ("confirm", lambda: _confirm(1)),
    "confirm_all": ("confirm", lambda: _confirm(None)),
    "shutdown": ("shutdown", _shutdown),
    "ports": ("ports", _ports_idle),
    "ports_busy": ("ports", _ports_busy),
    "ports_done": ("ports", _numbered_done),
    "ports_fixed": ("ports", _ports_fixed),
    "numbering_start": ("numbering", _numbering(0)),
    "numbering": ("numbering", _numbering(2)),
    "grid_numbered": ("grid", _numbered_grid),
    "detail_numbered": ("detail", _numbered_detail),
    "error_beyond": ("error_rejected", _beyond),
    "stopped": ("stopped", _stopped),
    "poweroff_failed": ("poweroff_failed", _poweroff_failed),
}
