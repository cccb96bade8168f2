"""``flashstation load``: wipe, load and verify sticks (or image files) from a content folder.

``--content`` is a plain folder (loaded whole) or a sealed content pack
(``manifest.yaml`` + ``manifest.yaml.sig``, see docs/content-pack.md): then the
signature is checked first against ``--trusted-key`` and the ``--config``
file's ``content.trusted_keys``, missing or resized files are refused before
any drive is touched, each target gets the largest tier that fits its
capacity (with ``content.headroom``), and every file is hashed as it streams:
a mismatch fails the batch with "content SSD damaged: <file>".

Each ``--target`` is a block device or an existing image file whose size is the
capacity. Block devices pass the refusal checks first (partition, mounted,
swap, system disk, holds the content) and are opened ``O_EXCL``; nothing that
was not named is touched. Each target gets its own plan for its capacity; the
content is read once for all of them. Exit 0 when every target passed, 1 when
any failed or was cancelled, 2 for usage errors. Ctrl-C cancels cleanly: the
drives are left without a partition table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from tqdm import tqdm

from appliance.config import load_config
from appliance.content import NoTierFits, Pack, is_pack, load_trusted, open_pack
from appliance.content.planner import PlainFolder, choose_tier
from appliance.content.stream import StreamChecker
from appliance.drives import DriveError, open_target
from appliance.drives.target import DeviceTarget
from appliance.engine import (
    Event,
    Job,
    LoadOptions,
    PhaseChanged,
    Progress,
    TargetFinished,
    TargetResult,
    start_batch,
)
from appliance.errors import UsageError
from appliance.fat32 import ContentTree, LayoutError, LayoutOptions, compile_plan
from appliance.units import format_size, parse_size


def register(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="wipe, load and verify drives from a content folder",
        description="Wipe each target, write the content as FAT32, verify every byte on the "
        "drive, and write the partition table last.",
    )
    p.add_argument(
        "--content",
        required=True,
        metavar="DIR",
        help="content folder, or a sealed content pack (manifest.yaml + signature)",
    )
    p.add_argument(
        "--trusted-key",
        dest="trusted_keys",
        action="append",
        default=[],
        metavar="PUB",
        help="public key trusted to sign a pack (repeatable; adds to content.trusted_keys)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="station.yaml for content.trusted_keys, allow_unsigned and headroom",
    )
    p.add_argument(
        "--target",
        required=True,
        action="append",
        metavar="T",
        help="block device (whole disk) or existing image file; repeat for more",
    )
    p.add_argument(
        "--wipe",
        choices=("full", "quick"),
        default="full",
        help="full (default): overwrite and check every sector; quick: file system, "
        "first/last 32 MiB and old partition areas only (donor data may remain)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per target on stdout")
    p.add_argument("--min-size", default="64MiB", metavar="SIZE", help="smallest accepted target")
    p.add_argument("--buffer", default="32MiB", metavar="SIZE", help="shared content window")
    p.add_argument("--label", default=None, help="volume label (default: none)")
    p.add_argument(
        "--skip-zero-chunks",
        action="store_true",
        help="full wipe: read areas that should become zeros first and skip writing them when "
        "they already read back as zeros (see docs/throughput.md)",
    )
    p.set_defaults(handler=load_command)


class _Bars:
    """One tqdm bar per target on stderr, updated from the engine's event thread."""

    def __init__(self, names: list[str], enabled: bool | None) -> None:
        width = max(len(n) for n in names) if names else 0
        self.bars = {
            name: tqdm(
                total=0,
                desc=f"{name:<{width}} open",
                position=i,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                disable=enabled,
                leave=True,
                dynamic_ncols=True,
            )
            for i, name in enumerate(names)
        }
        self.width = width
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            if isinstance(event, PhaseChanged) and event.target in self.bars:
                bar = self.bars[event.target]
                bar.set_description_str(f"{event.target:<{self.width}} {event.phase}")
            elif isinstance(event, Progress) and event.target in self.bars:
                bar = self.bars[event.target]
                if bar.total != event.total:
                    bar.reset(total=event.total)
                bar.n = event.done
                bar.refresh()
            elif isinstance(event, TargetFinished):
                r = event.result
                done_bar = self.bars.get(r.target)
                if done_bar is not None:
                    done_bar.set_description_str(f"{r.target:<{self.width}} {r.status}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _failed(name: str, reason: str, wipe: str, cause: str) -> TargetResult:
    return TargetResult(
        target=name,
        status="failed",
        reason=reason,
        capacity=0,
        bytes_written=0,
        bytes_verified=0,
        seconds={},
        bus_bytes=0,
        content_bytes=0,
        source_extra_reads=0,
        wipe="quick" if wipe == "quick" else "full",
        cause=cause,
    )


def load_command(args: argparse.Namespace) -> int:
    content = Path(args.content)
    if not content.is_dir():
        raise UsageError(f"--content {content}: not a folder")
    names: list[str] = list(args.target)
    seen: dict[str, str] = {}
    for name in names:
        if not os.path.exists(name):
            raise UsageError(f"--target {name}: no such file or device (image files must exist)")
        real = os.path.realpath(name)
        if real in seen:
            raise UsageError(f"--target {name}: given twice (also as {seen[real]})")
        seen[real] = name
    options = LoadOptions(
        wipe=args.wipe,
        min_capacity=parse_size(args.min_size),
        buffer_budget=parse_size(args.buffer),
        skip_zero_chunks=bool(args.skip_zero_chunks),
    )
    layout = LayoutOptions(label=args.label)
    loaded = _open_content(content, args)
    content_bytes = 0
    results: dict[str, TargetResult] = {}
    jobs: list[Job] = []
    opened: list[DeviceTarget] = []
    try:
        for name in names:
            try:
                target = open_target(name, protect=[content])
            except DriveError as exc:
                results[name] = _failed(name, str(exc), args.wipe, exc.code)
                continue
            opened.append(target)
            try:
                tree = loaded.tree_for(name, target.capacity, layout)
                plan = compile_plan(tree, target.capacity, layout)
                content_bytes = max(content_bytes, tree.total_bytes)
            except (LayoutError, NoTierFits) as exc:
                results[name] = _failed(name, f"{name}: {exc}", args.wipe, "too_small")
                target.close()
                continue
            jobs.append(Job(target, plan, name=name))
    except BaseException:
        for t in opened:
            t.close()
        raise
    if jobs:
        results.update(_run(jobs, options, content, loaded.observer))
    ordered = [results[name] for name in names]
    _report(ordered, content_bytes, bool(args.json))
    return 0 if all(r.ok for r in ordered) else 1


def _run(
    jobs: list[Job], options: LoadOptions, content: Path, observer: StreamChecker | None
) -> dict[str, TargetResult]:
    bars = _Bars([j.label for j in jobs], None if sys.stderr.isatty() else True)
    batch = start_batch(jobs, options, on_event=bars, protect=[content], observer=observer)

    def on_sigint(_sig: int, _frame: FrameType | None) -> None:
        print(
            "\nflashstation: cancelling (drives are left without a partition table)",
            file=sys.stderr,
        )
        batch.cancel_all()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    old = signal.signal(signal.SIGINT, on_sigint)
    try:
        results = batch.wait()
    finally:
        signal.signal(signal.SIGINT, old)
        bars.close()
    if batch.error:
        print(f"flashstation: batch failed: {batch.error}", file=sys.stderr)
    return {r.target: r for r in results}


@dataclass
class _Content:
    """What ``--content`` named: a plain folder, or a checked pack with its observer."""

    source: Pack | PlainFolder
    observer: StreamChecker | None = None
    headroom: float = 0.0

    def tree_for(self, name: str, capacity: int, layout: LayoutOptions) -> ContentTree:
        """The folder's tree, or the largest tier that fits ``capacity``."""
        source = self.source
        if isinstance(source, PlainFolder):
            return source.content_tree(0)
        index = choose_tier(source, capacity, headroom=self.headroom, options=layout)
        if index is None:
            raise NoTierFits(
                f"{name}: {format_size(capacity)} is too small for the smallest tier "
                f"{source.tiers()[0].name!r} (with {self.headroom:.0%} kept free)"
            )
        print(f"{name}: tier {source.tiers()[index].name!r}", file=sys.stderr)
        return source.content_tree(index)


def _open_content(content: Path, args: argparse.Namespace) -> _Content:
    """Check a pack's signature and files (no drive touched yet), or scan a plain folder."""
    if not is_pack(content):
        folder = PlainFolder(content)
        folder.content_tree(0)  # scan now: refuse bad content before touching drives
        return _Content(folder)
    config = load_config(args.config).content
    trusted = [*config.trusted_keys, *args.trusted_keys]
    pack = open_pack(content, load_trusted(trusted), allow_unsigned=config.allow_unsigned)
    pack.preflight()
    signer = f"signed by key {pack.signer.id}" if pack.signer else "UNSIGNED (allowed by config)"
    m = pack.manifest
    print(f"content pack {m.title!r} version {m.version}, {signer}", file=sys.stderr)
    return _Content(pack, pack.stream_checker(), config.headroom)


def _report(results: list[TargetResult], content_size: int, as_json: bool) -> None:
    for r in results:
        if as_json:
            obj = r.to_json()
            obj["bus_ratio"] = round(r.bus_bytes / content_size, 3) if content_size else 0.0
            print(json.dumps(obj, ensure_ascii=False), flush=True)
        line = f"{r.target}: {r.status}"
        if r.ok:
            times = ", ".join(f"{k} {v:.1f}s" for k, v in r.seconds.items())
            ratio = r.bus_bytes / content_size if content_size else 0.0
            line += (
                f" ({format_size(r.capacity)}, verified {format_size(r.bytes_verified)}, {times};"
                f" bus {ratio:.2f}x content)"
            )
        else:
            line += f": {r.reason}"
        for note in r.notes:
            line += f" [{note}]"
        print(line, file=sys.stderr)


__all__ = ["load_command", "register"]
