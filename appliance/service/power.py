"""Power: the Pi's under-voltage and throttling flags, and staggered job starts.

A cheap supply feeding a hub of sticks sags when many sticks start writing at
once. The firmware reports it in ``get_throttled`` (a bit mask, read from
sysfs on current kernels, or with ``vcgencmd get_throttled``). While the
supply is under-voltage the station holds new jobs (running ones go on; a
brown-out mid-write is caught by verification and commit-last) and shows why.
Job starts are spaced by :class:`Stagger` so inrush currents do not add up.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Bits of get_throttled (Raspberry Pi firmware documentation, "vcgencmd get_throttled").
UNDER_VOLTAGE = 1 << 0
FREQ_CAPPED = 1 << 1
THROTTLED = 1 << 2
SOFT_TEMP_LIMIT = 1 << 3
UNDER_VOLTAGE_OCCURRED = 1 << 16
FREQ_CAPPED_OCCURRED = 1 << 17
THROTTLED_OCCURRED = 1 << 18
SOFT_TEMP_LIMIT_OCCURRED = 1 << 19


@dataclass(frozen=True)
class PowerFlags:
    raw: int

    under_voltage = property(lambda self: bool(self.raw & UNDER_VOLTAGE))
    freq_capped = property(lambda self: bool(self.raw & FREQ_CAPPED))
    throttled = property(lambda self: bool(self.raw & THROTTLED))
    soft_temp_limit = property(lambda self: bool(self.raw & SOFT_TEMP_LIMIT))
    under_voltage_occurred = property(lambda self: bool(self.raw & UNDER_VOLTAGE_OCCURRED))
    freq_capped_occurred = property(lambda self: bool(self.raw & FREQ_CAPPED_OCCURRED))
    throttled_occurred = property(lambda self: bool(self.raw & THROTTLED_OCCURRED))
    soft_temp_limit_occurred = property(lambda self: bool(self.raw & SOFT_TEMP_LIMIT_OCCURRED))

    def describe(self) -> str:
        """Plain words for what is true now ("" when all is well)."""
        now = []
        if self.under_voltage:
            now.append("under-voltage")
        if self.throttled:
            now.append("throttled")
        if self.freq_capped:
            now.append("frequency capped")
        if self.soft_temp_limit:
            now.append("hot")
        return ", ".join(now)


def parse_throttled(text: str) -> PowerFlags:
    """Parse ``0x50005``, ``50005`` (sysfs: hex without prefix) or ``throttled=0x50005``."""
    value = text.strip().rpartition("=")[2].strip()
    try:
        return PowerFlags(int(value, 16))
    except ValueError:
        raise ValueError(f"cannot read throttling flags from {text.strip()!r}") from None


Reader = Callable[[], PowerFlags | None]


def throttled_reader(path: Path | str, vcgencmd: str = "vcgencmd") -> Reader:
    """Read the flags from ``path``, else from ``vcgencmd``; None when neither exists (not a Pi)."""
    sysfs = Path(path)
    warned: set[str] = set()

    def read() -> PowerFlags | None:
        try:
            return parse_throttled(sysfs.read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            if "sysfs" not in warned:
                log.warning("power flags: %s: %s", sysfs, exc)
                warned.add("sysfs")
        try:
            out = subprocess.run(
                [vcgencmd, "get_throttled"], capture_output=True, text=True, timeout=5, check=True
            ).stdout
            return parse_throttled(out)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None

    return read


class PowerMonitor:
    """Polled by the service's main loop; calls ``on_change(reason or None)`` on edges only."""

    def __init__(self, reader: Reader, on_change: Callable[[str | None], None]) -> None:
        self.reader = reader
        self.on_change = on_change
        self.flags: PowerFlags | None = None
        self.paused_for: str | None = None
        self._seen_occurred = False

    def poll(self) -> PowerFlags | None:
        flags = self.reader()
        self.flags = flags
        if flags is None:
            return None
        if flags.under_voltage_occurred and not self._seen_occurred:
            log.warning("power: under-voltage has occurred since boot (flags 0x%x)", flags.raw)
            self._seen_occurred = True
        reason = "under-voltage: check the power supply" if flags.under_voltage else None
        if reason != self.paused_for:
            if reason:
                log.warning("power: %s (flags 0x%x); new jobs held", reason, flags.raw)
            else:
                log.info("power: supply back to normal; new jobs resume")
            self.paused_for = reason
            self.on_change(reason)
        return flags


class Stagger:
    """Spaces job starts at least ``delay`` seconds apart (thread-safe, cancellable).

    The station calls :meth:`wait_turn` just before each job touches its drive.
    """

    def __init__(
        self,
        delay: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay = delay
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()

    def reserve(self) -> float:
        """Claim the next start slot; returns how long the caller must wait for it."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.delay
            return start - now

    def wait_turn(self, cancel: threading.Event | None = None) -> bool:
        """Block until this caller's turn; False if ``cancel`` was set meanwhile."""
        wait = self.reserve()
        if cancel is None:
            if wait > 0:
                time.sleep(wait)
            return True
        return not cancel.wait(wait) if wait > 0 else not cancel.is_set()
