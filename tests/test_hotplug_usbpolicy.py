"""USB device policy on a fake sysfs tree: hubs and plain storage only."""

from __future__ import annotations

from pathlib import Path

import pytest
from hotplug_helpers import (
    descriptors,
    fake_root_hub,
    fake_usb_device,
    fixture,
    interfaces_of,
)

from appliance.hotplug.usbpolicy import (
    UsbPolicy,
    judge,
    judge_properties,
    parse_descriptors,
    rejection_message,
)

# The Raritan/PepperC KVM of the corpus: keyboard, mouse and storage in one device.
PEPPERC = interfaces_of(fixture("pepperc-kvm-virtual-disc.udev")["ID_USB_INTERFACES"])
KINGSTON = interfaces_of(fixture("kingston-dt101ii-stick.udev")["ID_USB_INTERFACES"])


def test_fixture_interfaces_are_what_the_dumps_say() -> None:
    assert PEPPERC == [0x03, 0x03, 0x08]
    assert KINGSTON == [0x08]


def test_parse_descriptors_walks_every_configuration() -> None:
    assert parse_descriptors(descriptors(0x00, [0x08])) == (0x00, [0x08])
    assert parse_descriptors(descriptors(0x00, [0x08, 0x03], configs=2)) == (0, [8, 3, 8, 3])
    with pytest.raises(ValueError):
        parse_descriptors(b"\x12\x01")
    broken = descriptors(0x00, [0x08])[:-3]
    with pytest.raises(ValueError):
        parse_descriptors(broken)


@pytest.mark.parametrize(
    ("device_class", "interfaces", "allowed", "words"),
    [
        (0x00, [0x08], True, "plain mass storage"),
        (0x09, [0x09], True, "hub"),
        (0x00, PEPPERC, False, "HID (keyboard/mouse) mixed with storage"),
        (0x00, [0x03], False, "HID"),
        (0x02, [0x02, 0x0A], False, "communications"),
        (0x00, [0x01, 0x01], False, "audio"),
        (0xFF, [0xFF], False, "vendor-specific"),
        (0x09, [0x09, 0x03], False, "HID"),  # a "hub" hiding a keyboard
        (0x00, [], False, "no interfaces"),
    ],
)
def test_judge(device_class: int, interfaces: list[int], allowed: bool, words: str) -> None:
    decision = judge(device_class, interfaces)
    assert decision.allowed is allowed
    assert words in decision.reason


def test_lock_down_and_enforce_on_fake_sysfs(tmp_path: Path) -> None:
    hub1 = fake_root_hub(tmp_path, "usb1")
    hub2 = fake_root_hub(tmp_path, "usb2")
    stick = fake_usb_device(tmp_path, "1-1.2", 0x00, KINGSTON)
    composite = fake_usb_device(tmp_path, "1-1.3", 0x00, PEPPERC)
    ext_hub = fake_usb_device(tmp_path, "1-1", 0x09, [0x09])
    policy = UsbPolicy(tmp_path)
    assert policy.lock_down() == ["usb1", "usb2"]
    assert (hub1 / "authorized_default").read_text() == "0"
    assert (hub2 / "authorized_default").read_text() == "0"
    assert policy.devices() == ["1-1", "1-1.2", "1-1.3"]  # parents first
    results = policy.enforce_all()
    assert results["1-1"].kind == "hub" and (ext_hub / "authorized").read_text() == "1"
    assert results["1-1.2"].allowed and (stick / "authorized").read_text() == "1"
    assert not results["1-1.3"].allowed
    assert (composite / "authorized").read_text().strip() == "0"


def test_an_authorised_bad_device_is_deauthorised(tmp_path: Path) -> None:
    fake_root_hub(tmp_path)
    keyboard = fake_usb_device(tmp_path, "1-4", 0x00, [0x03])
    (keyboard / "authorized").write_text("1\n")  # present before the station started
    assert not UsbPolicy(tmp_path).enforce("1-4").allowed
    assert (keyboard / "authorized").read_text() == "0"


def test_unreadable_descriptors_are_refused(tmp_path: Path) -> None:
    fake_root_hub(tmp_path)
    odd = fake_usb_device(tmp_path, "1-2", 0x00, [0x08])
    (odd / "descriptors").write_bytes(b"garbage")
    decision = UsbPolicy(tmp_path).enforce("1-2")
    assert not decision.allowed and "unreadable" in decision.reason
    (odd / "descriptors").unlink()
    assert not UsbPolicy(tmp_path).check("1-2").allowed


def test_rejection_message_names_the_slot() -> None:
    assert rejection_message(3) == "slot 3: not a plain storage device — remove it"
    assert rejection_message(None).startswith("USB device:")


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("asmedia-sata-bridge-usb-device.udev", True),  # plain storage (BOT + UAS)
        ("amazon-fire-tablet-usb-device.udev", False),  # vendor-specific
        ("pepperc-kvm-virtual-disc.udev", False),  # HID + storage
        ("kingston-dt101ii-stick.udev", True),
    ],
)
def test_judge_properties_on_real_dumps(name: str, allowed: bool) -> None:
    assert judge_properties(fixture(name)).allowed is allowed


def test_descriptors_of_real_dumps_agree_with_their_udev_interfaces(tmp_path: Path) -> None:
    fake_root_hub(tmp_path)
    for number, name in enumerate(
        ["asmedia-sata-bridge-usb-device.udev", "amazon-fire-tablet-usb-device.udev"]
    ):
        classes = interfaces_of(fixture(name)["ID_USB_INTERFACES"])
        fake_usb_device(tmp_path, f"1-{number + 1}", 0x00, classes)
        assert (
            UsbPolicy(tmp_path).enforce(f"1-{number + 1}").allowed
            == judge_properties(fixture(name)).allowed
        )
