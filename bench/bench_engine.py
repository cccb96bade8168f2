"""Benchmark the fan-out engine against the usual ways to load N sticks.

Run by ``make bench`` (as root: loop devices, dropping the page cache). For each
N in 4, 8, 16 and each target kind (image files, loop devices) the same targets,
prefilled with non-zero "donor" bytes, receive the same content (a few hundred
MB, large and small files) by:

  fs-full   flashstation load --wipe full   (wipe + verify every sector)
  fs-quick  flashstation load --wipe quick  (verify everything written)
  a         parallel mkfs.fat + mcopy per target (no wipe, no verify)
  a+sync    the same, plus the time until its data reached the targets (sync)
  b         mkfs.fat + mcopy into one image, then parallel dd oflag=direct and
            cmp reading back with iflag=direct (image build time included)
  c         the same image, etcher-sdk multiWrite with verification (image build
            time included; BlockDevice with O_DIRECT on loop devices)

The page cache is dropped before each run. Printed per run: wall seconds, CPU
seconds per GB written to the targets, peak RSS, source bytes read / content
size; then the issue's goals as ratios. Environment: BENCH_NS="4 8 16",
BENCH_TARGET_MIB=1024, BENCH_CONTENT_MB=300, BENCH_KINDS="file loop",
BENCH_DIR (default /var/tmp/flashstation-bench).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
ETCHER_DIR = Path(os.environ.get("BENCH_ETCHER_DIR", "/var/tmp/flashstation-bench-etcher"))
ETCHER_PACKAGE = {
    "name": "flashstation-bench-etcher",
    "private": True,
    "dependencies": {"etcher-sdk": "10.2.15"},
    # etcher-sdk pins a git tarball of unbzip2-stream; use the registry's release.
    "overrides": {"unbzip2-stream": "1.4.3"},
}
ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}


@dataclass
class Run:
    method: str
    kind: str
    n: int
    wall: float
    cpu: float
    rss_mb: float
    gb: float  # GB written to targets
    amplification: float | None = None
    ok: bool = True
    note: str = ""

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu / self.gb if self.gb else 0.0


def drop_caches() -> None:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        print("  (cannot drop the page cache: not root?)", file=sys.stderr)


def timed_wait4(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, float, int, str]:
    drop_caches()
    with tempfile.TemporaryFile(mode="w+") as out_f:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=subprocess.STDOUT, env=env or ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        out = out_f.read()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode, out


def make_content(root: Path, total_mb: int) -> int:
    rng = random.Random(5)
    root.mkdir(parents=True)
    big = total_mb * 1_000_000 * 8 // 10
    sizes = [big * 6 // 10, big * 4 // 10]
    films = root / "films"
    films.mkdir()
    for i, size in enumerate(sizes):
        with open(films / f"film{i}.mp4", "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MiB)
                f.write(os.urandom(n))
                left -= n
    small_total = total_mb * 1_000_000 - big
    books = root / "books"
    done = 0
    i = 0
    while done < small_total:
        d = books / f"shelf{i % 12:02d}"
        d.mkdir(parents=True, exist_ok=True)
        size = rng.randint(2_000, 400_000)
        (d / f"book{i:04d}.txt").write_bytes(rng.randbytes(size))
        done += size
        i += 1
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def prefill(path: Path, size: int) -> None:
    pattern = (b"DONOR" + bytes(range(1, 250))) * (MiB // 254 + 1)
    block = pattern[:MiB]
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(block)


def setup_targets(workdir: Path, kind: str, n: int, size: int) -> tuple[list[str], list[str]]:
    images = []
    for i in range(n):
        p = workdir / f"{kind}-{n}-{i}.img"
        prefill(p, size)
        images.append(str(p))
    if kind == "file":
        return images, []
    loops = []
    for img in images:
        dev = subprocess.run(
            ["losetup", "-f", "--show", img], check=True, capture_output=True, text=True
        ).stdout.strip()
        loops.append(dev)
    return loops, loops


def ensure_etcher() -> Path | None:
    modules = ETCHER_DIR / "node_modules"
    if (modules / "etcher-sdk").is_dir() and list(modules.glob("@ronomon/direct-io/binding.node")):
        return modules
    if not shutil.which("npm"):
        return None
    ETCHER_DIR.mkdir(parents=True, exist_ok=True)
    (ETCHER_DIR / "package.json").write_text(json.dumps(ETCHER_PACKAGE))
    print("installing etcher-sdk with npm into", ETCHER_DIR, file=sys.stderr)
    steps = [
        ["npm", "install", "--no-audit", "--no-fund"],
        [
            "npm",
            "rebuild",
            "--ignore-scripts=false",
            "@ronomon/direct-io",
            "xxhash-addon",
            "mountutils",
            "drivelist",
        ],
    ]
    for step in steps:
        if subprocess.run(step, cwd=ETCHER_DIR, capture_output=True).returncode:
            return None
    return modules


def run_methods(kind: str, n: int, targets: list[str], content: Path, content_size: int,
                size: int, workdir: Path, etcher: Path | None) -> list[Run]:  # fmt: skip
    runs: list[Run] = []
    gb = n * size / 1e9
    py = str(REPO / ".venv" / "bin" / "python")
    for wipe in ("full", "quick"):
        cmd = [py, "-m", "appliance", "load", "--content", str(content), "--wipe", wipe, "--json"]
        for t in targets:
            cmd += ["--target", t]
        wall, cpu, rss, rc, out = timed_wait4(cmd)
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        extra = sum(r["source_extra_reads"] for r in rows)
        ok = rc == 0 and len(rows) == n
        written = sum(r["bytes_written"] for r in rows) / 1e9 if rows else gb
        amp = (content_size + extra) / content_size
        note = "" if ok else out[-300:]
        runs.append(Run(f"fs-{wipe}", kind, n, wall, cpu, rss, written, amp, ok, note))
    # (a) parallel mkfs.fat + mcopy per target
    script = " ".join(
        f"(mkfs.fat -F 32 {t} >/dev/null && mcopy -s -i {t} {content}/* ::/) &" for t in targets
    )
    wall, cpu, rss, rc, out = timed_wait4(["bash", "-c", script + " wait"])
    runs.append(Run("a", kind, n, wall, cpu, rss, content_size * n / 1e9, float(n), rc == 0))
    # (a) again, counting the time until its data is on the targets (sync)
    wall, cpu, rss, rc, out = timed_wait4(["bash", "-c", script + " wait; sync"])
    runs.append(Run("a+sync", kind, n, wall, cpu, rss, content_size * n / 1e9, float(n), rc == 0))
    # (b) one image, parallel dd oflag=direct, cmp reading back with iflag=direct
    image_script = (
        f"truncate -s {size} {workdir}/prebuilt.img && mkfs.fat -F 32 {workdir}/prebuilt.img "
        f">/dev/null && mcopy -s -i {workdir}/prebuilt.img {content}/* ::/"
    )
    img = f"{workdir}/prebuilt.img"
    dd = " ".join(
        f"dd if={img} of={t} bs=4M oflag=direct conv=notrunc,fsync status=none &" for t in targets
    )
    check = " ".join(
        f"(dd if={t} bs=4M iflag=direct status=none | cmp -s - {img} || echo MISMATCH {t}) &"
        for t in targets
    )
    script = f"set -e\nrm -f {img}\n{image_script}\n{dd} wait\n{check} wait"
    wall, cpu, rss, rc, out = timed_wait4(["bash", "-c", script])
    runs.append(Run("b", kind, n, wall, cpu, rss, gb, 1.0, rc == 0 and "MISMATCH" not in out))
    # (c) etcher-sdk multiWrite with verification from the same (rebuilt) image
    if etcher is not None:
        js = str(REPO / "bench" / "etcher_multiwrite.js")
        script = f"set -e\nrm -f {img}\n{image_script}\nnode {js} {img} {' '.join(targets)}"
        env = {**ENV, "NODE_PATH": str(etcher)}
        wall, cpu, rss, rc, out = timed_wait4(["bash", "-c", script], env)
        runs.append(
            Run("c", kind, n, wall, cpu, rss, gb, 1.0, rc == 0, "" if rc == 0 else out[-300:])
        )
    return runs


def main() -> int:
    if os.geteuid() != 0:
        print("bench_engine: needs root (loop devices, drop_caches); skipped")
        return 0
    ns = [int(x) for x in os.environ.get("BENCH_NS", "4 8 16").split()]
    size = int(os.environ.get("BENCH_TARGET_MIB", "1024")) * MiB
    kinds = os.environ.get("BENCH_KINDS", "file loop").split()
    base = Path(os.environ.get("BENCH_DIR", "/var/tmp/flashstation-bench"))
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    etcher = ensure_etcher()
    if etcher is None:
        print("etcher-sdk could not be installed with npm: baseline (c) skipped", file=sys.stderr)
    content = base / "content"
    content_size = make_content(content, int(os.environ.get("BENCH_CONTENT_MB", "300")))
    print(f"content: {content_size / 1e6:.0f} MB; targets {size // MiB} MiB; N = {ns}; {kinds}")
    all_runs: list[Run] = []
    try:
        for kind in kinds:
            for n in ns:
                targets, loops = setup_targets(base, kind, n, size)
                try:
                    runs = run_methods(kind, n, targets, content, content_size, size, base, etcher)
                finally:
                    for dev in loops:
                        subprocess.run(["losetup", "-d", dev], check=False)
                    for p in base.glob(f"{kind}-{n}-*.img"):
                        p.unlink()
                report(runs)
                all_runs += runs
    finally:
        shutil.rmtree(base, ignore_errors=True)
    goals(all_runs)
    return 0


def report(runs: list[Run]) -> None:
    r0 = runs[0]
    print(f"\n== {r0.kind} targets, N = {r0.n}")
    print(
        f"{'method':<9} {'wall s':>8} {'CPU s/GB':>9} {'peak RSS MB':>12} "
        f"{'src read/content':>17}  ok"
    )
    for r in runs:
        amp = f"{r.amplification:.3f}" if r.amplification is not None else "-"
        print(f"{r.method:<9} {r.wall:8.1f} {r.cpu_per_gb:9.2f} {r.rss_mb:12.0f} {amp:>17}  "
              f"{'yes' if r.ok else 'NO ' + r.note}")  # fmt: skip


def goals(runs: list[Run]) -> None:
    print("\n== goals (same run)")
    by = {(r.method, r.kind, r.n): r for r in runs}
    for (method, kind, n), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if method != "fs-full":
            continue
        c = by.get(("c", kind, n))
        a = by.get(("a", kind, n))
        b = by.get(("b", kind, n))
        q = by.get(("fs-quick", kind, n))
        parts = [f"{kind:>4} N={n:<2}"]
        if c:
            parts.append(f"full/c {r.wall / c.wall:.2f} (goal <= 0.9)")
        if b:
            parts.append(f"full/b {r.wall / b.wall:.2f}")
            parts.append(f"CPU/GB full vs dd {r.cpu_per_gb / b.cpu_per_gb:.2f} (goal <= 1.2)")
        if q and a:
            parts.append(f"quick/a {q.wall / a.wall:.2f} (goal <= 1.5)")
        a_sync = by.get(("a+sync", kind, n))
        if q and a_sync:
            parts.append(f"quick/(a+sync) {q.wall / a_sync.wall:.2f}")
        parts.append(f"read amp {r.amplification:.3f} (<= 1.05)")
        parts.append(f"RSS {r.rss_mb:.0f} MB")
        print("  ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
