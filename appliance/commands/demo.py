"""``flashstation demo`` (what ``make demo`` runs): the station simulator.

- ``flashstation demo``: interactive, in the terminal: the OLED drawn with
  half-blocks, keys for buttons and for plugging simulated sticks. When
  standard input is not a terminal (CI, a pipe) it replays the bundled
  session script headless instead, so ``make demo`` never waits for keys.
- ``flashstation demo --headless --script FILE [--frames DIR]``: replay a
  YAML script of timed events and save frames as PNG; exit 1 if the
  script's ``expect`` does not hold.
- ``flashstation demo --image``: build a FAT32 stick image from the sample
  content and show what a reader sees (the layout compiler's demo).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from appliance.errors import UsageError
from appliance.fat32 import LayoutOptions, compile_plan, scan_content, write_image
from appliance.fat32.image import extract_partition
from appliance.fat32.inspect import inspect_image, render

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"
DEMO_CAPACITY = 64 * 1024 * 1024
GB = 1000**3
MiB = 1024 * 1024
KEYS_HELP = [
    "1-8 plug/pull a stick   f+N fake-capacity stick   k+N keyboard-like device",
    "s START   c CANCEL   m MENU   M hold MENU (shut down)",
    "i insert/remove content SSD   d damage content   q quit",
]


def register(sub: Any) -> None:
    parser = sub.add_parser("demo", help="try the station with simulated sticks and buttons")
    parser.add_argument("--image", action="store_true", help="build a sample stick image instead")
    parser.add_argument("--headless", action="store_true", help="replay a script, no terminal")
    parser.add_argument("--script", type=Path, help="YAML script of timed events")
    parser.add_argument("--frames", type=Path, help="save frames as PNG in this folder")
    parser.add_argument("--language", choices=("en", "ko"), help="screen language")
    parser.add_argument("--scale", type=int, default=1, help="enlarge saved frames")
    parser.add_argument(
        "--engine", action="store_true", help="headless: run the real engine (real time)"
    )
    parser.add_argument(
        "--sim-loader",
        action="store_true",
        help="interactive: simulate loading instead of running the real engine",
    )
    parser.add_argument("--capacity", type=int, default=DEMO_CAPACITY, help=argparse.SUPPRESS)
    parser.set_defaults(handler=demo_command)


def build_sample_image(out: Path, capacity: int = DEMO_CAPACITY, content: Path = SAMPLE) -> Path:
    """Write the sample content as a FAT32 image of ``capacity`` bytes to ``out``."""
    tree = scan_content(content)
    write_image(compile_plan(tree, capacity, LayoutOptions()), out)
    return out


def image_demo(capacity: int) -> int:
    with tempfile.TemporaryDirectory(prefix="flashstation-demo-") as tmp:
        image = build_sample_image(Path(tmp) / "stick.img", capacity)
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


def headless(
    script: Path, frames: Path | None, language: str | None, scale: int, engine: bool = False
) -> int:
    from appliance.ui.simulator import run_script

    result = run_script(script, frames, language, scale, engine=engine)
    for slot, state in sorted(result.slots.items()):
        print(f"slot {slot}: {state}")
    if frames is not None:
        print(f"{result.all_frames} frames and {len(result.frames)} named frames in {frames}")
    for failure in result.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if result.failures else 0


def interactive(language: str, engine: bool, frames: Path | None = None, scale: int = 1) -> int:
    """Keys drive the simulator. With the real engine, sticks are small image files
    (160 MiB; a fake one claims 1 GiB and holds 128 MiB) written at 20 MB/s each, so a
    session takes seconds and little disk; with ``--sim-loader`` they are 8 GB / 64 GB."""
    from appliance.ui import terminal
    from appliance.ui.simulator import ScriptError, Simulator, WallClock

    if engine:
        size, fake, real, speed = 160 * MiB, 1024 * MiB, 128 * MiB, 20e6
    else:
        size, fake, real, speed = 8 * GB, 64 * GB, 8 * GB, 500e6
    logging.disable(logging.WARNING)  # log lines would tear the drawing (the test key is known)
    sim = Simulator(
        language=language, speed=speed, clock=WallClock(), engine=engine, batch_window=2.0
    )
    sim.insert_content()
    saved = 0
    last = None
    if frames is not None:
        frames.mkdir(parents=True, exist_ok=True)
    pending = ""  # "f" or "k" waiting for a slot number
    columns, lines = shutil.get_terminal_size()
    message = ""
    if columns < 130 or lines < 40:
        message = f"terminal is {columns}x{lines}; the screen needs 130x40 to show whole"
    try:
        with terminal.raw_keys():
            while True:
                sim.tick()
                image = sim.frame().image
                if frames is not None and (last is None or image.tobytes() != last.tobytes()):
                    saved += 1
                    out = image.resize((image.width * scale, image.height * scale))
                    out.save(frames / f"{saved:04d}.png")
                    last = image
                footer = [*KEYS_HELP, message.ljust(80)]
                sys.stdout.write(terminal.frame_text(image, footer))
                sys.stdout.flush()
                key = terminal.read_key(0.1)
                if key is None:
                    continue
                message = ""
                try:
                    if key == "q":
                        return 0
                    if pending and key.isdigit():
                        slot = int(key)
                        if pending == "f":
                            sim.plug(slot, fake, real=real)
                        else:
                            sim.keyboard(slot)
                        pending = ""
                    elif key.isdigit() and key != "0":
                        sim.toggle(int(key), size)
                    elif key in "fk":
                        pending = key
                        message = "slot number?"
                    elif key in "scmM":
                        names = {"s": "start", "c": "cancel", "m": "menu", "M": "menu_hold"}
                        sim.press(names[key])
                    elif key == "i":
                        if sim.content is None:
                            sim.insert_content()
                        else:
                            sim.remove_content()
                    elif key == "d":
                        sim.damage_content()
                except ScriptError as exc:
                    message = str(exc)
                    pending = ""
    finally:
        sim.close()
        logging.disable(logging.NOTSET)


def demo_command(args: argparse.Namespace) -> int:
    from appliance.ui.simulator import DEMO_SCRIPT

    if args.image:
        return image_demo(args.capacity)
    if args.scale < 1:
        raise UsageError("--scale must be 1 or more")
    if args.headless or args.script is not None:
        return headless(
            args.script or DEMO_SCRIPT, args.frames, args.language, args.scale, args.engine
        )
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        print("no terminal: replaying the bundled demo session headless", file=sys.stderr)
        return headless(DEMO_SCRIPT, args.frames, args.language, args.scale)
    return interactive(
        args.language or "en", engine=not args.sim_loader, frames=args.frames, scale=args.scale
    )
