"""``content.ports``: a content SSD is mounted only on the ports the installer named.

A hostile USB device can claim to be a big SATA disk (``too_large``,
``ata_bridge``, ``disk_model``, ``spinning``), carry the content label, or even
copy the UUID of a filesystem that once held a verified pack; any of these
makes the hosted station mount it read-only, so the kernel parses whatever
filesystem it presents. With ``content.ports`` set, a disk like that on any
other port is never mounted (the fake mounter is never called), is shown as
refused, and never reaches the station as a stick. Empty (the default) keeps
the old behaviour: any port.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hotplug_helpers import hub_stations

from appliance.commands.hosting.contentmarks import KnownContent
from appliance.content.mount import DirectoryMounter
from appliance.hotplug.device import usb_port_from_id_path
from appliance.hotplug.fake import ID_PATH_ROOT
from appliance.station import events as ev
from appliance.station.effects import StartBatch
from appliance.station.machine import Station
from appliance.station.states import SlotState
from appliance.ui.simulator import SAMPLE_PACK

GB = 1000**3
LABEL = "FS-CONTENT"
CONTENT_PORT = f"{ID_PATH_ROOT}.1"  # the key hotplug gives FakeHub port "1"


class RecordingMounter(DirectoryMounter):
    """The directory mounter, remembering every device it was asked to mount."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def mount(self, device: str) -> Path:
        self.calls.append(device)
        return super().mount(device)


@pytest.fixture
def station(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real station's hardware on a fake hub; ``start(ports)`` builds it.

    The station runner is never started, so nothing can be written to the fake
    hub's ``/dev/sdX`` names; what would reach the station is recorded.
    """
    with hub_stations(tmp_path, monkeypatch, RecordingMounter()) as start:
        yield start


def _refused(s: Any, slot: int) -> ev.DeviceRejected:
    found = s.posted.wait(lambda e: isinstance(e, ev.DeviceRejected) and e.slot == slot)
    assert found, f"slot {slot} was not shown as refused"
    return found[0]


def _never_a_stick(s: Any) -> None:
    """What was posted, applied to a station: no slot is loadable, START starts nothing."""
    assert s.posted.of(ev.DriveArrived) == []
    machine = Station(slots=4, feeding="button")
    for e in (ev.Started(), ev.ContentInserted("Films", "7"), ev.ContentVerified()):
        machine.apply(e)
    effects = []
    for e in s.posted.events:
        if isinstance(e, ev.DeviceRejected | ev.DriveGone):
            effects += machine.apply(e)
    effects += machine.apply(ev.StartPressed())
    assert not [e for e in effects if isinstance(e, StartBatch)]
    assert all(slot.state in (SlotState.EMPTY, SlotState.REJECTED) for slot in machine._slots)


def test_fake_hub_port_key_is_the_configured_string() -> None:
    key = usb_port_from_id_path(f"{ID_PATH_ROOT}.1:1.0-scsi-0:0:0:0")
    assert key == CONTENT_PORT


def test_a_big_disk_on_another_port_is_never_mounted_nor_loaded(station: Any) -> None:
    s = station([CONTENT_PORT])
    s.mounter.add("/dev/sda", SAMPLE_PACK)  # it even holds a valid pack: still not mounted
    s.hub.plug("2", size=500 * GB)  # too_large: a content candidate
    rejected = _refused(s, 1)
    assert rejected.code == "content_port"
    time.sleep(0.3)  # a mount would run on its own thread: give it the chance
    assert s.mounter.calls == []
    assert s.hw.content is None
    _never_a_stick(s)


def test_labelled_and_remembered_media_on_another_port_are_never_mounted(station: Any) -> None:
    s = station([CONTENT_PORT])
    KnownContent(s.path / "state").remember(["AAAA-0001"], "hash")
    s.hub.plug("2", filesystems=[("1234-ABCD", LABEL)])  # stick-sized, labelled
    s.hub.plug("3", filesystems=[("AAAA-0001", "")])  # a filesystem that once held a pack
    s.mounter.add("/dev/sda1", SAMPLE_PACK)
    s.mounter.add("/dev/sdb1", SAMPLE_PACK)
    assert _refused(s, 1).code == "content_port"
    assert _refused(s, 2).code == "content_port"
    time.sleep(0.3)
    assert s.mounter.calls == []
    assert s.hw.content is None
    _never_a_stick(s)


def test_the_content_port_still_takes_the_ssd_and_sticks_still_load(station: Any) -> None:
    s = station([f"  {CONTENT_PORT} "])  # stray spaces from a hand-edited YAML are dropped
    s.hub.plug("1", size=500 * GB, filesystems=[("1234-ABCD", LABEL)])
    s.mounter.add("/dev/sda1", SAMPLE_PACK)
    assert s.posted.wait(lambda e: isinstance(e, ev.ContentInserted))
    assert s.mounter.calls == ["/dev/sda1"]
    s.hub.plug("2")  # a plain stick on another port is still a stick
    (arrived,) = s.posted.wait(lambda e: isinstance(e, ev.DriveArrived))
    assert arrived.slot == 1  # the content port took no slot number
    assert not s.posted.of(ev.DeviceRejected)


def test_no_ports_configured_means_any_port_as_before(station: Any) -> None:
    s = station([])
    s.hub.plug("2", size=500 * GB)  # no pack on it: tried, then refused as a disk
    rejected = _refused(s, 1)
    assert rejected.code == "too_large"
    assert s.mounter.calls == ["/dev/sda"]
    assert s.posted.of(ev.DriveArrived) == []


def test_try_content_refuses_a_disk_off_the_content_ports_itself(station: Any) -> None:
    """Defence in depth: the mounting step checks the port too."""
    s = station([CONTENT_PORT])
    s.mounter.add("/dev/sdq", SAMPLE_PACK)
    s.hw._try_content("/dev/sdq", 3, "too large", False, f"{ID_PATH_ROOT}.4")
    s.hw._try_content("/dev/sdq", 3, "too large", False, None)
    assert s.mounter.calls == [] and s.hw.content is None


def test_config_keeps_content_ports_with_the_yaml() -> None:
    from appliance.config import load_layers

    root = Path(__file__).resolve().parents[1]
    assert load_layers([root / "config" / "station.yaml"]).content.ports == []


def test_devices_list_prints_the_port_to_put_in_content_ports(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The installer plugs the SSD into the chosen port and copies its PORT from the table."""
    from appliance.cli import main
    from appliance.hotplug import sysinfo
    from appliance.hotplug.device import DeviceInfo
    from appliance.hotplug.fake import disk_props

    ssd = DeviceInfo(disk_props("1", 0, "sdzq", "NOT-A-REAL-SERIAL"), size=500 * GB)
    monkeypatch.setattr(sysinfo, "live_devices", lambda *a, **k: iter([ssd]))
    monkeypatch.setattr(sysinfo, "system_disks", lambda *a, **k: set())
    assert main(["devices", "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "PORT"
    assert row.startswith("/dev/sdzq") and row.split()[-1] == CONTENT_PORT
    assert "NOT-A-REAL-SERIAL" not in row


def test_a_mistyped_content_port_is_logged_at_start(
    station: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR"):
        station(["/dev/sda", CONTENT_PORT])
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("'/dev/sda' is not a USB port path" in m for m in errors)
    assert not any(CONTENT_PORT in m for m in errors)
