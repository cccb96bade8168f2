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

Settling (``hotplug.settle_time``): udev reports a new disk before its
partitions, and only the partitions' events carry the filesystem UUIDs and
labels that mark the content SSD (and name the partition the station mounts
when it tries a disk as content). So a new disk (or a card that appeared in
a reader) is held back for ``settle`` seconds; partition events in that time
update it, and :meth:`HotplugState.due` announces it with the decision it
has then. A partition that
turns an announced target into content (a very slow probe) withdraws it:
``DriveGone`` then ``DriveArrived`` with the new decision. The initial scan
is not held: udev has probed everything present by then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from appliance.hotplug.classify import Classifier, Decision, Verdict
from appliance.hotplug.device import DeviceInfo, Filesystem
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
#: verdicts of disks that may be the content SSD: their port is given no slot number of its
#: own (the content SSD would hold one for good: it is plugged first, as the screen asks);
#: whoever shows such a disk as refused numbers its port then (``slots.slot_for``)
UNNUMBERED_RULES = frozenset({"content", "too_large", "ata_bridge", "disk_model", "spinning"})


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
    #: filesystems udev probed on the disk's partitions (a disk event only)
    partitions: tuple[Filesystem, ...] = ()

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
        settle: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.classifier = classifier
        self.slots = slots
        self.salt = salt
        self.policy = policy
        self.settle = settle
        self.clock = clock
        self._lock = threading.Lock()
        self._drives: dict[str, Drive] = {}
        self._rejected: dict[str, DeviceRejected] = {}
        #: last DeviceInfo of each disk, to classify again when a partition shows up
        self._infos: dict[str, DeviceInfo] = {}
        #: disk devpath -> partition devpath -> its probed filesystem
        self._parts: dict[str, dict[str, Filesystem]] = {}
        #: disk devpath -> (deadline, size, a card in a known reader) of targets held back
        self._pending: dict[str, tuple[float, int | None, bool]] = {}

    # --- queries --------------------------------------------------------
    def drives(self) -> list[Drive]:
        with self._lock:
            return sorted(self._drives.values(), key=lambda d: (d.slot or 0, d.devpath))

    def drive_in_slot(self, slot: int) -> Drive | None:
        """The drive in ``slot`` by the port's number now (ports may have been renumbered)."""
        with self._lock:
            drives = [
                replace(d, slot=self._now_slot(d.port, d.slot)) for d in self._drives.values()
            ]
        return next((d for d in drives if d.slot == slot), None)

    def rejected(self) -> list[DeviceRejected]:
        with self._lock:
            return list(self._rejected.values())

    # --- the diff -------------------------------------------------------
    def apply(self, event: UEvent, settle: bool = True) -> list[HotplugEvent]:
        """Events for one raw event; ``settle=False`` (the initial scan) holds nothing back."""
        props = event.properties
        subsystem = props.get("SUBSYSTEM", "")
        devtype = props.get("DEVTYPE", "")
        with self._lock:
            if subsystem == "block" and devtype == "disk":
                return self._disk(event, settle)
            if subsystem == "block" and devtype == "partition":
                return self._partition(event)
            if subsystem == "usb" and devtype == "usb_device":
                return self._usb_device(event)
        return []

    def next_deadline(self) -> float | None:
        """When the next held-back disk is due (``clock`` time), or ``None``."""
        with self._lock:
            return min((d for d, _, _ in self._pending.values()), default=None)

    def due(self) -> list[HotplugEvent]:
        """Announce held-back disks whose settle time is over, as they are classified now."""
        now = self.clock()
        out: list[HotplugEvent] = []
        with self._lock:
            for devpath, (deadline, size, media) in sorted(self._pending.items()):
                if deadline > now:
                    continue
                del self._pending[devpath]
                drive = self._drives.get(devpath)
                if drive is None or not drive.present:
                    continue
                drive = replace(drive, slot=self._slot(drive.port, drive.decision))
                self._drives[devpath] = drive
                if media:
                    d = drive
                    out.append(
                        MediaChanged(d.slot, d.port, d.devname, d.drive_id, True, d.decision)
                    )
                else:
                    out.append(self._arrived(drive, size))
        return out

    def _slot(self, port: str | None, decision: Decision) -> int | None:
        """The slot number of a disk arriving at ``port`` (given now to a new port)."""
        if port is None:
            return None
        if decision.rule in UNNUMBERED_RULES:
            return self.slots.peek(port)
        return self.slots.slot_for(port)

    def _arrived(self, drive: Drive, size: int | None) -> HotplugEvent:
        slot = self._slot(drive.port, drive.decision) if drive.port is not None else drive.slot
        return DriveArrived(slot, drive.port, drive.devname, drive.drive_id, drive.decision, size)

    def _with_partitions(self, devpath: str, info: DeviceInfo) -> DeviceInfo:
        known = {fs.devname: fs for fs in info.partitions}
        for fs in self._parts.get(devpath, {}).values():
            known.setdefault(fs.devname, fs)
        return replace(info, partitions=tuple(known.values()))

    def _partition(self, event: UEvent) -> list[HotplugEvent]:
        """Fold a partition's probed filesystem into its disk; classify the disk again."""
        props = event.properties
        devpath = props.get("DEVPATH", "")
        disk_path = devpath.rsplit("/", 1)[0]
        if event.action == "remove":
            # never downgrade: a disk once recognised as content stays so until it goes
            self._parts.get(disk_path, {}).pop(devpath, None)
            return []
        if event.action not in PRESENT_ACTIONS:
            return []
        parts = self._parts.setdefault(disk_path, {})
        fs = Filesystem(
            props.get("DEVNAME", ""), props.get("ID_FS_UUID", ""), props.get("ID_FS_LABEL", "")
        )
        if not (fs.uuid or fs.label) or parts.get(devpath) == fs:
            return []
        parts[devpath] = fs
        drive, info = self._drives.get(disk_path), self._infos.get(disk_path)
        if drive is None or info is None:
            return []
        info = self._with_partitions(disk_path, info)
        self._infos[disk_path] = info
        decision = self.classifier.classify(info)
        if decision == drive.decision:
            return []
        updated = replace(drive, decision=decision)
        self._drives[disk_path] = updated
        announced = disk_path not in self._pending and drive.present
        if announced and drive.decision.verdict is Verdict.TARGET:
            # announced as a target, now known better: withdraw it, announce it again
            return [self._gone(drive, "reclassified"), self._arrived(updated, None)]
        return []

    def _identity(self, info: DeviceInfo) -> str:
        serial = info.serial or f"no-serial:{info.usb_port}:{info.get('DEVPATH')}"
        return drive_id(serial, self.salt)

    def _forget(self, devpath: str) -> Drive | None:
        """Drop a disk; returns it only if it was announced (a held-back one goes silently)."""
        self._infos.pop(devpath, None)
        self._parts.pop(devpath, None)
        pending = self._pending.pop(devpath, None)
        drive = self._drives.pop(devpath, None)
        return None if pending is not None else drive

    def _hold(self, settle: bool) -> bool:
        return settle and self.settle > 0

    def _disk(self, event: UEvent, settle: bool = True) -> list[HotplugEvent]:
        props = event.properties
        devpath = props.get("DEVPATH", "")
        old_path = props.get("DEVPATH_OLD")
        if event.action == "move" and old_path in self._drives:
            self._drives[devpath] = replace(self._drives.pop(old_path), devpath=devpath)
            if old_path in self._infos:
                self._infos[devpath] = self._infos.pop(old_path)
            if old_path in self._parts:
                self._parts[devpath] = self._parts.pop(old_path)
            if old_path in self._pending:
                self._pending[devpath] = self._pending.pop(old_path)
        if event.action == "remove":
            gone = self._forget(devpath)
            return [self._gone(gone)] if gone else []
        if event.action not in PRESENT_ACTIONS:
            return []
        info = DeviceInfo(
            props,
            size=event.size,
            mounted=event.mounted,
            holders=event.holders,
            partitions=event.partitions,
        )
        ident = self._identity(info)
        info = self._with_partitions(devpath, replace(info, id=ident))
        self._infos[devpath] = info
        decision = self.classifier.classify(info)
        present = event.size != 0
        known = self._drives.get(devpath)
        port = info.usb_port
        deadline = self.clock() + self.settle
        if known is None:
            held = present and self._hold(settle)  # numbered when announced, as it is then
            slot = self.slots.peek(port) if held else self._slot(port, decision)
            drive = Drive(devpath, info.devname, port, slot, ident, decision, present)
            self._drives[devpath] = drive
            if present and self._hold(settle):
                self._pending[devpath] = (deadline, event.size, False)
                return []
            return [DriveArrived(drive.slot, port, drive.devname, ident, decision, event.size)]
        updated = replace(
            known, devname=info.devname, drive_id=ident, decision=decision, present=present
        )
        self._drives[devpath] = updated
        if devpath in self._pending:
            if not present:  # the card went again before it was announced
                del self._pending[devpath]
            return []
        if known.present != present:
            if present and self._hold(settle):
                self._pending[devpath] = (deadline, event.size, True)
                return []
            slot = self._slot(port, decision) if present else self._now_slot(port, known.slot)
            updated = replace(updated, slot=slot)
            self._drives[devpath] = updated
            return [MediaChanged(slot, known.port, updated.devname, ident, present, decision)]
        return []

    def _now_slot(self, port: str | None, slot: int | None) -> int | None:
        """The port's number now: the station may have renumbered the ports since arrival.

        A port whose number was forgotten meanwhile has none (``None``: the station
        ignores the event) rather than its old number, which another port may hold now.
        """
        return self.slots.peek(port) if port is not None else slot

    def _gone(self, drive: Drive, reason: str = "removed") -> DriveGone:
        slot = self._now_slot(drive.port, drive.slot)
        return DriveGone(slot, drive.port, drive.devname, drive.drive_id, reason)

    def _usb_device(self, event: UEvent) -> list[HotplugEvent]:
        props = event.properties
        devpath = props.get("DEVPATH", "")
        if event.action == "remove":
            out: list[HotplugEvent] = []
            rejected = self._rejected.pop(devpath, None)
            below = [p for p in self._drives if p.startswith(devpath + "/")]
            for path in sorted(below):
                gone = self._forget(path)
                if gone is not None:
                    out.append(self._gone(gone))
            if rejected is not None and not below:
                # the refused device was pulled: its slot's "remove it" message can go
                slot = self._now_slot(rejected.port, rejected.slot)
                out.append(DriveGone(slot, rejected.port, "", "", "removed"))
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
