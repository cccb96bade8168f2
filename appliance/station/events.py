"""The closed set of events the station applies (posted from any thread).

Every event is a frozen dataclass with a ``kind``; producers (button
callbacks, the hotplug adapter, the loader adapter, the content adapter, the
station's own timer) build them and call :meth:`Station.post`. None carries
a raw drive serial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from appliance.station.states import FailReason


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"


# -- station life ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Started(Event):
    """Hardware is up; the station waits for content."""

    kind: ClassVar[str] = "started"


@dataclass(frozen=True)
class ConfigError(Event):
    """The config could not be loaded: shown with its file and line until fixed."""

    kind: ClassVar[str] = "config_error"
    file: str
    line: int | None
    message: str


@dataclass(frozen=True)
class Undervoltage(Event):
    kind: ClassVar[str] = "undervoltage"


@dataclass(frozen=True)
class PowerOk(Event):
    kind: ClassVar[str] = "power_ok"


@dataclass(frozen=True)
class Tick(Event):
    """Time passed (batch windows, alert expiry, idle dimming)."""

    kind: ClassVar[str] = "tick"


@dataclass(frozen=True)
class TotalsLoaded(Event):
    """The ledger's all-time totals (read off the station thread); they replace the counters.

    Posted by the service after the ledger recorded a job, so the totals screen
    shows what survives a restart rather than this run's in-memory counts.
    """

    kind: ClassVar[str] = "totals_loaded"
    done: int
    failed: tuple[tuple[FailReason, int], ...] = ()


@dataclass(frozen=True)
class ReportExported(Event):
    """How the operator's report export ended: ``saved``, ``no_content``, ``failed`` or
    ``busy`` (refused: the engine was still reading the content SSD)."""

    kind: ClassVar[str] = "report_exported"
    outcome: str


@dataclass(frozen=True)
class Shutdown(Event):
    """Shut down safely (MENU held, or the service stopping)."""

    kind: ClassVar[str] = "shutdown"


@dataclass(frozen=True)
class ServiceStopped(Event):
    """After an operator shutdown: every job cancelled and recorded, the ledger closed.

    Sent by the hosting service once its orderly stop has ended (the runner's
    thread has ended by then): nothing more is written, so the plug may be pulled.
    ``powering_off``: the service is asking the system to power off.
    """

    kind: ClassVar[str] = "service_stopped"
    powering_off: bool = False


@dataclass(frozen=True)
class PowerOffFailed(Event):
    """The system power-off was refused or could not be asked for (``detail`` for the log)."""

    kind: ClassVar[str] = "poweroff_failed"
    detail: str = ""


# -- content SSD ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContentInserted(Event):
    kind: ClassVar[str] = "content_inserted"
    title: str
    version: str
    #: (tier name, minimum capacity in bytes, payload bytes), smallest first
    tiers: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class ContentProgress(Event):
    kind: ClassVar[str] = "content_progress"
    done: int
    total: int


@dataclass(frozen=True)
class ContentVerified(Event):
    kind: ClassVar[str] = "content_verified"


@dataclass(frozen=True)
class ContentDamaged(Event):
    kind: ClassVar[str] = "content_damaged"
    detail: str = ""


@dataclass(frozen=True)
class ContentRemoved(Event):
    kind: ClassVar[str] = "content_removed"


# -- drives ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriveArrived(Event):
    """A loadable stick (hotplug verdict ``target``) is in ``slot``."""

    kind: ClassVar[str] = "drive_arrived"
    slot: int
    capacity: int
    device: str = ""
    drive_id: str = ""
    #: the USB port key (``hotplug.slots`` form); numbering the ports learns it
    port: str = ""


@dataclass(frozen=True)
class DriveGone(Event):
    kind: ClassVar[str] = "drive_gone"
    slot: int


@dataclass(frozen=True)
class DeviceRejected(Event):
    """Something in ``slot`` that must not be loaded (not plain storage, too small, ...)."""

    kind: ClassVar[str] = "device_rejected"
    slot: int
    #: message key in the catalogue (``reject.<code>``) and free detail for the log
    code: str = "not_storage"
    detail: str = ""
    #: the USB port key, when known (numbering the ports learns it)
    port: str = ""


# -- jobs (from the loader) -----------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress(Event):
    """Engine progress for one slot. ``phase``: probe, wipe, load, verify."""

    kind: ClassVar[str] = "job_progress"
    slot: int
    phase: str
    done: int
    total: int
    speed: float = 0.0  # bytes per second
    eta: float | None = None  # seconds
    tier: str | None = None
    real_capacity: int | None = None
    #: the whole job's progress 0..1 (all phases), for the grid's percent
    fraction: float = 0.0


@dataclass(frozen=True)
class JobDone(Event):
    kind: ClassVar[str] = "job_done"
    slot: int
    tier: str | None = None


@dataclass(frozen=True)
class JobFailed(Event):
    kind: ClassVar[str] = "job_failed"
    slot: int
    reason: FailReason
    #: numbers for the plain-words message, e.g. {"real": 8e9, "claimed": 64e9}
    detail: dict[str, float] = field(default_factory=dict, hash=False, compare=False)


# -- buttons --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartPressed(Event):
    kind: ClassVar[str] = "start_pressed"


@dataclass(frozen=True)
class CancelPressed(Event):
    kind: ClassVar[str] = "cancel_pressed"


@dataclass(frozen=True)
class MenuPressed(Event):
    kind: ClassVar[str] = "menu_pressed"


@dataclass(frozen=True)
class MenuHeld(Event):
    """MENU held for ``ui.buttons.hold_time``: shut down safely."""

    kind: ClassVar[str] = "menu_held"
