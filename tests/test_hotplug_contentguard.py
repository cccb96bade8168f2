"""Content media on a stick-sized USB flash drive are never a target (the wrong-disk guard).

A content pack may sit on a plain USB flash drive of stick size: nothing in
its USB identity tells it from a donated stick. It is recognised by what
udev probed on its filesystems (a ``content.labels`` label, or the UUID of a
filesystem that once held a verified pack), and a new disk waits
``hotplug.settle_time`` for its partitions' events before it is announced.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hotplug_helpers import fixture, hub_stations

from appliance.commands.hosting.contentmarks import KNOWN_FILE, ContentMarks, KnownContent
from appliance.config.schema import (
    HotplugConfig,
)
from appliance.content.mount import DirectoryMounter
from appliance.hotplug.classify import Classifier, Context, Verdict
from appliance.hotplug.device import DeviceInfo, Filesystem
from appliance.hotplug.events import DriveArrived, DriveGone, HotplugEvent, MediaChanged
from appliance.hotplug.factory import make_monitor
from appliance.hotplug.fake import FakeHub
from appliance.hotplug.slots import SlotMap
from appliance.hotplug.state import HotplugState, UEvent
from appliance.hotplug.sysinfo import partition_filesystems
from appliance.station import events as ev
from appliance.ui.simulator import SAMPLE_PACK

SALT = b"contentguard-test-salt"
GB = 1000**3
LABEL = "FS-CONTENT"
# A real dump of a partitioned (dos) PNY flash stick; renamed to a node no machine has.
STICK = fixture("pny-usb2-fd-stick.udev", DEVNAME="/dev/sdzz")


def partition_of(disk: dict[str, str], uuid: str = "", label: str = "", n: int = 1) -> UEvent:
    props = {k: v for k, v in disk.items() if k != "ID_PART_TABLE_TYPE"}
    props.update(
        DEVTYPE="partition",
        DEVPATH=f"{disk['DEVPATH']}/sdb{n}",
        DEVNAME=f"{disk['DEVNAME']}{n}",
        ID_FS_TYPE="exfat",
    )
    if uuid:
        props["ID_FS_UUID"] = uuid
    if label:
        props["ID_FS_LABEL"] = label
    return UEvent("add", props, size=16 * GB)


def marks(tmp_path: Path, labels: tuple[str, ...] = (LABEL,)) -> ContentMarks:
    return ContentMarks(labels, KnownContent(tmp_path))


def classify(info: DeviceInfo, is_content: Any = None) -> Verdict:
    return Classifier(Context(is_content=is_content)).classify(info).verdict


# --- the classifier with the station's predicate ------------------------------------------


def test_flash_stick_with_content_label_on_a_partition_is_content(tmp_path: Path) -> None:
    plain = DeviceInfo(STICK, size=16 * GB)
    assert classify(plain, marks(tmp_path).is_content) is Verdict.TARGET
    labelled = DeviceInfo(
        STICK, size=16 * GB, partitions=(Filesystem("/dev/sdzz1", "1234-ABCD", "fs-content"),)
    )
    assert classify(labelled, marks(tmp_path).is_content) is Verdict.CONTENT
    assert classify(labelled, None) is Verdict.TARGET  # without the predicate: the old bug
    other = DeviceInfo(
        STICK, size=16 * GB, partitions=(Filesystem("/dev/sdzz1", "1234-ABCD", "MOVIES"),)
    )
    assert classify(other, marks(tmp_path).is_content) is Verdict.TARGET


def test_unpartitioned_stick_with_its_own_label_or_known_uuid(tmp_path: Path) -> None:
    # a real dump of an unpartitioned stick: label MYLINUXLIVE, UUID 3879-A38A on the disk
    props = fixture("kingston-dt101ii-stick.udev", DEVNAME="/dev/sdzy")
    stick = DeviceInfo(props, size=8 * GB)
    assert classify(stick, marks(tmp_path).is_content) is Verdict.TARGET
    assert classify(stick, marks(tmp_path, ("mylinuxlive",)).is_content) is Verdict.CONTENT
    KnownContent(tmp_path).remember(["3879-A38A"], "b3hash")
    assert classify(stick, marks(tmp_path).is_content) is Verdict.CONTENT


def test_known_uuid_on_a_partition_is_content_and_persists(tmp_path: Path) -> None:
    stick = DeviceInfo(STICK, size=16 * GB, partitions=(Filesystem("/dev/sdzz1", "AB12-CD34", ""),))
    assert classify(stick, marks(tmp_path).is_content) is Verdict.TARGET
    m = marks(tmp_path)
    assert m.is_content(stick) is False
    m.remember("/dev/sdzz", "/dev/sdzz1", "manifest-hash")
    saved = json.loads((tmp_path / KNOWN_FILE).read_text())
    assert saved["filesystems"]["AB12-CD34"]["manifest"] == "manifest-hash"
    assert "ID_SERIAL" not in (tmp_path / KNOWN_FILE).read_text()
    assert classify(stick, marks(tmp_path).is_content) is Verdict.CONTENT  # a fresh station


def test_marks_mount_the_marked_partition(tmp_path: Path) -> None:
    m = marks(tmp_path)
    stick = DeviceInfo(
        STICK,
        partitions=(Filesystem("/dev/sdzz1", "1", "EFI"), Filesystem("/dev/sdzz2", "2", LABEL)),
    )
    assert m.is_content(stick)
    assert m.device_for("/dev/sdzz") == "/dev/sdzz2"
    assert m.device_for("/dev/other") == "/dev/other"
    # an unmarked SSD with one partition (tried because it is too large): that partition
    ssd = DeviceInfo(fixture("pny-usb2-fd-stick.udev", DEVNAME="/dev/sdzw"))
    assert not m.is_content(replace(ssd, partitions=(Filesystem("/dev/sdzw1", "9", "DATA"),)))
    assert m.device_for("/dev/sdzw") == "/dev/sdzw1"
    two = (Filesystem("/dev/sdzw1", "9", "A"), Filesystem("/dev/sdzw2", "8", "B"))
    assert not m.is_content(replace(ssd, partitions=two))
    assert m.device_for("/dev/sdzw") == "/dev/sdzw"  # which one is unclear: the disk


def test_unreadable_known_file_is_no_content(tmp_path: Path) -> None:
    (tmp_path / KNOWN_FILE).write_text("{not json")
    assert KnownContent(tmp_path).uuids() == set()
    KnownContent(tmp_path).remember(["X"])
    assert KnownContent(tmp_path).uuids() == {"X"}


def test_partition_filesystems_from_pyudev_children() -> None:
    def dev(kind: str, node: str, **props: str) -> Any:
        return SimpleNamespace(device_type=kind, device_node=node, properties=props, children=[])

    disk = dev("disk", "/dev/sdzz")
    disk.children = [
        dev("partition", "/dev/sdzz1", ID_FS_UUID="U1", ID_FS_LABEL=LABEL),
        dev("partition", "/dev/sdzz2"),  # no filesystem probed
        dev("scsi_generic", "/dev/sg9", ID_FS_UUID="nope"),
    ]
    assert partition_filesystems(disk) == (Filesystem("/dev/sdzz1", "U1", LABEL),)
    assert partition_filesystems(dev("partition", "/dev/sdzz1")) == ()


# --- the state: settling before a target is announced -------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(tmp_path: Path, settle: float = 2.0) -> tuple[HotplugState, Clock]:
    clock = Clock()
    ctx = Context(is_content=marks(tmp_path).is_content)
    return HotplugState(Classifier(ctx), SlotMap(), SALT, settle=settle, clock=clock), clock


def test_late_partition_label_makes_the_held_disk_content(tmp_path: Path) -> None:
    s, clock = state(tmp_path)
    assert s.apply(UEvent("add", STICK, size=16 * GB)) == []  # held back, not a target yet
    assert s.next_deadline() == 102.0
    assert s.apply(partition_of(STICK, "1234-ABCD", LABEL)) == []
    clock.now = 101.9
    assert s.due() == []
    clock.now = 102.0
    (out,) = s.due()
    assert isinstance(out, DriveArrived) and out.decision.verdict is Verdict.CONTENT
    assert out.devname == "/dev/sdzz" and out.size == 16 * GB
    assert s.due() == [] and s.next_deadline() is None


def test_plain_stick_is_still_a_target_after_settling(tmp_path: Path) -> None:
    s, clock = state(tmp_path)
    assert s.apply(UEvent("add", STICK, size=16 * GB)) == []
    assert s.apply(partition_of(STICK, "1234-ABCD", "MOVIES")) == []
    clock.now += 2
    (out,) = s.due()
    assert isinstance(out, DriveArrived) and out.decision.verdict is Verdict.TARGET


def test_stick_pulled_while_settling_leaves_no_trace(tmp_path: Path) -> None:
    s, clock = state(tmp_path)
    s.apply(UEvent("add", STICK, size=16 * GB))
    assert s.apply(UEvent("remove", STICK)) == []
    clock.now += 5
    assert s.due() == [] and s.drives() == []


def test_initial_scan_is_not_held_but_a_new_ssd_is(tmp_path: Path) -> None:
    s, _ = state(tmp_path)
    (out,) = s.apply(UEvent("add", STICK, size=16 * GB), settle=False)
    assert isinstance(out, DriveArrived) and out.decision.verdict is Verdict.TARGET
    s2, clock = state(tmp_path)
    # too large: a content SSD candidate, held so the station learns its partition first
    assert s2.apply(UEvent("add", STICK, size=2000 * GB)) == []
    assert s2.apply(partition_of(STICK, "5555-0000", "DATA")) == []
    clock.now += 2
    (big,) = s2.due()
    assert isinstance(big, DriveArrived) and big.decision.rule == "too_large"


def test_scan_with_partitions_already_probed_is_content(tmp_path: Path) -> None:
    s, _ = state(tmp_path)
    fs = (Filesystem("/dev/sdzz1", "U", LABEL),)
    (out,) = s.apply(UEvent("add", STICK, size=16 * GB, partitions=fs), settle=False)
    assert isinstance(out, DriveArrived) and out.decision.verdict is Verdict.CONTENT


def test_very_late_label_withdraws_an_announced_target(tmp_path: Path) -> None:
    s, clock = state(tmp_path)
    s.apply(UEvent("add", STICK, size=16 * GB))
    clock.now += 2
    (first,) = s.due()
    assert isinstance(first, DriveArrived) and first.decision.verdict is Verdict.TARGET
    gone, again = s.apply(partition_of(STICK, "U", LABEL))
    assert isinstance(gone, DriveGone) and gone.reason == "reclassified"
    assert isinstance(again, DriveArrived) and again.decision.verdict is Verdict.CONTENT
    # a partition event repeated by udev changes nothing
    assert s.apply(partition_of(STICK, "U", LABEL)) == []


def test_card_inserted_in_a_reader_is_held_too(tmp_path: Path) -> None:
    reader = fixture("genesys-card-reader-with-card.udev", DEVNAME="/dev/sdzx")
    s, clock = state(tmp_path)
    (empty,) = s.apply(UEvent("add", reader, size=0))
    assert isinstance(empty, DriveArrived) and empty.decision.rule == "no_media"
    assert s.apply(UEvent("change", reader, size=32 * GB)) == []
    clock.now += 2
    (card,) = s.due()
    assert isinstance(card, MediaChanged) and card.present
    assert card.decision.verdict is Verdict.TARGET


# --- through the factory's monitor and the hosted station -----------------------------------


def test_monitor_holds_a_new_stick_and_sees_its_label(tmp_path: Path) -> None:
    hub = FakeHub()
    received: list[HotplugEvent] = []
    config = HotplugConfig(settle_time=0.2)
    monitor = make_monitor(
        config, received.append, SALT, is_content=marks(tmp_path).is_content, source=hub.source
    )
    monitor.start()
    try:
        hub.plug("1.1", filesystems=[("1234-ABCD", LABEL)])
        hub.plug("1.2", filesystems=[("5678-EF01", "MOVIES")])
        assert monitor.wait_processed(6)
        assert received == []  # nothing announced before the settle time
        end = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < end:
            time.sleep(0.02)
    finally:
        monitor.stop()
    verdicts = {e.devname: e.decision.verdict for e in received if isinstance(e, DriveArrived)}
    assert verdicts == {"/dev/sda": Verdict.CONTENT, "/dev/sdb": Verdict.TARGET}


@pytest.fixture
def hosted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real station's hardware part on a fake hub and a directory mounter."""
    with hub_stations(tmp_path, monkeypatch, DirectoryMounter()) as start:
        yield start(settle_time=0.2)


def test_hosted_station_labelled_stick_without_pack_is_refused_not_loaded(hosted: Any) -> None:
    empty = hosted.path / "empty"
    empty.mkdir()
    hosted.mounter.add("/dev/sda1", empty)
    hosted.hub.plug("1.1", filesystems=[("1234-ABCD", LABEL)])
    (rejected,) = hosted.posted.wait(lambda e: isinstance(e, ev.DeviceRejected))
    assert rejected.slot == 1 and rejected.code == "other"
    assert rejected.detail.startswith("labelled as content but no valid pack")
    assert not [e for e in hosted.posted.events if isinstance(e, ev.DriveArrived)]
    assert hosted.hw.content is None


def test_hosted_station_loads_a_labelled_pack_and_remembers_its_uuid(hosted: Any) -> None:
    hosted.mounter.add("/dev/sda1", SAMPLE_PACK)
    hosted.hub.plug("1.1", filesystems=[("1234-ABCD", LABEL)])
    assert hosted.posted.wait(lambda e: isinstance(e, ev.ContentInserted))
    assert hosted.hw.content is not None and hosted.hw.content.device == "/dev/sda1"
    known = KnownContent(hosted.path / "state").uuids()
    assert known == {"1234-ABCD"}
    # a plain stick next to it is still loaded; the SSD is never a DriveArrived
    hosted.hub.plug("1.2")
    (arrived,) = hosted.posted.wait(lambda e: isinstance(e, ev.DriveArrived))
    assert arrived.slot == 1  # the content SSD's port took no slot number
    # pulled: the content goes away with its disk
    hosted.hub.yank("1.1")
    assert hosted.posted.wait(lambda e: isinstance(e, ev.ContentRemoved))
    # back again with the label gone but the same filesystem UUID: still content
    hosted.hub.plug("1.3", filesystems=[("1234-ABCD", "")])
    hosted.mounter.add("/dev/sda1", SAMPLE_PACK)
    inserted = hosted.posted.wait(lambda e: isinstance(e, ev.ContentInserted), count=2)
    assert len(inserted) == 2
    assert [e.slot for e in hosted.posted.events if isinstance(e, ev.DriveArrived)] == [1]


def test_seal_reminds_the_curator_of_the_content_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from appliance.cli import main
    from tests.content_helpers import make_key, make_tree

    root = make_tree(tmp_path / "ssd")
    private, _ = make_key(tmp_path)
    assert main(["content", "seal", str(root), "--key", str(private)]) == 0
    reminders = [line for line in capsys.readouterr().out.splitlines() if LABEL in line]
    assert len(reminders) == 1 and "label" in reminders[0]


def test_hosted_station_second_content_media_is_refused(hosted: Any) -> None:
    hosted.mounter.add("/dev/sda1", SAMPLE_PACK)
    hosted.hub.plug("1.1", filesystems=[("1234-ABCD", LABEL)])
    assert hosted.posted.wait(lambda e: isinstance(e, ev.ContentInserted))
    hosted.hub.plug("1.2", filesystems=[("9999-0000", LABEL.lower())])
    (rejected,) = hosted.posted.wait(lambda e: isinstance(e, ev.DeviceRejected))
    assert rejected.slot == 1 and "another is in use" in rejected.detail  # numbered now
    assert hosted.hw.content.device == "/dev/sda1"
    assert not [e for e in hosted.posted.events if isinstance(e, ev.DriveArrived)]
