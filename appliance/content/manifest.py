"""The manifest of a content pack: what it holds, how each file hashes, which tiers exist.

``manifest.yaml`` is the signed statement of the curators. It is parsed only
after its signature was checked, and parsed strictly: unknown keys, bad types,
unsafe paths (absolute, ``..``, backslashes, empty parts) and tiers naming
items that do not exist are all refused, because the station acts on it.

Tiers list only their *additions*: the content of tier *n* is every item of
tiers 0..*n* (sorted by ``min_capacity``), so a larger tier always holds what
a smaller one has. See ``docs/content-pack.md``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from appliance.content.errors import ManifestError
from appliance.content.hashing import ALGORITHMS
from appliance.units import parse_size

FORMAT = "flashstation-content-pack"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
SIGNATURE_NAME = "manifest.yaml.sig"
#: A manifest larger than this is refused unread (a pack of 100 000 files is ~15 MB).
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_HEX = re.compile(r"^[0-9a-f]+$")
_DIGEST_LEN = {"blake3": 64, "sha256": 64}


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the pack: path (``/``-separated, NFC), size and expected hash."""

    path: str
    size: int
    algorithm: str
    digest: str

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier: drives of at least ``min_capacity`` bytes get it, plus every smaller tier."""

    name: str
    min_capacity: int
    items: tuple[str, ...]  # additions only: folders or files, in the curators' order


@dataclass(frozen=True)
class Manifest:
    title: str
    version: str
    date: str
    language: str
    files: tuple[FileEntry, ...]
    tiers: tuple[Tier, ...] = ()
    format_version: int = FORMAT_VERSION
    _by_path: dict[str, FileEntry] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_path.update({f.path: f for f in self.files})

    def entry(self, path: str) -> FileEntry | None:
        return self._by_path.get(path)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def effective_tiers(self) -> tuple[Tier, ...]:
        """The tiers, or one implicit tier holding everything when none are declared."""
        if self.tiers:
            return self.tiers
        return (Tier("all", 0, tuple(sorted({f.parts[0] for f in self.files}))),)

    def tier_files(self, index: int) -> tuple[FileEntry, ...]:
        """Files of tier ``index`` (cumulative: its items and every smaller tier's)."""
        tiers = self.effective_tiers()
        chosen: dict[str, FileEntry] = {}
        for tier in tiers[: index + 1]:
            for item in tier.items:
                for entry in self.item_files(item):
                    chosen.setdefault(entry.path, entry)
        return tuple(chosen.values())

    def item_files(self, item: str) -> list[FileEntry]:
        """Files an item names: the file itself, or everything under the folder."""
        exact = self._by_path.get(item)
        if exact is not None:
            return [exact]
        prefix = item + "/"
        return [f for f in self.files if f.path.startswith(prefix)]

    def untiered(self) -> list[FileEntry]:
        """Files no tier includes (they are verified but never loaded)."""
        covered = {f.path for f in self.tier_files(len(self.effective_tiers()) - 1)}
        return [f for f in self.files if f.path not in covered]

    # -- serialisation ---------------------------------------------------------------------

    def to_yaml(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "format_version": self.format_version,
            "title": self.title,
            "version": self.version,
            "date": self.date,
            "language": self.language,
            "tiers": [
                {"name": t.name, "min_capacity": t.min_capacity, "items": list(t.items)}
                for t in self.tiers
            ],
            "files": [{"path": f.path, "size": f.size, f.algorithm: f.digest} for f in self.files],
        }
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
        return text.encode("utf-8")


def check_path(path: object, where: str) -> str:
    """A manifest path must be relative, ``/``-separated, NFC, without ``.``/``..``/empty parts."""
    if not isinstance(path, str) or not path:
        raise ManifestError(f"{where}: path must be a non-empty string")
    if "\\" in path or "\x00" in path:
        raise ManifestError(f"{where}: path {path!r} holds a backslash or NUL; use '/'")
    if path.startswith("/"):
        raise ManifestError(f"{where}: path {path!r} must be relative")
    if re.match(r"^[A-Za-z]:", path):
        raise ManifestError(f"{where}: path {path!r} starts like a Windows drive; rename it")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ManifestError(f"{where}: path {path!r} has an empty, '.' or '..' part")
    if unicodedata.normalize("NFC", path) != path:
        raise ManifestError(f"{where}: path {path!r} is not in Unicode NFC form")
    return path


def _want(doc: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in doc:
        raise ManifestError(f"{where}: missing key {key!r}")
    value = doc[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ManifestError(f"{where}: {key} must be a whole number, not {value!r}")
    if kind is str and not isinstance(value, str):
        # YAML turns 2026-11-25 into a date and 1.0 into a float: accept those as text.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if hasattr(value, "isoformat"):
            return value.isoformat()
        raise ManifestError(f"{where}: {key} must be text, not {value!r}")
    if kind in (list, dict) and not isinstance(value, kind):
        raise ManifestError(f"{where}: {key} must be a {kind.__name__}")
    return value


def _no_unknown(doc: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    unknown = sorted(set(doc) - set(allowed), key=str)
    if unknown:
        raise ManifestError(f"{where}: unknown key {unknown[0]!r}")


def parse_tiers(raw: object, paths: Sequence[str] | None, where: str) -> tuple[Tier, ...]:
    """Parse a ``tiers`` list; ``paths`` (the pack's files) checks that items exist.

    Capacities may be bytes or, in a curator's tiers file, sizes like ``8GB``.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ManifestError(f"{where}: tiers must be a list")
    tiers: list[Tier] = []
    names: set[str] = set()
    for i, t in enumerate(raw):
        tw = f"{where}: tiers[{i}]"
        if not isinstance(t, dict):
            raise ManifestError(f"{tw}: must be a mapping with name, min_capacity, items")
        _no_unknown(t, ("name", "min_capacity", "items"), tw)
        name = _want(t, "name", str, tw)
        cap_raw = t.get("min_capacity")
        if isinstance(cap_raw, str):
            try:
                cap = parse_size(cap_raw)
            except ValueError as exc:
                raise ManifestError(f"{tw}: min_capacity: {exc}") from exc
        else:
            cap = _want(t, "min_capacity", int, tw)
        if cap < 0:
            raise ManifestError(f"{tw}: min_capacity must not be negative")
        items = _want(t, "items", list, tw)
        if not items:
            raise ManifestError(f"{tw}: items must not be empty")
        checked = tuple(check_path(item, f"{tw}.items") for item in items)
        if len(set(checked)) != len(checked):
            raise ManifestError(f"{tw}: an item is listed twice")
        if name in names:
            raise ManifestError(f"{tw}: tier name {name!r} used twice")
        names.add(name)
        tiers.append(Tier(name, cap, checked))
    caps = [t.min_capacity for t in tiers]
    if caps != sorted(caps) or len(set(caps)) != len(caps):
        raise ManifestError(f"{where}: tiers must be listed smallest first, each larger")
    if paths is not None:
        known = set(paths)
        folders = {"/".join(p.split("/")[:k]) for p in paths for k in range(1, p.count("/") + 1)}
        for t in tiers:
            for item in t.items:
                if item not in known and item not in folders:
                    raise ManifestError(
                        f"{where}: tier {t.name!r} lists {item!r}, which is not in the pack"
                    )
    return tuple(tiers)


def parse_manifest(data: bytes, where: str = MANIFEST_NAME) -> Manifest:
    """Parse manifest bytes strictly; raise :class:`ManifestError` naming what is wrong."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where}: larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(f"{where}: not valid UTF-8 YAML ({exc.__class__.__name__})") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: must be a YAML mapping")
    if doc.get("format") != FORMAT:
        raise ManifestError(f"{where}: not a Flash Station content manifest (format: {FORMAT})")
    version = _want(doc, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ManifestError(
            f"{where}: format_version {version} is not supported (this station reads "
            f"{FORMAT_VERSION}); update the station"
        )
    _no_unknown(
        doc,
        ("format", "format_version", "title", "version", "date", "language", "tiers", "files"),
        where,
    )
    files: list[FileEntry] = []
    seen: set[str] = set()
    seen_folded: dict[str, str] = {}
    for i, f in enumerate(_want(doc, "files", list, where)):
        fw = f"{where}: files[{i}]"
        if not isinstance(f, dict):
            raise ManifestError(f"{fw}: must be a mapping with path, size and a hash")
        _no_unknown(f, ("path", "size", *ALGORITHMS), fw)
        path = check_path(f.get("path"), fw)
        size = _want(f, "size", int, fw)
        if size < 0:
            raise ManifestError(f"{fw}: size must not be negative")
        algos = [a for a in ALGORITHMS if a in f]
        if len(algos) != 1:
            raise ManifestError(f"{fw}: needs exactly one hash (blake3 or sha256)")
        algo = algos[0]
        digest = f[algo]
        if not isinstance(digest, str) or not _HEX.match(digest):
            raise ManifestError(f"{fw}: {algo} must be lower-case hex")
        if len(digest) != _DIGEST_LEN[algo]:
            raise ManifestError(f"{fw}: {algo} must be {_DIGEST_LEN[algo]} hex digits")
        if path in seen:
            raise ManifestError(f"{fw}: {path!r} listed twice")
        seen.add(path)
        folded = path.upper()
        if folded in seen_folded:
            raise ManifestError(f"{fw}: {path!r} differs from {seen_folded[folded]!r} only in case")
        seen_folded[folded] = path
        files.append(FileEntry(path, size, algo, digest))
    prefixes = {"/".join(p.split("/")[:k]) for p in seen for k in range(1, p.count("/") + 1)}
    clash = seen & prefixes
    if clash:
        raise ManifestError(f"{where}: {sorted(clash)[0]!r} is both a file and a folder")
    paths = [f.path for f in files]
    return Manifest(
        title=_want(doc, "title", str, where),
        version=_want(doc, "version", str, where),
        date=_want(doc, "date", str, where),
        language=_want(doc, "language", str, where),
        files=tuple(files),
        tiers=parse_tiers(doc.get("tiers"), paths, where),
        format_version=version,
    )
