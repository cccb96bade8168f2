"""``slots learn``: the operator plugs a stick into each port in order.

Each time the operator presses Enter, the newest port where a disk arrived
becomes the next slot number. The result is written as a small YAML override
holding only ``hotplug.slots`` (merged into the file if it already exists),
never into the documented defaults.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from appliance.config.schema import HotplugConfig
from appliance.errors import FlashStationError
from appliance.hotplug.classify import Classifier
from appliance.hotplug.events import DriveArrived, HotplugEvent, MediaChanged
from appliance.hotplug.monitor import Monitor, Source
from appliance.hotplug.slots import SlotMap
from appliance.hotplug.state import HotplugState

DONE_WORDS = {"done", "q", "quit"}


class LearnError(FlashStationError):
    """The slot map could not be learned or saved."""


def learn_slots(
    source: Source,
    ask: Callable[[str], str],
    say: Callable[[str], None],
    count: int | None = None,
    settle: float = 3.0,
) -> dict[str, int]:
    """Walk the operator through the ports; returns port key -> slot number."""
    arrivals: queue.Queue[str] = queue.Queue()

    def on_event(event: HotplugEvent) -> None:
        if isinstance(event, DriveArrived | MediaChanged) and event.port:
            arrivals.put(event.port)

    rules = [r for r in HotplugConfig().rules if r not in ("too_small", "too_large", "no_media")]
    state = HotplugState(Classifier(rules=rules), SlotMap(), os.urandom(16))
    monitor = Monitor(source, state, on_event)
    monitor.start()
    present = set()
    while not arrivals.empty():  # disks already plugged are not answers
        present.add(arrivals.get_nowait())
    learned: dict[str, int] = {}
    slot = 1
    try:
        while count is None or slot <= count:
            try:
                answer = ask(
                    f"Slot {slot}: plug a stick into the next port, then press Enter "
                    "(type done to finish): "
                )
            except EOFError:
                break
            if answer.strip().lower() in DONE_WORDS:
                break
            newest = None
            try:
                newest = arrivals.get(timeout=settle)
                while not arrivals.empty():
                    newest = arrivals.get_nowait()
            except queue.Empty:
                pass
            if newest is None:
                say("No new stick seen. Plug one in (or pull it and plug it again), then Enter.")
                continue
            if newest in learned:
                say(f"That port is already slot {learned[newest]}. Use the next port.")
                continue
            learned[newest] = slot
            say(f"Slot {slot} learned.")
            slot += 1
    finally:
        monitor.stop()
    return learned


def write_slots(path: str | Path, slots: Mapping[str, int]) -> None:
    """Write ``hotplug.slots`` into a YAML override file, keeping its other keys."""
    target = Path(path)
    data: dict[str, Any] = {}
    if target.exists():
        try:
            loaded = yaml.safe_load(target.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise LearnError(f"{target}: cannot read: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise LearnError(f"{target}: not a YAML mapping; not overwriting it")
        data = loaded or {}
    hotplug = data.setdefault("hotplug", {})
    if not isinstance(hotplug, dict):
        raise LearnError(f"{target}: hotplug is not a mapping; not overwriting it")
    hotplug["slots"] = dict(slots)
    text = "# hotplug.slots written by `flashstation slots learn`\n" + yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True
    )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        raise LearnError(f"{target}: cannot write: {exc.strerror}") from None
