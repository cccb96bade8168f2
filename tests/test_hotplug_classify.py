"""Each classifier rule, reached by changing one property of a real dump at a time."""

from __future__ import annotations

import pytest
from hotplug_helpers import device, fixture

from appliance.config.schema import HOTPLUG_RULES, HotplugConfig
from appliance.hotplug.classify import RULES, Classifier, Context, RuleError, Verdict
from appliance.hotplug.device import DeviceInfo, usb_port_from_devpath, usb_port_from_id_path
from appliance.hotplug.identity import drive_id

STICK = "kingston-dt101ii-stick.udev"
READER = "genesys-card-reader-with-card.udev"


def decide(dev: DeviceInfo, **context: object) -> tuple[Verdict, str, str]:
    decision = Classifier(Context(**context)).classify(dev)  # type: ignore[arg-type]
    return decision.verdict, decision.rule, decision.reason


def test_config_lists_every_rule_in_order() -> None:
    assert list(HOTPLUG_RULES) == list(RULES)
    assert HotplugConfig().rules == list(RULES)
    assert list(RULES)[-1] == "usb_flash"


def test_plain_stick_is_a_target() -> None:
    assert decide(device(STICK))[:2] == (Verdict.TARGET, "usb_flash")


@pytest.mark.parametrize(
    ("changes", "rule", "words"),
    [
        ({"ID_VENDOR_ID": "0bda", "ID_MODEL_ID": "9210"}, "ata_bridge", "RTL9210"),
        ({"ID_VENDOR_ID": "174c", "ID_MODEL_ID": "2362"}, "ata_bridge", "ASMedia"),
        ({"ID_ATA": "1"}, "ata_bridge", "ATA"),
        ({"ID_MODEL_FROM_DATABASE": "ASM1153 SATA 3Gb/s bridge"}, "ata_bridge", "ASM1153"),
        ({"ID_VENDOR": "AMI", "ID_MODEL": "Virtual_Floppy0"}, "virtual_media", "BMC"),
        ({"ID_VENDOR": "iDRAC", "ID_MODEL": "LCDRIVE"}, "virtual_media", "BMC"),
        ({"ID_VENDOR": "HP", "ID_MODEL": "iLO_Internal_SD-CARD"}, "virtual_media", "BMC"),
        ({"ID_VENDOR_ID": "046b", "ID_MODEL": "Virtual_HDisk0"}, "virtual_media", "Megatrends"),
        ({"ID_CDROM": "1"}, "optical", "optical"),
        ({"ID_TYPE": "cd"}, "optical", "optical"),
        ({"ID_VENDOR_ID": "1058", "ID_MODEL_ID": "25a2"}, "disk_model", "Western Digital"),
        ({"ID_VENDOR": "Samsung", "ID_MODEL": "Portable_SSD_T5"}, "disk_model", "SSD"),
        ({"ID_VENDOR": "WDC", "ID_MODEL": "WD10EZEX-08WN4A0"}, "disk_model", "hard disk"),
        ({"ID_MODEL": "ST2000DM008-2FR102"}, "disk_model", "hard disk"),
        ({"ID_USB_INTERFACES": ":080650:030101:"}, "composite", "HID"),
        ({"ID_USB_INTERFACES": ":080650:ff0000:"}, "composite", "vendor-specific"),
        ({"DEVTYPE": "partition"}, "partition", "partition"),
        ({"DEVTYPE": ""}, "partition", "whole disk"),
        ({"SUBSYSTEM": "usb", "DEVTYPE": "usb_device"}, "not_block", "not a block"),
        ({"ID_TYPE": "floppy"}, "default", "never wipe"),
    ],
)
def test_rules_that_refuse(changes: dict[str, str], rule: str, words: str) -> None:
    verdict, got_rule, reason = decide(device(STICK, **changes))
    assert verdict != Verdict.TARGET
    assert got_rule == rule, reason
    assert words in reason


def test_not_usb_needs_every_usb_hint_gone() -> None:
    gone = {"ID_BUS": "ata", "ID_USB_DRIVER": "", "ID_PATH": "pci-0000:00:17.0-ata-2.0"}
    dev = device(STICK, DEVPATH="/devices/pci0000:00/0000:00:17.0/ata2/host1/block/sda", **gone)
    assert decide(dev)[:2] == (Verdict.IGNORE, "not_usb")


def test_size_rules_and_unknown_size() -> None:
    assert decide(device(STICK, size=100 * 1000**2))[1] == "too_small"
    assert decide(device(STICK, size=400 * 1000**3))[1] == "too_large"
    assert decide(device(STICK, size=0))[1] == "no_media"
    assert decide(device(STICK, size=None))[0] == Verdict.TARGET  # size rule skipped
    config = HotplugConfig(min_size=1000**3, max_size=2 * 1000**3)
    assert decide(device(STICK, size=1500 * 1000**2), config=config)[0] == Verdict.TARGET
    assert decide(device(STICK, size=3 * 1000**3), config=config)[1] == "too_large"


def test_card_reader_empty_with_card_and_disabled() -> None:
    verdict, rule, reason = decide(device(READER, size=0))
    assert (verdict, rule) == (Verdict.IGNORE, "no_media") and "without a card" in reason
    verdict, rule, reason = decide(device(READER))
    assert (verdict, rule) == (Verdict.TARGET, "usb_flash") and "memory card" in reason
    off = HotplugConfig(card_readers=False)
    assert decide(device(READER), config=off)[:2] == (Verdict.IGNORE, "card_reader")
    assert decide(device(STICK), config=off)[0] == Verdict.TARGET  # sticks unaffected


def test_system_content_and_mounted() -> None:
    stick = device(STICK)
    assert decide(stick, system_devices=frozenset({"/dev/sdb"}))[1] == "system_device"
    assert decide(stick, system_ports=frozenset({stick.usb_port}))[:2] == (
        Verdict.SYSTEM,
        "system_usb_path",
    )
    assert decide(stick, is_content=lambda d: d.devname == "/dev/sdb")[0] == Verdict.CONTENT
    assert decide(stick, is_content=lambda d: False)[0] == Verdict.TARGET
    mounted = DeviceInfo(fixture(STICK), size=16 * 1000**3, mounted=True)
    assert decide(mounted)[:2] == (Verdict.SYSTEM, "mounted")
    held = DeviceInfo(fixture(STICK), size=16 * 1000**3, holders=True)
    assert decide(held)[:2] == (Verdict.SYSTEM, "mounted")


def test_rule_order_and_names_come_from_config() -> None:
    spinning = device("sandisk-sata-ssd-internal.udev", ID_ATA_ROTATION_RATE_RPM="7200")
    no_bridge = [r for r in RULES if r not in ("not_usb", "ata_bridge")]
    assert decide(spinning, config=HotplugConfig(rules=no_bridge))[1] == "spinning"
    assert decide(device(STICK), config=HotplugConfig(rules=[]))[1] == "default"
    with pytest.raises(RuleError, match="unknown rule 'no_such_rule'"):
        Classifier(Context(config=HotplugConfig(rules=["no_such_rule"])))


@pytest.mark.parametrize(
    ("id_path", "port"),
    [
        (
            "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2:1.0-scsi-0:0:0:0",
            "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.2",
        ),
        ("pci-0000:00:0d.0-usb-0:2", "pci-0000:00:0d.0-usb-0:2"),
        ("pci-0000:00:0d.0-usbv3-0:2:1.0-scsi-0:0:0:0", "pci-0000:00:0d.0-usb-0:2"),
        (
            "pci-0000:00:1a.0-usb-0:1.3:1.0-platform-rtsx_usb_sdmmc.2.auto",
            "pci-0000:00:1a.0-usb-0:1.3",
        ),
        ("pci-0000:00:17.0-ata-2.0", None),
        ("platform-3f202000.mmc", None),
    ],
)
def test_usb_port_from_id_path(id_path: str, port: str | None) -> None:
    assert usb_port_from_id_path(id_path) == port


def test_usb_port_from_devpath() -> None:
    path = fixture("jmicron-152d-0567-sata-pi4.udev")["DEVPATH"]
    assert usb_port_from_devpath(path) == "2-1.2"
    assert usb_port_from_devpath("/devices/pci0000:00/0000:00:17.0/ata2/block/sda") is None


def test_drive_id_is_salted_short_and_hides_the_serial() -> None:
    serial = fixture(STICK)["ID_SERIAL"]
    a = drive_id(serial, b"station-one")
    assert a == drive_id(serial, b"station-one")
    assert a != drive_id(serial, b"station-two")
    assert a != drive_id(serial + "x", b"station-one")
    assert len(a) == 16 and int(a, 16) >= 0
    assert serial not in a and fixture(STICK)["ID_SERIAL_SHORT"][:8] not in a
    with pytest.raises(ValueError):
        drive_id(serial, b"")


def test_device_repr_never_shows_the_serial() -> None:
    props = fixture(STICK)
    dev = DeviceInfo(props, size=8, id="abcd")
    for text in (repr(dev), str(dev), dev.label(), Classifier().classify(dev).reason):
        assert props["ID_SERIAL_SHORT"] not in text


def test_config_check_rejects_unknown_rule_names(tmp_path: object) -> None:
    from pathlib import Path

    from appliance.config import ConfigError, load_layers

    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text("hotplug:\n  rules: [partition, usb_flsh]\n")
    with pytest.raises(ConfigError) as err:
        load_layers([bad])
    assert "usb_flsh" in str(err.value) and "bad.yaml:2" in str(err.value)
    good = Path(str(tmp_path)) / "good.yaml"
    good.write_text("hotplug:\n  rules: [partition, usb_flash]\n")
    assert load_layers([good]).hotplug.rules == ["partition", "usb_flash"]
