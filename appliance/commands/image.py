"""``flashstation make-image`` and ``flashstation inspect``: images without a station.

``make-image`` scans a content folder, compiles the FAT32 plan for a capacity
and writes it to a sparse file; every refusal (content too large, names FAT
cannot hold, ...) happens before the output file is touched. ``inspect``
prints what a reader of an image would see.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from appliance.errors import FlashStationError, UsageError
from appliance.fat32 import LayoutOptions, compile_plan, scan_content, write_image
from appliance.units import format_size, parse_size


def register(sub: Any) -> None:
    make = sub.add_parser(
        "make-image",
        help="write a content folder as a FAT32 drive image (sparse file)",
        description="Lay out DIR as a FAT32 stick of SIZE bytes and write it to OUT.img.",
    )
    make.add_argument("--content", required=True, metavar="DIR", help="content folder")
    make.add_argument(
        "--capacity", required=True, metavar="SIZE", help="target size: 8GiB, 7.5GB or bytes"
    )
    make.add_argument("--label", default=None, help="volume label (default: none)")
    make.add_argument("out", metavar="OUT.img")
    make.set_defaults(handler=make_image_command)

    inspect = sub.add_parser("inspect", help="show the partition table and files of a drive image")
    inspect.add_argument("image", metavar="IMG")
    inspect.set_defaults(handler=inspect_command)


BIG_IMAGE = 64 * 1024 * 1024  # bytes to write before progress is worth showing


class _Progress:
    """A one-line progress indication on stderr, at most a few times a second."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if total < BIG_IMAGE:
            return
        now = time.monotonic()
        if done < total and now - self.last < 0.5:
            return
        self.last = now
        percent = 100 * done // total if total else 100
        self.stream.write(f"\rwriting {format_size(done)} of {format_size(total)} ({percent}%)")
        self.stream.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            self.stream.write("\n")


def make_image(
    content: Path, capacity: int, out: Path, *, label: str | None = None, quiet: bool = False
) -> None:
    """Scan, compile and write; the reusable core of ``make-image`` and ``demo``."""

    def warn(message: str) -> None:
        if not quiet:
            print(f"flashstation: warning: {message}", file=sys.stderr)

    tree = scan_content(content, warn=warn)
    plan = compile_plan(tree, capacity, LayoutOptions(label=label))
    progress = None if quiet else _Progress()
    write_image(plan, out, progress)
    if progress:
        progress.finish()


class ImageWriteError(FlashStationError):
    """The output image could not be written."""


def check_output(out: Path) -> None:
    """Refuse outputs that are not (new or existing) regular files in an existing folder.

    ``make-image`` writes image *files*; pointed at ``/dev/sdX`` it would
    replace the device node, so anything else is refused before work starts.
    """
    if out.exists() and not out.is_file():
        raise UsageError(f"{out}: exists and is not a regular file (make-image writes files)")
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{out}: folder {parent} is not writable")


def make_image_command(args: argparse.Namespace) -> int:
    capacity = parse_size(args.capacity)
    content = Path(args.content)
    if not content.is_dir():
        raise UsageError(f"--content {content}: not a folder")
    out = Path(args.out)
    check_output(out)
    try:
        make_image(content, capacity, out, label=args.label)
    except OSError as exc:
        raise ImageWriteError(f"{out}: cannot write the image ({exc.strerror or exc})") from exc
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    from appliance.fat32.inspect import inspect_image, render

    print(render(inspect_image(Path(args.image))))
    return 0
