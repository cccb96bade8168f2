"""Recovery: SIGKILL the service at many random points of a batch; check the ledger and the drives.

The service (the real :class:`~appliance.service.app.Service` with its ledger)
hosts a stand-in station whose writer follows the engine's commit-last
protocol on image files (``tests/service_standin.py``). After every kill the
next start's recovery runs, then, with ``blkid`` as the independent judge of
"has a valid partition table":

* no job is left ``running``; a job the kill interrupted is ``interrupted``,
  never counted done;
* every job the ledger counts done is on a drive with a valid partition table
  whose whole payload verifies;
* no drive has a valid partition table unless its payload verifies (a failed
  or interrupted drive looks blank);
* the faulty drives (bit flip, pulled) are never done and never look valid.

Finally a run to the end loads every healthy drive, and no drive's raw serial
appears in the state directory's files or in any run's log.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance.service.ledger import Ledger

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "service_standin.py"
sys.path.insert(0, str(HERE))
from service_standin import CHUNK, payload  # noqa: E402

SIZE = 4 * 1024 * 1024
DRIVES = 6
FLIP, VANISH = 2, 4
SERIALS = [f"SN{i}X7Q{i * 1234567:09d}" for i in range(DRIVES)]
KILL_POINTS = 24


def _has_partition_table(path: Path) -> bool:
    out = subprocess.run(
        ["blkid", "-p", "-o", "value", "-s", "PTTYPE", str(path)], capture_output=True, text=True
    )
    return out.returncode == 0 and out.stdout.strip() == "dos"


def _payload_ok(path: Path, index: int) -> bool:
    data = path.read_bytes()
    for offset in range(0, SIZE, CHUNK):
        want = payload(index, offset)
        got = data[offset : offset + CHUNK]
        if offset == 0:
            want, got = want[512:], got[512:]
        if got != want:
            return False
    return True


def _donor_fill(images: list[Path]) -> None:
    """Plug in 'donated' sticks: old bytes everywhere, no partition table."""
    for path in images:
        path.write_bytes(b"DONOR-DATA-" * (SIZE // 11) + b"\xee" * (SIZE % 11))


def _start(state: Path, images: list[Path], log: Path) -> subprocess.Popen[str]:
    drives = [f"{img}:{serial}" for img, serial in zip(images, SERIALS, strict=True)]
    return subprocess.Popen(
        [
            sys.executable,
            str(STANDIN),
            str(state),
            *drives,
            "--flip",
            str(FLIP),
            "--vanish",
            str(VANISH),
        ],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )


def _wait_line(proc: subprocess.Popen[str], want: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == want:
            return
    raise AssertionError(f"stand-in ended before {want!r} (exit {proc.wait()})")


def _check(state: Path, images: list[Path], seen: int, ledger_done: int) -> tuple[int, int]:
    """Invariants after a run; returns (highest job id seen, done count)."""
    with Ledger(state) as led:  # the next start: recovery runs here
        by_hash = {led.hash_serial(s): i for i, s in enumerate(SERIALS)}
        rows = [r for r in led.jobs() if int(r["id"]) > seen]  # type: ignore[call-overload]
        totals = led.totals()
    states = {r["state"] for r in rows}
    assert "running" not in states
    assert states <= {"done", "failed", "cancelled", "interrupted"}
    new_done = 0
    for row in rows:
        index = by_hash[str(row["drive"])]
        if row["state"] == "done":
            new_done += 1
            assert index not in (FLIP, VANISH), row
            assert _has_partition_table(images[index]), f"drive {index} counted done, no table"
            assert _payload_ok(images[index], index), f"drive {index} counted done, bad payload"
    for index, image in enumerate(images):
        if _has_partition_table(image):
            assert _payload_ok(image, index), f"drive {index}: valid table, failed verification"
            assert index not in (FLIP, VANISH)
    assert totals.done == ledger_done + new_done  # interrupted jobs never counted done
    assert totals.running == 0
    return max([seen, *(int(r["id"]) for r in rows)]), totals.done  # type: ignore[call-overload]


def test_sigkill_at_random_points_never_counts_a_bad_drive(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    state = tmp_path / "state"
    images = [tmp_path / f"drive{i}.img" for i in range(DRIVES)]
    logs: list[Path] = []

    # a full run: how long a batch takes, and that it loads the healthy drives
    _donor_fill(images)
    logs.append(tmp_path / "run-full.log")
    proc = _start(state, images, logs[-1])
    _wait_line(proc, "batch-start")
    t0 = time.monotonic()
    _wait_line(proc, "batch-done")
    batch_seconds = time.monotonic() - t0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    seen, done = _check(state, images, 0, 0)
    assert done == DRIVES - 2
    with Ledger(state) as led:
        assert led.totals().failed_by_reason == {"verify mismatch": 1, "removed": 1}

    interrupted_runs = 0
    for point in range(KILL_POINTS):
        _donor_fill(images)
        logs.append(tmp_path / f"run-{point}.log")
        proc = _start(state, images, logs[-1])
        _wait_line(proc, "batch-start")
        time.sleep(rng.uniform(0, batch_seconds))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        seen_before = seen
        seen, done_after = _check(state, images, seen, done)
        with Ledger(state) as led:
            interrupted_runs += any(
                r["state"] == "interrupted"
                for r in led.jobs()
                if int(r["id"]) > seen_before  # type: ignore[call-overload]
            )
        done = done_after
    # most kill points must land mid-batch, or the test proves little
    # (batch times vary on a loaded machine, so a third is asked for, not all)
    assert interrupted_runs >= KILL_POINTS // 3, f"seed {seed}: only {interrupted_runs} mid-batch"

    # the station resumes: a clean run after all that loads every healthy drive
    _donor_fill(images)
    logs.append(tmp_path / "run-last.log")
    proc = _start(state, images, logs[-1])
    _wait_line(proc, "batch-done")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for index, image in enumerate(images):
        healthy = index not in (FLIP, VANISH)
        assert _has_partition_table(image) == healthy
        if healthy:
            assert _payload_ok(image, index)

    # grep: no raw serial anywhere in the state directory or the logs
    files = [*state.iterdir(), *logs]
    assert any(p.name == "ledger.sqlite3" for p in files)
    for path in files:
        data = path.read_bytes()
        for serial in SERIALS:
            assert serial.encode() not in data, f"{serial} found in {path}"
            assert serial.lower().encode() not in data.lower(), f"{serial} found in {path}"
    grep = subprocess.run(
        [
            "grep",
            "-r",
            "-l",
            "-i",
            "-F",
            *[arg for s in SERIALS for arg in ("-e", s)],
            str(state),
            *map(str, logs),
        ],
        capture_output=True,
        text=True,
    )
    assert grep.returncode == 1 and grep.stdout == "", grep.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_sigterm_cancels_jobs_cleanly(tmp_path: Path, signum: int) -> None:
    state = tmp_path / "state"
    images = [tmp_path / f"drive{i}.img" for i in range(DRIVES)]
    _donor_fill(images)
    proc = _start(state, images, tmp_path / "log")
    _wait_line(proc, "batch-start")
    time.sleep(0.05)
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == 0
    with Ledger(state) as led:
        assert led.interrupted_on_open == 0  # every job ended in the ledger before exit
        rows = led.jobs()
    assert rows and {r["state"] for r in rows} <= {"done", "failed", "cancelled"}
    for index, image in enumerate(images):
        if _has_partition_table(image):
            assert _payload_ok(image, index)
    log = (tmp_path / "log").read_text()
    assert log.index("stopping station") < log.index("stopping ledger")


# -- the same test with the real engine (slow tier) -----------------------------------------

ENGINE_STANDIN = HERE / "service_engine_standin.py"
CONTENT = HERE.parent / "appliance" / "data" / "sample"
ENGINE_SIZE = 64 * 1024 * 1024
ENGINE_DRIVES, ENGINE_FLIP = 3, 1


def _extracts_identically(image: Path, out: Path) -> bool:
    """mtools (an independent FAT reader) extracts exactly the content from the partition."""
    import filecmp
    import shutil
    import struct

    start = struct.unpack_from("<I", image.read_bytes()[:512], 454)[0] * 512
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    done = subprocess.run(
        ["mcopy", "-s", "-n", "-i", f"{image}@@{start}", "::/*", str(out)],
        capture_output=True,
        env={**os.environ, "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"},
    )
    if done.returncode != 0:
        return False

    def same(cmp: filecmp.dircmp[str]) -> bool:
        if cmp.left_only or cmp.right_only or cmp.funny_files:
            return False
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        return not mismatch and not errors and all(same(s) for s in cmp.subdirs.values())

    return same(filecmp.dircmp(str(CONTENT), str(out)))


@pytest.mark.slow
def test_sigkill_with_the_real_engine(tmp_path: Path) -> None:
    seed = int(os.environ.get("KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    state = tmp_path / "state"
    images = [tmp_path / f"engine{i}.img" for i in range(ENGINE_DRIVES)]
    serials = SERIALS[:ENGINE_DRIVES]

    def start(log: Path) -> subprocess.Popen[str]:
        drives = [f"{img}:{s}" for img, s in zip(images, serials, strict=True)]
        return subprocess.Popen(
            [
                sys.executable,
                str(ENGINE_STANDIN),
                str(state),
                str(CONTENT),
                *drives,
                "--flip",
                str(ENGINE_FLIP),
            ],
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )

    def donor() -> None:
        for path in images:
            with path.open("wb") as f:  # a donated stick: an old partition table and old bytes
                f.truncate(ENGINE_SIZE)
                f.write(b"DONOR" * 1000)

    def check(seen: int) -> tuple[int, int]:
        with Ledger(state) as led:
            by_hash = {led.hash_serial(s): i for i, s in enumerate(serials)}
            rows = [r for r in led.jobs() if int(r["id"]) > seen]  # type: ignore[call-overload]
        assert all(r["state"] != "running" for r in rows)
        interrupted = sum(r["state"] == "interrupted" for r in rows)
        for row in rows:
            index = by_hash[str(row["drive"])]
            if row["state"] == "done":
                assert index != ENGINE_FLIP
                assert _has_partition_table(images[index])
                assert _extracts_identically(images[index], tmp_path / "out")
        for index, image in enumerate(images):
            if _has_partition_table(image):
                assert index != ENGINE_FLIP, "a drive that failed verification has a table"
                assert _extracts_identically(image, tmp_path / "out")
        return max([seen, *(int(r["id"]) for r in rows)]), interrupted  # type: ignore[call-overload]

    logs = [tmp_path / "full.log"]
    donor()
    proc = start(logs[-1])
    _wait_line(proc, "batch-start")
    t0 = time.monotonic()
    _wait_line(proc, "batch-done")
    batch_seconds = time.monotonic() - t0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    seen, _ = check(0)
    with Ledger(state) as led:
        assert led.totals().done == ENGINE_DRIVES - 1
        assert led.totals().failed == 1
    mid_batch = 0
    for point in range(20):
        donor()
        logs.append(tmp_path / f"kill{point}.log")
        proc = start(logs[-1])
        _wait_line(proc, "batch-start")
        time.sleep(rng.uniform(0, batch_seconds))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        seen, interrupted = check(seen)
        mid_batch += interrupted > 0
    assert mid_batch >= 20 // 3, f"seed {seed}: only {mid_batch} kills landed mid-batch"
    for path in [*state.iterdir(), *logs]:
        data = path.read_bytes().lower()
        for serial in serials:
            assert serial.lower().encode() not in data, f"{serial} in {path}"
