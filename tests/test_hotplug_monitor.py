"""Hotplug state and monitor with fake udev events built from real dumps."""

from __future__ import annotations

import random
import string
import threading
from dataclasses import dataclass, field

import pytest
from hotplug_helpers import fixture, stick_ports, stick_props, usb_device_props

from appliance.hotplug.classify import Classifier, Verdict
from appliance.hotplug.events import (
    DeviceRejected,
    DriveArrived,
    DriveGone,
    HotplugEvent,
    MediaChanged,
)
from appliance.hotplug.monitor import FakeSource, Monitor
from appliance.hotplug.slots import SlotMap
from appliance.hotplug.state import HotplugState, UEvent
from appliance.hotplug.usbpolicy import PolicyDecision, judge

SALT = b"test-station-salt"
GB = 1000**3


def interfaces_policy(event: UEvent) -> PolicyDecision:
    """The real judge on the interfaces udev reports (the sysfs side is tested apart)."""
    classes = [
        int(i[:2], 16) for i in event.properties.get("ID_USB_INTERFACES", "").split(":") if i
    ]
    return judge(0x00, classes)


def new_state(slots: SlotMap | None = None) -> HotplugState:
    return HotplugState(Classifier(), slots or SlotMap(), SALT, policy=interfaces_policy)


def plug(port: str, host: int, letter: str, serial: str, size: int = 16 * GB) -> list[UEvent]:
    return [
        UEvent("add", usb_device_props(port)),
        UEvent("add", stick_props(port, host, letter, serial), size=size),
    ]


def yank(port: str, host: int, letter: str, serial: str) -> list[UEvent]:
    return [
        UEvent("remove", stick_props(port, host, letter, serial)),
        UEvent("remove", usb_device_props(port)),
    ]


def feed(state: HotplugState, events: list[UEvent]) -> list[HotplugEvent]:
    out: list[HotplugEvent] = []
    for event in events:
        out += state.apply(event)
    return out


def test_arrival_is_classified_and_slotted() -> None:
    state = new_state()
    out = feed(state, plug("1.3", 4, "b", "SERIAL0001"))
    assert len(out) == 1 and isinstance(out[0], DriveArrived)
    arrived = out[0]
    assert arrived.slot == 1 and arrived.devname == "/dev/sdb" and arrived.size == 16 * GB
    assert arrived.decision.verdict == Verdict.TARGET
    assert arrived.port is not None and arrived.port.endswith("usb-0:1.1.3")


def test_removal_mid_job_frees_the_slot_and_reinsert_starts_clean() -> None:
    state = new_state()
    arrived = feed(state, plug("1.2", 3, "c", "SERIAL0002"))[0]
    assert isinstance(arrived, DriveArrived)
    job_slot = arrived.slot  # the station starts a job on this slot
    gone = feed(state, yank("1.2", 3, "c", "SERIAL0002"))
    assert gone == [DriveGone(job_slot, arrived.port, "/dev/sdc", arrived.drive_id, "removed")]
    assert job_slot is not None and state.drive_in_slot(job_slot) is None  # free at once
    again = feed(state, plug("1.2", 9, "f", "SERIAL0002"))
    assert len(again) == 1 and isinstance(again[0], DriveArrived)
    assert again[0].slot == job_slot and again[0].drive_id == arrived.drive_id
    assert again[0].devname == "/dev/sdf"
    assert len(state.drives()) == 1


def test_lost_block_remove_is_covered_by_the_usb_remove() -> None:
    state = new_state()
    feed(state, plug("2.5", 5, "d", "SERIAL0003"))
    out = state.apply(UEvent("remove", usb_device_props("2.5")))
    assert [type(e) for e in out] == [DriveGone]
    assert state.drives() == []


def test_slot_mapping_survives_sdx_renames() -> None:
    slots = SlotMap({"platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.1.4": 7})
    state = new_state(slots)
    first = feed(state, plug("1.4", 2, "a", "SERIAL0004"))[0]
    feed(state, yank("1.4", 2, "a", "SERIAL0004"))
    other = feed(state, plug("1.5", 3, "a", "SERIAL0005"))[0]  # another port takes sda
    second = feed(state, plug("1.4", 8, "h", "SERIAL0004"))[0]  # same port, now sdh
    assert isinstance(first, DriveArrived) and isinstance(second, DriveArrived)
    assert isinstance(other, DriveArrived)
    assert first.slot == second.slot == 7
    assert other.slot == 1  # unknown port: next free number
    assert (first.devname, second.devname) == ("/dev/sda", "/dev/sdh")


def test_composite_hid_and_storage_device_is_refused() -> None:
    state = new_state(SlotMap({"platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.1.6": 6}))
    pepperc = fixture("pepperc-kvm-virtual-disc.udev")["ID_USB_INTERFACES"]
    out = state.apply(UEvent("add", usb_device_props("1.6", interfaces=pepperc)))
    assert len(out) == 1 and isinstance(out[0], DeviceRejected)
    assert out[0].message == "slot 6: not a plain storage device — remove it"
    assert "HID" in out[0].reason
    assert state.rejected() == out
    pulled = state.apply(UEvent("remove", usb_device_props("1.6", interfaces=pepperc)))
    assert pulled == [DriveGone(6, out[0].port, "", "", "removed")]  # the message clears
    assert state.rejected() == []


def test_card_reader_media_changes() -> None:
    state = new_state()
    reader = fixture("genesys-card-reader-with-card.udev")
    empty = feed(state, [UEvent("add", reader, size=0)])
    assert isinstance(empty[0], DriveArrived) and empty[0].decision.rule == "no_media"
    inserted = state.apply(UEvent("change", reader, size=32 * GB))
    assert len(inserted) == 1 and isinstance(inserted[0], MediaChanged)
    assert inserted[0].present and inserted[0].decision.verdict == Verdict.TARGET
    assert state.apply(UEvent("change", reader, size=32 * GB)) == []  # noise
    pulled = state.apply(UEvent("change", reader, size=0))
    assert isinstance(pulled[0], MediaChanged) and not pulled[0].present


def test_duplicate_and_unknown_events_are_noise() -> None:
    state = new_state()
    events = plug("1.1", 2, "b", "SERIAL0006")
    assert len(feed(state, events + events)) == 1  # a second add is not a second arrival
    assert state.apply(UEvent("remove", stick_props("1.7", 9, "z", "NOPE"))) == []
    assert state.apply(UEvent("add", {"SUBSYSTEM": "scsi", "DEVPATH": "/x"})) == []
    part = dict(stick_props("1.1", 2, "b", "SERIAL0006"), DEVTYPE="partition")
    assert state.apply(UEvent("add", part)) == []


def test_no_raw_serial_in_events_or_their_repr() -> None:
    state = new_state()
    serial = fixture("kingston-dt101ii-stick.udev")["ID_SERIAL_SHORT"]
    props = fixture("kingston-dt101ii-stick.udev")
    out = state.apply(UEvent("add", props, size=8 * GB))
    out += state.apply(UEvent("remove", props))
    text = (
        " ".join(repr(e) + str(e) for e in out) + repr(state.drives()) + repr(UEvent("add", props))
    )
    assert out and serial not in text


# --- storms ----------------------------------------------------------------


@dataclass
class Stick:
    port: str
    serial: str
    plugged: bool = False
    host: int = 0
    letter: str = ""
    arrivals: int = 0
    gones: int = 0
    slot_seen: set[int | None] = field(default_factory=set)


Batch = tuple[list[UEvent], dict[str, str]]  # events, then port -> sd letter plugged after them


def storm(seed: int, steps: int = 400) -> tuple[list[Stick], list[Batch]]:
    """Random plug/yank of 16 sticks; per-stick event order kept, sticks interleaved.

    Returns per-step event batches: each batch is one burst of udev traffic
    from many sticks at once, shuffled across sticks, with duplicates, extra
    change events and lost block removes thrown in.
    """
    rng = random.Random(seed)
    sticks = [Stick(port, f"SN{seed:03d}{i:05d}") for i, port in enumerate(stick_ports(16))]
    hosts = iter(range(1, 100000))
    batches: list[Batch] = []
    for _ in range(steps // 8):
        lanes: list[list[UEvent]] = []
        for stick in rng.sample(sticks, rng.randint(1, 16)):
            if stick.plugged:
                events = yank(stick.port, stick.host, stick.letter, stick.serial)
                if rng.random() < 0.2:
                    events = events[1:]  # the block remove got lost
                stick.plugged = False
            else:
                stick.host = next(hosts)
                stick.letter = rng.choice(string.ascii_lowercase)
                events = plug(stick.port, stick.host, stick.letter, stick.serial)
                if rng.random() < 0.3:
                    events.append(UEvent("change", events[1].properties, size=events[1].size))
                if rng.random() < 0.1:
                    events.append(events[1])  # duplicate add
                stick.plugged = True
            lanes.append(events)
        batch: list[UEvent] = []
        while lanes:
            lane = rng.choice(lanes)
            batch.append(lane.pop(0))
            if not lane:
                lanes.remove(lane)
        batches.append((batch, {s.port: s.letter for s in sticks if s.plugged}))
    return sticks, batches


def check_consistent(state: HotplugState, plugged: dict[str, str]) -> None:
    drives = state.drives()
    assert len(drives) == len(plugged)
    slots = [d.slot for d in drives]
    assert len(set(slots)) == len(slots), "two drives in one slot"
    by_port = {d.port.rsplit(":", 1)[-1][2:] if d.port else "": d for d in drives}
    for port, letter in plugged.items():
        drive = by_port[port]
        assert drive.devname == f"/dev/sd{letter}"
        assert drive.decision.verdict == Verdict.TARGET


def tally(sticks: list[Stick], events: list[HotplugEvent]) -> None:
    by_port = {s.port: s for s in sticks}
    for event in events:
        assert event.port is not None
        stick = by_port[event.port.rsplit(":", 1)[-1][2:]]
        stick.slot_seen.add(event.slot)
        if isinstance(event, DriveArrived):
            stick.arrivals += 1
        elif isinstance(event, DriveGone):
            stick.gones += 1


@pytest.mark.parametrize("seed", range(12))
def test_storm_leaves_state_consistent(seed: int) -> None:
    sticks, batches = storm(seed)
    state = new_state()
    events: list[HotplugEvent] = []
    for batch, plugged in batches:
        events += feed(state, batch)
        check_consistent(state, plugged)
    tally(sticks, events)
    for stick in sticks:
        assert stick.arrivals - stick.gones == (1 if stick.plugged else 0)
        assert len(stick.slot_seen) <= 1, "a port changed slot"
    assert sorted(s.slot_seen.pop() for s in sticks if s.slot_seen) == list(range(1, 17))


def test_storm_through_the_monitor_thread_from_many_injectors() -> None:
    sticks, batches = storm(99, steps=320)
    source = FakeSource()
    received: list[HotplugEvent] = []
    lock = threading.Lock()

    def collect(event: HotplugEvent) -> None:
        with lock:
            received.append(event)

    monitor = Monitor(source, new_state(), collect)
    monitor.start()
    total = 0
    try:
        for batch, plugged in batches:
            # four injector threads, each keeping its sticks' order
            lanes: dict[int, list[UEvent]] = {}
            for event in batch:
                port = event.properties["ID_PATH"].split("usb-0:1.", 1)[1].split(":")[0]
                lanes.setdefault(hash(port) % 4, []).append(event)
            threads = [
                threading.Thread(target=lambda evs=evs: [source.inject(e) for e in evs])
                for evs in lanes.values()
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            total += len(batch)
            assert monitor.wait_processed(total, timeout=10)
            check_consistent(monitor.state, plugged)
    finally:
        monitor.stop()
    assert not monitor.running
    tally(sticks, received)
    for stick in sticks:
        assert stick.arrivals - stick.gones == (1 if stick.plugged else 0)


def test_monitor_initial_scan_and_clean_stop() -> None:
    present = plug("1.1", 1, "a", "SNPRESENT1") + plug("1.2", 2, "b", "SNPRESENT2")
    source = FakeSource(present)
    received: list[HotplugEvent] = []
    monitor = Monitor(source, new_state(), received.append)
    monitor.start()
    assert [type(e) for e in received] == [DriveArrived, DriveArrived]  # before any event
    assert monitor.running
    monitor.stop(timeout=2)
    assert not monitor.running
    monitor.stop()  # twice is fine


def test_a_failing_handler_does_not_kill_the_monitor() -> None:
    source = FakeSource()
    calls: list[HotplugEvent] = []

    def handler(event: HotplugEvent) -> None:
        calls.append(event)
        raise RuntimeError("station bug")

    monitor = Monitor(source, new_state(), handler)
    monitor.start()
    try:
        source.inject(*plug("1.1", 1, "a", "SNFAIL0001"))
        assert monitor.wait_processed(2)
        source.inject(*yank("1.1", 1, "a", "SNFAIL0001"))
        assert monitor.wait_processed(4)
    finally:
        monitor.stop()
    assert [type(e) for e in calls] == [DriveArrived, DriveGone]


def test_factory_monitor_with_fake_source_reports_composites_and_uses_config() -> None:
    from appliance.config.schema import HotplugConfig
    from appliance.hotplug.factory import make_monitor

    pepperc = fixture("pepperc-kvm-virtual-disc.udev")["ID_USB_INTERFACES"]
    port = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1.1.2"
    source = FakeSource([UEvent("add", usb_device_props("1.2", interfaces=pepperc))])
    received: list[HotplugEvent] = []
    # settle_time=0: announced at once (holding is tested in test_hotplug_contentguard.py)
    config = HotplugConfig(slots={port: 5}, card_readers=False, settle_time=0)
    monitor = make_monitor(
        config, received.append, SALT, is_content=lambda d: d.devname == "/dev/sdc", source=source
    )
    monitor.start()
    try:
        source.inject(UEvent("add", stick_props("1.3", 7, "c", "SNCONTENT1"), size=500 * GB))
        assert monitor.wait_processed(2)
    finally:
        monitor.stop()
    rejected, content = received
    assert isinstance(rejected, DeviceRejected) and rejected.slot == 5
    assert rejected.message == "slot 5: not a plain storage device — remove it"
    assert isinstance(content, DriveArrived) and content.decision.verdict == Verdict.CONTENT
