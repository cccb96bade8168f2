"""Short names, long-name entries and checksums (the images tests check them with mtools)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.fat32 import names
from tests.fat32_oracles import assert_readers_agree
from tests.test_fat32_images import build, put


def test_exact_short_names_need_no_long_name() -> None:
    assert names.exact_short("README.TXT") == b"README  TXT"
    assert names.exact_short("A") == b"A          "
    assert names.exact_short("readme.txt") is None  # lower case: long name keeps the case
    assert names.exact_short("TOOLONGNAME.TXT") is None
    assert names.exact_short("A.B.C") is None
    assert names.exact_short("A B") is None
    assert names.lfn_count("README.TXT") == 0
    assert names.lfn_count("a" * 13) == 1
    assert names.lfn_count("a" * 14) == 2
    assert names.lfn_count("가" * 255) == 20


def test_numeric_then_hashed_tails() -> None:
    alloc = names.ShortNames()
    got = [alloc.generate(f"Long file name {i}.text") for i in range(8)]
    assert got[:4] == [f"LONGFI~{n}TEX".encode() for n in range(1, 5)]
    hashed = got[4:]
    assert len(set(hashed)) == 4
    for short in hashed:
        assert short[:2] == b"LO" and short[6:8] == b"~1" and short[8:] == b"TEX"
        int(short[2:6], 16)  # four hex digits


def test_reserved_exact_names_are_never_generated() -> None:
    alloc = names.ShortNames()
    alloc.reserve(b"FILM    MP4")
    assert alloc.generate("film.mp4") == b"FILM~1  MP4"
    assert alloc.generate("film.MP4 ") != b"FILM~1  MP4"


def test_basis_strips_spaces_dots_and_maps_non_ascii() -> None:
    alloc = names.ShortNames()
    assert alloc.generate("my film.mp4") == b"MYFILM~1MP4"
    assert alloc.generate("영화.mp4") == b"__~1    MP4"
    assert alloc.generate("a+b.txt") == b"A_B~1   TXT"
    assert alloc.generate("x.tar.gz") == b"XTAR~1  GZ "


def test_checksum_known_value() -> None:
    # computed by hand from the rotate-right-and-add definition in fatgen103
    total = 0
    for byte in b"README  TXT":
        total = ((total >> 1) | ((total & 1) << 7)) + byte & 0xFF
    assert names.checksum(b"README  TXT") == total


def test_lfn_entries_layout() -> None:
    short = b"LONGNA~1TXT"
    raw = names.lfn_entries("a" * 14, short)
    assert len(raw) == 64
    first, second = raw[:32], raw[32:]
    assert first[0] == 0x42 and second[0] == 0x01  # last part first, flagged 0x40
    assert first[11] == 0x0F and first[13] == names.checksum(short)
    # part 2 holds "a", then the 0x0000 terminator, then 0xFFFF padding
    assert first[1:3] == b"a\x00" and first[3:5] == b"\x00\x00" and first[5:7] == b"\xff\xff"
    assert struct.unpack_from("<H", first, 26)[0] == 0


def test_name_lengths_around_entry_boundaries(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for n in (1, 8, 12, 13, 14, 25, 26, 27, 100, 255):
        put(src, "n" * (n - 4) + ".txt" if n > 4 else "n" * n, os.urandom(3))
    for n in (13, 26, 84):
        put(src, "한" * n, b"hangul")
    image = build(src, tmp_path / "n.img")
    assert_readers_agree(image, src, tmp_path)


SHORT_OK = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&'()-@^_`{}~")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("aAbB1 ._~+가나다"), min_size=1, max_size=14).filter(
            lambda n: names.name_problem(n) is None
        ),
        max_size=40,
        unique_by=names.fold,
    )
)
def test_short_names_unique_and_valid(batch: list[str]) -> None:
    alloc = names.ShortNames()
    exact = [names.exact_short(n) for n in batch]
    for short in exact:
        if short is not None:
            alloc.reserve(short)
    shorts = [e if e is not None else alloc.generate(n) for n, e in zip(batch, exact, strict=True)]
    assert len(set(shorts)) == len(shorts)
    for short in shorts:
        assert len(short) == 11 and set(short) <= SHORT_OK
        assert short[0] != 0x20  # never starts with a space


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=255))
def test_long_name_entries_round_trip(name: str) -> None:
    if not name or names.utf16_units(name) > 255:
        return
    raw = names.lfn_entries(name, b"X       Y  ")
    assert len(raw) == 32 * names.lfn_count(name) or names.exact_short(name) is not None
    parts = [raw[i : i + 32] for i in range(0, len(raw), 32)][::-1]
    units = b"".join(p[1:11] + p[14:26] + p[28:32] for p in parts)
    decoded = units.decode("utf-16-le", "surrogatepass").split("\x00", 1)[0]
    assert decoded == name.split("\x00", 1)[0]


def _reference_basis(name: str) -> tuple[str, str, bool]:
    """The basis rule written out a character at a time (the translate table's oracle)."""

    def short_char(c: str) -> tuple[str, bool]:
        up = c.upper()
        if len(up) == 1 and (("A" <= up <= "Z") or ("0" <= up <= "9") or up in names.SHORT_EXTRA):
            return up, False
        return "_", True

    stripped = name.replace(" ", "").lstrip(".")
    lossy = stripped != name
    base_part, _, ext_part = stripped.rpartition(".") if "." in stripped else (stripped, "", "")
    if "." in base_part:
        base_part = base_part.replace(".", "")
        lossy = True
    mapped = [short_char(c) for c in base_part], [short_char(c) for c in ext_part]
    lossy = lossy or any(lost for part in mapped for _, lost in part)
    base = "".join(c for c, _ in mapped[0])
    ext = "".join(c for c, _ in mapped[1])
    lossy = lossy or len(base) > 8 or len(ext) > 3
    return base[:8] or "_", ext[:3], lossy


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_basis_matches_the_per_character_rule(name: str) -> None:
    assert names._basis(name) == _reference_basis(name)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from("AZaz09._~!ıſß영 "), min_size=1, max_size=14))
def test_exact_short_only_for_upper_case_8_3_names(name: str) -> None:
    base, dot, ext = name.partition(".")
    expected = (
        name.count(".") <= 1
        and 1 <= len(base) <= 8
        and len(ext) <= 3
        and (not dot or bool(ext))
        and all(c in "AZ09_~!" for c in base + ext)
    )
    short = names.exact_short(name)
    assert (short is not None) == expected
    if short is not None:
        assert short == (base.ljust(8) + ext.ljust(3)).encode("ascii")
