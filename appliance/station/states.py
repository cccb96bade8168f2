"""States and the transition tables (the mermaid diagrams in docs/architecture.md mirror them).

Each table is a set of ``(source, trigger, target)`` triples. ``trigger`` is
the kind of the event that causes the change, or an internal step of the
scheduler (``queued``, ``job_started``). :meth:`Station.apply` refuses and
logs any change not listed here; ``tests/test_station_diagram.py`` checks
that the diagram and these tables list the same transitions.
"""

from __future__ import annotations

from enum import StrEnum


class StationState(StrEnum):
    STARTING = "starting"
    NO_CONTENT = "no_content"
    CHECKING_CONTENT = "checking_content"
    READY = "ready"
    BUSY = "busy"
    PAUSED = "paused"
    ERROR = "error"
    SHUTTING_DOWN = "shutting_down"
    #: an operator shutdown has ended: jobs cancelled, the ledger closed (safe to unplug)
    STOPPED = "stopped"
    #: stopped safely, but the system power-off was refused: the operator unplugs
    POWEROFF_FAILED = "poweroff_failed"


class SlotState(StrEnum):
    EMPTY = "empty"
    DETECTED = "detected"
    PROBING = "probing"
    WAITING = "waiting"
    WIPING = "wiping"
    LOADING = "loading"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    REMOVED = "removed"
    REJECTED = "rejected"
    #: a stick that numbered its port (MENU "Number the ports"): never loaded, take it out
    NUMBERED = "numbered"


class PortsState(StrEnum):
    """Numbering the ports on the station (MENU page "Number the ports")."""

    OFF = "off"
    NUMBERING = "numbering"


class FailReason(StrEnum):
    """Why a slot failed; each has plain words in the message catalogue (``reason.<value>``)."""

    FAKE_CAPACITY = "fake_capacity"
    REMOVED = "removed"
    READ_ONLY = "read_only"
    TOO_SMALL = "too_small"
    WRITE_ERROR = "write_error"
    VERIFY_FAILED = "verify_failed"
    CANCELLED = "cancelled"
    CONTENT_DAMAGED = "content_damaged"
    CONTENT_REMOVED = "content_removed"
    UNKNOWN = "unknown"


S = StationState
STATION_TRANSITIONS: frozenset[tuple[StationState, str, StationState]] = frozenset(
    {
        (S.STARTING, "started", S.NO_CONTENT),
        (S.STARTING, "config_error", S.ERROR),
        (S.NO_CONTENT, "content_inserted", S.CHECKING_CONTENT),
        (S.CHECKING_CONTENT, "content_verified", S.READY),
        (S.CHECKING_CONTENT, "content_damaged", S.ERROR),
        (S.CHECKING_CONTENT, "content_removed", S.NO_CONTENT),
        (S.READY, "job_started", S.BUSY),
        (S.READY, "content_removed", S.NO_CONTENT),
        (S.READY, "undervoltage", S.PAUSED),
        (S.BUSY, "jobs_idle", S.READY),
        (S.BUSY, "content_damaged", S.ERROR),
        (S.BUSY, "content_removed", S.NO_CONTENT),
        (S.BUSY, "undervoltage", S.PAUSED),
        (S.PAUSED, "power_ok", S.READY),
        (S.PAUSED, "power_ok", S.BUSY),
        (S.PAUSED, "content_removed", S.NO_CONTENT),
        (S.ERROR, "content_removed", S.NO_CONTENT),
        (S.STARTING, "shutdown", S.SHUTTING_DOWN),
        (S.NO_CONTENT, "shutdown", S.SHUTTING_DOWN),
        (S.CHECKING_CONTENT, "shutdown", S.SHUTTING_DOWN),
        (S.READY, "shutdown", S.SHUTTING_DOWN),
        (S.BUSY, "shutdown", S.SHUTTING_DOWN),
        (S.PAUSED, "shutdown", S.SHUTTING_DOWN),
        (S.ERROR, "shutdown", S.SHUTTING_DOWN),
        (S.SHUTTING_DOWN, "service_stopped", S.STOPPED),
        (S.STOPPED, "poweroff_failed", S.POWEROFF_FAILED),
    }
)

L = SlotState
_ACTIVE = (L.PROBING, L.WIPING, L.LOADING, L.VERIFYING)
#: slots holding a job the engine is working on
ACTIVE: frozenset[SlotState] = frozenset(_ACTIVE)
#: slots with a stick in them that no job has taken yet
PENDING: frozenset[SlotState] = frozenset({L.DETECTED, L.WAITING})

SLOT_TRANSITIONS: frozenset[tuple[SlotState, str, SlotState]] = frozenset(
    {
        (L.EMPTY, "drive_arrived", L.DETECTED),
        (L.REMOVED, "drive_arrived", L.DETECTED),
        (L.EMPTY, "device_rejected", L.REJECTED),
        (L.REMOVED, "device_rejected", L.REJECTED),
        (L.REJECTED, "drive_gone", L.EMPTY),
        (L.DETECTED, "queued", L.WAITING),
        (L.DETECTED, "drive_gone", L.EMPTY),
        (L.WAITING, "drive_gone", L.EMPTY),
        (L.WAITING, "unqueued", L.DETECTED),
        (L.WAITING, "job_started", L.PROBING),
        (L.WAITING, "cancel", L.FAILED),
        (L.PROBING, "phase_wipe", L.WIPING),
        (L.PROBING, "phase_load", L.LOADING),
        (L.WIPING, "phase_load", L.LOADING),
        (L.LOADING, "phase_wipe", L.WIPING),
        (L.LOADING, "phase_verify", L.VERIFYING),
        (L.WIPING, "phase_verify", L.VERIFYING),
        (L.VERIFYING, "job_done", L.DONE),
        *((s, "job_failed", L.FAILED) for s in _ACTIVE),
        *((s, "drive_gone", L.REMOVED) for s in _ACTIVE),
        (L.DONE, "drive_gone", L.EMPTY),
        (L.FAILED, "drive_gone", L.EMPTY),
        (L.EMPTY, "port_numbered", L.NUMBERED),
        (L.NUMBERED, "drive_gone", L.EMPTY),
        (L.NUMBERED, "drive_arrived", L.DETECTED),
    }
)

P = PortsState
#: numbering the ports: START on the "ports" page starts it (nothing loading, no stick in);
#: each stick plugged numbers its port; START/MENU/CANCEL, all slots numbered or a
#: shutdown end it
PORTS_TRANSITIONS: frozenset[tuple[PortsState, str, PortsState]] = frozenset(
    {
        (P.OFF, "number_ports", P.NUMBERING),
        (P.NUMBERING, "port_numbered", P.NUMBERING),
        (P.NUMBERING, "numbering_done", P.OFF),
    }
)


def station_targets(source: StationState, trigger: str) -> list[StationState]:
    return sorted(t for s, k, t in STATION_TRANSITIONS if s == source and k == trigger)


def ports_target(source: PortsState, trigger: str) -> PortsState | None:
    for s, k, t in PORTS_TRANSITIONS:
        if s == source and k == trigger:
            return t
    return None


def slot_target(source: SlotState, trigger: str) -> SlotState | None:
    for s, k, t in SLOT_TRANSITIONS:
        if s == source and k == trigger:
            return t
    return None
