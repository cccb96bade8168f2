"""Layout options from the station's configuration (``filesystem:`` in station.yaml).

Kept apart from :mod:`plan` so the plan types stay free of configuration; the
station and commands call :func:`options_from_config` once at start-up, and a
bad label or timestamp is reported then, in one line, not at the first stick.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from appliance.fat32 import structures
from appliance.fat32.plan import LayoutError, LayoutOptions

if TYPE_CHECKING:  # importing the config package at run time would load PyYAML
    from appliance.config.schema import FilesystemConfig


def options_from_config(fs: FilesystemConfig) -> LayoutOptions:
    """``LayoutOptions`` for the configured label and timestamp (validated)."""
    try:
        when = datetime.fromisoformat(fs.timestamp)
    except ValueError as exc:
        raise LayoutError(
            f"filesystem.timestamp {fs.timestamp!r} is not a date and time like 2020-01-01T00:00:00"
        ) from exc
    if when.tzinfo is not None:
        raise LayoutError(
            f"filesystem.timestamp {fs.timestamp!r} must not carry a time zone "
            "(FAT stores local time; a zone would say where the station is)"
        )
    structures.fat_datetime(when)
    label = fs.label or None
    structures.label_bytes(label)
    return LayoutOptions(label=label, timestamp=when)
