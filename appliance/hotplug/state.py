"""From udev noise to a few events: the state diff behind the monitor.

:class:`HotplugState` keeps what is plugged in (whole disks by sysfs path,
refused USB devices) and turns each raw :class:`UEvent` into zero or more
:class:`~.events.HotplugEvent`. It is pure bookkeeping — no threads, no I/O
— so the storm tests can throw thousands of shuffled events at it.

Robustness rules, because udev events get lost, duplicated and reordered
when sixteen sticks are yanked at once:

* an ``add`` for a disk already known, or a ``change`` for an unknown one,
  is treated as what the disk now is (no duplicate arrival);
* the ``remove`` of a USB device also removes every disk below it in sysfs,
  so a lost block ``remove`` never leaves a ghost drive in a slot;
* a ``remove`` for something unknown is ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from appliance.hotplug.classify import Classifier, Decision
from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.events import (
    DeviceRejected,
    DriveArrived,
    DriveGone,
    HotplugEvent,
    MediaChanged,
)
from appliance.hotplug.identity import drive_id
from appliance.hotplug.slots import SlotMap
from appliance.hotplug.usbpolicy import PolicyDecision, rejection_message

PRESENT_ACTIONS = frozenset({"add", "change", "bind", "online", "move"})


@dataclass(frozen=True)
class UEvent:
    """One raw udev event, reduced to what the state needs.

    ``size`` (bytes), ``mounted`` and ``holders`` come from sysfs/proc for
    live events and from the test for fake ones.
    """

    action: str
    properties: Mapping[str, str]
    size: int | None = None
    mounted: bool = False
    holders: bool = False

    def __repr__(self) -> str:  # properties hold the raw serial
        return f"UEvent({self.action!r}, {self.properties.get('DEVPATH', '?')!r})"


@dataclass(frozen=True)
class Drive:
    """A whole disk the state knows about."""

    devpath: str
    devname: str
    port: str | None
    slot: int | None
    drive_id: str
    decision: Decision
    present: bool  # False: a card reader with its slot empty


class HotplugState:
    """Current devices plus the diff that yields events; every method is thread-safe."""

    def __init__(
        self,
        classifier: Classifier,
        slots: SlotMap,
        salt: bytes,
        policy: Callable[[UEvent], PolicyDecision | None] | None = None,
    ):
        self.classifier = classifier
        self.slots = slots
        self.salt = salt
        self.policy = policy
        self._lock = threading.Lock()
        self._drives: dict[str, Drive] = {}
        self._rejected: dict[str, DeviceRejected] = {}

    # --- queries --------------------------------------------------------
    def drives(self) -> list[Drive]:
        with self._lock:
            return sorted(self._drives.values(), key=lambda d: (d.slot or 0, d.devpath))

    def drive_in_slot(self, slot: int) -> Drive | None:
        with self._lock:
            return next((d for d in self._drives.values() if d.slot == slot), None)

    def rejected(self) -> list[DeviceRejected]:
        with self._lock:
            return list(self._rejected.values())

    # --- the diff -------------------------------------------------------
    def apply(self, event: UEvent) -> list[HotplugEvent]:
        props = event.properties
        subsystem = props.get("SUBSYSTEM", "")
        devtype = props.get("DEVTYPE", "")
        with self._lock:
            if subsystem == "block" and devtype == "disk":
                return self._disk(event)
            if subsystem == "usb" and devtype == "usb_device":
                return self._usb_device(event)
        return []

    def _identity(self, info: DeviceInfo) -> str:
        serial = info.serial or f"no-serial:{info.usb_port}:{info.get('DEVPATH')}"
        return drive_id(serial, self.salt)

    def _disk(self, event: UEvent) -> list[HotplugEvent]:
        props = event.properties
        devpath = props.get("DEVPATH", "")
        old_path = props.get("DEVPATH_OLD")
        if event.action == "move" and old_path in self._drives:
            self._drives[devpath] = replace(self._drives.pop(old_path), devpath=devpath)
        if event.action == "remove":
            gone = self._drives.pop(devpath, None)
            return [self._gone(gone)] if gone else []
        if event.action not in PRESENT_ACTIONS:
            return []
        info = DeviceInfo(props, size=event.size, mounted=event.mounted, holders=event.holders)
        ident = self._identity(info)
        info = replace(info, id=ident)
        decision = self.classifier.classify(info)
        present = event.size != 0
        known = self._drives.get(devpath)
        port = info.usb_port
        if known is None:
            drive = Drive(
                devpath, info.devname, port, self.slots.slot_for(port), ident, decision, present
            )
            self._drives[devpath] = drive
            return [DriveArrived(drive.slot, port, drive.devname, ident, decision, event.size)]
        updated = replace(
            known, devname=info.devname, drive_id=ident, decision=decision, present=present
        )
        self._drives[devpath] = updated
        if known.present != present:
            return [MediaChanged(known.slot, known.port, updated.devname, ident, present, decision)]
        return []

    def _gone(self, drive: Drive, reason: str = "removed") -> DriveGone:
        return DriveGone(drive.slot, drive.port, drive.devname, drive.drive_id, reason)

    def _usb_device(self, event: UEvent) -> list[HotplugEvent]:
        props = event.properties
        devpath = props.get("DEVPATH", "")
        if event.action == "remove":
            out: list[HotplugEvent] = []
            rejected = self._rejected.pop(devpath, None)
            below = [p for p in self._drives if p.startswith(devpath + "/")]
            out += [self._gone(self._drives.pop(p)) for p in sorted(below)]
            if rejected is not None and not below:
                # the refused device was pulled: its slot's "remove it" message can go
                out.append(DriveGone(rejected.slot, rejected.port, "", "", "removed"))
            return out
        if event.action != "add" or self.policy is None:
            return []
        decision = self.policy(event)
        if decision is None or decision.allowed:
            return []
        port = DeviceInfo(props).usb_port
        slot = self.slots.slot_for(port)
        rejected = DeviceRejected(slot, port, decision.reason, rejection_message(slot))
        self._rejected[devpath] = rejected
        return [rejected]
