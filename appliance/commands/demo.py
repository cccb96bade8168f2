"""``flashstation demo`` (what ``make demo`` runs): a stick image from the sample content.

Builds a 64 MiB image of the bundled sample folder (Korean names, tiny media)
in a temporary directory, prints what a reader of the stick would see and,
when ``fsck.fat`` is installed, its verdict. :func:`build_sample_image` is the
reusable part (the station simulator will replace the rest).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from appliance.fat32 import LayoutOptions, compile_plan, scan_content, write_image
from appliance.fat32.image import extract_partition
from appliance.fat32.inspect import inspect_image, render

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
DEMO_CAPACITY = 64 * 1024 * 1024


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="build a stick image from the sample content and show it")
    parser.add_argument("--capacity", type=int, default=DEMO_CAPACITY, help=argparse.SUPPRESS)
    parser.set_defaults(handler=demo_command)


def build_sample_image(out: Path, capacity: int = DEMO_CAPACITY, content: Path = SAMPLE) -> Path:
    """Write the sample content as a FAT32 image of ``capacity`` bytes to ``out``."""
    tree = scan_content(content)
    write_image(compile_plan(tree, capacity, LayoutOptions()), out)
    return out


def demo_command(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="flashstation-demo-") as tmp:
        image = build_sample_image(Path(tmp) / "stick.img", args.capacity)
        print(f"built {image.name} from {SAMPLE}\n")
        info = inspect_image(image)
        print(render(info))
        fsck = shutil.which("fsck.fat")
        if fsck is None:
            print("\nfsck.fat not installed: skipped the independent check")
            return 0
        part = info.partitions[0]
        volume = extract_partition(image, part.start, part.size, Path(tmp) / "partition.img")
        result = subprocess.run([fsck, "-n", str(volume)], capture_output=True, text=True)
        print(f"\nfsck.fat -n: exit status {result.returncode}")
        print(result.stdout.strip())
        return 0 if result.returncode == 0 else 1
