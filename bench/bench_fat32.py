"""Benchmark: ``flashstation make-image`` against ``cp --sparse=always`` of the same bytes.

Generates a few hundred MB of content (large and small files) in a temporary
directory, builds a 1 GiB image once, then alternates timed runs of

* ``flashstation make-image`` (scan + compile + write, from a fresh process),
* the same work without the CLI (``appliance.commands.image.make_image`` in a
  fresh interpreter): the CLI imports every area's command module at start-up,
  which is not make-image's cost,
* ``cp --sparse=always`` of the prebuilt image (the same bytes, already laid out),
* ``write_image`` alone, in this process, for a plan compiled beforehand (the
  copy path by itself),
* ``mkfs.fat`` + ``mcopy -s`` into an empty image (reference only),

each followed by an fsync of its output. Caches are dropped before every run
when running as root; otherwise the cache is warm and the report says so.
Goal: make-image throughput >= 0.90 of cp's (ratio = cp time / make-image time).
make-image's time includes starting Python and scanning the tree (about 0.2 s
with cold caches), which cp of a prebuilt image does not need; set
BENCH_LARGE_FILES (64 MiB each, default 6) to weigh that against more data.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MiB = 1024 * 1024
CAPACITY = 1024 * MiB
LARGE_FILES = int(
    os.environ.get("BENCH_LARGE_FILES", "6")
)  # 64 MiB each, like episodes; plus 2000 small files (~64 MiB)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "9"))
ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "LANG": "C.UTF-8"}


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def make_content(root: Path) -> int:
    total = 0
    block = os.urandom(MiB)
    for i in range(LARGE_FILES):
        path = root / "영화" / f"큰 파일 {i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for j in range(64):
                f.write(block[j:] + block[:j])
        total += 64 * MiB
    for d in range(20):
        folder = root / "책" / f"묶음 {d:02d}"
        folder.mkdir(parents=True)
        for i in range(100):
            size = (i * 7919 + d * 104729) % (64 * 1024)
            (folder / f"문서 {i:03d}.txt").write_bytes(block[:size])
            total += size
    return total


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(cmd: list[str], out: Path, cold: bool) -> float:
    if out.exists():
        out.unlink()
    if cold:
        drop_caches()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=ENV)
    fsync_file(out)
    return time.perf_counter() - start


def timed_call(call: Callable[[], None], out: Path, cold: bool) -> float:
    if out.exists():
        out.unlink()
    if cold:
        drop_caches()
    start = time.perf_counter()
    call()
    fsync_file(out)
    return time.perf_counter() - start


def mkfs_mcopy(content: Path, out: Path) -> list[str]:
    script = (
        f"truncate -s {CAPACITY} '{out}' && "
        f"mkfs.fat -F 32 --offset 2048 '{out}' {(CAPACITY - MiB) // 1024} >/dev/null && "
        f"mcopy -s -i '{out}@@1M' '{content}'/* ::/"
    )
    return ["bash", "-c", script]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-fat32-", dir="/var/tmp") as tmp_name:
        tmp = Path(tmp_name)
        content = tmp / "content"
        content.mkdir()
        size = make_content(content)
        prebuilt = tmp / "prebuilt.img"
        flashstation = [sys.executable, "-m", "appliance", "make-image"]
        subprocess.run(
            [*flashstation, "--content", str(content), "--capacity", str(CAPACITY), str(prebuilt)],
            check=True,
        )
        written = prebuilt.stat().st_blocks * 512
        cold = drop_caches()
        print(
            f"content: {size / MiB:.0f} MiB in {LARGE_FILES + 2000} files; "
            f"image {CAPACITY // MiB} MiB, {written / MiB:.0f} MiB allocated"
        )
        print("caches dropped before every run" if cold else "warm cache (not root)")
        out = tmp / "out.img"
        library = [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from appliance.commands.image import make_image; "
            "make_image(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), quiet=True)",
        ]
        commands = {
            "make-image": [
                *flashstation,
                "--content",
                str(content),
                "--capacity",
                str(CAPACITY),
                str(out),
            ],
            "library": [*library, str(content), str(CAPACITY), str(out)],
            "cp": ["cp", "--sparse=always", str(prebuilt), str(out)],
            "mkfs+mcopy": mkfs_mcopy(content, out),
        }
        from appliance.fat32 import compile_plan, scan_content, write_image

        plan = compile_plan(scan_content(content), CAPACITY)
        runs = [*commands, "write_image"]
        times: dict[str, list[float]] = {name: [] for name in runs}
        for round_no in range(ROUNDS):
            order = runs if round_no % 2 == 0 else list(reversed(runs))
            for name in order:
                if name == "write_image":
                    times[name].append(timed_call(lambda: write_image(plan, out), out, cold))
                else:
                    times[name].append(timed(commands[name], out, cold))
        for name, values in times.items():
            best = min(values)
            print(
                f"{name:>11}: median {statistics.median(values):.3f}s best {best:.3f}s "
                f"({written / MiB / best:.0f} MiB/s)"
            )
        for name, what in [
            ("make-image", "flashstation make-image (CLI, all command modules imported)"),
            ("library", "make-image's scan + compile + write in a fresh interpreter"),
            ("write_image", "write_image alone (plan compiled beforehand, in this process)"),
        ]:
            ratio = statistics.median(times["cp"]) / statistics.median(times[name])
            best_ratio = min(times["cp"]) / min(times[name])
            print(
                f"{what}:\n  throughput / cp --sparse=always: {ratio:.2f} of medians, "
                f"{best_ratio:.2f} of best runs (goal >= 0.90)"
            )
        ref = statistics.median(times["mkfs+mcopy"]) / statistics.median(times["make-image"])
        print(f"make-image speed-up over mkfs.fat+mcopy: {ref:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
