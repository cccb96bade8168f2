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


@pytest.mark.parametrize("cluster_size", [1024, 4096, 32768])
def test_required_capacity_with_fixed_cluster(cluster_size: int) -> None:
    tree = synthetic(100, 100_000)
    options = LayoutOptions(cluster_size=cluster_size)
    need = required_capacity(tree, options)
    assert fits(tree, need, options) and not fits(tree, need - 512, options)


def test_fits_is_exact_across_the_8_gib_cluster_step() -> None:
    # 5000 files of 4 KiB take one cluster each: twice the room with 8 KiB clusters.
    # Filled to the top of the 4 KiB band, the content fits an 8 GiB partition but
    # not one a few sectors larger (8 KiB clusters), and required_capacity knows it.
    from appliance.fat32.geometry import geometry_for

    top = (16_777_216 + 2048) * 512  # the largest capacity with 4 KiB clusters
    clusters = geometry_for(top).cluster_count
    small = synthetic(5000, 4096, per_dir=100)
    free = clusters - 5000 - 101 - 60  # files, folders (root + 50 of 2 clusters), margin
    big = tuple(
        ContentFile(
            (f"big {i}.bin",), Path(f"/nonexistent/big{i}"), free * 4096 // 3 // 4096 * 4096
        )
        for i in range(3)
    )
    tree = ContentTree(small.files + big)
    assert fits(tree, top)
    assert not fits(tree, top + 8 * 512)
    need = required_capacity(tree)
    assert need <= top and fits(tree, need) and not fits(tree, need - 512)


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


def test_for_drive_changes_only_serial_and_signature() -> None:
    plan = compile_plan(synthetic(50, 7000), 2 * GB, LayoutOptions(volume_serial=1))
    twin = plan.for_drive()
    assert twin.volume_serial != plan.volume_serial
    assert twin.mbr[440:444] != plan.mbr[440:444]
    assert plan.volume_serial == 1  # the original is untouched
    ours = list(plan.extents())
    theirs = list(twin.extents())
    assert [(e.offset, e.length, e.role) for e in ours] == [
        (e.offset, e.length, e.role) for e in theirs
    ]
    differing = [a.role for a, b in zip(ours, theirs, strict=True) if a.source != b.source]
    assert differing == ["mbr", "boot", "boot"]  # sector 0, boot sector and its backup


def test_content_changed_between_scan_and_write(tmp_path: Path) -> None:
    from appliance.fat32 import ContentChanged, scan_content, write_image

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"12345")
    plan = compile_plan(scan_content(src), 64 * MiB)
    (src / "a.txt").write_bytes(b"123")
    out = tmp_path / "out.img"
    with pytest.raises(ContentChanged, match=r"a\.txt: size changed from 5 to 3"):
        write_image(plan, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no partial image left


def test_bad_options_refused() -> None:
    from datetime import datetime

    from appliance.fat32 import LayoutError

    tree = synthetic(1, 1)
    with pytest.raises(LayoutError, match="volume label"):
        compile_plan(tree, 64 * MiB, LayoutOptions(label="영화"))
    with pytest.raises(LayoutError, match="volume label"):
        compile_plan(tree, 64 * MiB, LayoutOptions(label="TWELVE CHARS"))
    with pytest.raises(LayoutError, match="1980-2107"):
        compile_plan(tree, 64 * MiB, LayoutOptions(timestamp=datetime(1979, 12, 31)))
    with pytest.raises(LayoutError, match="power of two"):
        compile_plan(tree, 64 * MiB, LayoutOptions(cluster_size=3000))
    with pytest.raises(CapacityTooSmall, match="at least 65525"):
        compile_plan(tree, 64 * MiB, LayoutOptions(cluster_size=4096))


def test_label_is_stored_upper_case() -> None:
    plan = compile_plan(synthetic(1, 1), 64 * MiB, LayoutOptions(label="films 2"))
    assert plan.boot_sector()[71:82] == b"FILMS 2    "


def test_write_image_refuses_device_nodes(tmp_path: Path) -> None:
    from appliance.fat32.image import ImageTargetError, write_image

    plan = compile_plan(synthetic(1, 0), 64 * MiB)
    with pytest.raises(ImageTargetError):
        write_image(plan, Path("/dev/null"))
    assert Path("/dev/null").is_char_device()
    assert not Path("/dev/.null.partial").exists()


def test_write_image_hands_written_ranges_to_writeback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written bytes go to writeback in ascending, gap-free steps while the copy runs."""
    import itertools
    import os
    import threading
    import time

    from appliance.fat32 import image, scan_content, write_image

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(os.urandom(3 * MiB + i))
    plan = compile_plan(scan_content(src), 64 * MiB)
    calls: list[tuple[int, int]] = []
    real_fadvise = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        if advice == os.POSIX_FADV_DONTNEED:
            calls.append((offset, length))
        real_fadvise(fd, offset, length, advice)

    real_copy = os.copy_file_range

    def slow_copy(*args: int) -> int:
        time.sleep(0.002)  # the writeback thread gets its turn even on a loaded machine
        return real_copy(*args)

    monkeypatch.setattr(image, "_WRITEBACK_STEP", MiB)
    monkeypatch.setattr(image, "_BUFFER", MiB // 2)
    monkeypatch.setattr(os, "posix_fadvise", spy)
    monkeypatch.setattr(os, "copy_file_range", slow_copy)
    out = tmp_path / "out.img"
    write_image(plan, out)
    assert calls, "nothing was handed to writeback before the final flush"
    assert calls[0][0] == 0
    for (offset, length), (next_offset, _) in itertools.pairwise(calls):
        assert length >= MiB and offset + length == next_offset
    assert calls[-1][0] + calls[-1][1] > 3 * MiB  # file data too, not just the FATs
    assert not [t for t in threading.enumerate() if t.name == "fat32-writeback"]
    (src / "f0.bin").write_bytes(b"short")  # and a failed write stops the thread too
    with pytest.raises(image.ContentChanged):
        write_image(plan, tmp_path / "again.img")
    assert not [t for t in threading.enumerate() if t.name == "fat32-writeback"]
