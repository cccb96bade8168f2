"""The closed set of hotplug events the station acts on.

udev sends a storm of add/change/remove notifications for disks,
partitions, SCSI hosts and USB interfaces; :class:`~.state.HotplugState`
turns them into these four (udiskie's idea of semantic events from state
diffs). None carries a raw serial: drives are named by slot, device node
and salted :func:`~appliance.hotplug.identity.drive_id`.

How the station uses them: a job may start on :class:`DriveArrived` or
:class:`MediaChanged` (``present``) whose decision is ``target``; a job on
that slot fails with "removed" on :class:`DriveGone` or :class:`MediaChanged`
(not ``present``); :class:`DeviceRejected` is shown as its ``message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from appliance.hotplug.classify import Decision


@dataclass(frozen=True)
class HotplugEvent:
    kind: ClassVar[str] = "event"
    slot: int | None
    port: str | None


@dataclass(frozen=True)
class DriveArrived(HotplugEvent):
    """A whole disk appeared; ``decision`` says whether it may be loaded."""

    kind: ClassVar[str] = "drive_arrived"
    devname: str
    drive_id: str
    decision: Decision
    size: int | None


@dataclass(frozen=True)
class DriveGone(HotplugEvent):
    """A disk disappeared: any job on it fails with ``reason``; its slot is free at once.

    Also sent, with empty ``devname`` and ``drive_id``, when a refused device
    (:class:`DeviceRejected`) is pulled, so the slot's message clears.
    """

    kind: ClassVar[str] = "drive_gone"
    devname: str
    drive_id: str
    reason: str = "removed"


@dataclass(frozen=True)
class MediaChanged(HotplugEvent):
    """A card was inserted into (``present``) or pulled from a reader that stays plugged."""

    kind: ClassVar[str] = "media_changed"
    devname: str
    drive_id: str
    present: bool
    decision: Decision


@dataclass(frozen=True)
class DeviceRejected(HotplugEvent):
    """A USB device the policy refused (left de-authorised); ``message`` is for the screen."""

    kind: ClassVar[str] = "device_rejected"
    reason: str
    message: str


EVENT_KINDS = (DriveArrived, DriveGone, MediaChanged, DeviceRejected)
