"""What the service needs from the station, and the events it listens to.

The service hosts the station (start it, stop it, mirror its summary line to
systemd's ``STATUS=``, dump its jobs on SIGUSR1, pause it on undervoltage) and
records every job in the ledger. The station tells the service about jobs by
events, delivered fire-and-forget upward (Mopidy's ``listener.send``): the
station never waits on the ledger's fsync.

The raw serial travels in :class:`JobStarted` only so the ledger can hash it
with the station's salt; it is excluded from ``repr`` so logging an event can
never print it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from appliance.config.loader import ConfigProblem

#: How a job ended. ``interrupted`` is written only by recovery, never by a station.
JobResult = Literal["done", "failed", "cancelled"]
#: Coarse drive classes: the only vendor information the ledger keeps.
DriveClass = Literal["stick", "card", "other"]


@dataclass(frozen=True)
class BatchStarted:
    batch: str  # the station's id for the batch (unique while it runs)
    pack_name: str
    pack_version: str


@dataclass(frozen=True)
class BatchFinished:
    batch: str


@dataclass(frozen=True)
class JobStarted:
    job: str  # the station's id for this job (unique while it runs), e.g. "slot3-17"
    batch: str
    serial: str = field(repr=False)  # hashed by the ledger; never logged, never stored
    capacity: int
    tier: str
    drive_class: DriveClass = "stick"
    wipe: str = "full"


@dataclass(frozen=True)
class JobFinished:
    job: str
    result: JobResult
    reason: str = ""  # plain words; scrubbed of serials and device paths before storing
    seconds: Mapping[str, float] = field(default_factory=dict)  # per phase
    bytes_written: int = 0
    bytes_verified: int = 0
    tier: str | None = None  # when the tier was only known after the probe


StationEvent = BatchStarted | BatchFinished | JobStarted | JobFinished
Listener = Callable[[StationEvent], None]


@dataclass(frozen=True)
class JobSnapshot:
    """One slot's job as the station sees it now (for SIGUSR1 dumps and reports)."""

    slot: int
    job: str
    phase: str
    percent: float
    capacity: int
    tier: str


class Station(Protocol):
    """The station as the service drives it.

    ``start`` returns once the station is running its own threads;
    ``stop`` cancels running jobs (drives are left without a partition table by
    the engine's commit-last protocol) and returns when its threads ended.
    """

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def status_line(self) -> str:
        """The screen's one-line summary, e.g. ``"ready: 3 loading, 12 done"``."""
        ...

    def snapshot(self) -> list[JobSnapshot]: ...

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` for every :data:`StationEvent` (on any thread; must not block)."""
        ...

    def set_paused(self, reason: str | None) -> None:
        """Hold new jobs (running ones go on) while ``reason`` is set; show it on screen."""
        ...

    def show_config_error(self, problem: ConfigProblem, using: str) -> None:
        """Show the bad config screen (file and line) while carrying on with ``using``.

        ``using`` is ``"last good"`` or ``"defaults"``: the values the station runs on.
        """
        ...
