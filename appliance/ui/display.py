"""Frames onto the OLED, from the screen thread: render, shift, dim.

:func:`make_device` picks the luma device from ``ui.display`` (``ssd1306``
or ``sh1106`` over I²C, or luma's ``dummy``). :class:`ScreenThread` is the
only code that renders: observers hand it the latest snapshot with
:meth:`~ScreenThread.show` (never blocks), and it draws at most every
``min_interval`` seconds, so neither the station thread nor a button
callback ever waits on the display or on disk.

Against burn-in: after ``ui.dim_after`` seconds without a button press or
a change on screen the contrast drops; every ``ui.shift_every`` seconds the
picture moves by one pixel along a small square (screens leave the last
column and row dark for this).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageChops

from appliance.config.schema import DisplayConfig, UiConfig
from appliance.station.machine import Snapshot
from appliance.ui.messages import catalogue
from appliance.ui.screens import HEIGHT, WIDTH, Frame, render

log = logging.getLogger(__name__)

SHIFTS = ((0, 0), (1, 0), (1, 1), (0, 1))
BRIGHT, DIM = 0xCF, 0x08


def make_device(config: DisplayConfig) -> Any:
    """The luma device for ``config``; ``dummy`` needs no hardware."""
    if config.driver == "dummy":
        from luma.core.device import dummy

        return dummy(width=WIDTH, height=HEIGHT, mode="1")
    from luma.core.interface.serial import i2c

    serial = i2c(port=config.i2c_port, address=config.i2c_address)
    if config.driver == "sh1106":
        from luma.oled.device import sh1106

        return sh1106(serial, width=WIDTH, height=HEIGHT)
    from luma.oled.device import ssd1306

    return ssd1306(serial, width=WIDTH, height=HEIGHT)


def shift_for(now: float, every: float) -> tuple[int, int]:
    if every <= 0:
        return (0, 0)
    return SHIFTS[int(now // every) % len(SHIFTS)]


def compose(frame: Image.Image, offset: tuple[int, int]) -> Image.Image:
    """The frame moved by ``offset``; nothing is lost (screens keep the margin dark)."""
    if offset == (0, 0):
        return frame
    out = Image.new("1", frame.size, 0)
    out.paste(frame, offset)
    return out


class ScreenThread:
    """Renders the latest snapshot on its own thread and writes it to ``device``."""

    def __init__(
        self,
        device: Any,
        config: UiConfig,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = 0.05,
        on_frame: Callable[[Frame, Image.Image], None] | None = None,
    ) -> None:
        self.device = device
        self.messages = catalogue(config.language)
        self.dim_after = config.dim_after
        self.shift_every = config.shift_every
        self.clock = clock
        self.min_interval = min_interval
        self.on_frame = on_frame
        self._latest: Snapshot | None = None
        self._version = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._last_image: Image.Image | None = None
        self._last_change = clock()
        self._dimmed = False
        self.frames = 0

    @property
    def dimmed(self) -> bool:
        return self._dimmed

    def dim(self) -> None:
        """Drop the contrast for good (a last frame left on a halted Pi: no burn-in)."""
        self._set_dim(True)

    def show(self, snapshot: Snapshot) -> None:
        """Hand over a snapshot (from any thread); returns at once."""
        with self._cond:
            self._latest = snapshot
            self._version += 1
            self._cond.notify()

    def start(self) -> ScreenThread:
        self._thread = threading.Thread(target=self._run, name="screen", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        seen = 0
        while True:
            with self._cond:
                while not self._stop and self._version == seen:
                    self._cond.wait(timeout=1.0)
                    if self._version == seen:
                        break  # periodic redraw for dimming and shifting
                if self._stop:
                    return
                seen = self._version
                snapshot = self._latest
            if snapshot is not None:
                started = time.monotonic()
                self.draw(snapshot)
                activity = snapshot.last_activity
                # at most one frame per min_interval for progress updates, but a
                # button press is drawn at once (the operator is waiting for it)
                with self._cond:
                    self._cond.wait_for(
                        lambda a=activity: (
                            self._stop  # type: ignore[misc]
                            or (self._latest is not None and self._latest.last_activity != a)
                        ),
                        timeout=max(0.0, self.min_interval - (time.monotonic() - started)),
                    )

    def draw(self, snapshot: Snapshot) -> Image.Image:
        """Render one frame and put it on the device (also callable directly, in tests)."""
        frame = render(snapshot, self.messages)
        now = self.clock()
        if (
            self._last_image is None
            or ImageChops.difference(
                self._last_image.convert("L"), frame.image.convert("L")
            ).getbbox()
        ):
            self._last_change = now
        self._last_image = frame.image
        # the station and the screen share one clock (monotonic, or the simulator's)
        idle = max(0.0, now - max(self._last_change, snapshot.last_activity))
        self._set_dim(self.dim_after > 0 and idle >= self.dim_after)
        image = compose(frame.image, shift_for(now, self.shift_every))
        self.device.display(image)
        self.frames += 1
        if self.on_frame is not None:
            self.on_frame(frame, image)
        return image

    def _set_dim(self, dim: bool) -> None:
        if dim == self._dimmed:
            return
        self._dimmed = dim
        try:
            self.device.contrast(DIM if dim else BRIGHT)
        except Exception:  # a display without contrast control still works
            log.debug("contrast not supported by %r", self.device)
