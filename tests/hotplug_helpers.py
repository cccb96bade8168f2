"""Shared helpers for hotplug tests: real fixture dumps and fake sysfs trees."""

from __future__ import annotations

from pathlib import Path

from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.fake import disk_props, usb_device_props
from appliance.hotplug.props import read_dump

__all__ = ["CORPUS", "device", "fixture", "stick_ports", "stick_props", "usb_device_props"]

CORPUS = Path(__file__).parent / "fixtures" / "udev"


def fixture(name: str, **changes: str) -> dict[str, str]:
    """Properties of a corpus dump, with some changed (``""`` removes a key)."""
    props = read_dump(CORPUS / name)
    for key, value in changes.items():
        if value == "":
            props.pop(key, None)
        else:
            props[key] = value
    return props


def device(name: str, size: int | None = 16 * 1000**3, **changes: str) -> DeviceInfo:
    return DeviceInfo(fixture(name, **changes), size=size)


def descriptors(device_class: int, interfaces: list[int], configs: int = 1) -> bytes:
    """Raw sysfs ``descriptors`` bytes: device descriptor + configuration(s)."""
    dev = bytes([18, 0x01, 0x00, 0x02, device_class, 0, 0, 64]) + bytes(10)
    out = dev
    for number in range(1, configs + 1):
        body = b""
        for i, cls in enumerate(interfaces):
            body += bytes(
                [9, 0x04, i, 0, 2, cls, 0x06 if cls == 8 else 0, 0x50 if cls == 8 else 0, 0]
            )
            body += bytes([7, 0x05, 0x81, 0x02, 0x00, 0x02, 0])  # an endpoint
        total = 9 + len(body)
        out += (
            bytes([9, 0x02, total & 0xFF, total >> 8, len(interfaces), number, 0, 0x80, 50]) + body
        )
    return out


def interfaces_of(id_usb_interfaces: str) -> list[int]:
    """Interface classes of a udev ``ID_USB_INTERFACES`` value (``:080650:030101:``)."""
    return [int(item[:2], 16) for item in id_usb_interfaces.split(":") if item]


def fake_usb_device(root: Path, name: str, device_class: int, interfaces: list[int]) -> Path:
    """A USB device directory under a fake ``sys/bus/usb/devices``, not yet authorised."""
    base = root / "bus" / "usb" / "devices" / name
    base.mkdir(parents=True)
    (base / "descriptors").write_bytes(descriptors(device_class, interfaces))
    (base / "authorized").write_text("0\n")
    return base


def fake_root_hub(root: Path, name: str = "usb1") -> Path:
    base = root / "bus" / "usb" / "devices" / name
    base.mkdir(parents=True)
    (base / "authorized_default").write_text("1\n")
    (base / "authorized").write_text("1\n")
    (base / "descriptors").write_bytes(descriptors(0x09, [0x09]))
    return base


# --- fake udev events for a Pi 4 with two 8-port hubs ---------------------


def stick_ports(count: int = 16) -> list[str]:
    """Port chains behind the hubs: ``1.1`` .. ``1.8``, ``2.1`` .. (below root port 1)."""
    return [f"{1 + i // 8}.{1 + i % 8}" for i in range(count)]


def stick_props(
    port: str, host: int, letter: str, serial: str, base: str = "kingston-dt101ii-stick.udev"
) -> dict[str, str]:
    """A real stick dump moved to ``port`` as ``/dev/sd<letter>`` on SCSI host ``host``."""
    return disk_props(port, host, f"sd{letter}", serial, fixture(base))
