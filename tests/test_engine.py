"""The fan-out engine against hand-made plans and fault-injecting targets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from appliance.drives.fake import Faults, FaultyTarget, file_target, make_image, wrap_around_target
from appliance.engine import Job, LoadOptions, PhaseChanged, Progress, start_batch
from appliance.engine.events import Event
from tests.enginekit import MiB, TinyPlan, expected_image, make_content, marker_fill, marker_sectors

pytestmark = pytest.mark.timeout(120)
OPTS = LoadOptions(min_capacity=4 * MiB)


def sector0(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(512)


@pytest.fixture
def content(tmp_path: Path) -> list[tuple[Path, int]]:
    return make_content(tmp_path / "content", [3 * MiB + 17, 1, 5000, 0, 2 * MiB])


def test_healthy_targets_of_mixed_sizes_hold_exactly_the_plan(tmp_path: Path, content) -> None:
    jobs = []
    plans = []
    for i, size in enumerate([16 * MiB, 24 * MiB, 20 * MiB + 4096]):
        path = make_image(tmp_path / f"t{i}.img", size, fill=marker_fill())
        plan = TinyPlan(size, content)
        plans.append((path, plan))
        jobs.append(Job(path, plan))
    events: list[Event] = []
    batch = start_batch(jobs, OPTS, on_event=events.append)
    results = batch.wait(60)
    assert [r.status for r in results] == ["ok"] * 3, [r.reason for r in results]
    for (path, plan), r in zip(plans, results, strict=True):
        assert path.read_bytes() == expected_image(plan)
        assert marker_sectors(path) == 0
        assert r.bytes_verified >= plan.capacity
        assert r.capacity == plan.capacity
        # Full wipe: every byte written once and read back once, plus a tiny probe.
        assert 2 * plan.capacity <= r.bus_bytes <= 2 * plan.capacity + 2 * MiB
        assert set(r.seconds) == {"probe", "write", "verify", "commit"}
    content_size = sum(s for _, s in content)
    assert batch.source_bytes_read == content_size  # read once for all targets
    kinds = {type(e) for e in events}
    assert PhaseChanged in kinds and Progress in kinds
    assert [
        e.phase for e in events if isinstance(e, PhaseChanged) and e.target == jobs[0].label
    ] == [
        "open",
        "probe",
        "write",
        "verify",
        "commit",
        "done",
    ]


def test_mixed_healthy_and_faulty_targets_fail_alone_with_reasons(tmp_path: Path, content) -> None:
    size = 16 * MiB

    def img(name: str) -> Path:
        return make_image(tmp_path / name, size, fill=marker_fill())

    jobs = [
        Job(img("good1.img"), TinyPlan(size, content), name="good1"),
        Job(
            FaultyTarget(file_target(img("eio.img")), Faults(eio_at=9 * MiB + 5)),
            TinyPlan(size, content),
            name="eio",
        ),
        Job(
            FaultyTarget(file_target(img("ro.img")), Faults(read_only=True)),
            TinyPlan(size, content),
            name="ro",
        ),
        Job(
            wrap_around_target(tmp_path / "fake.img", claimed=64 * MiB, real=8 * MiB),
            TinyPlan(64 * MiB, content),
            name="fake",
        ),
        Job(
            FaultyTarget(file_target(img("flip.img")), Faults(flip_on_read_at=7 * MiB + 12345)),
            TinyPlan(size, content),
            name="flip",
        ),
        Job(
            FaultyTarget(file_target(img("gone.img")), Faults(vanish_after=6 * MiB)),
            TinyPlan(size, content),
            name="gone",
        ),
        Job(
            FaultyTarget(file_target(img("slow.img")), Faults(slowdown=10.0, throttle=40 * MiB)),
            TinyPlan(size, content),
            name="slow",
        ),
        Job(img("good2.img"), TinyPlan(size, content), name="good2"),
    ]
    results = {r.target: r for r in start_batch(jobs, OPTS).wait(90)}
    assert {n for n, r in results.items() if r.ok} == {"good1", "good2", "slow"}
    assert "I/O error" in results["eio"].reason and str(9 * MiB + 5) in results["eio"].reason
    assert "write-protected" in results["ro"].reason
    assert "fake capacity: about 0.0 GB real of 0.1 GB claimed" in results["fake"].reason
    assert results["fake"].bytes_written < MiB  # caught by the probe, before the long write
    assert results["fake"].detail == {"real": 8.0 * MiB, "claimed": 64.0 * MiB}
    causes = {n: r.cause for n, r in results.items()}
    assert causes == {
        "good1": "",
        "good2": "",
        "slow": "",
        "eio": "write_error",
        "ro": "read_only",
        "fake": "fake_capacity",
        "flip": "verify_failed",
        "gone": "removed",
    }
    assert "verify failed" in results["flip"].reason and str(7 * MiB) in results["flip"].reason
    assert "drive removed" in results["gone"].reason
    for name in ("eio", "flip", "gone"):
        assert sector0(tmp_path / f"{name}.img")[510:512] != b"\x55\xaa", name
    for name in ("good1", "good2", "slow"):
        assert (tmp_path / f"{name}.img").read_bytes() == expected_image(TinyPlan(size, content))


def test_wrap_around_fake_reports_its_real_size_in_seconds(tmp_path: Path, content) -> None:
    claimed, real = 1024 * MiB, 128 * MiB
    fake = wrap_around_target(tmp_path / "fake.img", claimed=claimed, real=real)
    started = time.monotonic()
    (r,) = start_batch([Job(fake, TinyPlan(claimed, content))], OPTS).wait(60)
    assert time.monotonic() - started < 10
    assert r.status == "failed"
    assert "fake capacity: about 0.1 GB real of 1.1 GB claimed" in r.reason
    assert r.seconds.get("write", 0.0) == 0.0


def test_cancel_one_target_leaves_it_without_partition_table(tmp_path: Path, content) -> None:
    size = 32 * MiB
    slow_img = make_image(tmp_path / "slow.img", size)
    slow = FaultyTarget(file_target(slow_img), Faults(throttle=8 * MiB))
    good = make_image(tmp_path / "good.img", size)
    started = threading.Event()

    def on_event(e: Event) -> None:
        if isinstance(e, PhaseChanged) and e.target == "slow" and e.phase == "write":
            started.set()

    batch = start_batch(
        [Job(slow, TinyPlan(size, content), name="slow"), Job(good, TinyPlan(size, content))],
        OPTS,
        on_event=on_event,
    )
    assert started.wait(30)
    batch.cancel("slow")
    slow_result, good_result = batch.wait(60)
    assert slow_result.status == "cancelled" and slow_result.cause == "cancelled"
    assert sector0(slow_img) == bytes(512)
    assert good_result.ok, good_result.reason


def test_cancel_all_cancels_everything(tmp_path: Path, content) -> None:
    size = 32 * MiB
    targets = [
        FaultyTarget(
            file_target(make_image(tmp_path / f"t{i}.img", size)), Faults(throttle=8 * MiB)
        )
        for i in range(3)
    ]
    batch = start_batch([Job(t, TinyPlan(size, content)) for t in targets], OPTS)
    time.sleep(0.3)
    batch.cancel_all()
    results = batch.wait(30)
    assert [r.status for r in results] == ["cancelled"] * 3
    for i in range(3):
        assert sector0(tmp_path / f"t{i}.img")[510:] != b"\x55\xaa"


class RecordingObserver:
    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: dict[Path, bytearray] = {}
        self.done: list[Path] = []
        self.fail_on = fail_on

    def chunk(self, source: Path, offset: int, data: bytes) -> None:
        buf = self.seen.setdefault(source, bytearray())
        assert offset == len(buf), "chunks out of order or repeated"
        buf += data

    def file_done(self, source: Path) -> None:
        self.done.append(source)
        if self.fail_on and source.name == self.fail_on:
            raise RuntimeError(f"content SSD damaged: {source.name}")


def test_observer_sees_every_byte_once_even_with_tiers(tmp_path: Path, content) -> None:
    small_tier = [c for c in content if c[1] < MiB]
    jobs = [
        Job(make_image(tmp_path / "a.img", 16 * MiB), TinyPlan(16 * MiB, content)),
        Job(make_image(tmp_path / "b.img", 16 * MiB), TinyPlan(16 * MiB, small_tier)),
    ]
    obs = RecordingObserver()
    batch = start_batch(jobs, OPTS, observer=obs)
    results = batch.wait(60)
    assert all(r.ok for r in results), [r.reason for r in results]
    for path, size in content:
        if size:
            assert bytes(obs.seen[path]) == path.read_bytes()
    assert len(obs.done) == len(set(obs.done)) == len(content)  # empty files too
    assert batch.source_bytes_read == sum(s for _, s in content)
    assert (tmp_path / "b.img").read_bytes() == expected_image(TinyPlan(16 * MiB, small_tier))


def test_observer_failure_fails_whole_batch_and_commits_nothing(tmp_path: Path, content) -> None:
    imgs = [make_image(tmp_path / f"t{i}.img", 16 * MiB) for i in range(2)]
    obs = RecordingObserver(fail_on=content[-1][0].name)
    batch = start_batch([Job(p, TinyPlan(16 * MiB, content)) for p in imgs], OPTS, observer=obs)
    results = batch.wait(60)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("content SSD damaged: file04.bin" in r.reason for r in results)
    assert {r.cause for r in results} == {"content_damaged"}
    assert batch.error == "content SSD damaged: file04.bin"
    for p in imgs:
        assert sector0(p) == bytes(512)


def test_source_removed_fails_all_targets_cleanly(tmp_path: Path, content) -> None:
    imgs = [make_image(tmp_path / f"t{i}.img", 16 * MiB) for i in range(2)]
    plans = [TinyPlan(16 * MiB, content) for _ in imgs]
    content[-1][0].unlink()  # the SSD lost a file after planning
    results = start_batch([Job(p, pl) for p, pl in zip(imgs, plans, strict=True)], OPTS).wait(60)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("content SSD removed" in r.reason for r in results)
    assert {r.cause for r in results} == {"content_removed"}
    for p in imgs:
        assert sector0(p) == bytes(512)


def test_slow_target_falls_behind_and_catches_up_without_stalling_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The slow stick stalls a little way into the content until both healthy sticks
    # have written everything and are verifying. If the engine held the healthy ones
    # back for the slow one (beyond the bounded window), the gate would never open and
    # the stalled write would fail the test: no wall-clock assertion needed.
    from appliance.engine import source as source_module

    monkeypatch.setattr(source_module, "LAG_WINDOW", 0.2)
    content = make_content(tmp_path / "c", [20 * MiB, 6 * MiB])
    size = 32 * MiB
    opts = LoadOptions(min_capacity=4 * MiB, buffer_budget=16 * MiB, wipe="quick")
    verifying: set[str] = set()
    gate = threading.Event()

    def on_event(e: Event) -> None:
        if isinstance(e, PhaseChanged) and e.phase == "verify":
            verifying.add(e.target)
            if {"fast0", "fast1"} <= verifying:
                gate.set()

    slow_img = make_image(tmp_path / "slow.img", size)
    plan = TinyPlan(size, content)
    jobs = [
        Job(GatedTarget(slow_img, plan.files[0].device_offset + 2 * MiB, gate), plan, name="slow")
    ]
    jobs += [
        Job(make_image(tmp_path / f"f{i}.img", size), TinyPlan(size, content), name=f"fast{i}")
        for i in range(2)
    ]
    batch = start_batch(jobs, opts, on_event=on_event)
    results = {r.target: r for r in batch.wait(120)}
    assert all(r.ok for r in results.values()), [r.reason for r in results.values()]
    # The slow one fell behind and caught up by re-reading the source itself ...
    assert results["slow"].source_extra_reads > 0
    # ... while the healthy ones were fed by the shared read.
    assert results["fast0"].source_extra_reads < results["slow"].source_extra_reads
    assert results["fast1"].source_extra_reads < results["slow"].source_extra_reads


def test_quick_wipe_writes_filesystem_and_edges_but_keeps_far_free_space(
    tmp_path: Path, content
) -> None:
    size = 256 * MiB
    path = make_image(tmp_path / "q.img", size, fill=marker_fill())
    (r,) = start_batch([Job(path, TinyPlan(size, content))], LoadOptions(wipe="quick")).wait(60)
    assert r.ok, r.reason
    assert any("donor data may remain" in n for n in r.notes)
    data = path.read_bytes()
    plan = TinyPlan(size, content)
    assert data[:512] == plan.mbr
    for planned in plan.files:
        at = planned.device_offset
        assert data[at : at + planned.file.size] == planned.file.source.read_bytes()
    assert marker_sectors(path) > 0  # the middle was not wiped
    assert data[: 32 * MiB].find(b"DONOR") == -1 and data[-32 * MiB :].find(b"DONOR") == -1
    assert r.bytes_written < 80 * MiB  # 2 x 32 MiB edges + file system + probe


def test_skip_zero_chunks_reads_instead_of_writing_zero_areas(tmp_path: Path, content) -> None:
    size = 32 * MiB
    path = make_image(tmp_path / "z.img", size)  # sparse: reads as zeros
    opts = LoadOptions(min_capacity=4 * MiB, skip_zero_chunks=True)
    (r,) = start_batch([Job(path, TinyPlan(size, content))], opts).wait(60)
    assert r.ok, r.reason
    assert r.bytes_written < 10 * MiB
    assert path.read_bytes() == expected_image(TinyPlan(size, content))


def _checker(content: list[tuple[Path, int]]):  # type: ignore[no-untyped-def]
    from appliance.content.hashing import digest_bytes
    from appliance.content.manifest import FileEntry
    from appliance.content.stream import StreamChecker

    return StreamChecker(
        (p, FileEntry(p.name, size, "blake3", digest_bytes(p.read_bytes()))) for p, size in content
    )


def test_content_stream_checker_as_observer_passes_intact_content(tmp_path: Path, content) -> None:
    checker = _checker(content)
    imgs = [make_image(tmp_path / f"t{i}.img", 16 * MiB) for i in range(2)]
    batch = start_batch([Job(p, TinyPlan(16 * MiB, content)) for p in imgs], OPTS, observer=checker)
    assert all(r.ok for r in batch.wait(60))
    assert checker.files_checked == len(content)  # empty files included
    assert checker.bytes_checked == sum(s for _, s in content)


def test_content_stream_checker_failure_leaves_drives_blank(tmp_path: Path, content) -> None:
    checker = _checker(content)
    victim = content[0][0]
    data = bytearray(victim.read_bytes())
    data[1000] ^= 1  # the SSD rotted after the pack was verified
    victim.write_bytes(bytes(data))
    imgs = [make_image(tmp_path / f"t{i}.img", 16 * MiB) for i in range(2)]
    batch = start_batch([Job(p, TinyPlan(16 * MiB, content)) for p in imgs], OPTS, observer=checker)
    results = batch.wait(60)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(f"content SSD damaged: {victim.name}" in r.reason for r in results)
    for p in imgs:
        assert sector0(p) == bytes(512)


def test_sigint_cancels_the_cli_cleanly(tmp_path: Path, content) -> None:
    import os
    import signal
    import subprocess
    import sys

    imgs = [make_image(tmp_path / f"s{i}.img", 2048 * MiB) for i in range(2)]
    root = content[0][0].parent
    args = [sys.executable, "-m", "appliance", "load", "--content", str(root), "--json"]
    for p in imgs:
        args += ["--target", str(p)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and os.stat(imgs[0]).st_blocks * 512 < 32 * MiB:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "cancelling" in err
    rows = [__import__("json").loads(line) for line in out.splitlines()]
    assert [r["status"] for r in rows] == ["cancelled", "cancelled"]
    for p in imgs:
        assert sector0(p)[510:512] != b"\x55\xaa"


class GatedTarget(FaultyTarget):
    """A target whose writes from ``gate_at`` on wait for ``gate``: a stick that stalls on cue."""

    def __init__(self, path: Path, gate_at: int, gate: threading.Event) -> None:
        super().__init__(file_target(path), Faults())
        self.gate_at = gate_at
        self.gate = gate

    def pwrite(self, offset: int, data) -> None:  # type: ignore[no-untyped-def]
        if offset >= self.gate_at:
            assert self.gate.wait(60), "gate never opened"
        super().pwrite(offset, data)


class ReplaceAfterReading(RecordingObserver):
    """Once the primary read passed a file: optionally rewrite it in place, then open the gate."""

    def __init__(self, gate: threading.Event, damage: bool) -> None:
        super().__init__()
        self.gate = gate
        self.damage = damage

    def file_done(self, source: Path) -> None:
        super().file_done(source)
        if self.damage:
            with open(source, "r+b") as f:  # same size, other bytes
                data = f.read()
                f.seek(0)
                f.write(bytes(b ^ 0x5A for b in data))
        self.gate.set()


@pytest.mark.parametrize("damage", [False, True], ids=["intact", "replaced"])
def test_laggard_catch_up_is_checked_against_the_first_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bool
) -> None:
    # The slow stick stalls after its first few content chunks until the reader
    # has read the whole file (it must become a laggard, or the reader could not
    # get there), so everything after the stall is caught up from the SSD.
    from appliance.engine import source as source_module

    monkeypatch.setattr(source_module, "LAG_WINDOW", 0.2)
    content = make_content(tmp_path / "c", [12 * MiB])
    original = content[0][0].read_bytes()
    size = 32 * MiB
    opts = LoadOptions(min_capacity=4 * MiB, buffer_budget=2 * MiB, wipe="quick")
    gate = threading.Event()
    slow_img = make_image(tmp_path / "slow.img", size)
    jobs = [
        Job(GatedTarget(slow_img, 4 * MiB, gate), TinyPlan(size, content), name="slow"),
        Job(make_image(tmp_path / "fast.img", size), TinyPlan(size, content), name="fast"),
    ]
    obs = ReplaceAfterReading(gate, damage)
    batch = start_batch(jobs, opts, observer=obs)
    results = {r.target: r for r in batch.wait(90)}
    assert bytes(obs.seen[content[0][0]]) == original  # the primary read saw the real file
    slow = results["slow"]
    if not damage:
        assert all(r.ok for r in results.values()), [r.reason for r in results.values()]
        # It did catch up, and re-read each block at most once.
        assert 0 < slow.source_extra_reads <= 12 * MiB
        plan = TinyPlan(size, content)
        at = plan.files[0].device_offset
        assert slow_img.read_bytes()[at : at + 12 * MiB] == original
        return
    assert slow.status == "failed" and slow.cause == "content_damaged"
    assert slow.reason.startswith("content SSD damaged: ") and "file00.bin" in slow.reason
    assert batch.error is not None and batch.error.startswith("content SSD damaged: ")
    assert sector0(slow_img) == bytes(512)
    # The fast stick only got bytes the observer checked; it may have committed
    # before the laggard found the damage, or failed with the batch.
    fast = results["fast"]
    if fast.ok:
        plan = TinyPlan(size, content)
        at = plan.files[0].device_offset
        assert (tmp_path / "fast.img").read_bytes()[at : at + 12 * MiB] == original
    else:
        assert fast.cause == "content_damaged"
        assert sector0(tmp_path / "fast.img") == bytes(512)
