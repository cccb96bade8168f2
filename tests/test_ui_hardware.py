"""Buttons (gpiozero MockFactory), LEDs/buzzer, and the display thread (luma dummy)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory
from PIL import Image

from appliance.config.schema import ButtonsConfig, DisplayConfig, UiConfig
from appliance.station import events as ev
from appliance.ui.buttons import Buttons, GpioIndicator
from appliance.ui.display import ScreenThread, compose, make_device, shift_for
from appliance.ui.samples import SAMPLES


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = old


def wait_for(pred: object, timeout: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_buttons_post_events(factory: MockFactory) -> None:
    posted: list[ev.Event] = []
    config = ButtonsConfig(start=5, cancel=6, menu=13, debounce=0.0, hold_time=1.0)
    buttons = Buttons(config, posted.append)
    start, cancel, menu = (factory.pin(n) for n in (5, 6, 13))
    start.drive_low()
    start.drive_high()
    cancel.drive_low()
    cancel.drive_high()
    menu.drive_low()
    menu.drive_high()  # short press: cycles
    wait_for(lambda: len(posted) == 3)
    assert [e.kind for e in posted] == ["start_pressed", "cancel_pressed", "menu_pressed"]
    buttons.close()


def test_buttons_use_pull_ups(factory: MockFactory) -> None:
    buttons = Buttons(ButtonsConfig(start=5, cancel=6, menu=13), lambda e: None)
    assert buttons.start.pull_up and buttons.menu.pull_up
    assert not buttons.start.is_pressed  # idle high through the pull-up
    buttons.close()


def test_holding_menu_shuts_down_without_cycling(factory: MockFactory) -> None:
    posted: list[ev.Event] = []
    config = ButtonsConfig(start=5, cancel=6, menu=13, debounce=0.0, hold_time=1.0)
    buttons = Buttons(config, posted.append)
    buttons.menu.hold_time = 0.1  # the config floor is 1 s; keep the test short
    pin = factory.pin(13)
    pin.drive_low()
    wait_for(lambda: posted)
    pin.drive_high()
    time.sleep(0.05)
    assert [e.kind for e in posted] == ["menu_held"]
    buttons.close()


def test_debounce_reaches_the_pins(factory: MockFactory) -> None:
    """gpiozero debounces in the pin driver (mock pins do not simulate it): check it is set."""
    buttons = Buttons(ButtonsConfig(start=5, cancel=6, menu=13, debounce=0.2), lambda e: None)
    assert [factory.pin(n).bounce for n in (5, 6, 13)] == [0.2, 0.2, 0.2]
    buttons.close()
    buttons.close()  # idempotent


def test_leds_and_buzzer(factory: MockFactory) -> None:
    indicator = GpioIndicator(UiConfig(leds=[20, 21, 26], buzzer=19))
    indicator.show(["done", "failed", "empty"])
    assert indicator.leds[0].is_lit
    wait_for(lambda: factory.pin(21).state in (0, 1) and len(factory.pin(21).states) > 2)
    assert not indicator.leds[2].is_lit
    indicator.beep("failed")
    wait_for(lambda: len(factory.pin(19).states) >= 6)
    indicator.close()


def test_shift_keeps_every_pixel() -> None:
    frame = Image.new("1", (128, 64), 0)
    frame.putpixel((126, 62), 1)
    offsets = {shift_for(t, 60.0) for t in range(0, 240, 60)}
    assert offsets == {(0, 0), (1, 0), (1, 1), (0, 1)}
    moved = compose(frame, (1, 1))
    assert moved.getpixel((127, 63)) == 1


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_screen_thread_draws_on_dummy_and_dims() -> None:
    device = make_device(DisplayConfig(driver="dummy"))
    clock = FakeClock()
    screen = ScreenThread(device, UiConfig(dim_after=60.0, shift_every=0), clock=clock)
    snap = SAMPLES["ready"][1]()
    screen.draw(snap)
    assert device.image.getbbox() is not None and not screen.dimmed
    clock.t = snap.last_activity + 61.0
    screen.draw(snap)  # same picture, no button for 61 s
    assert screen.dimmed
    screen.draw(SAMPLES["grid"][1]())  # something changed
    assert not screen.dimmed


def test_screen_thread_renders_latest_snapshot() -> None:
    device = make_device(DisplayConfig(driver="dummy"))
    frames: list[str] = []
    screen = ScreenThread(device, UiConfig(), on_frame=lambda f, i: frames.append(f.name))
    screen.start()
    screen.show(SAMPLES["splash"][1]())
    screen.show(SAMPLES["grid"][1]())
    wait_for(lambda: frames and frames[-1] == "grid")
    screen.close()
