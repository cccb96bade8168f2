"""Shared helpers for hotplug tests: real fixture dumps and fake sysfs trees."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from appliance.hotplug.device import DeviceInfo
from appliance.hotplug.fake import disk_props, usb_device_props
from appliance.hotplug.props import read_dump

__all__ = [
    "CORPUS",
    "Recorder",
    "device",
    "fixture",
    "hub_stations",
    "stick_ports",
    "stick_props",
    "usb_device_props",
]

CORPUS = Path(__file__).parent / "fixtures" / "udev"


def fixture(name: str, **changes: str) -> dict[str, str]:
    """Properties of a corpus dump, with some changed (``""`` removes a key)."""
    props = read_dump(CORPUS / name)
    for key, value in changes.items():
        if value == "":
            props.pop(key, None)
        else:
            props[key] = value
    return props


def device(name: str, size: int | None = 16 * 1000**3, **changes: str) -> DeviceInfo:
    return DeviceInfo(fixture(name, **changes), size=size)


def descriptors(device_class: int, interfaces: list[int], configs: int = 1) -> bytes:
    """Raw sysfs ``descriptors`` bytes: device descriptor + configuration(s)."""
    dev = bytes([18, 0x01, 0x00, 0x02, device_class, 0, 0, 64]) + bytes(10)
    out = dev
    for number in range(1, configs + 1):
        body = b""
        for i, cls in enumerate(interfaces):
            body += bytes(
                [9, 0x04, i, 0, 2, cls, 0x06 if cls == 8 else 0, 0x50 if cls == 8 else 0, 0]
            )
            body += bytes([7, 0x05, 0x81, 0x02, 0x00, 0x02, 0])  # an endpoint
        total = 9 + len(body)
        out += (
            bytes([9, 0x02, total & 0xFF, total >> 8, len(interfaces), number, 0, 0x80, 50]) + body
        )
    return out


def interfaces_of(id_usb_interfaces: str) -> list[int]:
    """Interface classes of a udev ``ID_USB_INTERFACES`` value (``:080650:030101:``)."""
    return [int(item[:2], 16) for item in id_usb_interfaces.split(":") if item]


def fake_usb_device(root: Path, name: str, device_class: int, interfaces: list[int]) -> Path:
    """A USB device directory under a fake ``sys/bus/usb/devices``, not yet authorised."""
    base = root / "bus" / "usb" / "devices" / name
    base.mkdir(parents=True)
    (base / "descriptors").write_bytes(descriptors(device_class, interfaces))
    (base / "authorized").write_text("0\n")
    return base


def fake_root_hub(root: Path, name: str = "usb1") -> Path:
    base = root / "bus" / "usb" / "devices" / name
    base.mkdir(parents=True)
    (base / "authorized_default").write_text("1\n")
    (base / "authorized").write_text("1\n")
    (base / "descriptors").write_bytes(descriptors(0x09, [0x09]))
    return base


# --- fake udev events for a Pi 4 with two 8-port hubs ---------------------


def stick_ports(count: int = 16) -> list[str]:
    """Port chains behind the hubs: ``1.1`` .. ``1.8``, ``2.1`` .. (below root port 1)."""
    return [f"{1 + i // 8}.{1 + i % 8}" for i in range(count)]


def stick_props(
    port: str, host: int, letter: str, serial: str, base: str = "kingston-dt101ii-stick.udev"
) -> dict[str, str]:
    """A real stick dump moved to ``port`` as ``/dev/sd<letter>`` on SCSI host ``host``."""
    return disk_props(port, host, f"sd{letter}", serial, fixture(base))


class Recorder:
    """A thread-safe callback that keeps every event it gets (a station's ``post``)."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append(event)

    def wait(self, predicate: Any, count: int = 1, timeout: float = 10.0) -> list[Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                found = [e for e in self.events if predicate(e)]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return []

    def of(self, kind: type) -> list[Any]:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


@contextmanager
def hub_stations(
    tmp_path: Path, monkeypatch: Any, mounter: Any
) -> Iterator[Callable[..., SimpleNamespace]]:
    """The real station's hardware part on a fake hub and ``mounter``: ``start(...)`` builds one.

    ``start(ports=(), settle_time=0.1)`` returns ``hw``, ``hub``, ``mounter``,
    ``posted`` (a :class:`Recorder` in place of the station's ``post``) and
    ``path``. Nothing real is touched: the station runner is never started, so
    no job can run on the fake hub's ``/dev/sdX`` names (feeding is ``button``).
    """
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from appliance.commands.hosting import station as station_host
    from appliance.config.schema import (
        ContentConfig,
        DisplayConfig,
        HotplugConfig,
        StationConfig,
        StationSection,
        UiConfig,
    )
    from appliance.hotplug.factory import make_monitor
    from appliance.hotplug.fake import FakeHub
    from appliance.ui.simulator import TEST_KEY

    hub = FakeHub()
    monkeypatch.setattr(station_host, "CommandMounter", lambda: mounter)
    monkeypatch.setattr(
        station_host,
        "make_monitor",
        lambda config, cb, salt, is_content=None, state_dir=None: make_monitor(
            config, cb, salt, is_content=is_content, source=hub.source, state_dir=state_dir
        ),
    )
    old = Device.pin_factory
    Device.pin_factory = MockFactory()
    (tmp_path / "state").mkdir()  # the service creates it
    started: list[Any] = []

    def start(ports: Sequence[str] = (), settle_time: float = 0.1) -> SimpleNamespace:
        config = StationConfig(
            station=StationSection(feeding="button", batch_window=0.1, slots=4),
            ui=UiConfig(display=DisplayConfig(driver="dummy")),
            content=ContentConfig(trusted_keys=[str(TEST_KEY)], ports=list(ports)),
            hotplug=HotplugConfig(settle_time=settle_time),
        )
        host, hardware = station_host.build(config, tmp_path / "state")
        posted = Recorder()
        monkeypatch.setattr(hardware.station, "post", posted)
        hardware.start(host.runner)
        started.append(hardware)
        return SimpleNamespace(hw=hardware, hub=hub, mounter=mounter, posted=posted, path=tmp_path)

    try:
        yield start
    finally:
        for hardware in started:
            hardware.stop()
        Device.pin_factory.reset()
        Device.pin_factory = old
