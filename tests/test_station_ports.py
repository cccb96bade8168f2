"""Numbering the ports on the station: MENU's last page, then sticks in plug order.

The rig is the real chain below the screen: a fake hub (udev events) -> the
hotplug monitor with its slot map remembered in a temporary state directory
-> ``from_hotplug`` -> the station -> the runner, whose ``slot_numbers`` is
the monitor's slot map (as ``flashstation run`` wires it) and whose loader
is the simulated one (so a batch started by mistake would be seen).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.config.schema import HotplugConfig
from appliance.hotplug.factory import make_monitor
from appliance.hotplug.fake import ID_PATH_ROOT, FakeHub
from appliance.hotplug.slots import STORE_NAME
from appliance.station import events as ev
from appliance.station.adapters import from_hotplug
from appliance.station.effects import ForgetPorts, NumberPort, StartBatch
from appliance.station.fakes import GB, SimLoader
from appliance.station.machine import Station
from appliance.station.runtime import StationRunner
from appliance.station.states import PortsState, SlotState, StationState
from appliance.ui.messages import catalogue
from appliance.ui.screens import render

SALT = b"ports-test-salt"
TIERS = (("small", 1 * GB, 100_000_000),)


def key(port: str) -> str:
    return f"{ID_PATH_ROOT}.{port}"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Rig:
    """One boot of a station with a fake hub; ``state_dir`` survives between rigs."""

    def __init__(
        self,
        state_dir: Path,
        configured: dict[str, int] | None = None,
        slots: int = 4,
        feeding: str = "auto",
    ):
        configured = {key(p): n for p, n in (configured or {}).items()}
        self.clock = Clock()
        self.station = Station(
            slots=slots,
            feeding=feeding,
            batch_window=0.0,
            clock=self.clock,
            fixed_slots=frozenset(configured.values()),
        )
        self.loader = SimLoader(tiers=TIERS)
        self.runner = StationRunner(self.station, self.loader)
        self.hub = FakeHub()
        self.monitor = make_monitor(
            HotplugConfig(settle_time=0, slots=configured),
            from_hotplug(self.station.post),
            SALT,
            source=self.hub.source,
            state_dir=state_dir,
        )
        self.runner.slot_numbers = self.monitor.state.slots
        self.monitor.start()
        self.runner.open()
        self.raw = 0
        self.drain()

    def drain(self) -> None:
        assert self.monitor.wait_processed(self.raw)
        self.runner.drain()

    def content(self) -> None:
        for e in (ev.ContentInserted("Pack", "1", TIERS), ev.ContentVerified()):
            self.station.post(e)
        self.drain()

    def plug(self, port: str) -> None:
        self.raw += len(self.hub.plug(port, size=8 * GB))
        self.drain()

    def yank(self, port: str) -> None:
        self.raw += len(self.hub.yank(port))
        self.drain()

    def press(self, *events: ev.Event) -> None:
        for e in events:
            self.station.post(e)
            self.drain()

    def to_ports_page(self) -> None:
        for _ in range(40):
            if self.station.view == "ports":
                return
            self.press(ev.MenuPressed())
        raise AssertionError("no ports page")

    def states(self) -> list[SlotState]:
        return [s.state for s in self.station.snapshot().slots]

    def close(self) -> None:
        self.runner.close()
        self.monitor.stop()


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.close()


def boot(rigs: list[Rig], state_dir: Path, **kwargs: object) -> Rig:
    rig = Rig(state_dir, **kwargs)  # type: ignore[arg-type]
    rigs.append(rig)
    return rig


def test_numbering_follows_plug_order_and_survives_a_restart(
    tmp_path: Path, rigs: list[Rig]
) -> None:
    first = boot(rigs, tmp_path)
    first.content()
    first.plug("1.1")  # plug order before numbering: 1.1, 1.2
    first.plug("1.2")
    assert first.loader.batches  # ordinary loading
    first.loader.advance(10_000)
    first.drain()
    first.yank("1.1")
    first.yank("1.2")
    # the operator's order is different: 1.4, 1.2, 1.3, 1.1
    first.to_ports_page()
    assert first.station.snapshot().ports_blocked == ""
    batches = len(first.loader.batches)
    first.press(ev.StartPressed())
    assert first.station.ports is PortsState.NUMBERING
    assert render(first.station.snapshot(), catalogue("en")).name == "numbering"
    assert first.monitor.state.slots.remembered() == {}  # forgotten at once
    for n, port in enumerate(("1.4", "1.2", "1.3"), 1):
        assert first.station.snapshot().next_port == n
        first.plug(port)
        assert first.station.snapshot().ports_note == ("saved", n)
        first.yank(port)  # one stick walked from port to port
    first.plug("1.1")  # the last slot: numbering ends by itself
    assert first.station.ports is PortsState.OFF
    assert first.station.snapshot().ports_note == ("done", 4)
    assert len(first.loader.batches) == batches  # nothing was loaded or wiped
    assert first.states() == [SlotState.EMPTY] * 3 + [SlotState.NUMBERED]
    stored = json.loads((tmp_path / STORE_NAME).read_text())["slots"]
    assert stored == {key("1.4"): 1, key("1.2"): 2, key("1.3"): 3, key("1.1"): 4}
    first.yank("1.1")
    assert first.states() == [SlotState.EMPTY] * 4
    # the numbering stick, plugged in again, is an ordinary stick now
    first.plug("1.1")
    assert first.loader.batches[-1].jobs[0].slot == 4
    first.close()
    rigs.remove(first)

    second = boot(rigs, tmp_path)  # restart: plug order no longer matters
    second.content()
    for port, slot in (("1.3", 3), ("1.1", 4), ("1.4", 1)):
        second.plug(port)
        assert second.loader.batches[-1].jobs[0].slot == slot


def test_no_stick_is_loaded_while_numbering(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = boot(rigs, tmp_path, feeding="button")
    rig.content()
    rig.to_ports_page()
    rig.press(ev.StartPressed())
    rig.plug("1.1")
    rig.plug("1.2")
    # START ends numbering; it does not start the two sticks, and they stay unqueued
    rig.press(ev.StartPressed())
    assert rig.station.ports is PortsState.OFF
    rig.press(ev.StartPressed(), ev.MenuPressed(), ev.StartPressed())
    rig.clock.t += 60
    rig.press(ev.Tick())
    assert rig.loader.batches == []
    assert not any(isinstance(e, StartBatch) for e in rig.runner.effects_log)
    assert rig.states()[:2] == [SlotState.NUMBERED, SlotState.NUMBERED]
    snap = rig.station.snapshot()
    assert snap.ports_blocked == "sticks"  # numbering again needs them out first
    assert [e for e in rig.runner.effects_log if isinstance(e, ForgetPorts | NumberPort)] == [
        ForgetPorts(),
        NumberPort(key("1.1"), 1),
        NumberPort(key("1.2"), 2),
    ]


def test_not_available_while_loading_or_with_sticks_in(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = boot(rigs, tmp_path)
    rig.content()
    rig.plug("1.1")  # auto feeding: it loads
    assert rig.station.loading()
    rig.to_ports_page()
    assert rig.station.snapshot().ports_blocked == "busy"
    assert render(rig.station.snapshot(), catalogue("ko")).name == "ports"
    rig.press(ev.StartPressed())
    assert rig.station.ports is PortsState.OFF
    assert rig.monitor.state.slots.remembered() == {key("1.1"): 1}  # nothing forgotten
    rig.loader.advance(10_000)
    rig.drain()
    assert rig.states()[0] is SlotState.DONE
    assert rig.station.snapshot().ports_blocked == "sticks"
    rig.press(ev.StartPressed())
    assert rig.station.ports is PortsState.OFF
    rig.yank("1.1")
    assert rig.station.snapshot().ports_blocked == ""


def test_configured_ports_keep_their_numbers(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = boot(rigs, tmp_path, configured={"1.9": 2})
    rig.content()
    rig.to_ports_page()
    rig.press(ev.StartPressed())
    rig.plug("1.1")
    assert rig.station.snapshot().next_port == 3  # 2 is configured
    rig.plug("1.9")
    assert rig.station.snapshot().ports_note == ("fixed", 2)
    assert rig.states()[:2] == [SlotState.NUMBERED, SlotState.NUMBERED]  # both: take it out
    rig.plug("2.1")  # port 1 of a second hub on port 2
    rig.plug("1.3")
    assert rig.station.ports is PortsState.OFF  # 1, 3, 4 given: all slots numbered
    slots = rig.monitor.state.slots
    assert slots.as_dict() == {key("1.9"): 2, key("1.1"): 1, key("2.1"): 3, key("1.3"): 4}
    assert rig.loader.batches == []


def test_the_same_port_twice_and_menu_to_finish(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = boot(rigs, tmp_path)
    rig.to_ports_page()  # no content needed
    rig.press(ev.StartPressed())
    rig.plug("1.2")
    rig.yank("1.2")
    rig.plug("1.2")
    snap = rig.station.snapshot()
    assert snap.ports_note == ("already", 1) and snap.next_port == 2
    assert rig.states()[0] is SlotState.NUMBERED
    rig.press(ev.MenuPressed())  # MENU (or CANCEL) finishes as well
    assert rig.station.ports is PortsState.OFF and rig.station.view == "ports"
    assert rig.monitor.state.slots.remembered() == {key("1.2"): 1}
    # a port not numbered then gets the next free number when first seen
    rig.yank("1.2")
    rig.content()
    rig.plug("1.3")
    assert rig.loader.batches[-1].jobs[0].slot == 2


def test_a_port_beyond_the_screen_is_said_not_loaded(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = boot(rigs, tmp_path, slots=2)
    rig.content()
    for port in ("1.1", "1.2", "1.3"):
        rig.plug(port)
    snap = rig.station.snapshot()
    assert snap.alert is not None and (snap.alert.code, snap.alert.slot) == ("beyond", 3)
    assert render(snap, catalogue("en")).name == "error_rejected"
    assert {j.slot for b in rig.loader.batches for j in b.jobs} == {1, 2}
    # numbering the ports: the third port can become slot 1
    rig.loader.advance(10_000)
    rig.drain()
    for port in ("1.1", "1.2", "1.3"):
        rig.yank(port)
    rig.press(ev.MenuPressed())  # the alert goes
    rig.to_ports_page()
    rig.press(ev.StartPressed())
    rig.plug("1.3")
    rig.yank("1.3")
    rig.plug("1.1")
    assert rig.monitor.state.slots.remembered() == {key("1.3"): 1, key("1.1"): 2}


def test_shutdown_ends_numbering(tmp_path: Path, rigs: list[Rig]) -> None:
    rig = boot(rigs, tmp_path)
    rig.to_ports_page()
    rig.press(ev.StartPressed())
    rig.press(ev.MenuHeld())
    assert rig.station.ports is PortsState.OFF
    assert rig.station.state is StationState.SHUTTING_DOWN
    history = [h for h in rig.station.history if h[1] == "ports"]
    assert [h[3] for h in history] == ["number_ports", "numbering_done"]


def test_buttons_drive_the_numbering(tmp_path: Path, rigs: list[Rig]) -> None:
    """The same flow from gpiozero's mock pins: MENU to the page, START, plug, START."""
    import time

    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from appliance.config.schema import ButtonsConfig
    from appliance.ui.buttons import Buttons

    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        rig = boot(rigs, tmp_path)
        buttons = Buttons(
            ButtonsConfig(start=5, cancel=6, menu=13, debounce=0.0, hold_time=5.0),
            rig.station.post,
        )
        start, menu = Device.pin_factory.pin(5), Device.pin_factory.pin(13)

        def press(pin: object) -> None:
            before = rig.station.pending()
            pin.drive_low()  # type: ignore[attr-defined]
            pin.drive_high()  # type: ignore[attr-defined]
            end = time.monotonic() + 2
            while rig.station.pending() <= before and time.monotonic() < end:
                time.sleep(0.005)
            rig.drain()

        try:
            while rig.station.view != "ports":
                press(menu)
            press(start)
            assert rig.station.ports is PortsState.NUMBERING
            rig.plug("1.2")
            press(start)
            assert rig.station.ports is PortsState.OFF
            assert rig.monitor.state.slots.remembered() == {key("1.2"): 1}
        finally:
            buttons.close()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


def test_event_api_second_lun_and_all_slots_configured() -> None:
    """Without hotplug: a card reader's second LUN is no replug; all-configured refuses."""
    station = Station(slots=3, batch_window=0.0, fixed_slots=frozenset({3}))
    station.apply(ev.Started())
    while station.view != "ports":
        station.apply(ev.MenuPressed())
    assert station.apply(ev.StartPressed()) == [ForgetPorts()]
    effects = station.apply(ev.DriveArrived(7, 8 * GB, port="p1"))
    assert NumberPort("p1", 1) in effects
    assert station.apply(ev.DriveArrived(7, 8 * GB, port="p1")) == []  # its second LUN
    assert station.snapshot().ports_note == ("saved", 1)
    assert station.apply(ev.DriveArrived(8, 8 * GB)) == []  # no USB port: nothing to number
    effects = station.apply(ev.DeviceRejected(9, "not_storage", port="p2"))  # a keyboard
    assert NumberPort("p2", 2) in effects
    assert station.ports is PortsState.OFF  # 1 and 2 given, 3 configured: done
    assert station.snapshot().ports_note == ("done", 2)
    assert station.snapshot().alert is None

    full = Station(slots=2, fixed_slots=frozenset({1, 2}))
    full.apply(ev.Started())
    while full.view != "ports":
        full.apply(ev.MenuPressed())
    assert full.snapshot().ports_blocked == "fixed"
    assert full.apply(ev.StartPressed()) == []
    assert full.ports is PortsState.OFF


def test_the_hosted_station_wires_numbering_to_its_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``flashstation run``'s build: the monitor remembers in the state dir, the runner
    renumbers that monitor's map, configured slots are skipped; a restart keeps it."""
    import time

    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from appliance.commands.hosting import station as station_host
    from appliance.config.schema import DisplayConfig, StationConfig, StationSection, UiConfig

    hubs: list[FakeHub] = []

    def fake_monitor(
        config: HotplugConfig,
        cb: Any,
        salt: bytes,
        is_content: Any = None,
        state_dir: Path | None = None,
    ) -> Any:
        hub = FakeHub()
        hubs.append(hub)
        return make_monitor(
            config, cb, salt, is_content=is_content, source=hub.source, state_dir=state_dir
        )

    monkeypatch.setattr(station_host, "make_monitor", fake_monitor)
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    state = tmp_path / "state"
    state.mkdir()
    config = StationConfig(
        station=StationSection(feeding="button", slots=4),
        ui=UiConfig(display=DisplayConfig(driver="dummy")),
        hotplug=HotplugConfig(settle_time=0, slots={key("1.9"): 1}),
    )

    def boot() -> tuple[Any, Any, FakeHub]:
        host, hardware = station_host.build(config, state)
        hardware.start(host.runner)
        host.runner.open()
        host.runner.drain()
        return host, hardware, hubs[-1]

    def settle(host: Any, hardware: Any, raw: int) -> None:
        assert hardware.monitor.wait_processed(raw)
        time.sleep(0.05)
        host.runner.drain()

    try:
        host, hardware, hub = boot()
        station = host.runner.station
        while station.view != "ports":
            station.post(ev.MenuPressed())
            host.runner.drain()
        station.post(ev.StartPressed())
        host.runner.drain()
        assert station.ports is PortsState.NUMBERING and station.snapshot().next_port == 2
        raw = len(hub.plug("1.3", size=8 * GB))
        settle(host, hardware, raw)
        assert station.snapshot().ports_note == ("saved", 2)
        stored = json.loads((state / STORE_NAME).read_text())["slots"]
        assert stored == {key("1.3"): 2}
        hardware.stop()
        host.runner.close()

        host, hardware, hub = boot()  # restart
        station = host.runner.station
        raw = len(hub.plug("1.1", size=8 * GB)) + len(hub.plug("1.3", size=8 * GB))
        settle(host, hardware, raw)
        states = [s.state for s in station.snapshot().slots]
        assert states == [SlotState.EMPTY, SlotState.DETECTED, SlotState.DETECTED, SlotState.EMPTY]
        hardware.stop()
        host.runner.close()
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


def test_numbering_in_the_simulator(tmp_path: Path) -> None:
    """``flashstation demo``: its hub's ports are numbered like a station's (not saved)."""
    from appliance.ui.simulator import Simulator

    sim = Simulator(workdir=tmp_path, slots=4, batch_window=0.5, speed=1e9)
    try:
        sim.insert_content()
        sim.advance(5)
        while sim.station.view != "ports":
            sim.press("menu")
            sim.advance(0.1)
        sim.press("start")
        sim.advance(0.1)
        assert sim.frame().name == "numbering"
        for port in (3, 1):  # the operator's labels: port 3 is slot 1, port 1 is slot 2
            sim.plug(port, 8 * GB)
            sim.advance(0.5)
            sim.pull(port)
            sim.advance(0.5)
        sim.press("start")
        sim.advance(1)
        assert sim.sim_loader.batches == []
        sim.plug(3, 8 * GB)
        sim.plug(1, 16 * GB)
        sim.advance(30)
        snap = sim.station.snapshot()
        assert [str(s.state) for s in snap.slots[:2]] == ["done", "done"]
        assert (snap.slot(1).capacity, snap.slot(2).capacity) == (8 * GB, 16 * GB)
        sim.plug(2, 8 * GB)  # not numbered then: the next free number
        sim.advance(0.5)
        assert str(sim.station.snapshot().slot(3).state) != "empty"
    finally:
        sim.close()


def test_start_behind_a_config_error_screen_does_not_number() -> None:
    station = Station(slots=2)
    station.apply(ev.ConfigError("/boot/firmware/flashstation.yaml", 3, "bad"))
    assert station.state is StationState.ERROR
    while station.view != "ports":  # invisible: the error screen stays
        station.apply(ev.MenuPressed())
    assert station.apply(ev.StartPressed()) == []
    assert station.ports is PortsState.OFF
