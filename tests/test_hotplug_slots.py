"""Slots: learning the port map with a fake monitor and stdin; uhubctl parsing."""

from __future__ import annotations

import io
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from hotplug_helpers import stick_props, usb_device_props

from appliance.cli import main
from appliance.commands import slots as slots_command
from appliance.config import load_layers
from appliance.hotplug import uhubctl
from appliance.hotplug.learn import learn_slots, write_slots
from appliance.hotplug.monitor import FakeSource
from appliance.hotplug.slots import SlotMap, SlotStore
from appliance.hotplug.state import UEvent

ROOT = "platform-fd500000.pcie-pci-0000:01:00.0-usb-0:1."


def plug(port: str, host: int, letter: str) -> list[UEvent]:
    return [
        UEvent("add", usb_device_props(port)),
        UEvent("add", stick_props(port, host, letter, f"SN{host:06d}"), size=8 * 1000**3),
    ]


def test_slot_map_next_free_number() -> None:
    slots = SlotMap({"a": 1, "b": 3})
    assert slots.slot_for("b") == 3
    assert slots.slot_for("c") == 2
    assert slots.slot_for("d") == 4
    assert slots.slot_for("c") == 2
    assert slots.slot_for(None) is None
    assert slots.port_of(4) == "d" and slots.port_of(9) is None


def scripted(source: FakeSource, steps: list[list[UEvent] | str]) -> tuple[list[str], object]:
    """An ``ask`` that plugs sticks (via the fake monitor) before answering Enter."""
    said: list[str] = []
    script = list(steps)

    def ask(prompt: str) -> str:
        said.append(prompt)
        if not script:
            raise EOFError
        step = script.pop(0)
        if isinstance(step, str):
            return step
        source.inject(*step)
        return "\n"

    return said, ask


def test_learn_in_order_and_skip_repeats() -> None:
    source = FakeSource(plug("2.8", 1, "a"))  # already plugged: not an answer
    said, ask = scripted(
        source,
        [
            plug("1.3", 2, "b"),
            plug("1.1", 3, "c"),
            plug("1.3", 4, "d"),
            [],
            plug("1.2", 5, "e"),
            "done",
        ],
    )
    messages: list[str] = []
    learned = learn_slots(source, ask, messages.append, settle=0.5)  # type: ignore[arg-type]
    assert learned == {ROOT + "1.3": 1, ROOT + "1.1": 2, ROOT + "1.2": 3}
    assert any("already slot 1" in m for m in messages)
    assert any("No new stick" in m for m in messages)
    assert said[0].startswith("Slot 1:") and said[-1].startswith("Slot 4:")


def test_learn_stops_at_count() -> None:
    source = FakeSource()
    _, ask = scripted(source, [plug("1.5", 1, "a"), plug("1.6", 2, "b"), plug("1.7", 3, "c")])
    learned = learn_slots(source, ask, lambda m: None, count=2, settle=0.5)  # type: ignore[arg-type]
    assert learned == {ROOT + "1.5": 1, ROOT + "1.6": 2}


def test_write_slots_keeps_other_keys_and_validates(tmp_path: Path) -> None:
    target = tmp_path / "station.yaml"
    target.write_text("ui:\n  language: ko\nhotplug:\n  card_readers: false\n")
    write_slots(target, {ROOT + "1.1": 1, ROOT + "1.2": 2})
    config = load_layers([target])
    assert config.ui.language == "ko" and config.hotplug.card_readers is False
    assert config.hotplug.slots == {ROOT + "1.1": 1, ROOT + "1.2": 2}
    fresh = tmp_path / "new" / "slots.yaml"
    write_slots(fresh, {"x": 1})
    assert yaml.safe_load(fresh.read_text()) == {"hotplug": {"slots": {"x": 1}}}


def test_cli_learn_with_fake_monitor_and_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = FakeSource()
    monkeypatch.setattr(slots_command, "make_source", lambda: source)

    class Stdin(io.StringIO):
        """Each Enter plugs the next stick, as an operator would before pressing it."""

        sticks: ClassVar[list[list[UEvent]]] = [plug("1.4", 1, "a"), plug("2.1", 2, "b")]

        def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
            if self.sticks:
                source.inject(*self.sticks.pop(0))
                return "\n"
            return "done\n"

    monkeypatch.setattr("sys.stdin", Stdin())
    out = tmp_path / "station.yaml"
    assert main(["slots", "learn", "-o", str(out)]) == 0
    assert load_layers([out]).hotplug.slots == {ROOT + "1.4": 1, ROOT + "2.1": 2}
    assert "2 slots written" in capsys.readouterr().out
    state = tmp_path / "state"
    assert main(["slots", "show", "-c", str(out), "--state-dir", str(state)]) == 0
    assert "slot  2  configured  " + ROOT + "2.1" in capsys.readouterr().out
    # numbers the station remembered itself are listed too; a clash with the config is not
    SlotStore(state).save({ROOT + "3.3": 3, ROOT + "3.1": 1, ROOT + "3.9": 9})
    assert main(["slots", "show", "-c", str(out), "--state-dir", str(state)]) == 0
    shown = capsys.readouterr().out
    assert "slot  3  remembered  " + ROOT + "3.3" in shown
    assert ROOT + "3.1" not in shown
    assert "slots above 8 are not on the screen: not loaded there" in shown


UHUBCTL_OUTPUT = """\
Current status for hub 2 [1d6b:0003 Linux 6.1.0-rpi7-rpi-v8 xhci-hcd xHCI Host Controller \
0000:01:00.0, USB 3.00, 4 ports, ppps]
  Port 1: 02a0 power 5gbps Rx.Detect
Current status for hub 1-1 [2109:3431 USB2.0 Hub, USB 2.10, 4 ports, ppps]
  Port 1: 0503 power highspeed enable connect [0781:5567 SanDisk Cruzer Blade 4C530001234567891234]
  Port 2: 0100 power
Current status for hub 1-1.3 [1a40:0101 USB 2.0 Hub, USB 2.00, 4 ports, ganged]
  Port 1: 0100 power
"""


def test_parse_uhubctl_status() -> None:
    hubs = uhubctl.parse_status(UHUBCTL_OUTPUT)
    assert [(h.location, h.usb_id, h.ports, h.ppps) for h in hubs] == [
        ("2", "1d6b:0003", 4, True),
        ("1-1", "2109:3431", 4, True),
        ("1-1.3", "1a40:0101", 4, False),
    ]


def completed(
    args: Sequence[str], code: int = 0, out: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(list(args), code, out, "")


def test_detect_and_power_off_with_a_fake_runner() -> None:
    calls: list[list[str]] = []

    def runner(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        calls.append(list(args))
        return completed(args, out=UHUBCTL_OUTPUT)

    hubs = uhubctl.detect(runner)
    assert [h.location for h in hubs] == ["2", "1-1"]  # the ganged hub cannot
    assert uhubctl.hub_port("1-1.2") == ("1-1", 2)
    assert uhubctl.hub_port("2-3") == ("2", 3)
    assert uhubctl.power_off("1-1.2", hubs, runner) is True
    assert calls[-1] == ["uhubctl", "-l", "1-1", "-p", "2", "-a", "off"]
    assert uhubctl.power_off("1-1.3.1", hubs, runner) is False  # ganged hub: unsupported
    with pytest.raises(uhubctl.HubPowerError):
        uhubctl.power_off("1-1.1", hubs, lambda a: completed(a, code=1))
    assert uhubctl.detect(lambda a: completed(a, code=1)) == []


def test_detect_without_uhubctl_installed() -> None:
    assert uhubctl.detect(program="uhubctl-not-installed-here") == []


def test_learn_thread_is_gone_after_learning() -> None:
    before = threading.active_count()
    source = FakeSource()
    _, ask = scripted(source, [plug("1.1", 1, "a")])
    learn_slots(source, ask, lambda m: None, count=1, settle=0.5)  # type: ignore[arg-type]
    assert threading.active_count() == before
