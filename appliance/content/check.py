"""``content check``: what would not reach a stick, not play on a reader, or point to people.

Errors (the pack cannot be loaded as it is): files of 4 GiB or more, names
and paths FAT cannot hold (the layout compiler's own rules), links and
special files, and tiers that do not fit their minimum capacity after
filesystem overhead and headroom.

Warnings (it loads, but think again): media the common Chinese players may
not play, judged by container and codec with ``ffprobe`` (not by extension);
hidden and system files (they are skipped); identifying metadata inside
files (author, creator tool, GPS, camera make/model/serial, owner), read with
``exiftool``, shown as ``field = value``. When a tool is missing the report
says so instead of pretending the files are clean.

Portable: runs on the curators' Windows and macOS laptops (subprocess only).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance import fat32
from appliance.content.errors import ManifestError
from appliance.content.keys import looks_like_private_key
from appliance.content.manifest import (
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    Tier,
    parse_manifest,
    parse_tiers,
)
from appliance.content.planner import default_fits, tier_fits, usable_capacity
from appliance.content.walk import DiskFile, list_pack
from appliance.fat32 import tree as fat32_tree
from appliance.fat32.plan import ContentFile, ContentTree, LayoutError
from appliance.units import format_size

FAT_MAX_FILE = 2**32 - 1

# What the notels reliably play (docs/content-pack.md, /shared FIELD facts).
SAFE_CONTAINERS = {"mp4": "MP4", "avi": "AVI", "matroska": "MKV", "mp3": "MP3"}
SAFE_VIDEO = {"h264": "H.264", "mpeg4": "MPEG-4 Part 2"}
SAFE_AUDIO = {"aac": "AAC", "mp3": "MP3"}
IGNORED_STREAMS = {"subtitle", "data", "attachment"}
MAX_WIDTH, MAX_HEIGHT = 1920, 1088

#: Tags that identify people, places or devices (matched on the name after exiftool's group).
IDENTIFYING_TAGS = frozenset(
    {
        "Author",
        "Authors",
        "Creator",
        "CreatorTool",
        "Artist",
        "By-line",
        "Byline",
        "OwnerName",
        "CameraOwnerName",
        "Owner",
        "XPAuthor",
        "LastModifiedBy",
        "Company",
        "Manager",
        "Producer",
        "Software",
        "HostComputer",
        "Make",
        "Model",
        "UniqueCameraModel",
        "LocalizedCameraModel",
        "SerialNumber",
        "InternalSerialNumber",
        "BodySerialNumber",
        "LensSerialNumber",
        "CameraSerialNumber",
        "DeviceSerialNumber",
        "ImageUniqueID",
        "Encoder",
        "EncodedBy",
        "WritingApp",
        "MuxingApp",
        "Location",
        "LocationName",
        "City",
        "Country",
        "Sub-location",
    }
)
IDENTIFYING_PREFIXES = ("GPS",)
#: exiftool groups describing the file system entry, not the file's contents.
_SYSTEM_GROUPS = {"ExifTool", "System", "File"}


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def sniff(path: Path) -> str:
    """``"pdf"``, ``"image"``, ``"zip"``, ``"text"`` or ``"other"`` from the first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return "other"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")) or (
        head[:4] in (b"II*\x00", b"MM\x00*")
    ):
        return "image"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        return "zip"  # office documents, EPUB; \xd0\xcf: old MS Office / HWP compound files
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return "text"
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
            return "text"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # a character cut at the 4096-byte boundary
                return "text"
    return "other"


# -- playability ---------------------------------------------------------------------------


def judge_media(info: dict[str, Any]) -> list[str]:
    """Problems a notel may have with a file, from ffprobe's ``-show_format -show_streams``."""
    problems: list[str] = []
    fmt = info.get("format", {})
    names = set(str(fmt.get("format_name", "")).split(","))
    container = next((label for key, label in SAFE_CONTAINERS.items() if key in names), None)
    streams = [s for s in info.get("streams", []) if isinstance(s, dict)]
    if "webm" in names and "matroska" in names:
        # ffprobe names both; tell them apart by codecs (WebM means VP8/VP9/AV1 + Vorbis/Opus)
        container = "MKV"
    if container is None:
        problems.append(f"container {fmt.get('format_long_name') or fmt.get('format_name')!s}")
    brand = str(fmt.get("tags", {}).get("major_brand", "")).strip()
    if container == "MP4" and brand == "qt":
        problems.append("QuickTime MOV container (remux to MP4)")
    for s in streams:
        kind = s.get("codec_type")
        codec = str(s.get("codec_name", "?"))
        if kind in IGNORED_STREAMS or s.get("disposition", {}).get("attached_pic"):
            continue
        if kind == "video":
            if codec not in SAFE_VIDEO:
                problems.append(f"video codec {codec.upper()} (use H.264 or MPEG-4 Part 2)")
                continue
            pix = str(s.get("pix_fmt", ""))
            if "10" in pix or "12" in pix or "422" in pix or "444" in pix:
                problems.append(f"video pixel format {pix} (use 8-bit yuv420p)")
            w, h = int(s.get("width") or 0), int(s.get("height") or 0)
            if w > MAX_WIDTH or h > MAX_HEIGHT:
                problems.append(f"video {w}x{h} (players handle up to 1920x1080)")
        elif kind == "audio" and codec not in SAFE_AUDIO:
            problems.append(f"audio codec {codec.upper()} (use AAC or MP3)")
    if not any(s.get("codec_type") in ("video", "audio") for s in streams):
        problems.append("no audio or video streams")
    return problems


def ffprobe(path: Path, exe: str) -> dict[str, Any] | None:
    try:
        out = subprocess.run(
            [exe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        data = json.loads(out.stdout.decode("utf-8", "replace"))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and data.get("format") else None


# -- identifying metadata ------------------------------------------------------------------


def identifying_fields(tags: dict[str, Any]) -> list[tuple[str, str]]:
    """``(group:field, value)`` pairs of ``exiftool -j -G1`` output that identify someone."""
    found: list[tuple[str, str]] = []
    for key, value in tags.items():
        group, _, name = key.rpartition(":")
        if group in _SYSTEM_GROUPS or key == "SourceFile":
            continue
        if name in IDENTIFYING_TAGS or name.startswith(IDENTIFYING_PREFIXES):
            if name == "GPSVersionID":
                continue
            text = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
            if text.strip():
                found.append((key, text))
    return found


def exiftool_batch(paths: list[Path], exe: str) -> dict[Path, dict[str, Any]] | None:
    """Run exiftool once over ``paths`` (an argument file on stdin: no command-line limit)."""
    if not paths:
        return {}
    args = "\n".join(["-j", "-G1", "-a", "-charset", "filename=utf8", *map(str, paths)]) + "\n"
    try:
        out = subprocess.run(
            [exe, "-@", "-"],
            input=args.encode("utf-8"),
            capture_output=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    try:
        data = json.loads(out.stdout.decode("utf-8", "replace") or "[]")
    except json.JSONDecodeError:
        return None
    result: dict[Path, dict[str, Any]] = {}
    for item in data:
        if isinstance(item, dict) and "SourceFile" in item:
            result[Path(item["SourceFile"])] = item
    return result


# -- FAT rules and tier fit ----------------------------------------------------------------


def fat_problems(paths: Iterable[str]) -> list[str]:
    """Names and paths FAT cannot hold, by the layout compiler's own checks."""
    problems: list[str] = []
    children: dict[tuple[str, ...], set[str]] = {(): set()}
    for path in paths:
        parts = tuple(path.split("/"))
        for depth in range(1, len(parts) + 1):
            children.setdefault(parts[: depth - 1], set()).add(parts[depth - 1])
    seen: set[tuple[str, ...]] = set()
    for parent, kids in sorted(children.items()):
        for kid in sorted(kids):
            rel = (*parent, kid)
            if rel in seen:
                continue
            seen.add(rel)
            try:
                fat32_tree.check_name(rel)
            except LayoutError as exc:
                problems.append(str(exc))
        try:
            fat32_tree.check_directory(parent, sorted(kids), root=not parent)
        except LayoutError as exc:
            problems.append(str(exc))
    return problems


def _tier_source(files: dict[str, DiskFile], tiers_raw: object | None) -> Manifest:
    """A manifest-shaped view of what is on disk, with the tiers to check."""
    entries = tuple(FileEntry(p, files[p].size, "blake3", "0" * 64) for p in sorted(files))
    tiers: tuple[Tier, ...] = ()
    if tiers_raw is not None:
        tiers = parse_tiers(tiers_raw, [e.path for e in entries], "tiers")
    return Manifest("", "", "", "", entries, tiers)


def tier_problems(
    view: Manifest,
    files: dict[str, DiskFile],
    headroom: float,
    report: CheckReport,
    options: Any = None,
) -> None:
    for index, tier in enumerate(view.effective_tiers()):
        entries = [e for e in view.tier_files(index) if e.size <= FAT_MAX_FILE]
        tree = ContentTree(
            tuple(ContentFile(e.parts, files[e.path].path, e.size) for e in entries), ()
        )
        try:
            need = fat32.required_capacity(tree, options)
        except LayoutError as exc:
            report.errors.append(f"tier {tier.name!r}: cannot be laid out: {exc}")
            continue
        if tier.min_capacity == 0:
            report.notes.append(
                f"tier {tier.name!r}: {format_size(tree.total_bytes)} of files needs a drive "
                f"of at least {format_size(need)} (plus {headroom:.0%} headroom)"
            )
            continue
        usable = usable_capacity(tier.min_capacity, headroom)
        if not tier_fits(tree, tier.min_capacity, headroom, default_fits(), options):
            report.errors.append(
                f"tier {tier.name!r}: {format_size(tree.total_bytes)} of files needs "
                f"{format_size(need)} with the filesystem, more than its minimum "
                f"{format_size(tier.min_capacity)} less {headroom:.0%} headroom "
                f"({format_size(usable)})"
            )
        else:
            report.notes.append(
                f"tier {tier.name!r}: {format_size(tree.total_bytes)} fits drives from "
                f"{format_size(tier.min_capacity)}"
            )
    for entry in view.untiered():
        report.warnings.append(f"{entry.path}: in no tier, so it is never loaded")


# -- the whole check -----------------------------------------------------------------------


def check_pack(
    root: Path,
    *,
    headroom: float,
    tiers_raw: object | None = None,
    probe: bool = True,
    which: Callable[[str], str | None] = shutil.which,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """Check ``root`` (sealed or not). Tiers come from ``tiers_raw``, else its manifest."""
    root = Path(root)
    report = CheckReport()
    listing = list_pack(root)
    files = listing.files
    for junk in listing.junk:
        report.warnings.append(f"{junk}: hidden or system file (skipped, never loaded)")
    for odd in listing.odd:
        report.errors.append(odd)
    if not files:
        report.errors.append(f"{root}: holds no content files")
        return report
    for path, disk in sorted(files.items()):
        if disk.size > FAT_MAX_FILE:
            report.errors.append(
                f"{path}: {format_size(disk.size)}; FAT32 cannot hold files of 4 GiB or more "
                "(split or re-encode it)"
            )
    report.errors.extend(fat_problems(files))
    for path, disk in sorted(files.items()):
        if looks_like_private_key(disk.path):
            report.errors.append(f"{path}: looks like a private key; it would reach every stick")
    if tiers_raw is None and (root / MANIFEST_NAME).is_file():
        try:
            manifest = parse_manifest((root / MANIFEST_NAME).read_bytes())
        except (ManifestError, OSError) as exc:
            report.errors.append(f"{MANIFEST_NAME}: {exc}")
        else:
            tiers_raw = [
                {"name": t.name, "min_capacity": t.min_capacity, "items": list(t.items)}
                for t in manifest.tiers
            ] or None
            report.notes.append(f"tiers from {MANIFEST_NAME} (signature not checked here)")
    try:
        view = _tier_source(files, tiers_raw)
    except ManifestError as exc:
        report.errors.append(str(exc))
    else:
        tier_problems(view, files, headroom, report)
    if probe:
        _probe(files, report, which, progress)
    return report


def _probe(
    files: dict[str, DiskFile],
    report: CheckReport,
    which: Callable[[str], str | None],
    progress: Callable[[str], None] | None,
) -> None:
    kinds = {p: sniff(d.path) for p, d in files.items() if d.size <= FAT_MAX_FILE}
    ffprobe_exe = which("ffprobe")
    if ffprobe_exe is None:
        report.warnings.append(
            "ffprobe not found: media files were NOT checked for playability (install ffmpeg)"
        )
    else:
        for path, kind in sorted(kinds.items()):
            if kind not in ("other",):
                continue
            if progress is not None:
                progress(path)
            info = ffprobe(files[path].path, ffprobe_exe)
            if info is None:
                report.warnings.append(
                    f"{path}: not a media file ffprobe can read, nor a known document "
                    "or image type; readers may not open it"
                )
                continue
            for problem in judge_media(info):
                report.warnings.append(f"{path}: players may not play it: {problem}")
    exiftool_exe = which("exiftool")
    if exiftool_exe is None:
        report.warnings.append(
            "exiftool not found: files were NOT checked for identifying metadata "
            "(install exiftool / libimage-exiftool-perl)"
        )
        return
    targets = [files[p].path for p, k in sorted(kinds.items()) if k != "text"]
    found = exiftool_batch(targets, exiftool_exe)
    if found is None:
        report.warnings.append("exiftool failed: files were NOT checked for metadata")
        return
    by_disk = {files[p].path: p for p in kinds}
    for disk_path, tags in sorted(found.items()):
        rel = by_disk.get(disk_path)
        if rel is None:
            continue
        for name, value in identifying_fields(tags):
            report.warnings.append(f"{rel}: identifying metadata {name} = {value}")
