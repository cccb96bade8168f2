"""The manifest parser is strict: the station acts on what it says."""

from __future__ import annotations

import pytest

from appliance.content import ManifestError
from appliance.content.manifest import FileEntry, Manifest, Tier, parse_manifest

H = "a" * 64


def doc(files: str, tiers: str = "", extra: str = "") -> bytes:
    return (
        "format: flashstation-content-pack\nformat_version: 1\ntitle: t\nversion: '1'\n"
        f"date: 2026-11-25\nlanguage: ko\n{extra}{tiers}files:\n{files}"
    ).encode()


def test_round_trip() -> None:
    m = Manifest(
        "제목",
        "1",
        "2026-11-25",
        "ko",
        (FileEntry("a/b.txt", 3, "blake3", H), FileEntry("c.txt", 0, "sha256", "b" * 64)),
        (Tier("s", 10, ("a",)), Tier("l", 20, ("c.txt",))),
    )
    assert parse_manifest(m.to_yaml()) == m


def test_yaml_date_accepted_as_text() -> None:
    assert parse_manifest(doc(f"- {{path: a, size: 1, blake3: {H}}}\n")).date == "2026-11-25"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (f"- {{path: ../etc/passwd, size: 1, blake3: {H}}}\n", "'..'"),
        (f"- {{path: /etc/passwd, size: 1, blake3: {H}}}\n", "relative"),
        (f"- {{path: 'a\\\\b', size: 1, blake3: {H}}}\n", "backslash"),
        (f"- {{path: a//b, size: 1, blake3: {H}}}\n", "empty"),
        (f"- {{path: C:x, size: 1, blake3: {H}}}\n", "Windows drive"),
        (f"- {{path: a, size: -1, blake3: {H}}}\n", "negative"),
        (f"- {{path: a, size: true, blake3: {H}}}\n", "whole number"),
        ("- {path: a, size: 1, blake3: XYZ}\n", "hex"),
        ("- {path: a, size: 1, blake3: abc}\n", "64 hex"),
        ("- {path: a, size: 1}\n", "exactly one hash"),
        (f"- {{path: a, size: 1, blake3: {H}, sha256: {H}}}\n", "exactly one hash"),
        (f"- {{path: a, size: 1, md5: {H}}}\n", "unknown key"),
        (f"- {{path: a, size: 1, blake3: {H}}}\n- {{path: a, size: 1, blake3: {H}}}\n", "twice"),
        (f"- {{path: A, size: 1, blake3: {H}}}\n- {{path: a, size: 1, blake3: {H}}}\n", "case"),
        (f"- {{path: a, size: 1, blake3: {H}}}\n- {{path: a/b, size: 1, blake3: {H}}}\n", "both"),
        (f'- {{path: "\\u1100\\u1161", size: 1, blake3: {H}}}\n', "NFC"),
    ],
)
def test_bad_files_refused(files: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(doc(files))


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        (
            "tiers:\n- {name: a, min_capacity: 2, items: [x]}\n"
            "- {name: b, min_capacity: 1, items: [y]}\n",
            "smallest first",
        ),
        (
            "tiers:\n- {name: a, min_capacity: 1, items: [x]}\n"
            "- {name: a, min_capacity: 2, items: [y]}\n",
            "used twice",
        ),
        ("tiers:\n- {name: a, min_capacity: 1, items: [nope]}\n", "not in the pack"),
        ("tiers:\n- {name: a, min_capacity: 1, items: []}\n", "not be empty"),
        ("tiers:\n- {name: a, min_capacity: 1, items: [x], extra: 1}\n", "unknown key"),
        ("tiers:\n- {name: a, min_capacity: lots, items: [x]}\n", "not a size"),
    ],
)
def test_bad_tiers_refused(tiers: str, message: str) -> None:
    files = f"- {{path: x, size: 1, blake3: {H}}}\n- {{path: y/z, size: 1, blake3: {H}}}\n"
    with pytest.raises(ManifestError, match=message):
        parse_manifest(doc(files, tiers))


def test_other_documents_refused() -> None:
    with pytest.raises(ManifestError, match="not a Flash Station"):
        parse_manifest(b"format: something-else\n")
    with pytest.raises(ManifestError, match="format_version 2 is not supported"):
        parse_manifest(
            doc(f"- {{path: a, size: 1, blake3: {H}}}\n").replace(b"version: 1", b"version: 2")
        )
    with pytest.raises(ManifestError, match="unknown key 'owner'"):
        parse_manifest(doc(f"- {{path: a, size: 1, blake3: {H}}}\n", extra="owner: x\n"))
    with pytest.raises(ManifestError, match="YAML"):
        parse_manifest(b"\xff\xfe")
    with pytest.raises(ManifestError, match="mapping"):
        parse_manifest(b"- a\n")


def test_folder_items_and_cumulative_tiers() -> None:
    files = "".join(f"- {{path: {p}, size: 1, blake3: {H}}}\n" for p in ["f/a", "f/b", "fx", "g"])
    tiers = (
        "tiers:\n- {name: s, min_capacity: 1, items: [f]}\n"
        "- {name: l, min_capacity: 2, items: [g]}\n"
    )
    m = parse_manifest(doc(files, tiers))
    assert [e.path for e in m.tier_files(0)] == ["f/a", "f/b"]  # "f" is not a prefix of "fx"
    assert [e.path for e in m.tier_files(1)] == ["f/a", "f/b", "g"]
    assert [e.path for e in m.untiered()] == ["fx"]
