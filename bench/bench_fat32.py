"""Benchmark: ``flashstation make-image`` against ``cp --sparse=always`` of the same bytes.

Generates content (``BENCH_LARGE_FILES`` files of 64 MiB, like episodes, plus
2000 small files of up to 64 KiB, like books) in a temporary directory under
``/var/tmp`` (a real disk, not tmpfs), builds the image once with make-image,
then times, in paired rounds:

* ``make-image``: ``flashstation make-image`` from a fresh process (interpreter
  start, imports, scan, compile, write), as an operator runs it;
* ``cp``: ``cp --sparse=always`` of the prebuilt image (the same bytes, already
  laid out: cp pays no start-up, scan or layout);
* ``write_image`` (with ``BENCH_ALL=1``): the copy path alone, in this process,
  for a plan compiled beforehand;
* ``mkfs+mcopy`` (with ``BENCH_ALL=1``): mkfs.fat + ``mcopy -s`` into an empty
  image, the tools make-image replaces (reference only).

Every run ends with an fsync of its output, so the bytes are on disk, not in
the page cache. Two conditions, each reported on its own:

* ``cold``: caches dropped before every run (needs root; skipped otherwise),
  the first load of a fresh content folder;
* ``warm``: content and prebuilt image already cached, as when one content
  folder is imaged several times.

The machine is shared and its disk is noisy (the same cp varies 2x between
runs), so times are never compared across a session: each round runs cp and
make-image back to back, alternating which goes first, and the ratio
(cp time / make-image time, i.e. make-image throughput as a share of cp's) is
taken per round. The report gives the median of the per-round ratios and their
quartiles. Goal: median >= 0.90.

Environment: ``BENCH_LARGE_FILES`` (default 6, about 450 MiB in all),
``BENCH_ROUNDS`` (default 15), ``BENCH_CONDITIONS`` (default ``cold,warm``),
``BENCH_ALL=1`` to add the reference runs.
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
GiB = 1024 * MiB
LARGE_FILES = int(os.environ.get("BENCH_LARGE_FILES", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
CONDITIONS = [c for c in os.environ.get("BENCH_CONDITIONS", "cold,warm").split(",") if c]
ALL = os.environ.get("BENCH_ALL") == "1"
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


def warm_up(*paths: Path) -> None:
    """Read every file under ``paths`` so the page cache holds it."""
    for top in paths:
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in files:
            with open(path, "rb") as f:
                while f.read(8 * MiB):
                    pass


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def timed(run: Callable[[], object], out: Path, prepare: Callable[[], object]) -> float:
    if out.exists():
        out.unlink()
    os.sync()  # the previous run's output is not this run's writeback
    prepare()
    start = time.perf_counter()
    run()
    fsync_file(out)
    return time.perf_counter() - start


def mkfs_mcopy(content: Path, out: Path, capacity: int) -> list[str]:
    script = (
        f"truncate -s {capacity} '{out}' && "
        f"mkfs.fat -F 32 --offset 2048 '{out}' {(capacity - MiB) // 1024} >/dev/null && "
        f"mcopy -s -i '{out}@@1M' '{content}'/* ::/"
    )
    return ["bash", "-c", script]


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-fat32-", dir="/var/tmp") as tmp_name:
        tmp = Path(tmp_name)
        content = tmp / "content"
        content.mkdir()
        size = make_content(content)
        capacity = max(GiB, -(-(size * 5 // 4) // GiB) * GiB)
        prebuilt = tmp / "prebuilt.img"
        flashstation = [sys.executable, "-m", "appliance", "make-image"]
        subprocess.run(
            [*flashstation, "--content", str(content), "--capacity", str(capacity), str(prebuilt)],
            check=True,
            capture_output=True,
        )
        written = prebuilt.stat().st_blocks * 512
        print(
            f"content: {size / MiB:.0f} MiB in {LARGE_FILES + 2000} files; "
            f"image {capacity // MiB} MiB, {written / MiB:.0f} MiB allocated; {ROUNDS} rounds"
        )
        out = tmp / "out.img"

        def command(cmd: list[str]) -> Callable[[], object]:
            return lambda: subprocess.run(cmd, check=True, capture_output=True, env=ENV)

        runs: dict[str, Callable[[], object]] = {
            "make-image": command(
                [*flashstation, "--content", str(content), "--capacity", str(capacity), str(out)]
            ),
            "cp": command(["cp", "--sparse=always", str(prebuilt), str(out)]),
        }
        if ALL:
            from appliance.fat32 import compile_plan, scan_content, write_image

            plan = compile_plan(scan_content(content), capacity)
            runs["write_image"] = lambda: write_image(plan, out)
            runs["mkfs+mcopy"] = command(mkfs_mcopy(content, out, capacity))

        for condition in CONDITIONS:
            if condition == "cold":
                if not drop_caches():
                    print("cold: skipped (dropping caches needs root)")
                    continue
                prepare: Callable[[], object] = drop_caches
            elif condition == "warm":
                warm_up(content, prebuilt)
                prepare = lambda: None  # noqa: E731
            else:
                print(f"{condition}: unknown condition (cold, warm)")
                return 2
            times: dict[str, list[float]] = {name: [] for name in runs}
            names = list(runs)
            for round_no in range(ROUNDS):
                order = names if round_no % 2 == 0 else names[::-1]
                for name in order:
                    times[name].append(timed(runs[name], out, prepare))
            print(f"\n{condition} caches:")
            for name, values in times.items():
                q1, q2, q3 = quartiles(values)
                print(
                    f"  {name:>11}: median {q2:.3f}s (quartiles {q1:.3f}-{q3:.3f}s), "
                    f"{written / MiB / q2:.0f} MiB/s"
                )
            for name in runs:
                if name == "cp":
                    continue
                ratios = [c / t for c, t in zip(times["cp"], times[name], strict=True)]
                q1, q2, q3 = quartiles(ratios)
                goal = " (goal >= 0.90)" if name == "make-image" else ""
                print(
                    f"  {name} throughput / cp --sparse=always, per round: median {q2:.2f}, "
                    f"quartiles {q1:.2f}-{q3:.2f}{goal}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
