"""What the classifier knows about one device: udev properties plus a few facts.

:class:`DeviceInfo` is built the same way from a live udev device, a saved
dump or a test fixture, so every rule is exercised by real published dumps.
Its ``repr`` shows the device node and the salted id only: the properties
hold the raw serial (``ID_SERIAL``), which must never reach a log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

# ``...-usb-0:1.2.3:1.0-scsi-...`` in ID_PATH: the port chain is 1.2.3.
_ID_PATH_USB = re.compile(
    r"^(?P<head>.*?-usb(?:v\d)?-\d+:(?P<ports>\d+(?:\.\d+)*))(?::\d+\.\d+)?(?:-|$)"
)
# ``/usb2/2-1/2-1.2/2-1.2:1.0/`` in DEVPATH: the last USB device before an interface.
_DEVPATH_USB = re.compile(r"/(?P<dev>\d+-\d+(?:\.\d+)*)(?=/|$)")


def usb_port_from_id_path(id_path: str) -> str | None:
    """The stable port key in an ``ID_PATH``: controller path plus port chain.

    ``platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0-scsi-0:0:0:0``
    gives ``platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2``; the
    interface (``:1.0``) and SCSI parts are dropped, so every LUN and
    partition of one physical device shares the key, and ``/dev/sdX``
    renames do not change it.
    """
    match = _ID_PATH_USB.match(id_path)
    if not match:
        return None
    head = match.group("head")
    return re.sub(r"-usbv\d-", "-usb-", head)


def usb_port_from_devpath(devpath: str) -> str | None:
    """Fallback port key from a sysfs path: the USB device name, e.g. ``2-1.2``."""
    names = _DEVPATH_USB.findall(devpath)
    return names[-1] if names else None


class Filesystem(NamedTuple):
    """A filesystem udev probed (``ID_FS_*``) on a disk or one of its partitions."""

    devname: str
    uuid: str
    label: str


@dataclass(frozen=True, repr=False)
class DeviceInfo:
    """One device as the classifier sees it.

    ``size`` is in bytes and ``None`` when unknown (a dump without
    ``--size``); ``mounted`` covers the device and its partitions;
    ``holders`` is true when device-mapper, RAID or swap sits on it.
    ``partitions`` holds what udev probed on the disk's partitions (never
    read from the media by us): the content rule recognises the content SSD
    by a filesystem UUID or label without mounting anything.
    """

    properties: Mapping[str, str]
    size: int | None = None
    mounted: bool = False
    holders: bool = False
    removable: bool | None = None
    id: str = field(default="")
    partitions: tuple[Filesystem, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return self.properties.get(key, default)

    @property
    def devname(self) -> str:
        return self.get("DEVNAME") or self.get("DEVPATH").rsplit("/", 1)[-1]

    @property
    def devtype(self) -> str:
        return self.get("DEVTYPE")

    @property
    def subsystem(self) -> str:
        return self.get("SUBSYSTEM")

    @property
    def serial(self) -> str:
        """The raw serial: only for :func:`~appliance.hotplug.identity.drive_id`."""
        return self.get("ID_SERIAL") or self.get("ID_SERIAL_SHORT")

    @property
    def usb_port(self) -> str | None:
        """Stable key of the physical USB port, or ``None`` when not on USB."""
        port = usb_port_from_id_path(self.get("ID_PATH"))
        if port is None and "/usb" in self.get("DEVPATH"):
            port = usb_port_from_devpath(self.get("DEVPATH"))
        return port

    @property
    def on_usb(self) -> bool:
        return (
            self.get("ID_BUS") == "usb"
            or bool(self.get("ID_USB_DRIVER"))
            or self.usb_port is not None
        )

    @property
    def usb_interfaces(self) -> list[tuple[int, int, int]]:
        """``ID_USB_INTERFACES`` (``:080650:030101:``) as (class, subclass, protocol)."""
        found = []
        for item in self.get("ID_USB_INTERFACES").split(":"):
            if re.fullmatch(r"[0-9a-fA-F]{6}", item):
                found.append((int(item[0:2], 16), int(item[2:4], 16), int(item[4:6], 16)))
        return found

    def filesystems(self) -> list[Filesystem]:
        """The disk's own filesystem (unpartitioned) and its partitions' ones."""
        found = []
        if self.get("ID_FS_UUID") or self.get("ID_FS_LABEL"):
            found.append(Filesystem(self.devname, self.get("ID_FS_UUID"), self.get("ID_FS_LABEL")))
        found += [fs for fs in self.partitions if fs.uuid or fs.label]
        return found

    def label(self) -> str:
        """Vendor and model for humans (no serial)."""
        vendor = self.get("ID_VENDOR").replace("_", " ").strip()
        model = (self.get("ID_MODEL") or self.get("ID_NAME")).replace("_", " ").strip()
        return " ".join(part for part in (vendor, model) if part) or "unknown device"

    def __repr__(self) -> str:
        size = "?" if self.size is None else str(self.size)
        return f"DeviceInfo({self.devname!r}, id={self.id or '-'}, size={size})"

    __str__ = __repr__
