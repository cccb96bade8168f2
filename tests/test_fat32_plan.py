"""The plan itself: extents, sizes, determinism, fits/required_capacity."""

from __future__ import annotations

import resource
import struct
import time
from pathlib import Path

import pytest

from appliance.fat32 import (
    CapacityTooSmall,
    ContentFile,
    ContentTooLarge,
    ContentTree,
    FileRange,
    LayoutOptions,
    Literal,
    Zeros,
    compile_plan,
    fits,
    required_capacity,
)

MiB = 1024 * 1024
GB = 1000**3


def synthetic(n_files: int, size: int, per_dir: int = 100) -> ContentTree:
    files = tuple(
        ContentFile((f"폴더 {i // per_dir}", f"파일 {i}.bin"), Path(f"/nonexistent/{i}"), size)
        for i in range(n_files)
    )
    return ContentTree(files)


def check_extents(plan: object) -> None:
    pos = 0
    first = True
    for e in plan.extents():  # type: ignore[attr-defined]
        assert e.offset == pos and e.length > 0
        if first:
            assert e.role == "mbr" and e.length == 512
            first = False
        if isinstance(e.source, Literal):
            assert len(e.source.data) == e.length <= 4 * MiB
        pos = e.end
    assert pos == plan.capacity  # type: ignore[attr-defined]


def test_extents_cover_capacity_contiguously() -> None:
    tree = synthetic(500, 10_000)
    for capacity in (64 * MiB, 1 * GB + 123 * 512, 16 * GB + 7):
        plan = compile_plan(tree, capacity)
        check_extents(plan)


def test_mbr_partition_entry() -> None:
    plan = compile_plan(synthetic(3, 1), 8 * GB)
    mbr = plan.mbr
    assert mbr[510:] == b"\x55\xaa"
    assert mbr[446 + 4] == 0x0C
    start, count = struct.unpack_from("<II", mbr, 446 + 8)
    assert start == 2048 and count == 8 * GB // 512 - 2048
    assert plan.partition_offset == MiB and plan.partition_size == count * 512


def test_data_order_same_for_every_capacity() -> None:
    tree = synthetic(300, 5000)
    orders = []
    for capacity in (64 * MiB, 2 * GB, 9 * GB, 20 * GB, 256 * GB):
        plan = compile_plan(tree, capacity)
        orders.append([p.file.relpath for p in plan.files])
        indexes = [e.source.index for e in plan.extents() if isinstance(e.source, FileRange)]
        assert indexes == sorted(indexes)
    assert all(o == orders[0] for o in orders)
    assert orders[0][:3] == [
        ("폴더 0", "파일 0.bin"),
        ("폴더 0", "파일 1.bin"),
        ("폴더 0", "파일 2.bin"),
    ]
    assert ("폴더 0", "파일 10.bin") in orders[0][:12]  # natural order: 2 before 10


def test_serial_random_unless_given() -> None:
    tree = synthetic(1, 1)
    serials = {compile_plan(tree, 64 * MiB).volume_serial for _ in range(8)}
    assert len(serials) > 6
    plan = compile_plan(tree, 64 * MiB, LayoutOptions(volume_serial=0x12345678))
    assert plan.volume_serial == 0x12345678


def test_too_small_and_too_large() -> None:
    with pytest.raises(CapacityTooSmall, match="64 MiB"):
        compile_plan(synthetic(1, 1), 64 * MiB - 512)
    with pytest.raises(ContentTooLarge) as info:
        compile_plan(synthetic(10, 100 * 1000**2), GB)
    message = str(info.value)
    assert "1.0 GB" in message and "content of 1.0 GB" in message


def test_required_capacity_is_smallest_that_fits() -> None:
    for tree in (synthetic(10, 1), synthetic(40, 30 * 1000**2), synthetic(3000, 3_000_000)):
        need = required_capacity(tree)
        assert fits(tree, need)
        assert need == 64 * MiB or not fits(tree, need - 512)
        compile_plan(tree, need)


def test_required_capacity_with_fixed_cluster() -> None:
    tree = synthetic(100, 100_000)
    options = LayoutOptions(cluster_size=32768)
    need = required_capacity(tree, options)
    assert fits(tree, need, options) and not fits(tree, need - 512, options)


def test_plan_for_256_gb_is_lazy_and_fast() -> None:
    tree = synthetic(20_000, 150_000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    plan = compile_plan(tree, 256 * GB)
    literal = 0
    zeros = 0
    for e in plan.extents():
        if isinstance(e.source, Literal):
            literal += e.length
        elif isinstance(e.source, Zeros):
            zeros += e.length
    elapsed = time.monotonic() - start
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert plan.cluster_size == 32768
    assert literal < 10 * MiB  # the FATs' used part and directories only
    assert grown_kib < 64 * 1024
    assert elapsed < 30


def test_bytes_to_write_matches_extents() -> None:
    from appliance.fat32.plan import Zeros as Z

    tree = synthetic(700, 3333)
    for capacity in (64 * MiB, 20 * GB):
        plan = compile_plan(tree, capacity)
        counted = sum(e.length for e in plan.extents() if not isinstance(e.source, Z))
        assert plan.bytes_to_write() == counted
