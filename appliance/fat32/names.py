"""File names on FAT: validation, VFAT long-name entries and 8.3 short names.

FAT stores every name twice: an 8.3 *short name* (11 bytes, upper case, one
OEM code page) that every reader understands, and, when the real name does not
fit that form exactly, a run of *long-name* (LFN) entries holding the name in
UTF-16. Readers compare names without regard to case, so two names in one
directory that differ only in case cannot both exist (see :func:`fold`).

Short names use ASCII only: any other character becomes ``_``. Which OEM code
page a reader assumes (437, 850, 949 ...) is unknowable, so ASCII is the only
short form every reader shows the same way; the long name carries the real one.
Numeric tails follow Windows: ``~1`` to ``~4``, then two characters of the
basis, four hex digits of a hash of the long name, and ``~1`` upwards.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable

#: Characters Windows refuses in any long name (plus controls 0x00-0x1F).
INVALID_LONG = frozenset('"*/:<>?\\|')
#: Characters allowed in a short name besides A-Z and 0-9.
SHORT_EXTRA = frozenset("!#$%&'()-@^_`{}~")
#: Device names Windows reserves whatever the extension (``CON.txt`` too).
RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
_INVALID_LONG_RE = re.compile(r'["*/:<>?\\|\x00-\x1f]')
MAX_NAME_UNITS = 255  # UTF-16 code units in one long name
LFN_CHARS = 13  # UTF-16 units per long-name entry


def utf16_units(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what FAT limits count)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def normalize(name: str) -> str:
    """The form a name is stored in: Unicode NFC.

    Folders prepared on a Mac hold decomposed (NFD) Hangul, which many players
    draw as loose jamo; NFC is what Windows and the players expect.
    """
    return unicodedata.normalize("NFC", name)


def fold(name: str) -> str:
    """Key under which FAT readers consider two names the same."""
    return name.upper()


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a FAT long name, or None when it can."""
    if name in ("", ".", ".."):
        return "is not a usable name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (rename it)"
    if _INVALID_LONG_RE.search(name):
        bad = sorted({c for c in name if c in INVALID_LONG or ord(c) < 0x20})
        shown = " ".join(repr(c) for c in bad)
        return f"contains characters FAT cannot hold: {shown}"
    if name.endswith((".", " ")):
        return "ends with a dot or a space, which FAT readers drop"
    if name.startswith(" "):
        return "starts with a space, which FAT readers drop"
    stem = name.split(".", 1)[0].rstrip(" ").upper()
    if stem in RESERVED:
        return f"uses the reserved device name {stem}"
    if utf16_units(name) > MAX_NAME_UNITS:
        return f"is longer than {MAX_NAME_UNITS} UTF-16 units"
    return None


class _ShortTable(dict[int, str]):
    """``str.translate`` table: a character's short-name form, ``"\0"`` when lossy.

    Filled on first sight of each character, so converting a name is one
    C-level pass instead of a Python call per character.
    """

    def __missing__(self, code: int) -> str:
        up = chr(code).upper()
        ok = len(up) == 1 and (("A" <= up <= "Z") or ("0" <= up <= "9") or up in SHORT_EXTRA)
        value = up if ok else "\0"
        self[code] = value
        return value


_SHORT_TABLE = _ShortTable()


def _short_chars(text: str) -> tuple[str, bool]:
    """``text`` in short-name characters and whether converting it lost anything.

    Upper case of A-Z, 0-9 and :data:`SHORT_EXTRA`; any other character
    (anything outside ASCII, whatever its upper case) becomes ``_``.
    """
    mapped = text.translate(_SHORT_TABLE)
    if "\0" in mapped:
        return mapped.replace("\0", "_"), True
    return mapped, False


def exact_short(name: str) -> bytes | None:
    """The 11-byte short name if ``name`` *is* a valid upper-case 8.3 name, else None.

    Only such names are stored without long-name entries; any other name,
    lower case included, gets an LFN so every reader shows it as written.
    """
    if not name.isascii() or name.count(".") > 1 or name.startswith("."):
        return None
    base, _, ext = name.partition(".")
    if not (1 <= len(base) <= 8 and len(ext) <= 3):
        return None
    if "." in name and not ext:
        return None
    mapped, lossy = _short_chars(base + ext)
    if lossy or mapped != base + ext:
        return None
    return (base.ljust(8) + ext.ljust(3)).encode("ascii")


def _basis(name: str) -> tuple[str, str, bool]:
    """Windows' basis-name generation: (basis <= 8 chars, extension <= 3, lossy)."""
    lossy = False
    stripped = name.replace(" ", "").lstrip(".")
    if stripped != name:
        lossy = True
    if "." in stripped:
        base_part, ext_part = stripped.rsplit(".", 1)
    else:
        base_part, ext_part = stripped, ""
    if "." in base_part:
        base_part = base_part.replace(".", "")
        lossy = True
    base_chars, base_lost = _short_chars(base_part)
    ext_chars, ext_lost = _short_chars(ext_part)
    lossy = lossy or base_lost or ext_lost or len(base_chars) > 8 or len(ext_chars) > 3
    return base_chars[:8] or "_", ext_chars[:3], lossy


def _pack(base: str, ext: str) -> bytes:
    return (base.ljust(8) + ext.ljust(3)).encode("ascii")


def _tails(name: str, basis: str, ext: str) -> Iterable[bytes]:
    """Candidate short names with numeric tails, in the order Windows tries them."""
    for n in range(1, 5):
        tail = f"~{n}"
        yield _pack(basis[: 8 - len(tail)] + tail, ext)
    digest = zlib.crc32(name.encode("utf-16-le", "surrogatepass")) & 0xFFFF
    prefix = basis[:2] + f"{digest:04X}"
    for n in range(1, 1_000_000):
        tail = f"~{n}"
        yield _pack(prefix[: 8 - len(tail)] + tail, ext)


class ShortNames:
    """Allocates unique short names within one directory.

    Names that are already exact 8.3 names must be reserved first
    (:meth:`reserve`), so generated names never take them.
    """

    def __init__(self) -> None:
        self._taken: set[bytes] = set()

    def reserve(self, short: bytes) -> None:
        self._taken.add(short)

    def generate(self, name: str) -> bytes:
        basis, ext, lossy = _basis(name)
        if not lossy:
            plain = _pack(basis, ext)
            if plain not in self._taken:
                self._taken.add(plain)
                return plain
        for candidate in _tails(name, basis, ext):
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate
        raise AssertionError("ran out of short names")  # pragma: no cover (1e6 tails)


def checksum(short: bytes) -> int:
    """The LFN checksum of an 11-byte short name."""
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def lfn_count(name: str) -> int:
    """How many 32-byte long-name entries ``name`` needs (0 for exact 8.3 names)."""
    if exact_short(name) is not None:
        return 0
    return -(-utf16_units(name) // LFN_CHARS)


def lfn_entries(name: str, short: bytes) -> bytes:
    """The long-name entries for ``name``, in on-disk order (last part first)."""
    units = name.encode("utf-16-le", "surrogatepass")
    count = -(-len(units) // (2 * LFN_CHARS))
    padded = units + (b"\x00\x00" if len(units) < count * 2 * LFN_CHARS else b"")
    padded = padded.ljust(count * 2 * LFN_CHARS, b"\xff")
    check = checksum(short)
    out = bytearray()
    for seq in range(count, 0, -1):
        part = padded[(seq - 1) * 26 : seq * 26]
        entry = bytearray(32)
        entry[0] = seq | (0x40 if seq == count else 0)
        entry[1:11] = part[0:10]
        entry[11] = 0x0F  # attribute: read-only|hidden|system|volume = long-name entry
        entry[12] = 0
        entry[13] = check
        entry[14:26] = part[10:22]
        entry[26:28] = b"\x00\x00"
        entry[28:32] = part[22:26]
        out += entry
    return bytes(out)
