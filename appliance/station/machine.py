"""The station state machine: :meth:`Station.apply` is the only place state changes.

``apply(event)`` runs on the station thread, one event at a time. It changes
the station state and the slots only through :meth:`_station_to` and
:meth:`_slot_to`, which check the transition tables of :mod:`.states`, log
the change and append it to :attr:`Station.history`. It never does I/O:
what should happen outside (start a batch, cancel, beep, shut down) is
returned as :mod:`effects <.effects>` for the runner to carry out.

Feeding (``station.feeding``):

- ``auto``: a detected stick is queued as soon as the content is ready; the
  first queued stick opens a batch window of ``station.batch_window``
  seconds and every stick queued in it joins the same batch (one read of
  the content). A stick plugged in while other batches run opens its own
  window and starts without waiting for them (continuous feeding).
- ``button``: sticks wait; START starts every waiting slot as one batch.

Numbering the ports (MENU's last page, "Number the ports"): START there, while
nothing is loading and no stick is in, forgets the remembered port numbers
(effect ``ForgetPorts``) and numbers ports in plug order: each stick (or any
device) plugged gives its port the next number not configured in
``hotplug.slots`` (effect ``NumberPort``, saved at once) and its slot becomes
``numbered`` ("take it out"): it is never queued, so nothing is loaded or wiped
while numbering, nor afterwards until it is plugged in again. START, MENU or
CANCEL ends it, as does the last slot numbered or a shutdown.
"""

from __future__ import annotations

import logging
import queue
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from appliance.station import events as ev
from appliance.station.effects import (
    Beep,
    CancelAll,
    CancelJob,
    Effect,
    ExportReport,
    ForgetPorts,
    JobRequest,
    NumberPort,
    PowerOffSlot,
    RunShutdownHooks,
    StartBatch,
)
from appliance.station.states import (
    ACTIVE,
    FailReason,
    PortsState,
    SlotState,
    StationState,
    ports_target,
    slot_target,
    station_targets,
)

log = logging.getLogger(__name__)

#: seconds a rejected-device alert or a cancel question stays on screen
ALERT_SECONDS = 5.0
CONFIRM_SECONDS = 6.0
#: the station's refusals of a report export (``Station.report``), checked in this order,
#: and why, for the log
EXPORT_REFUSALS = {
    "checking": "the content SSD is still being checked",
    "busy": "sticks are being loaded",
}
PHASE_TRIGGERS = {"wipe": "phase_wipe", "load": "phase_load", "verify": "phase_verify"}
#: the states after a shutdown began; only the events in ``_WHILE_ENDING`` still count
ENDING = frozenset({StationState.SHUTTING_DOWN, StationState.STOPPED, StationState.POWEROFF_FAILED})
_WHILE_ENDING = frozenset(
    {"job_failed", "job_done", "job_progress", "tick", "service_stopped", "poweroff_failed"}
)


class TransitionError(RuntimeError):
    """A change not in the transition table was attempted (a bug in the station)."""


@dataclass(frozen=True)
class SlotView:
    """Everything the screens know about one slot."""

    number: int
    state: SlotState = SlotState.EMPTY
    capacity: int = 0
    real_capacity: int | None = None
    tier: str | None = None
    phase: str = ""
    done: int = 0
    total: int = 0
    speed: float = 0.0
    eta: float | None = None
    reason: FailReason | None = None
    reason_detail: tuple[tuple[str, float], ...] = ()
    reject_code: str = ""
    device: str = ""
    batch: int = 0
    fraction: float = 0.0

    @property
    def percent(self) -> int:
        """The whole job's progress; 100 only when done and verified."""
        if self.state is SlotState.DONE:
            return 100
        return max(0, min(99, int(100 * self.fraction)))

    @property
    def phase_percent(self) -> int:
        if self.total <= 0:
            return 0
        return max(0, min(100, int(100 * self.done / self.total)))


@dataclass(frozen=True)
class Alert:
    code: str  # catalogue key suffix: reject.<code>
    slot: int
    until: float


@dataclass(frozen=True)
class Confirm:
    """CANCEL was pressed once: a second CANCEL cancels ``slot`` (or all when None)."""

    slot: int | None
    until: float


@dataclass(frozen=True)
class ContentInfo:
    title: str = ""
    version: str = ""
    tiers: tuple[tuple[str, int, int], ...] = ()
    done: int = 0
    total: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Snapshot:
    """A consistent, immutable picture of the station for screens, LEDs and tests."""

    state: StationState
    slots: tuple[SlotView, ...]
    feeding: str
    content: ContentInfo
    totals_done: int
    totals_failed: tuple[tuple[FailReason, int], ...]
    view: str  # "main" | "detail" | "totals"
    selected: int | None  # slot shown in detail
    confirm: Confirm | None
    alert: Alert | None
    config_error: ev.ConfigError | None
    undervoltage: bool
    now: float
    last_activity: float
    batch_deadline: float | None
    totals_all_time: bool = False  # the totals are the ledger's (all time), not this run's
    #: the report export: exporting, saved, busy (refused: sticks loading), checking (refused:
    #: the content SSD is still being checked), no_content, failed
    report: str | None = None
    #: sticks done (verified and committed) since the station started: the grid's count
    run_done: int = 0
    #: the ports are being numbered (MENU "Number the ports")
    numbering: bool = False
    #: the number the next plugged port gets (None: not numbering)
    next_port: int | None = None
    #: what the last plug while numbering did: ("saved" | "already" | "fixed", number),
    #: or ("done", how many ports) when it ended
    ports_note: tuple[str, int] | None = None
    #: why START on the ports page would not start numbering: busy, sticks, fixed ("" : it would)
    ports_blocked: str = ""
    #: stopped after MENU held and the service is powering the system off
    powering_off: bool = False

    def slot(self, number: int) -> SlotView:
        return self.slots[number - 1]


@dataclass
class Station:
    """The state of one station. Not thread-safe: post() from anywhere, apply() on one thread."""

    slots: int = 8
    feeding: str = "auto"
    batch_window: float = 5.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    history_size: int = 1000
    #: slot numbers configured in ``hotplug.slots``: numbering the ports never gives them
    fixed_slots: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not 1 <= self.slots <= 16:
            raise ValueError(f"slots must be 1..16, not {self.slots}")
        if self.feeding not in ("auto", "button"):
            raise ValueError(f"feeding must be auto or button, not {self.feeding!r}")
        self.state = StationState.STARTING
        self._slots = [SlotView(n) for n in range(1, self.slots + 1)]
        self.content = ContentInfo()
        self.totals_done = 0
        #: sticks done and verified since this station started (the grid's "done N"); never
        #: replaced by the ledger's totals, so a restart starts it from 0
        self.run_done = 0
        self.totals_failed: Counter[FailReason] = Counter()
        self.totals_all_time = False
        self.report: str | None = None
        #: ``report`` holds the station's own refusal (``_export_refusal``), cleared once its
        #: reason has passed; the exporter's own "busy" is not, and stays until MENU
        self._refused = False
        self.view = "main"
        self.selected: int | None = None
        self.confirm: Confirm | None = None
        self.alert: Alert | None = None
        self.config_error: ev.ConfigError | None = None
        self.undervoltage = False
        #: after an operator shutdown: the service is powering the system off
        self.powering_off = False
        self.batch_deadline: float | None = None
        self.next_batch = 1
        self.last_activity = self.clock()
        self.ports = PortsState.OFF
        #: port key -> number given while numbering (this or the last numbering)
        self._numbered: dict[str, int] = {}
        self.ports_note: tuple[str, int] | None = None
        self.history: deque[tuple[float, str, str, str, str]] = deque(maxlen=self.history_size)
        self._queue: queue.Queue[ev.Event] = queue.Queue()

    # -- threads ------------------------------------------------------------------------------

    def post(self, event: ev.Event) -> None:
        """Hand an event to the station thread (safe from any thread, never blocks)."""
        self._queue.put(event)

    def next_event(self, timeout: float | None) -> ev.Event | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def pending(self) -> int:
        return self._queue.qsize()

    # -- the one function ---------------------------------------------------------------------

    def apply(self, event: ev.Event) -> list[Effect]:
        """Apply one event; return what must happen outside. The only place state changes."""
        now = self.clock()
        effects: list[Effect] = []
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is None:
            raise TypeError(f"unknown event kind {event.kind!r}")
        if event.kind.endswith("_pressed") or event.kind == "menu_held":
            self.last_activity = now
        if self.state in ENDING and event.kind not in _WHILE_ENDING:
            log.debug("%s: ignored %s", self.state, event.kind)
            return effects
        handler(event, now, effects)
        self._schedule(now, effects)
        self._expire(now)
        return effects

    # -- transitions --------------------------------------------------------------------------

    def _station_to(self, trigger: str, target: StationState | None = None) -> None:
        choices = station_targets(self.state, trigger)
        if target is None:
            if len(choices) != 1:
                raise TransitionError(f"station: {self.state} --{trigger}--> {choices}")
            target = choices[0]
        if target not in choices:
            raise TransitionError(f"station: {self.state} --{trigger}--> {target} not allowed")
        log.info("station: %s -> %s (%s)", self.state, target, trigger)
        self.history.append((self.clock(), "station", str(self.state), trigger, str(target)))
        self.state = target

    def _slot_to(self, number: int, trigger: str, **changes: object) -> SlotView:
        slot = self._slots[number - 1]
        target = slot_target(slot.state, trigger)
        if target is None:
            raise TransitionError(f"slot {number}: {slot.state} --{trigger}--> ? not allowed")
        log.info("slot %d: %s -> %s (%s)", number, slot.state, target, trigger)
        self.history.append((self.clock(), f"slot {number}", str(slot.state), trigger, str(target)))
        new = replace(slot, state=target, **changes)  # type: ignore[arg-type]
        self._slots[number - 1] = new
        return new

    def _ports_to(self, trigger: str) -> None:
        target = ports_target(self.ports, trigger)
        if target is None:
            raise TransitionError(f"ports: {self.ports} --{trigger}--> ? not allowed")
        log.info("ports: %s -> %s (%s)", self.ports, target, trigger)
        self.history.append((self.clock(), "ports", str(self.ports), trigger, str(target)))
        self.ports = target

    def _update(self, number: int, **changes: object) -> None:
        """Change a slot's data (progress, speed) without changing its state."""
        self._slots[number - 1] = replace(self._slots[number - 1], **changes)  # type: ignore[arg-type]

    def _can(self, number: int, trigger: str) -> bool:
        return slot_target(self._slots[number - 1].state, trigger) is not None

    def _valid_slot(self, number: int) -> bool:
        if 1 <= number <= self.slots:
            return True
        log.warning("event for slot %s outside 1..%d ignored", number, self.slots)
        return False

    # -- handlers: station --------------------------------------------------------------------

    def _on_started(self, event: ev.Started, now: float, effects: list[Effect]) -> None:
        if self.state is StationState.STARTING:
            self._station_to("started")

    def _on_config_error(self, event: ev.ConfigError, now: float, effects: list[Effect]) -> None:
        """At start: the station cannot run. Later (the service carries on with the last
        good values): shown until a button is pressed."""
        self.config_error = event
        if self.state is StationState.STARTING:
            self._station_to("config_error")

    def _button_taken(self) -> bool:
        """Any button first ends port numbering, or else dismisses a config error screen."""
        if self.ports is PortsState.NUMBERING:
            self._finish_numbering()
            return True
        if self.config_error is not None and self.state is not StationState.ERROR:
            self.config_error = None
            return True
        return False

    def _on_undervoltage(self, event: ev.Undervoltage, now: float, effects: list[Effect]) -> None:
        self.undervoltage = True
        if self.state in (StationState.READY, StationState.BUSY):
            self._station_to("undervoltage")

    def _on_power_ok(self, event: ev.PowerOk, now: float, effects: list[Effect]) -> None:
        self.undervoltage = False
        if self.state is StationState.PAUSED:
            busy = any(s.state in ACTIVE for s in self._slots)
            self._station_to("power_ok", StationState.BUSY if busy else StationState.READY)

    def _on_tick(self, event: ev.Tick, now: float, effects: list[Effect]) -> None:
        pass  # _schedule and _expire run after every event

    def _on_shutdown(self, event: ev.Event, now: float, effects: list[Effect]) -> None:
        self._station_to("shutdown")
        if self.ports is PortsState.NUMBERING:
            self._ports_to("numbering_done")
        self._fail_active(FailReason.CANCELLED)
        self._unqueue_waiting()
        self.batch_deadline = None
        self.confirm = None
        effects.append(CancelAll())
        effects.append(RunShutdownHooks())

    def _on_service_stopped(
        self, event: ev.ServiceStopped, now: float, effects: list[Effect]
    ) -> None:
        """The orderly stop has ended (jobs cancelled, the ledger closed): safe to unplug."""
        if self.state is StationState.SHUTTING_DOWN:
            self.powering_off = event.powering_off
            self._station_to("service_stopped")

    def _on_poweroff_failed(
        self, event: ev.PowerOffFailed, now: float, effects: list[Effect]
    ) -> None:
        if self.state is StationState.STOPPED:
            log.info("power-off failed (%s): the screen says so", event.detail or "no reason")
            self.powering_off = False
            self._station_to("poweroff_failed")

    def _on_totals_loaded(self, event: ev.TotalsLoaded, now: float, effects: list[Effect]) -> None:
        self.totals_done = event.done
        self.totals_failed = Counter({reason: n for reason, n in event.failed if n})
        self.totals_all_time = True

    def _on_report_exported(
        self, event: ev.ReportExported, now: float, effects: list[Effect]
    ) -> None:
        self.report = event.outcome
        self._refused = False  # the exporter's own "busy" stays until MENU
        effects.append(Beep("done" if event.outcome == "saved" else "failed"))

    def _on_menu_held(self, event: ev.MenuHeld, now: float, effects: list[Effect]) -> None:
        self._on_shutdown(event, now, effects)

    # -- handlers: content --------------------------------------------------------------------

    def _on_content_inserted(
        self, event: ev.ContentInserted, now: float, effects: list[Effect]
    ) -> None:
        if self.state is StationState.NO_CONTENT:
            self.content = ContentInfo(event.title, event.version, event.tiers)
            self._station_to("content_inserted")

    def _on_content_progress(
        self, event: ev.ContentProgress, now: float, effects: list[Effect]
    ) -> None:
        if self.state is StationState.CHECKING_CONTENT:
            self.content = replace(self.content, done=event.done, total=event.total)

    def _on_content_verified(
        self, event: ev.ContentVerified, now: float, effects: list[Effect]
    ) -> None:
        if self.state is StationState.CHECKING_CONTENT:
            self.content = replace(self.content, done=self.content.total)
            self._station_to("content_verified")
            effects.append(Beep("ready"))

    def _on_content_damaged(
        self, event: ev.ContentDamaged, now: float, effects: list[Effect]
    ) -> None:
        if self.state in (StationState.CHECKING_CONTENT, StationState.BUSY):
            self.content = replace(self.content, detail=event.detail)
            if self.state is StationState.BUSY:
                self._fail_active(FailReason.CONTENT_DAMAGED)
                effects.append(CancelAll())
            self._unqueue_waiting()
            self._station_to("content_damaged")
            effects.append(Beep("failed"))

    def _on_content_removed(
        self, event: ev.ContentRemoved, now: float, effects: list[Effect]
    ) -> None:
        if self.state in (StationState.STARTING, StationState.NO_CONTENT):
            return
        if any(s.state in ACTIVE for s in self._slots):
            self._fail_active(FailReason.CONTENT_REMOVED)
            effects.append(CancelAll())
        self._unqueue_waiting()
        self.content = ContentInfo()
        self._station_to("content_removed")

    # -- handlers: drives ---------------------------------------------------------------------

    def _on_drive_arrived(self, event: ev.DriveArrived, now: float, effects: list[Effect]) -> None:
        if self.ports is PortsState.NUMBERING:
            self._number_port(event.slot, event.port, effects)
            return
        if self._beyond(event.slot, now, effects) or not self._valid_slot(event.slot):
            return
        if not self._can(event.slot, "drive_arrived"):
            log.warning(
                "slot %d: drive arrived while %s; ignored",
                event.slot,
                self._slots[event.slot - 1].state,
            )
            return
        self._slot_to(
            event.slot,
            "drive_arrived",
            capacity=event.capacity,
            device=event.device,
            real_capacity=None,
            tier=None,
            phase="",
            done=0,
            total=0,
            speed=0.0,
            eta=None,
            reason=None,
            reason_detail=(),
            reject_code="",
            batch=0,
            fraction=0.0,
        )

    def _on_drive_gone(self, event: ev.DriveGone, now: float, effects: list[Effect]) -> None:
        if not self._valid_slot(event.slot):
            return
        slot = self._slots[event.slot - 1]
        if slot.state is SlotState.EMPTY:
            return
        if slot.state in ACTIVE:
            self._slot_to(event.slot, "drive_gone", reason=FailReason.REMOVED, speed=0.0, eta=None)
            self.totals_failed[FailReason.REMOVED] += 1
            effects.append(CancelJob(event.slot))
            effects.append(Beep("failed"))
            self._maybe_idle()
        elif self._can(event.slot, "drive_gone"):
            self._slot_to(event.slot, "drive_gone")
        if self.alert is not None and self.alert.slot == event.slot:
            self.alert = None
        if self.selected == event.slot:
            self.view, self.selected = "main", None

    def _on_device_rejected(
        self, event: ev.DeviceRejected, now: float, effects: list[Effect]
    ) -> None:
        if self.ports is PortsState.NUMBERING and event.port:
            self._number_port(event.slot, event.port, effects)  # any device numbers its port
            return
        if self._beyond(event.slot, now, effects) or not self._valid_slot(event.slot):
            return
        if self._can(event.slot, "device_rejected"):
            self._slot_to(event.slot, "device_rejected", reject_code=event.code)
        self.alert = Alert(event.code, event.slot, now + ALERT_SECONDS)
        effects.append(Beep("failed"))

    # -- handlers: jobs -----------------------------------------------------------------------

    def _on_job_progress(self, event: ev.JobProgress, now: float, effects: list[Effect]) -> None:
        if not self._valid_slot(event.slot):
            return
        slot = self._slots[event.slot - 1]
        if slot.state not in ACTIVE:
            return  # late progress for a slot already failed or removed
        trigger = PHASE_TRIGGERS.get(event.phase)
        changes: dict[str, object] = {
            "phase": event.phase,
            "done": event.done,
            "total": event.total,
            "speed": event.speed,
            "eta": event.eta,
            "fraction": event.fraction,
        }
        if event.tier is not None:
            changes["tier"] = event.tier
        if event.real_capacity is not None:
            changes["real_capacity"] = event.real_capacity
        if trigger is not None and self._can(event.slot, trigger):
            self._slot_to(event.slot, trigger, **changes)
        else:
            self._update(event.slot, **changes)

    def _on_job_done(self, event: ev.JobDone, now: float, effects: list[Effect]) -> None:
        if not self._valid_slot(event.slot):
            return
        slot = self._slots[event.slot - 1]
        if slot.state not in ACTIVE:
            return
        if slot.state is SlotState.PROBING:  # an engine may skip reporting phases
            self._slot_to(event.slot, "phase_load")
        if self._slots[event.slot - 1].state is not SlotState.VERIFYING:
            self._slot_to(event.slot, "phase_verify")
        tier = event.tier if event.tier is not None else slot.tier
        self._slot_to(event.slot, "job_done", tier=tier, done=slot.total, speed=0.0, eta=0.0)
        self.totals_done += 1
        self.run_done += 1
        effects.append(Beep("done"))
        effects.append(PowerOffSlot(event.slot))
        self._maybe_idle()

    def _on_job_failed(self, event: ev.JobFailed, now: float, effects: list[Effect]) -> None:
        if not self._valid_slot(event.slot):
            return
        if self._slots[event.slot - 1].state not in ACTIVE:
            return  # already failed (cancelled, removed) by the station itself
        self._fail(event.slot, event.reason, tuple(sorted(event.detail.items())))
        effects.append(Beep("failed"))
        self._maybe_idle()

    # -- handlers: buttons --------------------------------------------------------------------

    def _on_start_pressed(self, event: ev.StartPressed, now: float, effects: list[Effect]) -> None:
        if self._button_taken():
            return
        if self.alert is not None or self.confirm is not None:
            self.alert = self.confirm = None
            return
        if self.view == "totals" and self.totals_all_time:  # the ledger's: export its report
            if self.report == "exporting":
                return
            refusal = self._export_refusal()
            if refusal is not None:
                log.info("report export refused: %s", EXPORT_REFUSALS[refusal])
                self.report = refusal
                self._refused = True
                return
            self.report = "exporting"
            effects.append(ExportReport())
            return
        if self.view == "ports":  # START on "Number the ports": never starts loading
            self._start_numbering(now, effects)
            return
        if self.state in (StationState.READY, StationState.BUSY):
            waiting = [s.number for s in self._slots if s.state is SlotState.WAITING]
            if waiting and self.report == "exporting":
                self.batch_deadline = now  # held: starts as soon as the SSD is read-only again
            elif waiting:
                self._start_batch(waiting, effects)

    def _on_cancel_pressed(
        self, event: ev.CancelPressed, now: float, effects: list[Effect]
    ) -> None:
        if self._button_taken():
            return
        if self.alert is not None:
            self.alert = None
            return
        if self.confirm is not None:
            target, self.confirm = self.confirm.slot, None
            numbers = [target] if target is not None else [s.number for s in self._slots]
            for n in numbers:
                self._cancel_slot(n, effects)
            self._maybe_idle()
            return
        cancellable = [s for s in self._slots if s.state in ACTIVE or s.state is SlotState.WAITING]
        if not cancellable:
            return
        selected = self.selected if self.view == "detail" else None
        if selected is not None and selected not in [s.number for s in cancellable]:
            return
        self.confirm = Confirm(selected, now + CONFIRM_SECONDS)

    def _on_menu_pressed(self, event: ev.MenuPressed, now: float, effects: list[Effect]) -> None:
        if self._button_taken():
            return
        if self.alert is not None or self.confirm is not None:
            self.alert = self.confirm = None
            return
        occupied = [s.number for s in self._slots if s.state is not SlotState.EMPTY]
        pages: list[tuple[str, int | None]] = [("main", None)]
        pages += [("detail", n) for n in occupied]
        pages.append(("totals", None))
        pages.append(("ports", None))
        try:
            i = pages.index((self.view, self.selected))
        except ValueError:
            i = 0
        self.view, self.selected = pages[(i + 1) % len(pages)]
        self.ports_note = None
        if self.report != "exporting":  # an old outcome is not news on the next visit
            self.report = None
            self._refused = False

    # -- numbering the ports ------------------------------------------------------------------

    def ports_blocked(self) -> str:
        """Why numbering cannot start now: ``busy`` (sticks loading or a report being
        saved), ``sticks`` (a slot is not empty), ``fixed`` (every slot is configured);
        ``""`` when it can."""
        if self.loading() or self.report == "exporting":
            return "busy"
        if any(s.state is not SlotState.EMPTY for s in self._slots):
            return "sticks"
        if all(n in self.fixed_slots for n in range(1, self.slots + 1)):
            return "fixed"
        return ""

    def _next_number(self) -> int | None:
        given = set(self._numbered.values()) if self.ports is PortsState.NUMBERING else set()
        for n in range(1, self.slots + 1):
            if n not in self.fixed_slots and n not in given:
                return n
        return None

    def _start_numbering(self, now: float, effects: list[Effect]) -> None:
        blocked = self.ports_blocked()
        if self.config_error is not None:  # its screen hides the page: START is not for us
            blocked = "config error"
        if blocked or self.state in (StationState.STARTING, StationState.SHUTTING_DOWN):
            log.info("numbering the ports refused: %s", blocked or self.state)
            return
        self._ports_to("number_ports")
        self._numbered = {}
        self.ports_note = None
        effects.append(ForgetPorts())

    def _number_port(self, slot: int | None, port: str, effects: list[Effect]) -> None:
        """A device was plugged while numbering: its port gets the next number."""
        if not port:
            log.info("numbering: a device on no USB port ignored")
            return
        known = self._numbered.get(port)
        if known is not None:
            if self._slots[known - 1].state is SlotState.NUMBERED:
                return  # still in: another LUN of the same device (a card reader)
            self.ports_note = ("already", known)  # pulled and plugged back
            if self._can(known, "port_numbered"):
                self._slot_to(known, "port_numbered")
            return
        if slot is not None and slot in self.fixed_slots:  # configured: it keeps its number
            self.ports_note = ("fixed", slot)
            if slot <= self.slots and self._can(slot, "port_numbered"):
                self._slot_to(slot, "port_numbered")  # take it out, like the others
            return
        number = self._next_number()
        if number is None:  # cannot happen: numbering ends with the last number
            return
        self._ports_to("port_numbered")
        self._numbered[port] = number
        if self._can(number, "port_numbered"):
            self._slot_to(number, "port_numbered")
        effects.append(NumberPort(port, number))
        effects.append(Beep("done"))
        self.ports_note = ("saved", number)
        if self._next_number() is None:
            self._finish_numbering()

    def _finish_numbering(self) -> None:
        self._ports_to("numbering_done")
        self.view, self.selected = "ports", None
        self.ports_note = ("done", len(self._numbered))

    def _beyond(self, slot: int, now: float, effects: list[Effect]) -> bool:
        """A device in a port numbered above the screen's slots: never loaded; say so."""
        if slot <= self.slots:
            return False
        log.warning("slot %d is beyond the %d slots on the screen: not loaded", slot, self.slots)
        self.alert = Alert("beyond", slot, now + ALERT_SECONDS)
        effects.append(Beep("failed"))
        return True

    # -- helpers ------------------------------------------------------------------------------

    def _cancel_slot(self, number: int, effects: list[Effect]) -> None:
        state = self._slots[number - 1].state
        if state is SlotState.WAITING:
            self._slot_to(number, "cancel", reason=FailReason.CANCELLED)
            self.totals_failed[FailReason.CANCELLED] += 1
        elif state in ACTIVE:
            self._fail(number, FailReason.CANCELLED)
            effects.append(CancelJob(number))

    def _fail(
        self, number: int, reason: FailReason, detail: tuple[tuple[str, float], ...] = ()
    ) -> None:
        self._slot_to(
            number, "job_failed", reason=reason, reason_detail=detail, speed=0.0, eta=None
        )
        self.totals_failed[reason] += 1

    def _fail_active(self, reason: FailReason) -> None:
        for s in list(self._slots):
            if s.state in ACTIVE:
                self._fail(s.number, reason)

    def _unqueue_waiting(self) -> None:
        for s in list(self._slots):
            if s.state is SlotState.WAITING:
                self._slot_to(s.number, "unqueued")
        self.batch_deadline = None

    def _maybe_idle(self) -> None:
        if self.state is StationState.BUSY and not any(s.state in ACTIVE for s in self._slots):
            self._station_to("jobs_idle")

    def _start_batch(self, numbers: list[int], effects: list[Effect]) -> None:
        batch = self.next_batch
        self.next_batch += 1
        jobs = []
        for n in numbers:
            slot = self._slot_to(n, "job_started", batch=batch, phase="probe")
            jobs.append(JobRequest(n, slot.device, slot.capacity))
        if self.state is StationState.READY:
            self._station_to("job_started")
        self.batch_deadline = None
        effects.append(StartBatch(batch, tuple(jobs)))

    def _export_refusal(self) -> str | None:
        """Why a report export may not remount the content SSD now (``EXPORT_REFUSALS``)."""
        return next((r for r in EXPORT_REFUSALS if self._refusal_holds(r)), None)

    def _refusal_holds(self, refusal: str | None) -> bool:
        if refusal == "checking":  # inserted: its check reads it
            return self.state is StationState.CHECKING_CONTENT
        if refusal == "busy":  # the engine reads the SSD: never remount it read-write now
            return self.loading()
        return False

    def loading(self) -> bool:
        """Whether the engine is (or is about to be) reading the content SSD.

        A slot probing, wiping, loading or verifying (its batch being planned
        counts: the slot is ``probing`` from the moment the batch is started),
        or a batch window open (``auto`` feeding: sticks queued to start).
        """
        return any(s.state in ACTIVE for s in self._slots) or self.batch_deadline is not None

    def _schedule(self, now: float, effects: list[Effect]) -> None:
        """Queue detected sticks and start batches whose window has closed.

        ``batch_deadline`` is the ``auto`` window, or (either feeding) a START
        held while a report export has the SSD read-write: no batch starts until
        the export has ended (``ReportExported``).
        """
        if self.state not in (StationState.READY, StationState.BUSY):
            return
        for s in list(self._slots):
            if s.state is SlotState.DETECTED:
                self._slot_to(s.number, "queued")
                if self.feeding == "auto" and self.batch_deadline is None:
                    self.batch_deadline = now + self.batch_window
        if self.batch_deadline is None or now < self.batch_deadline:
            return
        if self.report == "exporting":
            return  # the SSD is read-write for the report: the batch waits for ReportExported
        waiting = [s.number for s in self._slots if s.state is SlotState.WAITING]
        if waiting:
            self._start_batch(waiting, effects)
        self.batch_deadline = None

    def _expire(self, now: float) -> None:
        if self._refused and not self._refusal_holds(self.report):
            self._refused = False  # its reason has passed: "START: save report" comes back
            self.report = None
        if self.alert is not None and now >= self.alert.until:
            self.alert = None
        if self.confirm is not None and now >= self.confirm.until:
            self.confirm = None

    # -- reading ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the station next needs a Tick even if nothing happens (window, alert expiry)."""
        held = self.report == "exporting"  # a due batch waits for ReportExported, not a tick
        times = [
            t
            for t in (
                None if held else self.batch_deadline,
                self.alert.until if self.alert else None,
                self.confirm.until if self.confirm else None,
            )
            if t is not None
        ]
        return min(times) if times else None

    def snapshot(self) -> Snapshot:
        return Snapshot(
            state=self.state,
            slots=tuple(self._slots),
            feeding=self.feeding,
            content=self.content,
            totals_done=self.totals_done,
            totals_failed=tuple(sorted(self.totals_failed.items())),
            view=self.view,
            selected=self.selected,
            confirm=self.confirm,
            alert=self.alert,
            config_error=self.config_error,
            undervoltage=self.undervoltage,
            now=self.clock(),
            last_activity=self.last_activity,
            batch_deadline=self.batch_deadline,
            totals_all_time=self.totals_all_time,
            report=self.report,
            run_done=self.run_done,
            numbering=self.ports is PortsState.NUMBERING,
            next_port=self._next_number() if self.ports is PortsState.NUMBERING else None,
            ports_note=self.ports_note,
            ports_blocked=self.ports_blocked(),
            powering_off=self.powering_off,
        )
