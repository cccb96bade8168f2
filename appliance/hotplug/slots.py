"""Slots: each physical USB port gets a number that survives ``/dev/sdX`` renames and restarts.

The key of a port is the USB part of udev's ``ID_PATH`` (see
:func:`~appliance.hotplug.device.usb_port_from_id_path`): controller path
plus port chain, the same whichever stick, LUN or partition sits there.

Two sources of numbers, the first winning:

1. ``hotplug.slots`` in the configuration (``flashstation slots learn``
   writes it on a machine with a keyboard): *configured* numbers.
2. *Remembered* numbers: a port not configured gets the next free number
   the first time it is seen, and :class:`SlotStore` keeps that in the state
   directory (``slots.json``), so after a restart the same port shows the
   same number (the label an operator stuck on the hub stays true). The
   station's "Number the ports" page clears them (:meth:`SlotMap.forget`)
   and gives numbers in plug order (:meth:`SlotMap.assign`).

A remembered number that a configured port also has is dropped (with a
warning), as is a remembered entry for a configured port. The file holds
port paths and numbers only: no drive serials, no device identities.
Numbers beyond the screen's slot count are remembered too (so such a port
never takes a number another port shows); the station never loads a stick
there and says so.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from appliance.fileio import DAY, blur_mtime, write_atomic

log = logging.getLogger(__name__)

STORE_NAME = "slots.json"
STORE_VERSION = 1
#: far more ports than a station meets in its life: a file with more is not ours
MAX_REMEMBERED = 4096


class SlotStore:
    """``slots.json`` in the state directory: remembered port -> number, written atomically."""

    def __init__(self, state_dir: str | Path):
        self.path = Path(state_dir) / STORE_NAME

    def load(self) -> dict[str, int]:
        """The remembered numbers; a missing file is empty, a bad one is empty with a warning."""
        try:
            raw_bytes = self.path.read_bytes()
        except FileNotFoundError:  # a new station: nothing remembered yet
            log.info(
                "slot numbers: no %s yet; ports are numbered as they are first seen", self.path
            )
            return {}
        except OSError as exc:
            log.warning("slot numbers: cannot read %s (%s); starting fresh", self.path, exc)
            return {}
        try:
            data = json.loads(raw_bytes.decode("utf-8"))
            if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
                raise ValueError("not a version 1 slot file")
            raw = data.get("slots")
            if not isinstance(raw, dict) or len(raw) > MAX_REMEMBERED:
                raise ValueError("no slots mapping")
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("slot numbers: %s is unusable (%s); starting fresh", self.path, exc)
            return {}
        slots: dict[str, int] = {}
        for port, number in raw.items():
            if isinstance(port, str) and port and type(number) is int and number >= 1:
                slots[port] = number
            else:
                log.warning("slot numbers: bad entry in %s dropped", self.path)
        return slots

    def save(self, slots: Mapping[str, int]) -> None:
        """Write atomically (temporary file, fsync, rename); raises OSError."""
        body = {"version": STORE_VERSION, "slots": dict(sorted(slots.items()))}
        text = json.dumps(body, indent=1, sort_keys=False) + "\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.path, text)
        blur_mtime(self.path, DAY)  # when a port was first seen: the day is enough


class SlotMap:
    """Port key -> slot number; thread-safe; unknown ports get the next free number.

    ``learned`` are the configured numbers (``hotplug.slots``); with a
    ``store``, numbers given to other ports are remembered across restarts.
    """

    def __init__(self, learned: Mapping[str, int] | None = None, store: SlotStore | None = None):
        self._lock = threading.Lock()
        self._configured: dict[str, int] = dict(learned or {})
        self.learned = frozenset(self._configured)
        self.store = store
        self._remembered: dict[str, int] = {}
        if store is not None:
            self._remembered = self._clean(store.load())

    def _clean(self, remembered: Mapping[str, int]) -> dict[str, int]:
        fixed = set(self._configured.values())
        kept: dict[str, int] = {}
        for port, number in sorted(remembered.items(), key=lambda item: item[1]):
            if port in self._configured:
                continue  # configured wins: nothing to warn about
            if number in fixed:
                log.warning(
                    "slot numbers: remembered slot %d is configured for another port", number
                )
                continue
            if number in kept.values():
                log.warning("slot numbers: slot %d remembered twice; one dropped", number)
                continue
            kept[port] = number
        return kept

    @property
    def configured_numbers(self) -> frozenset[int]:
        return frozenset(self._configured.values())

    def _taken(self) -> set[int]:
        return set(self._configured.values()) | set(self._remembered.values())

    def _save(self) -> None:
        if self.store is None:
            return
        try:
            self.store.save(self._remembered)
        except OSError as exc:  # a full or read-only state partition: numbers last this run
            log.warning("slot numbers: cannot save %s: %s", self.store.path, exc)

    def slot_for(self, port: str | None) -> int | None:
        """The port's number; a port seen for the first time gets (and keeps) the next free one."""
        if port is None:
            return None
        with self._lock:
            slot = self._configured.get(port, self._remembered.get(port))
            if slot is None:
                taken = self._taken()
                slot = next(n for n in range(1, len(taken) + 2) if n not in taken)
                self._remembered[port] = slot
                log.info("slot %d given to a new port", slot)
                self._save()
            return slot

    def peek(self, port: str | None) -> int | None:
        """The port's number now, without giving one to an unknown port."""
        if port is None:
            return None
        with self._lock:
            return self._configured.get(port, self._remembered.get(port))

    def forget(self) -> None:
        """Drop every remembered number (configured ones stay); saved at once."""
        with self._lock:
            self._remembered.clear()
            self._save()
        log.info("slot numbers: remembered numbers cleared")

    def assign(self, port: str, number: int) -> bool:
        """Give ``port`` the number ``number`` (saved at once); False for a configured port
        or number. Another remembered port holding ``number`` loses it."""
        if number < 1:
            raise ValueError(f"slot number must be at least 1, not {number}")
        with self._lock:
            if port in self._configured or number in self._configured.values():
                return False
            for other, n in list(self._remembered.items()):
                if n == number and other != port:
                    del self._remembered[other]
            self._remembered[port] = number
            self._save()
        log.info("slot numbers: slot %d given to a port", number)
        return True

    def port_of(self, slot: int) -> str | None:
        with self._lock:
            for port, number in (*self._configured.items(), *self._remembered.items()):
                if number == slot:
                    return port
        return None

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {**self._remembered, **self._configured}

    def remembered(self) -> dict[str, int]:
        with self._lock:
            return dict(self._remembered)
