"""Read-only checks against this machine, and the simulator's fake hub end to end.

Nothing here opens a block device: `devices list` and the pyudev source read
udev, /sys and /proc only.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence

import pytest
from hotplug_helpers import fixture

from appliance.cli import main
from appliance.config.schema import HotplugConfig
from appliance.hotplug import uhubctl
from appliance.hotplug.classify import Classifier, Verdict
from appliance.hotplug.events import DeviceRejected, DriveArrived, DriveGone, HotplugEvent
from appliance.hotplug.factory import make_monitor
from appliance.hotplug.fake import FakeHub
from appliance.hotplug.slots import SlotMap
from appliance.hotplug.state import HotplugState, UEvent

SALT = b"live-test-salt"


def test_devices_list_here_finds_no_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows, "no block device found on this machine"
    for row in rows:
        assert row["verdict"] in ("system", "ignore"), row
    assert main(["devices", "list"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("DEVICE") and "target" not in table.split("\n", 1)[1]


def test_pyudev_source_scans_this_machine_read_only() -> None:
    pyudev = pytest.importorskip("pyudev")
    from appliance.hotplug.monitor import PyudevSource

    try:
        source = PyudevSource()
    except (OSError, pyudev.DeviceNotFoundError) as exc:  # pragma: no cover - no netlink here
        pytest.skip(f"no udev netlink here: {exc}")
    try:
        events = list(source.scan())
        disks = [e for e in events if e.properties.get("SUBSYSTEM") == "block"]
        assert disks and all(e.action == "add" for e in disks)
        state = HotplugState(Classifier(), SlotMap(), SALT)
        for event in events:
            for out in state.apply(event):
                assert isinstance(out, DriveArrived)
                assert out.decision.verdict != Verdict.TARGET
        assert isinstance(source.receive(), list)  # returns at once, nothing or something
    finally:
        source.close()


def test_simulated_hub_through_the_station_factory() -> None:
    hub = FakeHub()
    received: list[HotplugEvent] = []
    # no settling here: the held-back arrival is tested in test_hotplug_contentguard.py
    config = HotplugConfig(settle_time=0)
    monitor = make_monitor(config, received.append, SALT, source=hub.source)
    monitor.start()
    try:
        hub.plug("1.1")
        hub.plug("1.2", size=2 * 1000**4)  # an external disk's size
        hub.plug("1.3", interfaces=":080650:030101:")  # hides a keyboard
        hub.yank("1.1", lose_block_remove=True)
        assert monitor.wait_processed(2 + 2 + 2 + 1)
    finally:
        monitor.stop()
    kinds = [(type(e).__name__, e.slot) for e in received]
    assert kinds == [
        ("DriveArrived", 1),
        ("DriveArrived", None),  # maybe the content SSD: its port gets no number of its own
        ("DeviceRejected", 2),
        ("DriveArrived", 2),
        ("DriveGone", 1),
    ]
    stick, disk, rejected, hidden, gone = received
    assert isinstance(stick, DriveArrived) and stick.decision.verdict == Verdict.TARGET
    assert isinstance(disk, DriveArrived) and disk.decision.rule == "too_large"
    assert isinstance(rejected, DeviceRejected) and "slot 2" in rejected.message
    assert isinstance(hidden, DriveArrived) and hidden.decision.rule == "composite"
    assert isinstance(gone, DriveGone) and gone.drive_id == stick.drive_id
    assert hub.plugged() == ["1.2", "1.3"]


def test_power_off_slot_from_a_drive_devpath() -> None:
    calls: list[list[str]] = []

    def runner(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(list(args))
        return subprocess.CompletedProcess(list(args), 0, "", "")

    hubs = [uhubctl.Hub("1-1.2", "2109:2813", 4, True)]
    devpath = FakeHub().plug("2.3")[1].properties["DEVPATH"]
    assert uhubctl.usb_device_of(devpath) == "1-1.2.3"
    assert uhubctl.power_off_slot(devpath, hubs, runner) is True
    assert calls == [["uhubctl", "-l", "1-1.2", "-p", "3", "-a", "off"]]
    assert uhubctl.power_off_slot("/devices/virtual/block/loop0", hubs, runner) is False


def test_logs_never_carry_a_raw_serial(caplog: pytest.LogCaptureFixture) -> None:
    props = fixture("kingston-dt101ii-stick.udev")
    serial = props["ID_SERIAL_SHORT"]

    class Broken(Classifier):
        def classify(self, dev):  # type: ignore[no-untyped-def]
            raise RuntimeError(f"cannot classify {dev!r}")

    hub = FakeHub()
    state = HotplugState(Broken(), SlotMap(), SALT)
    from appliance.hotplug.monitor import Monitor

    monitor = Monitor(hub.source, state, lambda e: None)
    caplog.set_level(logging.DEBUG)
    monitor.start()
    try:
        hub.source.inject(UEvent("add", props, size=8 * 1000**3))
        assert monitor.wait_processed(1)
    finally:
        monitor.stop()
    assert "cannot handle" in caplog.text
    assert serial not in caplog.text


def test_pyudev_monitor_thread_starts_and_stops_at_once() -> None:
    """The real netlink monitor on this machine: start (initial scan), then a prompt stop."""
    import time

    pyudev = pytest.importorskip("pyudev")
    from appliance.hotplug.monitor import Monitor, PyudevSource

    try:
        source = PyudevSource()
    except (OSError, pyudev.DeviceNotFoundError) as exc:  # pragma: no cover
        pytest.skip(f"no udev netlink here: {exc}")
    received: list[HotplugEvent] = []
    monitor = Monitor(source, HotplugState(Classifier(), SlotMap(), SALT), received.append)
    monitor.start()
    assert monitor.running
    started = time.monotonic()
    monitor.stop(timeout=5)
    assert not monitor.running
    assert time.monotonic() - started < 2  # woken by the self-pipe, not a udev event
    assert all(isinstance(e, DriveArrived) for e in received)


def test_media_polling_only_on_removable_disks_with_polling_off(tmp_path: object) -> None:
    from pathlib import Path

    from appliance.hotplug.sysinfo import enable_media_polling

    root = Path(str(tmp_path))
    for name, removable, poll in (("sda", "1", "-1"), ("sdb", "0", "-1"), ("sdc", "1", "500")):
        base = root / "class" / "block" / name
        base.mkdir(parents=True)
        (base / "removable").write_text(removable + "\n")
        (base / "events_poll_msecs").write_text(poll + "\n")
    assert enable_media_polling("sda", root) is True
    assert (root / "class/block/sda/events_poll_msecs").read_text() == "2000"
    assert enable_media_polling("sdb", root) is False
    assert enable_media_polling("sdc", root) is False
    assert (root / "class/block/sdc/events_poll_msecs").read_text().strip() == "500"
    assert enable_media_polling("sdz", root) is False


def test_devices_watch_prints_events_from_a_fake_hub(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from appliance.commands import devices

    hub = FakeHub()
    hub.plug("1.1")
    hub.plug("1.2", interfaces=":080650:030101:")
    monkeypatch.setattr(devices, "make_watch_source", lambda: hub.source)
    assert main(["devices", "watch", "--json", "--seconds", "0.5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["event"], r["slot"]) for r in rows] == [
        ("drive_arrived", 1),
        ("device_rejected", 2),
        ("drive_arrived", 2),
    ]
    assert rows[0]["verdict"] == "target" and rows[2]["rule"] == "composite"
    assert "not a plain storage device" in rows[1]["message"]
    assert all("FAKE0000" not in json.dumps(r) for r in rows)  # no serial


def test_devices_list_opens_no_device_node(monkeypatch: pytest.MonkeyPatch) -> None:
    """READ-ONLY: no block device node is opened from Python while listing."""
    import builtins
    import os
    import re

    block = re.compile(r"^/dev/(disk/|(sd|vd|hd|xvd|sr|mmcblk|nvme|loop|zram|dm-|md)\w*$)")

    real_open, real_os_open = builtins.open, os.open
    opened: list[str] = []

    def guard(path: object) -> None:
        if block.match(str(path)):
            opened.append(str(path))
            raise AssertionError(f"devices list opened {path}")

    def fake_open(file: object, *args: object, **kwargs: object) -> object:
        guard(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def fake_os_open(path: object, *args: object, **kwargs: object) -> int:
        guard(path)
        return real_os_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    assert main(["devices", "list", "--json"]) == 0
    assert opened == []
