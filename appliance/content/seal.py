"""Sealing a folder into a pack: hash every file, write ``manifest.yaml``, sign it.

Runs on the curators' laptops (Linux, macOS, Windows), so it uses only
portable calls. Files are hashed with BLAKE3 in sorted path order so the same
folder always gives the same manifest (apart from the date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appliance.content.check import FAT_MAX_FILE, fat_problems
from appliance.content.errors import ManifestError, PackError
from appliance.content.hashing import hash_file
from appliance.content.keys import load_private, looks_like_private_key, sign
from appliance.content.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    FileEntry,
    Manifest,
    Tier,
    check_path,
    parse_tiers,
)
from appliance.content.walk import list_pack
from appliance.fileio import write_atomic


@dataclass(frozen=True)
class PackInfo:
    """What a curator says about the pack (from the tiers file or the command line)."""

    title: str | None = None
    version: str | None = None
    date: str | None = None
    language: str | None = None
    tiers_raw: object = None  # the tiers list as written, parsed against the files later


@dataclass
class SealResult:
    manifest: Manifest
    manifest_path: Path
    signature_path: Path
    skipped: list[str] = field(default_factory=list)  # junk not sealed
    warnings: list[str] = field(default_factory=list)


def read_tiers_file(path: Path) -> PackInfo:
    """A tiers file: either a list of tiers, or a mapping with ``tiers`` and pack fields."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror})") from exc
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: not valid UTF-8 YAML ({exc.__class__.__name__})") from exc
    if isinstance(doc, list):
        return PackInfo(tiers_raw=doc)
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: must be a list of tiers or a mapping with 'tiers'")
    allowed = {"title", "version", "date", "language", "tiers"}
    unknown = sorted(set(doc) - allowed, key=str)
    if unknown:
        raise ManifestError(f"{path}: unknown key {unknown[0]!r} (allowed: {sorted(allowed)})")

    def text(key: str) -> str | None:
        value = doc.get(key)
        if value is None:
            return None
        return value.isoformat() if hasattr(value, "isoformat") else str(value)

    return PackInfo(
        text("title"), text("version"), text("date"), text("language"), doc.get("tiers")
    )


def _atomic_write(path: Path, data: bytes) -> None:
    write_atomic(path, data, mode=0o644)  # pack files: readable by whoever copies the pack


def seal(
    root: Path,
    key_path: Path,
    info: PackInfo | None = None,
    *,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
    tiers_where: str = "tiers",
) -> SealResult:
    """Seal ``root`` with the private key at ``key_path``.

    ``progress_factory(total_bytes)`` returns a callback fed the bytes of each
    chunk hashed (the CLI passes a tqdm bar's ``update``).
    """
    root = Path(root)
    info = info or PackInfo()
    if not root.is_dir():
        raise PackError(f"{root}: not a folder")
    key = load_private(key_path)  # fail before hashing gigabytes
    listing = list_pack(root)
    if listing.odd:
        raise PackError(
            f"cannot seal: {listing.odd[0]}"
            + (f" (and {len(listing.odd) - 1} more)" if len(listing.odd) > 1 else "")
        )
    if not listing.files:
        raise PackError(f"{root}: holds no content files")
    for rel in listing.files:
        check_path(rel, "content")
    paths = sorted(listing.files)
    tiers: tuple[Tier, ...] = parse_tiers(info.tiers_raw, paths, tiers_where)
    total = sum(listing.files[p].size for p in paths)
    step = progress_factory(total) if progress_factory else None
    entries = []
    for rel in paths:
        disk = listing.files[rel]
        if looks_like_private_key(disk.path):
            raise PackError(
                f"{rel}: looks like a private key; never put a key in the content (it would "
                "be copied onto every stick)"
            )
        try:
            digest, size = hash_file(disk.path, "blake3", progress=step)
        except OSError as exc:
            raise PackError(f"{rel}: cannot be read ({exc.strerror})") from exc
        if size != disk.size:
            raise PackError(f"{rel}: changed size while being sealed; try again")
        entries.append(FileEntry(rel, size, "blake3", digest))
    manifest = Manifest(
        title=info.title or root.resolve().name or "content",
        version=info.version or "1",
        date=info.date or dt.datetime.now(dt.UTC).date().isoformat(),
        language=info.language or "und",
        files=tuple(entries),
        tiers=tiers,
    )
    data = manifest.to_yaml()
    manifest_path = root / MANIFEST_NAME
    sig_path = root / SIGNATURE_NAME
    try:
        _atomic_write(manifest_path, data)
        _atomic_write(sig_path, sign(key, data))
    except OSError as exc:
        raise PackError(f"{root}: cannot write the manifest ({exc.strerror})") from exc
    warnings = [
        f"{e.path}: in no tier, so it is verified but never loaded" for e in manifest.untiered()
    ]
    # Sealing does not refuse these (the curators decide), but no stick could hold them.
    warnings += [f"{p} (no stick can hold this)" for p in fat_problems(paths)]
    warnings += [
        f"{e.path}: 4 GiB or more; no FAT32 stick can hold it"
        for e in entries
        if e.size > FAT_MAX_FILE
    ]
    return SealResult(manifest, manifest_path, sig_path, list(listing.junk), warnings)


def describe(manifest: Manifest) -> dict[str, Any]:
    """A short summary for printing."""
    return {
        "title": manifest.title,
        "version": manifest.version,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
        "tiers": [t.name for t in manifest.effective_tiers()],
    }
