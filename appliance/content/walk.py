"""Listing the files of a pack folder: what counts as content and what is junk.

Only regular files count. Hidden and system junk that laptops and cameras
leave behind (``.DS_Store``, ``Thumbs.db``, ``desktop.ini``, ``__MACOSX``,
``._*``, ``System Volume Information``, ``$RECYCLE.BIN``, a root ``lost+found``)
is skipped: it is never sealed, never loaded, and its later appearance does
not fail verification (operating systems add it on their own when an SSD is
opened). The manifest and its signature at the root are not content either.

Symbolic links and special files are reported, never followed: a link on an
SSD could otherwise copy files of the station itself onto sticks.

Only portable calls are used (``os.scandir``), so the curators' CLI works on
Windows and macOS; names are compared in Unicode NFC because macOS hands out
decomposed Hangul.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.content.manifest import MANIFEST_NAME, SIGNATURE_NAME

JUNK_NAMES = frozenset(
    {
        "thumbs.db",
        "ehthumbs.db",
        "desktop.ini",
        "__macosx",
        "$recycle.bin",
        "system volume information",
    }
)
ROOT_ONLY_JUNK = frozenset({"lost+found"})
PACK_FILES = frozenset({MANIFEST_NAME, SIGNATURE_NAME})
#: FILE_ATTRIBUTE_HIDDEN | FILE_ATTRIBUTE_SYSTEM (``st_file_attributes`` exists on Windows only)
_WINDOWS_HIDDEN_OR_SYSTEM = 0x2 | 0x4


def is_junk(name: str, *, at_root: bool = False) -> bool:
    """Hidden or system names that are never content."""
    low = name.lower()
    return name.startswith(".") or low in JUNK_NAMES or (at_root and low in ROOT_ONLY_JUNK)


@dataclass(frozen=True, slots=True)
class DiskFile:
    path: Path  # where it is on disk
    size: int
    mtime_ns: int


@dataclass
class Listing:
    """What a pack folder holds, keyed by NFC ``/``-separated path."""

    files: dict[str, DiskFile] = field(default_factory=dict)
    junk: list[str] = field(default_factory=list)  # skipped, for warnings
    odd: list[str] = field(default_factory=list)  # links / special / unreadable: "path: why"


def list_pack(root: Path, *, on_dir: Callable[[str], None] | None = None) -> Listing:
    """Walk ``root`` without following links; see the module docstring for the rules."""
    listing = Listing()
    root = Path(root)

    def walk(directory: Path, rel: str) -> None:
        if on_dir is not None:
            on_dir(rel)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            listing.odd.append(f"{rel or '.'}: folder cannot be listed ({exc.strerror})")
            return
        for entry in entries:
            name = unicodedata.normalize("NFC", entry.name)
            child = f"{rel}/{name}" if rel else name
            if not rel and entry.name in PACK_FILES:
                continue
            if is_junk(entry.name, at_root=not rel):
                listing.junk.append(child)
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                listing.odd.append(f"{child}: cannot be read ({exc.strerror})")
                continue
            if getattr(st, "st_file_attributes", 0) & _WINDOWS_HIDDEN_OR_SYSTEM:
                listing.junk.append(child)  # Windows' hidden/system attribute
                continue
            if stat.S_ISLNK(st.st_mode):
                listing.odd.append(f"{child}: is a symbolic link (links are not allowed)")
            elif stat.S_ISDIR(st.st_mode):
                walk(Path(entry.path), child)
            elif stat.S_ISREG(st.st_mode):
                if child in listing.files:
                    listing.odd.append(f"{child}: two names on disk normalise to this one")
                    continue
                listing.files[child] = DiskFile(Path(entry.path), st.st_size, st.st_mtime_ns)
            else:
                listing.odd.append(f"{child}: is not a regular file or folder")

    walk(root, "")
    return listing
