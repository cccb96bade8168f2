"""Remembered slot numbers: a port keeps its number across restarts (``slots.json``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from appliance.config.schema import HotplugConfig
from appliance.hotplug.classify import Classifier
from appliance.hotplug.events import DriveArrived, DriveGone, HotplugEvent
from appliance.hotplug.factory import make_monitor
from appliance.hotplug.fake import ID_PATH_ROOT, FakeHub
from appliance.hotplug.slots import STORE_NAME, SlotMap, SlotStore
from appliance.hotplug.state import HotplugState

SALT = b"slotstore-test-salt"


def key(port: str) -> str:
    return f"{ID_PATH_ROOT}.{port}"


class Station:
    """One boot of a station: a hotplug state with its slot map read from ``state_dir``."""

    def __init__(self, state_dir: Path, configured: dict[str, int] | None = None):
        self.slots = SlotMap(configured, SlotStore(state_dir))
        self.state = HotplugState(Classifier(), self.slots, SALT)
        self.hub = FakeHub()

    def plug(self, port: str) -> int | None:
        out = [e for ue in self.hub.plug(port) for e in self.state.apply(ue)]
        arrived = [e for e in out if isinstance(e, DriveArrived)]
        assert len(arrived) == 1
        return arrived[0].slot

    def yank(self, port: str) -> list[HotplugEvent]:
        return [e for ue in self.hub.yank(port) for e in self.state.apply(ue)]


def test_a_port_keeps_its_number_across_a_restart(tmp_path: Path) -> None:
    first = Station(tmp_path)
    assert [first.plug(p) for p in ("1.3", "1.1", "1.4")] == [1, 2, 3]
    # restart: a fresh map from the same state directory, sticks plugged in another order
    second = Station(tmp_path)
    assert second.plug("1.4") == 3
    assert second.plug("1.1") == 2
    assert second.plug("1.2") == 4  # a new port: the next free number
    assert second.plug("1.3") == 1
    third = Station(tmp_path)
    assert third.plug("1.2") == 4


def test_the_file_holds_only_port_paths_and_numbers(tmp_path: Path) -> None:
    station = Station(tmp_path)
    station.plug("1.2")
    path = tmp_path / STORE_NAME
    text = path.read_text()
    assert json.loads(text) == {"version": 1, "slots": {key("1.2"): 1}}
    assert "FAKE" not in text  # the fake hub's serials
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_mtime % 86400 == 0  # the day, not the moment
    assert not list(tmp_path.glob("*.tmp"))


def test_configured_slots_win_over_remembered_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Station(tmp_path)
    assert [first.plug(p) for p in ("1.1", "1.2", "1.3")] == [1, 2, 3]
    # the operator later configures 1.3 as slot 1 and 1.2 as slot 5
    with caplog.at_level(logging.WARNING):
        second = Station(tmp_path, {key("1.3"): 1, key("1.2"): 5})
    assert "remembered slot 1 is configured for another port" in caplog.text
    assert second.plug("1.3") == 1
    assert second.plug("1.2") == 5
    assert second.plug("1.1") == 2  # its remembered 1 clashed: dropped, the next free one
    assert second.plug("1.4") == 3  # 3 was 1.3's remembered number, which its config replaced
    stored = json.loads((tmp_path / STORE_NAME).read_text())["slots"]
    assert stored == {key("1.1"): 2, key("1.4"): 3}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "[1, 2]",
        '{"version": 2, "slots": {}}',
        '{"version": 1, "slots": [1]}',
        b"\xff\xfe garbage",
    ],
)
def test_a_corrupt_file_starts_fresh_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str | bytes
) -> None:
    path = tmp_path / STORE_NAME
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with caplog.at_level(logging.WARNING):
        station = Station(tmp_path)
    assert "starting fresh" in caplog.text
    assert station.plug("1.5") == 1
    assert json.loads(path.read_text())["slots"] == {key("1.5"): 1}  # replaced by a good one


def test_bad_entries_and_duplicates_are_dropped(tmp_path: Path) -> None:
    (tmp_path / STORE_NAME).write_text(
        json.dumps(
            {
                "version": 1,
                "slots": {key("1.1"): 2, key("1.2"): 2, key("1.3"): 0, key("1.4"): "3"},
            }
        )
    )
    station = Station(tmp_path)
    assert station.slots.remembered() == {key("1.1"): 2}
    assert station.plug("1.2") == 1


def test_an_unwritable_state_dir_keeps_numbers_for_this_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        station = Station(blocker / "state")
        assert station.plug("1.1") == 1
        assert station.plug("1.2") == 2
    assert "cannot save" in caplog.text
    assert station.slots.peek(key("1.1")) == 1 and station.plug("1.3") == 3  # it goes on


def test_forget_and_assign(tmp_path: Path) -> None:
    slots = SlotMap({key("1.9"): 2}, SlotStore(tmp_path))
    assert slots.slot_for(key("1.1")) == 1
    assert slots.slot_for(key("1.2")) == 3
    slots.forget()
    assert slots.peek(key("1.1")) is None and slots.peek(key("1.9")) == 2
    assert SlotMap(None, SlotStore(tmp_path)).remembered() == {}
    assert slots.assign(key("1.2"), 1)
    assert slots.slot_for(key("1.5")) == 3  # auto: the next free one
    assert slots.assign(key("1.1"), 3)  # takes 3 from 1.5, which has none now
    assert slots.peek(key("1.5")) is None
    assert not slots.assign(key("1.9"), 4)  # a configured port keeps its number
    assert not slots.assign(key("1.6"), 2)  # a configured number is not given
    assert SlotMap(None, SlotStore(tmp_path)).remembered() == {key("1.2"): 1, key("1.1"): 3}


def test_gone_events_carry_the_number_the_port_has_now(tmp_path: Path) -> None:
    station = Station(tmp_path)
    assert station.plug("1.1") == 1
    assert station.plug("1.2") == 2
    station.slots.assign(key("1.1"), 5)  # renumbered while the stick is in
    gone = station.yank("1.1")
    assert [(type(e), e.slot) for e in gone] == [(DriveGone, 5)]
    station.slots.forget()  # forgotten while the stick is in: its old number means nothing
    gone = station.yank("1.2")
    assert [(type(e), e.slot) for e in gone] == [(DriveGone, None)]


def test_the_factory_remembers_in_the_state_dir(tmp_path: Path) -> None:
    for expected in ([1, 2], [2, 1]):
        hub = FakeHub()
        received: list[HotplugEvent] = []
        monitor = make_monitor(
            HotplugConfig(settle_time=0),
            received.append,
            SALT,
            source=hub.source,
            state_dir=tmp_path,
        )
        monitor.start()
        try:
            ports = ("1.1", "1.2") if expected == [1, 2] else ("1.2", "1.1")
            for port in ports:
                hub.plug(port)
            assert monitor.wait_processed(4)
        finally:
            monitor.stop()
        assert [e.slot for e in received if isinstance(e, DriveArrived)] == expected


def test_a_possible_content_ssd_takes_no_number(tmp_path: Path) -> None:
    """The content SSD goes in first (the screen asks for it): its port must not keep slot 1."""
    station = Station(tmp_path)
    out = [e for ue in station.hub.plug("1.1", size=2 * 1000**4) for e in station.state.apply(ue)]
    (disk,) = [e for e in out if isinstance(e, DriveArrived)]
    assert disk.decision.rule == "too_large" and disk.slot is None
    assert station.plug("1.2") == 1
    assert [(type(e), e.slot) for e in station.yank("1.1")] == [(DriveGone, None)]
    assert SlotMap(None, SlotStore(tmp_path)).remembered() == {key("1.2"): 1}
    # a port that has a number keeps it for anything plugged there
    station.yank("1.2")
    out = [e for ue in station.hub.plug("1.2", size=2 * 1000**4) for e in station.state.apply(ue)]
    assert [e.slot for e in out if isinstance(e, DriveArrived)] == [1]
