"""What the station needs from the engine, hotplug and content areas, as small Protocols.

The station owns these interfaces; :mod:`.fakes` implements them in memory
(tests, simulator) and :mod:`.adapters` over the real packages. Every
producer talks back only through ``post`` (:meth:`Station.post`), from its
own thread, and never waits for the station.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from appliance.station.effects import StartBatch
from appliance.station.events import Event

Post = Callable[[Event], None]


class Loader(Protocol):
    """Starts batches of jobs (one read of the content per batch) and cancels them.

    ``start`` must return at once (work happens on the loader's threads) and
    report each slot's :class:`~.events.JobProgress` and exactly one
    :class:`~.events.JobDone` or :class:`~.events.JobFailed` through ``post``.
    """

    def start(self, batch: StartBatch, post: Post) -> None: ...

    def cancel(self, slot: int) -> None: ...

    def cancel_all(self) -> None: ...

    def close(self) -> None: ...


class Watcher(Protocol):
    """A source of events (drives arriving and leaving, the content SSD, power).

    ``start(post)`` begins reporting; ``close()`` stops, idempotently.
    """

    def start(self, post: Post) -> None: ...

    def close(self) -> None: ...


class Indicator(Protocol):
    """Per-slot LEDs and a buzzer (optional hardware): told, never asked."""

    def show(self, states: list[str]) -> None: ...

    def beep(self, what: str) -> None: ...

    def close(self) -> None: ...


class SlotNumbers(Protocol):
    """Where port numbers live (``hotplug.slots.SlotMap`` with its store): told, never asked.

    ``assign`` returns False for a configured port or number (configured numbers win).
    """

    def forget(self) -> None: ...

    def assign(self, port: str, number: int) -> bool: ...
