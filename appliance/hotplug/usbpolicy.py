"""USB device policy: only hubs and plain mass storage may reach a driver.

A donated "stick" may be a keyboard emulator (BadUSB) or a composite device
hiding a keyboard, network or serial interface next to its storage. Checking
after drivers bind is too late, so the station sets ``authorized_default`` to
0 on every root hub (the kernel then leaves new devices unconfigured) and
authorises each device only after reading its descriptors:

* a hub (device class 09 whose every interface is class 09) is allowed;
* a device whose every interface, in every configuration, is mass storage
  (class 08) is allowed;
* anything else — HID, CDC/network, serial, audio, vendor-specific, or a mix
  with storage — stays de-authorised and is reported as "slot N: not a plain
  storage device — remove it".

The decision reads the raw ``descriptors`` file, which the kernel fills at
enumeration even for an unauthorised device (USBGuard reads the same file).
All paths hang off ``sysfs_root`` so tests run on a fake tree in a temporary
directory; nothing here touches the real ``/sys`` unless told to.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import FlashStationError
from appliance.hotplug.classify import interface_name

log = logging.getLogger(__name__)

HUB = 0x09
MASS_STORAGE = 0x08
_DEVICE_NAME = re.compile(r"^\d+-\d+(\.\d+)*$")
_ROOT_HUB = re.compile(r"^usb\d+$")


class PolicyError(FlashStationError, OSError):
    """A sysfs file of the USB policy could not be read or written."""


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    kind: str  # "hub", "storage" or "refused"
    reason: str


def parse_descriptors(data: bytes) -> tuple[int, list[int]]:
    """(bDeviceClass, bInterfaceClass of every interface of every configuration).

    ``data`` is the sysfs ``descriptors`` file: the 18-byte device descriptor
    followed by the full configuration descriptors. Malformed data raises
    ``ValueError`` (the caller refuses the device).
    """
    if len(data) < 18 or data[1] != 0x01:
        raise ValueError("no USB device descriptor")
    device_class = data[4]
    interfaces: list[int] = []
    offset = data[0]
    while offset + 2 <= len(data):
        length, kind = data[offset], data[offset + 1]
        if length < 2 or offset + length > len(data):
            raise ValueError(f"bad descriptor length at byte {offset}")
        if kind == 0x04:  # interface
            if length < 9:
                raise ValueError(f"short interface descriptor at byte {offset}")
            interfaces.append(data[offset + 5])
        offset += length
    return device_class, interfaces


def judge(device_class: int, interfaces: list[int]) -> PolicyDecision:
    """The policy itself, on classes only."""
    if not interfaces:
        return PolicyDecision(False, "refused", "no interfaces to check")
    if device_class == HUB and all(cls == HUB for cls in interfaces):
        return PolicyDecision(True, "hub", "USB hub")
    if all(cls == MASS_STORAGE for cls in interfaces):
        return PolicyDecision(True, "storage", "plain mass storage")
    others = sorted({cls for cls in interfaces if cls != MASS_STORAGE})
    names = ", ".join(interface_name(cls) for cls in others)
    mixed = " mixed with storage" if MASS_STORAGE in interfaces else ""
    return PolicyDecision(False, "refused", f"not a plain storage device ({names}{mixed})")


def rejection_message(slot: int | None) -> str:
    """What the screen shows for a refused device."""
    where = f"slot {slot}" if slot is not None else "USB device"
    return f"{where}: not a plain storage device — remove it"


class UsbPolicy:
    """Enforces :func:`judge` through sysfs ``authorized`` files under ``sysfs_root``."""

    def __init__(self, sysfs_root: str | Path = "/sys"):
        self.devices_dir = Path(sysfs_root) / "bus" / "usb" / "devices"

    def _write(self, path: Path, value: str) -> None:
        try:
            path.write_text(value)
        except OSError as exc:
            raise PolicyError(f"{path}: cannot write {value!r}: {exc.strerror}") from None

    def root_hubs(self) -> list[str]:
        try:
            return sorted(p.name for p in self.devices_dir.iterdir() if _ROOT_HUB.match(p.name))
        except OSError:
            return []

    def devices(self) -> list[str]:
        """Non-root USB devices (``1-1``, ``1-1.2``), parents before children."""
        try:
            names = [p.name for p in self.devices_dir.iterdir() if _DEVICE_NAME.match(p.name)]
        except OSError:
            return []
        return sorted(names, key=lambda n: (n.count("."), n))

    def lock_down(self) -> list[str]:
        """Set ``authorized_default`` to 0 on every root hub: nothing new binds unchecked."""
        hubs = self.root_hubs()
        for hub in hubs:
            self._write(self.devices_dir / hub / "authorized_default", "0")
        return hubs

    def check(self, name: str) -> PolicyDecision:
        """Judge device ``name`` (``1-1.2``) from its descriptors; unreadable means refused."""
        base = self.devices_dir / name
        try:
            device_class, interfaces = parse_descriptors((base / "descriptors").read_bytes())
        except (OSError, ValueError) as exc:
            return PolicyDecision(False, "refused", f"descriptors unreadable ({exc})")
        return judge(device_class, interfaces)

    def enforce(self, name: str) -> PolicyDecision:
        """Authorise an allowed device, de-authorise a refused one."""
        decision = self.check(name)
        authorized = self.devices_dir / name / "authorized"
        current = authorized.read_text().strip() if authorized.exists() else ""
        wanted = "1" if decision.allowed else "0"
        if current != wanted:
            self._write(authorized, wanted)
        if not decision.allowed:
            log.warning("USB device %s refused: %s", name, decision.reason)
        return decision

    def enforce_all(self) -> dict[str, PolicyDecision]:
        """Initial scan: judge every present device, parents first."""
        return {name: self.enforce(name) for name in self.devices()}


def judge_properties(properties: dict[str, str] | None) -> PolicyDecision:
    """The policy on udev's ``ID_USB_INTERFACES`` (simulator, report-only mode).

    udev lists the interfaces of the active configuration only, so the live
    station uses :meth:`UsbPolicy.enforce` on the descriptors instead.
    """
    props = properties or {}
    classes = [
        int(item[:2], 16)
        for item in props.get("ID_USB_INTERFACES", "").split(":")
        if re.fullmatch(r"[0-9a-fA-F]{6}", item)
    ]
    device_class = HUB if props.get("TYPE", "").split("/")[0] == "9" else 0
    return judge(device_class, classes)
