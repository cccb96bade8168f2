"""Which plugged device may be wiped: ordered, named rules, first match wins.

Every block device gets exactly one :class:`Decision`: ``target`` (a donated
stick or card to load), ``content`` (the content SSD, never written),
``system`` (the station's own disks and anything in use) or ``ignore``. Each
rule is a small function with a name listed in ``hotplug.rules``; the first
rule that matches decides, and its name and a plain reason go with the
verdict (udiskie's ``match_config`` in spirit). Only the last rule,
``usb_flash``, says ``target``; when nothing matches, the answer is
``ignore`` — when in doubt, never wipe.

Facts about USB disks that shaped the rules:

* USB sticks usually report ``rotational=1`` (the SCSI default), so the
  rotational flag is not used; spinning disks are caught by their ATA
  rotation rate, bridge chip or model name instead.
* SATA/NVMe enclosures pass ATA identity through (``ID_ATA*``) or use a
  known bridge chip (JMicron, ASMedia, Realtek RTL92xx, VIA ...).
* Server BMCs (AMI, iDRAC, iLO, Raritan/PepperC KVMs) present "Virtual"
  CD/floppy/disk devices over USB: those are the operator's server, never a
  donated stick.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from appliance.config.schema import HOTPLUG_RULES, HotplugConfig
from appliance.errors import FlashStationError
from appliance.hotplug.device import DeviceInfo
from appliance.units import format_size


class Verdict(enum.StrEnum):
    TARGET = "target"
    CONTENT = "content"
    SYSTEM = "system"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"verdict": str(self.verdict), "rule": self.rule, "reason": self.reason}


class RuleError(FlashStationError, ValueError):
    """``hotplug.rules`` names a rule that does not exist."""


@dataclass(frozen=True)
class Context:
    """What a rule may need besides the device itself."""

    config: HotplugConfig = field(default_factory=HotplugConfig)
    #: device nodes of the root/boot disks (``/dev/mmcblk0``)
    system_devices: frozenset[str] = frozenset()
    #: USB port keys of the root/boot disks (a Pi booting from USB)
    system_ports: frozenset[str] = frozenset()
    #: recognises content media without mounting them (a filesystem label or the UUID of
    #: a filesystem that held a verified pack); supplied by the station
    is_content: Callable[[DeviceInfo], bool] | None = None


RuleFn = Callable[[DeviceInfo, Context], tuple[Verdict, str] | None]

# --- tables the rules read ------------------------------------------------

# USB vendor[:product] of SATA/NVMe/PATA bridge chips (enclosures, docks).
BRIDGE_IDS = {
    "152d": "JMicron",  # JMS567/578/580/583 SATA and NVMe bridges
    "174c": "ASMedia",  # ASM105x/115x/1351 SATA, ASM2362/2364 NVMe
    "0bda:9210": "Realtek RTL9210 NVMe",
    "0bda:9201": "Realtek RTL9201 NVMe",
    "0bda:9220": "Realtek RTL9220 NVMe",
    "2109:0711": "VIA VL711 SATA",
    "2109:0715": "VIA VL715 SATA",
    "2109:0716": "VIA VL716 SATA",
    "13fd": "Initio",
    "067b:2773": "Prolific PL2773 SATA",
    "04b4:6830": "Cypress AT2LP ATA",
    "05e3:0718": "Genesys GL3310 SATA",
    "7825": "Other World Computing",
}
# USB vendors that sell external hard disks and SSDs, not sticks.
DISK_VENDOR_IDS = {
    "1058": "Western Digital",
    "0bc2": "Seagate",
    "059f": "LaCie",
    "0480": "Toshiba external disk",
    "04e8:61f5": "Samsung portable SSD",
    "04e8:61fb": "Samsung portable SSD",
    "04e8:4001": "Samsung portable SSD",
    "0781:558c": "SanDisk Extreme portable SSD",
}
# Disk model names that only hard disks and SSDs carry.
_DISK_MODEL = re.compile(
    r"^(WDC?[ _]?[A-Z0-9]{2,}\d|WD\d|ST\d{3,}|HD[NSTP]?\d{3,}|HT[SE]\d|HUS|HGST|"
    r"MQ\d\d|MK\d{4}|DT01|"
    r"My[ _](Book|Passport)|Elements|Expansion|Backup[ _]?Plus|Portable[ _]SSD|"
    r".*\bSSD\b|.*NVMe|.*\bHDD\b|CT\d+(MX|BX|P\d))",
    re.IGNORECASE,
)
_DISK_VENDORS = {
    "ATA",
    "WDC",
    "WD",
    "HGST",
    "HITACHI",
    "SEAGATE",
    "MAXTOR",
    "SAMSUNG_SSD",
    "CRUCIAL",
}
# Server BMC virtual media.
_VIRTUAL_WORDS = re.compile(
    r"virtual|vkvm|\bidrac\b|\bilo\b|\bimm\b|remote[ _]?media", re.IGNORECASE
)
_BMC_VENDORS = {"AMI", "PEPPERC", "RARITAN", "AVOCENT", "IDRAC", "ILO", "SUPERMICRO", "LENOVO_IMM"}
BMC_VENDOR_IDS = {"046b": "American Megatrends", "14dd": "Raritan/PepperC", "0624": "Avocent"}
# Card readers: udev's flash-media flags and a few reader chip ids.
_CARD_FLAGS = ("ID_DRIVE_FLASH_SD", "ID_DRIVE_FLASH_MS", "ID_DRIVE_FLASH_CF", "ID_DRIVE_FLASH_SM")
_CARD_WORDS = re.compile(
    r"SD[/_]?MMC|card[ _]?reader|Multi[ _-]?Card|MassStorageClass|Micro[ _]SD", re.I
)
CARD_READER_IDS = {
    "05e3:0716": "Genesys multi-slot card reader",
    "05e3:0749": "Genesys card reader",
    "05e3:0751": "Genesys card reader",
    "05e3:0723": "Genesys card reader",
    "0bda:0158": "Realtek card reader",
    "0bda:0129": "Realtek card reader",
    "0bda:0177": "Realtek card reader",
    "0bda:0184": "Realtek card reader",
    "14cd:125d": "Super Top card reader",
    "8564:4000": "Transcend card reader",
}
_INTERFACE_NAMES = {
    0x01: "audio",
    0x02: "communications",
    0x03: "HID (keyboard/mouse)",
    0x05: "physical",
    0x06: "imaging",
    0x07: "printer",
    0x08: "mass storage",
    0x09: "hub",
    0x0A: "CDC data",
    0x0B: "smart card",
    0x0E: "video",
    0xE0: "wireless",
    0xEF: "miscellaneous",
    0xFE: "application-specific",
    0xFF: "vendor-specific",
}


def interface_name(cls: int) -> str:
    return _INTERFACE_NAMES.get(cls, f"class {cls:02x}")


def _usb_id(dev: DeviceInfo) -> tuple[str, str]:
    vendor = (dev.get("ID_VENDOR_ID") or dev.get("ID_USB_VENDOR_ID")).lower()
    product = (dev.get("ID_MODEL_ID") or dev.get("ID_USB_MODEL_ID")).lower()
    return vendor, product


def _lookup(table: dict[str, str], dev: DeviceInfo) -> str | None:
    vendor, product = _usb_id(dev)
    if not vendor:
        return None
    return table.get(f"{vendor}:{product}") or table.get(vendor)


def _vendor_word(dev: DeviceInfo) -> str:
    vendor = dev.get("ID_VENDOR") or dev.get("ID_SERIAL").split("_", 1)[0]
    return vendor.strip().upper()


def is_card_reader(dev: DeviceInfo) -> bool:
    if any(dev.get(flag) == "1" for flag in _CARD_FLAGS):
        return True
    if "sdmmc" in dev.get("ID_PATH") or dev.get("MMC_TYPE"):
        return True
    if _lookup(CARD_READER_IDS, dev):
        return True
    return bool(_CARD_WORDS.search(dev.get("ID_MODEL").replace("_", " ")))


# --- the rules, in their default order ------------------------------------


def rule_not_block(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.subsystem and dev.subsystem != "block":
        return Verdict.IGNORE, f"not a block device ({dev.subsystem})"
    return None


def rule_partition(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.devtype == "partition":
        return Verdict.IGNORE, "a partition: only whole disks are loaded"
    if dev.devtype != "disk":
        return Verdict.IGNORE, "not known to be a whole disk (no DEVTYPE=disk)"
    return None


def rule_system_device(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.devname and dev.devname in ctx.system_devices:
        return Verdict.SYSTEM, "the station's own root/boot disk"
    return None


def rule_mounted(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.mounted:
        return Verdict.SYSTEM, "holds a mounted filesystem"
    if dev.holders:
        return Verdict.SYSTEM, "in use (swap, RAID or device-mapper on it)"
    return None


def rule_system_usb_path(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    port = dev.usb_port
    if port and port in ctx.system_ports:
        return Verdict.SYSTEM, "on the same USB device as the station's boot disk"
    return None


def rule_content(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if ctx.is_content is not None and ctx.is_content(dev):
        return Verdict.CONTENT, "content media (content label or known content filesystem)"
    return None


def rule_not_usb(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if not dev.on_usb:
        bus = dev.get("ID_BUS") or "no USB path"
        return Verdict.IGNORE, f"not a USB device ({bus})"
    return None


def rule_virtual_media(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    text = f"{dev.get('ID_VENDOR')} {dev.get('ID_MODEL')}".replace("_", " ")
    bmc = _lookup(BMC_VENDOR_IDS, dev)
    if bmc or _VIRTUAL_WORDS.search(text) or _vendor_word(dev) in _BMC_VENDORS:
        return Verdict.IGNORE, f"virtual media of a server BMC or KVM ({bmc or dev.label()})"
    return None


def rule_optical(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    name = dev.devname.rsplit("/", 1)[-1]
    if (
        dev.get("ID_CDROM") == "1"
        or dev.get("ID_TYPE") == "cd"
        or re.fullmatch(r"sr\d+", name)
        or dev.get("MAJOR") == "11"
    ):
        return Verdict.IGNORE, "an optical drive"
    return None


def rule_ata_bridge(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.get("ID_ATA") == "1" or any(key.startswith("ID_ATA_") for key in dev.properties):
        return Verdict.IGNORE, "an ATA/SATA disk (ATA identity passed through)"
    bridge = _lookup(BRIDGE_IDS, dev)
    if bridge:
        return Verdict.IGNORE, f"a disk enclosure ({bridge} bridge), not a stick"
    database = dev.get("ID_MODEL_FROM_DATABASE")
    if re.search(r"SATA|NVMe|PATA|IDE bridge", database, re.IGNORECASE):
        return Verdict.IGNORE, f"a disk enclosure ({database.split(',')[0]}), not a stick"
    return None


def rule_spinning(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    rpm = dev.get("ID_ATA_ROTATION_RATE_RPM")
    if rpm.isdigit() and int(rpm) > 0:
        return Verdict.IGNORE, f"a spinning disk ({rpm} rpm)"
    return None


def rule_disk_model(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    vendor_id = _lookup(DISK_VENDOR_IDS, dev)
    if vendor_id:
        return Verdict.IGNORE, f"an external disk (USB id of {vendor_id}), not a stick"
    model = dev.get("ID_MODEL")
    if _vendor_word(dev) in _DISK_VENDORS or (model and _DISK_MODEL.match(model)):
        return Verdict.IGNORE, f"an external hard disk or SSD ({dev.label()})"
    return None


def rule_composite(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    others = sorted({cls for cls, _, _ in dev.usb_interfaces if cls != 0x08})
    if others:
        names = ", ".join(interface_name(cls) for cls in others)
        return Verdict.IGNORE, f"not a plain storage device (also has {names} interfaces)"
    return None


def rule_no_media(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    # DKD_MEDIA_AVAILABLE: set by devkit-disks/udisks 1 rules on older systems.
    if dev.size == 0 or dev.get("DKD_MEDIA_AVAILABLE") == "0":
        if is_card_reader(dev):
            return Verdict.IGNORE, "card reader slot without a card"
        return Verdict.IGNORE, "no medium (size 0)"
    return None


def rule_card_reader(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if not ctx.config.card_readers and is_card_reader(dev):
        return Verdict.IGNORE, "memory card in a reader (hotplug.card_readers is off)"
    return None


def rule_too_small(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.size is not None and dev.size < ctx.config.min_size:
        return Verdict.IGNORE, (
            f"too small ({format_size(dev.size)} < {format_size(ctx.config.min_size)})"
        )
    return None


def rule_too_large(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    if dev.size is not None and dev.size > ctx.config.max_size:
        return Verdict.IGNORE, (
            f"too large for a stick ({format_size(dev.size)} > {format_size(ctx.config.max_size)})"
        )
    return None


def rule_usb_flash(dev: DeviceInfo, ctx: Context) -> tuple[Verdict, str] | None:
    id_type = dev.get("ID_TYPE")
    if id_type not in ("", "disk"):
        return None
    if is_card_reader(dev):
        return Verdict.TARGET, f"memory card in a USB reader ({dev.label()})"
    if id_type != "disk":
        return None
    driver = dev.get("ID_USB_DRIVER")
    # udev before ~2009 set no ID_USB_DRIVER; ID_BUS=usb with ID_TYPE=disk is usb_id's own verdict.
    if driver in ("usb-storage", "uas") or (not driver and dev.get("ID_BUS") == "usb"):
        return Verdict.TARGET, f"USB flash drive ({dev.label()})"
    return None


RULES: dict[str, RuleFn] = {
    "not_block": rule_not_block,
    "partition": rule_partition,
    "system_device": rule_system_device,
    "content": rule_content,
    "mounted": rule_mounted,
    "system_usb_path": rule_system_usb_path,
    "not_usb": rule_not_usb,
    "virtual_media": rule_virtual_media,
    "optical": rule_optical,
    "ata_bridge": rule_ata_bridge,
    "spinning": rule_spinning,
    "disk_model": rule_disk_model,
    "composite": rule_composite,
    "no_media": rule_no_media,
    "card_reader": rule_card_reader,
    "too_small": rule_too_small,
    "too_large": rule_too_large,
    "usb_flash": rule_usb_flash,
}
DEFAULT_RULES: tuple[str, ...] = HOTPLUG_RULES
FALLBACK = Decision(
    Verdict.IGNORE, "default", "not recognised as a donated stick (when in doubt, never wipe)"
)


class Classifier:
    """Applies the configured rules in order; the first match decides."""

    def __init__(self, context: Context | None = None, rules: Sequence[str] | None = None):
        self.context = context or Context()
        names = list(rules if rules is not None else self.context.config.rules)
        unknown = [name for name in names if name not in RULES]
        if unknown:
            raise RuleError(
                f"hotplug.rules: unknown rule {unknown[0]!r}; known: {', '.join(RULES)}"
            )
        self.rules: list[tuple[str, RuleFn]] = [(name, RULES[name]) for name in names]

    def classify(self, dev: DeviceInfo) -> Decision:
        for name, rule in self.rules:
            outcome = rule(dev, self.context)
            if outcome is not None:
                verdict, reason = outcome
                return Decision(verdict, name, reason)
        return FALLBACK


def classify(dev: DeviceInfo, context: Context | None = None) -> Decision:
    """Classify one device with the default (or configured) rules."""
    return Classifier(context).classify(dev)


def rule_names() -> Iterable[str]:
    return iter(RULES)
