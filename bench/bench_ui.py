"""Responsiveness: time from a button press to the next frame on the OLED, while writing.

The real station thread, the real screen thread (luma ``dummy`` device) and
the real engine writing 16 image-file sticks (throttled like USB sticks, full
wipe and read-back verify). A "button press" is what a gpiozero callback
does: post MenuPressed from another thread. Measured: from the post to the
moment the screen thread has put the changed frame on the device. Baseline,
in the same run: the same presses with nothing writing. Goal: p99 <= 100 ms.

Run: ``make bench`` or ``.venv/bin/python bench/bench_ui.py [presses] [MiB per stick]``.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops

from appliance.config.schema import DisplayConfig, UiConfig
from appliance.station import events as ev
from appliance.ui.display import ScreenThread, make_device
from appliance.ui.simulator import Simulator, WallClock

MiB = 1024 * 1024
SLOTS = 16


class FrameWatch:
    """Remembers when each frame reached the device and what it showed."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.last: Image.Image | None = None
        self.changed_at = 0.0
        self.count = 0

    def on_frame(self, frame: Any, image: Image.Image) -> None:
        with self.cond:
            if (
                self.last is None
                or ImageChops.difference(self.last.convert("L"), image.convert("L")).getbbox()
            ):
                self.changed_at = time.perf_counter()
                self.count += 1
            self.last = image
            self.cond.notify_all()

    def wait_change(self, after: int, timeout: float = 2.0) -> float | None:
        end = time.perf_counter() + timeout
        with self.cond:
            while self.count <= after:
                left = end - time.perf_counter()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.changed_at


def measure(presses: int, stick_mib: int, writing: bool) -> tuple[list[float], int, bool]:
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        sim = Simulator(
            slots=SLOTS,
            batch_window=0.1,
            speed=12e6,
            verify_seconds=0.1,
            workdir=Path(tmp),
            engine=True,
            clock=WallClock(),
        )
        watch = FrameWatch()
        screen = ScreenThread(
            make_device(DisplayConfig(driver="dummy")),
            UiConfig(shift_every=0, dim_after=0),
            clock=time.monotonic,
            on_frame=watch.on_frame,
        )
        sim.runner.observers.append(screen.show)
        screen.start()
        sim.insert_content()
        ticker_stop = threading.Event()

        def ticker() -> None:  # the simulated content SSD and hotplug, in real time
            while not ticker_stop.is_set():
                sim.tick(drain=False)
                time.sleep(0.05)

        # the station runs its own thread; the ticker only feeds simulated hardware
        sim.runner.run_in_thread()
        feeder = threading.Thread(target=ticker, daemon=True)
        feeder.start()
        time.sleep(0.5)
        if writing:
            for slot in range(1, SLOTS + 1):
                sim.plug(slot, stick_mib * MiB)
            time.sleep(1.5)  # the batch starts and every stick is writing
        latencies = []
        rng = random.Random(1)
        for _ in range(presses):
            time.sleep(rng.uniform(0.06, 0.14))
            with watch.cond:
                seen = watch.count
            pressed = time.perf_counter()
            sim.station.post(ev.MenuPressed())  # what the gpiozero callback does
            shown = watch.wait_change(seen)
            if shown is not None:
                latencies.append(shown - pressed)
        still_writing = writing and any(
            str(s.state) in ("probing", "loading", "verifying")
            for s in sim.station.snapshot().slots
        )
        ticker_stop.set()
        feeder.join()
        screen.close()
        sim.close()
        return latencies, presses - len(latencies), still_writing


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


def main() -> None:
    presses = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    stick = int(sys.argv[2]) if len(sys.argv) > 2 else 192
    idle, idle_lost, _ = measure(presses, stick, writing=False)
    busy, busy_lost, writing = measure(presses, stick, writing=True)
    print(f"button press -> changed frame on the device, {presses} MENU presses each")
    print(f"{'':28}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'lost':>6}")
    for name, values, lost in (
        ("idle (baseline)", idle, idle_lost),
        (f"{SLOTS} sticks writing", busy, busy_lost),
    ):
        print(
            f"{name:28}{pct(values, 50):9.1f}{pct(values, 99):9.1f}{max(values) * 1000:9.1f}{lost:6d}"
        )
    print(
        f"ratio busy/idle: p50 {pct(busy, 50) / pct(idle, 50):.2f}x, p99 {pct(busy, 99) / pct(idle, 99):.2f}x"
    )
    print(f"sticks still writing at the end of the presses: {writing}")
    print(f"goal p99 <= 100 ms while writing: {'met' if pct(busy, 99) <= 100 else 'NOT met'}")
    print(f"(mean {statistics.mean(busy) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
