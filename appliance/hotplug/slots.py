"""Slots: each physical USB port gets a number that survives ``/dev/sdX`` renames.

The key of a port is the USB part of udev's ``ID_PATH`` (see
:func:`~appliance.hotplug.device.usb_port_from_id_path`): controller path
plus port chain, the same whichever stick, LUN or partition sits there.
``hotplug.slots`` maps keys to numbers (``flashstation slots learn`` writes
it); a port not in the map gets the next free number the first time it is
seen and keeps it until the station restarts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping


class SlotMap:
    """Port key -> slot number; thread-safe, unknown ports get the next free number."""

    def __init__(self, learned: Mapping[str, int] | None = None):
        self._lock = threading.Lock()
        self._slots: dict[str, int] = dict(learned or {})
        self.learned = frozenset(self._slots)

    def slot_for(self, port: str | None) -> int | None:
        if port is None:
            return None
        with self._lock:
            slot = self._slots.get(port)
            if slot is None:
                taken = set(self._slots.values())
                slot = next(n for n in range(1, len(taken) + 2) if n not in taken)
                self._slots[port] = slot
            return slot

    def port_of(self, slot: int) -> str | None:
        with self._lock:
            for port, number in self._slots.items():
                if number == slot:
                    return port
        return None

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._slots)
