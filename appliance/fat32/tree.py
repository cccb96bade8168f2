"""Scanning a content folder into a :class:`ContentTree`, refusing what FAT cannot hold.

Everything the stick must not carry or cannot hold is decided here, before a
single byte is written, with a one-line reason naming the path:

* hidden and system files (``.DS_Store``, ``Thumbs.db``, ``desktop.ini``,
  ``__MACOSX/``, ``._*`` and any name starting with a dot) are *skipped* with a
  warning: they are the donor's or the preparer's traces, not content;
* files of 4 GiB or more, names FAT cannot store, paths over 255 UTF-16 units,
  directories over FAT's 65536-entry limit, names equal but for case (FAT
  readers treat them as one), special files and unreadable files are *refused*.

Symbolic links: a link to a regular file inside the content folder is
followed (the stick gets a copy of the file under the link's name, as a copy
tool would make); links to directories are refused (they could loop or
duplicate whole trees), as are links that point outside the folder and
dangling links. Names are stored in Unicode NFC (see :func:`names.normalize`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from appliance.fat32 import names
from appliance.fat32.plan import ContentFile, ContentTree, LayoutError

MAX_FILE_SIZE = 2**32 - 1  # FAT's 32-bit size field: files of 4 GiB or more cannot exist
MAX_PATH_UNITS = 255
MAX_DIR_ENTRIES = 65536  # 32-byte entries per directory, long-name entries included

SKIPPED_NAMES = frozenset(
    {"thumbs.db", "desktop.ini", "__macosx", "$recycle.bin", "system volume information"}
)


class ContentError(LayoutError):
    """The content folder holds something a FAT32 stick cannot carry."""


class FileTooLarge(ContentError):
    pass


class BadName(ContentError):
    pass


class PathTooLong(ContentError):
    pass


class DirectoryTooLarge(ContentError):
    pass


class NameClash(ContentError):
    pass


class BadLink(ContentError):
    pass


class SpecialFile(ContentError):
    pass


class UnreadableFile(ContentError):
    pass


def is_skipped(name: str) -> bool:
    """Hidden or system names that never go on a stick."""
    return name.startswith(".") or name.lower() in SKIPPED_NAMES


def dir_entry_count(child_names: list[str], *, root: bool, label: bool = False) -> int:
    """32-byte entries a directory with these children needs ("." and ".." included)."""
    count = 1 if (root and label) else (0 if root else 2)
    for child in child_names:
        count += 1 + names.lfn_count(child)
    return count


def check_directory(rel: tuple[str, ...], child_names: list[str], *, root: bool) -> None:
    """Refuse names equal but for case, and directories over FAT's entry limit."""
    seen: dict[str, str] = {}
    for child in child_names:
        key = names.fold(child)
        if key in seen and seen[key] == child:
            raise NameClash(
                f"{_show((*rel, child))}: two names in this folder are the same once "
                "written in Unicode NFC (one was decomposed, as macOS writes names)"
            )
        if key in seen:
            raise NameClash(
                f"{_show((*rel, child))}: differs from {seen[key]!r} only in case; "
                "FAT readers treat the two as one name"
            )
        seen[key] = child
    count = dir_entry_count(child_names, root=root, label=root)
    if count > MAX_DIR_ENTRIES:
        raise DirectoryTooLarge(
            f"{_show(rel) or 'the top folder'}: needs {count} directory entries, "
            f"FAT32 allows {MAX_DIR_ENTRIES} per folder (split it into subfolders)"
        )


def check_name(rel: tuple[str, ...], parent_units: int | None = None) -> int:
    """Refuse a name FAT cannot hold or a path too long; return the path's UTF-16 length.

    ``parent_units``: the parent folder's path length plus one for the separator
    (none at the top), when the caller walks down and already knows it.
    """
    problem = names.name_problem(rel[-1])
    if problem:
        raise BadName(f"{_show(rel)}: the name {problem}")
    if parent_units is None:
        units = names.utf16_units("\\".join(rel))
    else:
        units = parent_units + names.utf16_units(rel[-1])
    if units > MAX_PATH_UNITS:
        raise PathTooLong(
            f"{_show(rel)}: path is {units} UTF-16 units long, FAT readers allow {MAX_PATH_UNITS}"
        )
    return units


def _show(rel: tuple[str, ...]) -> str:
    return "/".join(rel)


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _check_readable(path: str, rel: tuple[str, ...]) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise UnreadableFile(f"{_show(rel)}: cannot be read ({exc.strerror})") from exc
    os.close(fd)


def scan_content(root: Path, *, warn: Callable[[str], None] | None = None) -> ContentTree:
    """Walk ``root`` into a :class:`ContentTree`, skipping or refusing as documented."""
    root = Path(root)
    try:
        real_root = root.resolve(strict=True)
    except OSError as exc:
        raise ContentError(f"{root}: content folder cannot be opened ({exc})") from exc
    if not real_root.is_dir():
        raise ContentError(f"{root}: content folder is not a directory")
    files: list[ContentFile] = []
    dirs: list[tuple[str, ...]] = []

    def walk(directory: str, rel: tuple[str, ...], units: int) -> None:
        # ``units``: UTF-16 length of the folder's path on the stick, plus one
        # for the separator before a child's name (none at the top).
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            where = _show(rel) or str(root)
            raise UnreadableFile(f"{where}: folder cannot be listed ({exc.strerror})") from exc
        kept: list[str] = []
        for entry in entries:
            raw = entry.name
            if is_skipped(raw):
                if warn is not None:
                    kind = "folder" if entry.is_dir(follow_symlinks=False) else "file"
                    warn(f"skipped hidden or system {kind} {_show((*rel, raw))}")
                continue
            name = names.normalize(raw)
            child_rel = (*rel, name)
            child_units = check_name(child_rel, units)
            if warn is not None and not name.isascii() and max(name) > "\uffff":
                warn(
                    f"{_show(child_rel)}: has characters beyond Unicode's basic plane "
                    "(emoji and the like); some readers (mtools, older players) show them as _"
                )
            path = entry.path
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                shown = _show((*rel, raw))
                try:
                    target = Path(path).resolve(strict=True)
                except (OSError, RuntimeError) as exc:
                    raise BadLink(f"{shown}: symbolic link leads nowhere") from exc
                if not _is_within(target, real_root):
                    raise BadLink(f"{shown}: symbolic link points outside the content folder")
                st = target.stat()
                if stat.S_ISDIR(st.st_mode):
                    raise BadLink(f"{shown}: symbolic link to a folder (copy the folder instead)")
                path = str(target)
            if stat.S_ISDIR(st.st_mode):
                kept.append(name)
                dirs.append(child_rel)
                walk(path, child_rel, child_units + 1)
            elif stat.S_ISREG(st.st_mode):
                if st.st_size > MAX_FILE_SIZE:
                    raise FileTooLarge(
                        f"{_show((*rel, raw))}: {st.st_size} bytes; FAT32 cannot hold files "
                        "of 4 GiB or more (split or re-encode it)"
                    )
                _check_readable(path, child_rel)
                kept.append(name)
                files.append(ContentFile(child_rel, Path(path), st.st_size))
            else:
                raise SpecialFile(
                    f"{_show((*rel, raw))}: is a {_kind(st.st_mode)}, not a regular file or folder"
                )
        check_directory(rel, kept, root=not rel)

    walk(str(real_root), (), 0)
    tree = ContentTree(tuple(files), tuple(dirs))
    _remember_valid(tree)
    return tree


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    return "special file"


#: Trees already known to pass the checks (by identity; the last few only), so
#: compile_plan / fits / required_capacity do not repeat them on every call.
_KNOWN_VALID: list[ContentTree] = []


def _remember_valid(tree: ContentTree) -> None:
    _KNOWN_VALID.append(tree)
    del _KNOWN_VALID[:-4]


def validate_tree(tree: ContentTree) -> None:
    """The checks of :func:`scan_content` for a tree built by other code."""
    if any(known is tree for known in _KNOWN_VALID):
        return
    _validate(tree)
    _remember_valid(tree)


def _validate(tree: ContentTree) -> None:
    children: dict[tuple[str, ...], list[str]] = {(): []}
    for d in sorted(set(tree.dirs)):
        for depth in range(1, len(d) + 1):
            part = d[:depth]
            if part not in children:
                children[part] = []
                children[part[:-1]].append(part[-1])
    for f in tree.files:
        for depth in range(1, len(f.relpath)):
            part = f.relpath[:depth]
            if part not in children:
                children[part] = []
                children[part[:-1]].append(part[-1])
        parent = f.relpath[:-1]
        if f.relpath in children:
            raise NameClash(f"{_show(f.relpath)}: is both a file and a folder")
        children[parent].append(f.relpath[-1])
        if f.size > MAX_FILE_SIZE:
            raise FileTooLarge(
                f"{_show(f.relpath)}: {f.size} bytes; FAT32 cannot hold files of 4 GiB or more"
            )
    for rel, kids in children.items():
        if rel:
            check_name(rel)
        for kid in kids:
            check_name((*rel, kid))
        if len(set(kids)) != len(kids):
            raise NameClash(f"{_show(rel) or 'the top folder'}: holds the same name twice")
        check_directory(rel, kids, root=not rel)
