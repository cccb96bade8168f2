"""What the engine tells its caller: events while it runs, results when it ends.

Events travel upward without blocking (Mopidy's ``listener.send``): the engine
puts them on a queue and one dispatcher thread calls the caller's callback, so
a slow or failing screen can never stall a write. A callback's exception is
logged, never raised into the engine. Progress events are throttled per target.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

Phase = Literal["open", "probe", "write", "verify", "commit", "done"]
Status = Literal["ok", "failed", "cancelled"]
WipeMode = Literal["full", "quick"]

#: Phases whose duration is reported in :attr:`TargetResult.seconds`.
TIMED_PHASES: tuple[Phase, ...] = ("probe", "write", "verify", "commit")


@dataclass(frozen=True)
class TargetResult:
    """How one target ended. A value: safe to keep, print or send anywhere."""

    target: str  # the name given in the job (path by default)
    status: Status
    reason: str  # "" when ok; one line naming path, offset and cause otherwise
    capacity: int  # bytes (0 if the target could not be opened)
    bytes_written: int  # to the drive, all phases
    bytes_verified: int  # read back from the drive and compared
    seconds: dict[str, float]  # per phase: probe, write, verify, commit
    bus_bytes: int  # bytes moved over USB for this target: written + read back
    content_bytes: int  # bytes of content files in this target's plan
    source_extra_reads: int  # catch-up bytes this target read from the source itself
    wipe: WipeMode
    notes: tuple[str, ...] = ()
    #: stable cause code when not ok: fake_capacity, removed, read_only, too_small,
    #: write_error, verify_failed, refused, busy, cancelled, content_damaged,
    #: content_removed, unknown ("" when ok)
    cause: str = ""
    #: numbers for messages, e.g. {"real": 8e9, "claimed": 64e9} for fake_capacity
    detail: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def bus_ratio(self) -> float:
        """Bus bytes as a multiple of the content size (what limits sticks per hour)."""
        return self.bus_bytes / self.content_bytes if self.content_bytes else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "status": self.status,
            "reason": self.reason,
            "capacity": self.capacity,
            "bytes_written": self.bytes_written,
            "bytes_verified": self.bytes_verified,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "bus_bytes": self.bus_bytes,
            "bus_ratio": round(self.bus_ratio, 3),
            "content_bytes": self.content_bytes,
            "source_extra_reads": self.source_extra_reads,
            "wipe": self.wipe,
            "notes": list(self.notes),
            "cause": self.cause,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PhaseChanged:
    target: str
    phase: Phase


@dataclass(frozen=True)
class Progress:
    """Bytes done in the current phase of one target; ``eta`` covers all its phases."""

    target: str
    phase: Phase
    done: int
    total: int
    speed: float  # bytes per second in this phase
    eta: float | None  # seconds until this target ends, None if unknown


@dataclass(frozen=True)
class TargetFinished:
    result: TargetResult


@dataclass(frozen=True)
class BatchFinished:
    results: tuple[TargetResult, ...]
    error: str | None = None  # set when the source or observer failed the whole batch


Event = PhaseChanged | Progress | TargetFinished | BatchFinished
EventCallback = Callable[[Event], None]


@dataclass
class EventDispatcher:
    """Calls ``callback`` for each event on its own thread, in order, fire-and-forget."""

    callback: EventCallback | None
    _queue: queue.SimpleQueue[Event | None] = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        if self.callback is not None:
            self._thread = threading.Thread(target=self._run, name="engine-events", daemon=True)
            self._thread.start()

    def send(self, event: Event) -> None:
        if self.callback is not None:
            self._queue.put(event)

    def stop(self) -> None:
        """Deliver what is queued, then end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        assert self.callback is not None
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.callback(event)
            except Exception:
                log.exception("event callback failed on %r", event)
