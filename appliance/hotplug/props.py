"""Reading udev property dumps: what ``udevadm info`` prints, as a plain dict.

Saved dumps are how we test the classifier against real hardware we do not
own, and how an operator checks a device they are unsure about. Accepted
forms, one property a line:

* ``KEY=VALUE`` (``udevadm info --query=property``),
* ``KEY='VALUE'`` (the same with ``--export``),
* ``E: KEY=VALUE`` (the full ``udevadm info`` record).

Blank lines and lines starting with ``#`` are skipped, and so are the other
one-letter record lines of ``udevadm info`` (``P:``, ``N:``, ``S:`` ...),
which hold nothing the classifier reads that ``E:`` lines do not.
"""

from __future__ import annotations

import re
from pathlib import Path

from appliance.errors import FlashStationError

_RECORD = re.compile(r"^([A-Z]): ?(.*)$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


class DumpError(FlashStationError, ValueError):
    """A dump file that is not a udev property dump."""


def parse_dump(text: str, name: str = "<dump>") -> dict[str, str]:
    """Return the properties of one device from the text of a dump."""
    props: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        record = _RECORD.match(line)
        if record:
            if record.group(1) != "E":
                continue
            line = record.group(2).strip()
        key, sep, value = line.partition("=")
        if not sep or not _KEY.match(key):
            raise DumpError(f"{name}:{number}: not a KEY=VALUE property line")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        props[key] = value
    if not props:
        raise DumpError(f"{name}: no properties found")
    return props


def read_dump(path: str | Path) -> dict[str, str]:
    """Read and parse one dump file; errors name the file."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DumpError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_dump(text, str(path))
