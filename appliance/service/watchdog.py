"""The systemd watchdog: pet only while the main loop is alive.

A thread that sends ``WATCHDOG=1`` on a timer proves only that the timer
thread runs. Here the main loop calls :meth:`Heartbeat.beat` on every turn
(after asking the station for its status line, which takes the station's
lock); the watchdog thread pets systemd only if the last beat is younger than
half the watchdog interval. A stuck main loop or a deadlocked station stops
the petting, and systemd kills and restarts the service (``Restart=on-watchdog``
or ``always`` in the unit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from appliance.service.notify import Notifier

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last


class Watchdog:
    """Pets systemd every ``interval / 4`` while the heartbeat is younger than ``interval / 2``."""

    def __init__(self, notifier: Notifier, heartbeat: Heartbeat, interval: float) -> None:
        self.notifier = notifier
        self.heartbeat = heartbeat
        self.interval = interval
        self.stale_after = interval / 2
        self.pets = 0
        self.missed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def tick(self) -> bool:
        """One check: pet if the main loop is alive. Returns whether it petted."""
        age = self.heartbeat.age()
        if age <= self.stale_after:
            self.notifier.watchdog()
            self.pets += 1
            return True
        if self.missed == 0:
            log.error("main loop silent for %.1f s: no longer petting the watchdog", age)
        self.missed += 1
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.interval / 4):
            self.tick()
