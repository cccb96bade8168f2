"""The typed schema: one frozen dataclass per section of ``station.yaml``.

Adding a setting means adding a field here (with its default and a ``doc``)
and the same key, documented, to ``config/station.yaml``; a test keeps the two
equal. Field types understood by the loader: ``str``, ``int``, ``float``,
``bool``, ``Literal[...]``, :data:`Size` (bytes, also ``"8GiB"``),
:data:`Seconds` (also ``"5s"``, ``"2m"``), ``X | None``, ``list[T]``,
``dict[str, T]`` and nested dataclasses.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Annotated, Literal

Size = Annotated[int, "size"]
Seconds = Annotated[float, "seconds"]


def doc(text: str, **limits: object) -> dict[str, object]:
    """Field metadata: a one-line description and optional ``minimum``/``maximum``."""
    return {"doc": text, **limits}


@dataclass(frozen=True)
class FilesystemConfig:
    label: str = field(default="", metadata=doc("volume label; empty for none"))
    timestamp: str = field(
        default="2020-01-01T00:00:00",
        metadata=doc("the one timestamp given to every file and directory"),
    )


@dataclass(frozen=True)
class EngineConfig:
    wipe: Literal["full", "quick"] = field(default="full", metadata=doc("default wipe mode"))
    chunk_size: Size = field(
        default=4 * 1024**2, metadata=doc("bytes per I/O chunk", minimum=65536)
    )
    buffer_budget: Size = field(
        default=64 * 1024**2,
        metadata=doc("memory for chunks in flight, all drives together", minimum=1024**2),
    )
    min_capacity: Size = field(
        default=64 * 1024**2, metadata=doc("smallest drive accepted", minimum=64 * 1024**2)
    )
    probe_points: int = field(
        default=64, metadata=doc("fake-capacity probe offsets", minimum=64, maximum=4096)
    )


@dataclass(frozen=True)
class ContentConfig:
    trusted_keys: list[str] = field(
        default_factory=list, metadata=doc("Ed25519 public key files trusted to sign packs")
    )
    allow_unsigned: bool = field(default=False, metadata=doc("load packs without a signature"))
    headroom: float = field(
        default=0.02,
        metadata=doc("fraction of a drive kept free when picking a tier", minimum=0.0, maximum=0.5),
    )
    labels: list[str] = field(
        default_factory=lambda: ["FS-CONTENT"],
        metadata=doc("filesystem labels that mark the content SSD: never wiped"),
    )
    ports: list[str] = field(
        default_factory=list,
        metadata=doc(
            "USB port paths (as hotplug.slots keys) where a content SSD may be mounted; "
            "empty: any port"
        ),
    )


#: A classifier rule of ``appliance.hotplug.classify`` (``config check`` rejects other names).
HotplugRule = Literal[
    "not_block",
    "partition",
    "system_device",
    "content",
    "mounted",
    "system_usb_path",
    "not_usb",
    "virtual_media",
    "optical",
    "ata_bridge",
    "spinning",
    "disk_model",
    "composite",
    "no_media",
    "card_reader",
    "too_small",
    "too_large",
    "usb_flash",
]
#: Every classifier rule, in the default order.
HOTPLUG_RULES: tuple[HotplugRule, ...] = typing.get_args(HotplugRule)


@dataclass(frozen=True)
class HotplugConfig:
    min_size: Size = field(
        default=1000**3 // 2, metadata=doc("devices smaller than this are ignored")
    )
    max_size: Size = field(
        default=300 * 1000**3, metadata=doc("devices larger than this are ignored")
    )
    card_readers: bool = field(
        default=True, metadata=doc("memory cards in USB card readers are loaded")
    )
    slots: dict[str, int] = field(
        default_factory=dict, metadata=doc("USB port path -> slot number (slots learn)")
    )
    rules: list[HotplugRule] = field(
        default_factory=lambda: list(HOTPLUG_RULES),
        metadata=doc("classifier rules in order; the first match decides"),
    )
    usb_policy: bool = field(
        default=True,
        metadata=doc("de-authorise USB devices that are not hubs or plain mass storage"),
    )
    settle_time: Seconds = field(
        default=2.0,
        metadata=doc("a new stick waits this long for udev to probe its partitions", minimum=0.0),
    )


@dataclass(frozen=True)
class StationSection:
    feeding: Literal["auto", "button"] = field(
        default="auto", metadata=doc("auto: start when detected; button: START loads")
    )
    batch_window: Seconds = field(
        default=5.0, metadata=doc("sticks arriving within this share one read", minimum=0.0)
    )
    slots: int = field(
        default=8, metadata=doc("slots shown on the screen (hub ports)", minimum=1, maximum=16)
    )


@dataclass(frozen=True)
class DisplayConfig:
    driver: Literal["ssd1306", "sh1106", "dummy"] = field(
        default="ssd1306", metadata=doc("OLED controller")
    )
    i2c_port: int = field(default=1, metadata=doc("I2C bus number", minimum=0))
    i2c_address: int = field(default=0x3C, metadata=doc("I2C address", minimum=0, maximum=127))


@dataclass(frozen=True)
class ButtonsConfig:
    start: int = field(default=17, metadata=doc("GPIO (BCM) of START", minimum=0, maximum=27))
    cancel: int = field(default=27, metadata=doc("GPIO (BCM) of CANCEL", minimum=0, maximum=27))
    menu: int = field(default=22, metadata=doc("GPIO (BCM) of MENU", minimum=0, maximum=27))
    debounce: Seconds = field(default=0.05, metadata=doc("debounce time", minimum=0.0))
    hold_time: Seconds = field(
        default=5.0, metadata=doc("hold MENU this long to shut down", minimum=1.0)
    )


@dataclass(frozen=True)
class UiConfig:
    language: Literal["en", "ko"] = field(default="en", metadata=doc("screen language"))
    display: DisplayConfig = field(default_factory=DisplayConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    dim_after: Seconds = field(default=120.0, metadata=doc("dim the screen when idle", minimum=0))
    shift_every: Seconds = field(
        default=300.0, metadata=doc("move the picture by a pixel this often (burn-in)", minimum=0)
    )
    leds: list[int] = field(
        default_factory=list, metadata=doc("GPIO (BCM) of an LED per slot, slot 1 first")
    )
    buzzer: int | None = field(
        default=None, metadata=doc("GPIO (BCM) of an active buzzer; none when unset")
    )


@dataclass(frozen=True)
class ServiceConfig:
    state_dir: str = field(
        default="/var/lib/flashstation", metadata=doc("ledger and salt (the writable place)")
    )
    ledger_time_resolution: Literal["hour", "day", "minute", "second"] = field(
        default="hour", metadata=doc("finest time kept in the ledger and reports")
    )
    stagger: Seconds = field(
        default=1.0, metadata=doc("least time between two job starts (inrush)", minimum=0.0)
    )
    pause_on_undervoltage: bool = field(
        default=True, metadata=doc("hold new jobs while the supply is under-voltage")
    )
    power_poll: Seconds = field(
        default=2.0, metadata=doc("how often the power flags are read", minimum=0.1)
    )
    throttled_path: str = field(
        default="/sys/devices/platform/soc/soc:firmware/get_throttled",
        metadata=doc("firmware get_throttled file; vcgencmd is used when missing"),
    )
    poweroff: bool = field(
        default=True,
        metadata=doc("MENU held powers the Pi off (only when systemd started the service)"),
    )


@dataclass(frozen=True)
class StationConfig:
    filesystem: FilesystemConfig = field(default_factory=FilesystemConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    content: ContentConfig = field(default_factory=ContentConfig)
    hotplug: HotplugConfig = field(default_factory=HotplugConfig)
    station: StationSection = field(default_factory=StationSection)
    ui: UiConfig = field(default_factory=UiConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
