"""START, CANCEL and MENU as gpiozero buttons that only post station events.

Buttons are wired from a GPIO to ground, so they use the internal pull-ups
(``pull_up=True``) and gpiozero's software debounce (``bounce_time``). A
MENU press cycles screens on *release*, unless MENU was held for
``hold_time``: then it posts :class:`MenuHeld` (safe shutdown) and the
release does nothing, so a long hold never also turns the page. Callbacks
run on gpiozero's threads; they do nothing but :meth:`Station.post`.

Tests use gpiozero's ``MockFactory`` (``pin_factory=MockFactory()``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from gpiozero import LED, Button, Buzzer

from appliance.config.schema import ButtonsConfig, UiConfig
from appliance.station import events as ev
from appliance.station.ports import Post

log = logging.getLogger(__name__)


class Buttons:
    """The three buttons; ``close()`` releases the pins (idempotent)."""

    def __init__(self, config: ButtonsConfig, post: Post, pin_factory: Any = None) -> None:
        self._post = post
        self._held = False
        self._buttons: list[Button] = []
        bounce = config.debounce or None
        try:
            self.start = self._button(config.start, bounce, None, pin_factory)
            self.cancel = self._button(config.cancel, bounce, None, pin_factory)
            self.menu = self._button(config.menu, bounce, config.hold_time, pin_factory)
        except BaseException:
            self.close()
            raise
        self.start.when_pressed = lambda: post(ev.StartPressed())
        self.cancel.when_pressed = lambda: post(ev.CancelPressed())
        self.menu.when_pressed = self._menu_down
        self.menu.when_held = self._menu_held
        self.menu.when_released = self._menu_up

    def _button(self, pin: int, bounce: float | None, hold: float | None, factory: Any) -> Button:
        kwargs: dict[str, Any] = {"pull_up": True, "bounce_time": bounce, "pin_factory": factory}
        if hold is not None:
            kwargs["hold_time"] = hold
        button = Button(pin, **kwargs)
        self._buttons.append(button)
        return button

    def _menu_down(self) -> None:
        self._held = False

    def _menu_held(self) -> None:
        self._held = True
        log.info("MENU held: shutting down")
        self._post(ev.MenuHeld())

    def _menu_up(self) -> None:
        if not self._held:
            self._post(ev.MenuPressed())
        self._held = False

    def close(self) -> None:
        for button in self._buttons:
            button.close()
        self._buttons.clear()


class GpioIndicator:
    """Optional per-slot LEDs and buzzer (``ui.leds``, ``ui.buzzer``); implements ports.Indicator.

    LED per slot: on when done, fast blink when failed/removed/refused, slow
    blink while working, off otherwise. The buzzer gives one short beep for
    done, three for a failure, two when the content is ready.
    """

    BLINK: ClassVar[dict[str, tuple[float, float]]] = {
        "failed": (0.15, 0.15),
        "removed": (0.15, 0.15),
        "rejected": (0.15, 0.15),
    }
    WORKING: ClassVar[frozenset[str]] = frozenset({"probing", "wiping", "loading", "verifying"})

    def __init__(self, config: UiConfig, pin_factory: Any = None) -> None:
        self.leds = [LED(pin, pin_factory=pin_factory) for pin in config.leds]
        self.buzzer = (
            Buzzer(config.buzzer, pin_factory=pin_factory) if config.buzzer is not None else None
        )
        self._shown: list[str] = []

    def show(self, states: list[str]) -> None:
        if states == self._shown:
            return
        for i, led in enumerate(self.leds):
            state = states[i] if i < len(states) else "empty"
            if i < len(self._shown) and self._shown[i] == state:
                continue
            if state in ("done", "numbered"):  # take it out (numbered: its port has a number)
                led.on()
            elif state in self.BLINK:
                led.blink(*self.BLINK[state])
            elif state in self.WORKING:
                led.blink(0.5, 1.0)
            else:
                led.off()
        self._shown = list(states)

    def beep(self, what: str) -> None:
        if self.buzzer is None:
            return
        count = {"done": 1, "ready": 2, "failed": 3}.get(what, 1)
        self.buzzer.beep(on_time=0.08, off_time=0.08, n=count, background=True)

    def close(self) -> None:
        for led in self.leds:
            led.close()
        if self.buzzer is not None:
            self.buzzer.close()
        self.leds = []
        self.buzzer = None
