"""What :meth:`Station.apply` asks the outside world to do (carried out by the runner)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobRequest:
    slot: int
    device: str
    capacity: int


@dataclass(frozen=True)
class Effect:
    pass


@dataclass(frozen=True)
class StartBatch(Effect):
    """Load these slots from one read of the content."""

    batch: int
    jobs: tuple[JobRequest, ...]


@dataclass(frozen=True)
class CancelJob(Effect):
    slot: int


@dataclass(frozen=True)
class CancelAll(Effect):
    pass


@dataclass(frozen=True)
class Beep(Effect):
    """``done``, ``failed`` or ``ready``: the buzzer, when fitted."""

    what: str


@dataclass(frozen=True)
class PowerOffSlot(Effect):
    """A finished slot may be powered off where the hub can (uhubctl); best effort."""

    slot: int


@dataclass(frozen=True)
class ExportReport(Effect):
    """START on the ledger's totals: write the report to the content SSD (off this thread).

    Only asked for while no stick is being loaded (``Station.loading``); batches
    wait until the export has ended, so the SSD is never read-write under the engine.
    """


@dataclass(frozen=True)
class RunShutdownHooks(Effect):
    """Flush the ledger and whatever else registered; then the runner stops."""


@dataclass(frozen=True)
class ForgetPorts(Effect):
    """Numbering the ports began: drop every remembered port number (configured ones stay)."""


@dataclass(frozen=True)
class NumberPort(Effect):
    """Give USB port ``port`` the slot number ``number`` and save it (state directory)."""

    port: str
    number: int
