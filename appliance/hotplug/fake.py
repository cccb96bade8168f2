"""A fake hub for the station simulator and tests: plug and yank sticks by port.

:class:`FakeHub` produces the udev events a real Pi would see — the USB
device, then its disk (with a fresh ``/dev/sdX`` and SCSI host each time) —
and injects them into a :class:`~.monitor.FakeSource`. Properties start
from a real dump's shape (a Kingston DataTraveler on a Pi 4 behind a hub)
with an invented serial, so nothing here identifies a real stick.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Mapping, Sequence

from appliance.hotplug.monitor import FakeSource
from appliance.hotplug.state import UEvent

USB_ROOT = "/devices/platform/scb/fd500000.pcie/pci0000:00/0000:00:00.0/0000:01:00.0/usb1/1-1"
ID_PATH_ROOT = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1"
STICK_TEMPLATE: Mapping[str, str] = {
    "SUBSYSTEM": "block",
    "DEVTYPE": "disk",
    "MAJOR": "8",
    "ID_BUS": "usb",
    "ID_TYPE": "disk",
    "ID_VENDOR": "Kingston",
    "ID_VENDOR_ID": "0951",
    "ID_MODEL": "DataTraveler_3.0",
    "ID_MODEL_ID": "1666",
    "ID_USB_DRIVER": "usb-storage",
    "ID_USB_INTERFACES": ":080650:",
    "ID_USB_INTERFACE_NUM": "00",
}


def usb_device_props(port: str, interfaces: str = ":080650:") -> dict[str, str]:
    """The ``usb_device`` of hub port ``port`` (``1.3`` = port 3 of the hub on root port 1)."""
    chain = port.split(".")
    path = USB_ROOT
    for depth in range(1, len(chain) + 1):
        path += "/1-1." + ".".join(chain[:depth])
    return {
        "SUBSYSTEM": "usb",
        "DEVTYPE": "usb_device",
        "DEVPATH": path,
        "ID_PATH": f"{ID_PATH_ROOT}.{port}",
        "ID_USB_INTERFACES": interfaces,
    }


def disk_props(
    port: str, host: int, name: str, serial: str, base: Mapping[str, str] = STICK_TEMPLATE
) -> dict[str, str]:
    """A disk at ``port`` as ``/dev/<name>`` on SCSI host ``host``, from ``base`` properties."""
    props = dict(base)
    usb = usb_device_props(port)["DEVPATH"]
    iface = usb.rsplit("/", 1)[-1] + ":1.0"
    vendor, model = props.get("ID_VENDOR", "USB"), props.get("ID_MODEL", "Disk")
    props.update(
        SUBSYSTEM="block",
        DEVTYPE="disk",
        DEVPATH=f"{usb}/{iface}/host{host}/target{host}:0:0/{host}:0:0:0/block/{name}",
        DEVNAME=f"/dev/{name}",
        ID_PATH=f"{ID_PATH_ROOT}.{port}:1.0-scsi-0:0:0:0",
        ID_SERIAL=f"{vendor}_{model}_{serial}-0:0",
        ID_SERIAL_SHORT=serial,
    )
    return props


class FakeHub:
    """Sticks plugged into and pulled from a fake hub, as udev would report them."""

    def __init__(self, source: FakeSource | None = None):
        self.source = source or FakeSource()
        self._hosts = itertools.count(1)
        self._plugged: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._serials = itertools.count(1)

    def _free_name(self) -> str:
        used = {disk["DEVNAME"] for _, disk in self._plugged.values()}
        letters = string.ascii_lowercase
        for name in itertools.chain(letters, (a + b for a in letters for b in letters)):
            if f"/dev/sd{name}" not in used:
                return f"sd{name}"
        raise RuntimeError("no free /dev/sdX name")

    def plug(
        self,
        port: str,
        size: int = 16 * 1000**3,
        base: Mapping[str, str] = STICK_TEMPLATE,
        serial: str | None = None,
        interfaces: str = ":080650:",
        filesystems: Sequence[tuple[str, str]] = (),
    ) -> list[UEvent]:
        """Plug a stick (or any device shaped like ``base``) into ``port``.

        ``filesystems`` are (UUID, label) of partitions, reported after the
        disk as udev does (the disk event does not carry them yet).
        """
        if port in self._plugged:
            raise ValueError(f"port {port} is already in use")
        serial = serial or f"FAKE{next(self._serials):012d}"
        usb = usb_device_props(port, interfaces)
        disk = disk_props(port, next(self._hosts), self._free_name(), serial, base)
        disk["ID_USB_INTERFACES"] = interfaces  # udev copies the device's interfaces to its disk
        self._plugged[port] = (usb, disk)
        events = [UEvent("add", usb), UEvent("add", disk, size=size)]
        for number, (uuid, label) in enumerate(filesystems, 1):
            part = {k: v for k, v in disk.items() if k not in ("ID_PART_TABLE_TYPE", "ID_FS_TYPE")}
            part.update(
                DEVTYPE="partition",
                DEVPATH=f"{disk['DEVPATH']}/{disk['DEVNAME'][5:]}{number}",
                DEVNAME=f"{disk['DEVNAME']}{number}",
                ID_FS_UUID=uuid,
                ID_FS_LABEL=label,
                ID_FS_TYPE="exfat",
            )
            events.append(UEvent("add", part, size=size))
        self.source.inject(*events)
        return events

    def yank(self, port: str, lose_block_remove: bool = False) -> list[UEvent]:
        """Pull whatever is in ``port``; optionally lose the disk's remove event."""
        usb, disk = self._plugged.pop(port)
        events = [UEvent("remove", disk), UEvent("remove", usb)]
        if lose_block_remove:
            events = events[1:]
        self.source.inject(*events)
        return events

    def plugged(self) -> list[str]:
        return sorted(self._plugged)
