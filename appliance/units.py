"""Byte sizes: parsing what operators type and printing what they read."""

from __future__ import annotations

import re

from appliance.errors import UsageError

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Parse ``8GiB``, ``7.5GB``, ``512MiB`` or plain bytes into a byte count.

    Decimal units (GB) are powers of 1000 as printed on a stick's label,
    binary units (GiB) powers of 1024.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise UsageError(f"not a size: {text!r} (try 8GiB, 7.5GB or a number of bytes)")
    number, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise UsageError(
            f"unknown size unit {unit!r} in {text!r} (use B, KB, MB, GB, KiB, MiB, GiB)"
        )
    value = float(number) * factor
    if value != int(value):
        raise UsageError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def format_size(n: int) -> str:
    """Human size in decimal units, as stick labels use: ``7.9 GB``."""
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n} B"
