"""drives/: opening targets, direct reads, refusals, and the fault-injecting fakes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from appliance.drives import (
    ALIGN,
    DriveGone,
    DriveIOError,
    DriveRefused,
    FakeCapacity,
    TooSmall,
    WriteProtected,
    aligned_buffer,
    open_target,
)
from appliance.drives.fake import Faults, FaultyTarget, file_target, make_image, wrap_around_target
from appliance.engine.probe import fake_capacity_check, old_partition_areas, probe_offsets

MiB = 1024 * 1024


def test_file_target_capacity_is_its_size_and_never_grows(tmp_path: Path) -> None:
    path = make_image(tmp_path / "t.img", 8 * MiB + 512)
    with open_target(path) as t:
        assert t.capacity == 8 * MiB + 512
        assert not t.is_block_device
        with pytest.raises(DriveIOError, match="pass the end"):
            t.pwrite(8 * MiB, bytes(1024))
        t.pwrite(8 * MiB, b"x" * 512)  # the odd last sector, unaligned: buffered path
        t.flush()
    assert path.stat().st_size == 8 * MiB + 512


def test_read_direct_returns_what_is_on_disk_for_aligned_and_odd_ranges(tmp_path: Path) -> None:
    path = make_image(tmp_path / "t.img", 4 * MiB)
    with open_target(path) as t:
        buf = aligned_buffer(ALIGN)
        memoryview(buf)[:] = bytes(range(256)) * 16
        t.pwrite(ALIGN, buf)
        t.flush()
        back = aligned_buffer(ALIGN)
        t.read_direct(ALIGN, memoryview(back))
        assert bytes(back) == bytes(buf)
        odd = bytearray(100)
        t.read_direct(ALIGN + 7, memoryview(odd))
        assert bytes(odd) == (bytes(range(256)) * 16)[7:107]
    with open(path, "rb") as f:
        f.seek(ALIGN)
        assert f.read(ALIGN) == bytes(buf)


def test_open_refuses_what_is_not_a_target(tmp_path: Path) -> None:
    with pytest.raises(DriveRefused, match=r"(?i)no such file"):
        open_target(tmp_path / "missing.img")
    with pytest.raises(DriveRefused, match="not a block device or a regular image file"):
        open_target(tmp_path)
    with pytest.raises(DriveRefused, match="not a block device"):
        open_target("/dev/null")
    empty = tmp_path / "empty.img"
    empty.touch()
    with pytest.raises(TooSmall, match="empty"):
        open_target(empty)
    content = tmp_path / "content"
    content.mkdir()
    inside = make_image(content / "x.img", MiB)
    with pytest.raises(DriveRefused, match="inside the content folder"):
        open_target(inside, protect=[content])


def test_fake_faults_raise_the_right_errors(tmp_path: Path) -> None:
    buf = aligned_buffer(ALIGN)
    eio = FaultyTarget(file_target(make_image(tmp_path / "a", MiB)), Faults(eio_at=ALIGN + 5))
    eio.pwrite(0, buf)
    with pytest.raises(DriveIOError, match=f"at offset {ALIGN + 5}"):
        eio.pwrite(ALIGN, buf)
    ro = FaultyTarget(file_target(make_image(tmp_path / "b", MiB)), Faults(read_only=True))
    assert ro.write_protected()
    with pytest.raises(WriteProtected):
        ro.pwrite(0, buf)
    gone = FaultyTarget(file_target(make_image(tmp_path / "c", MiB)), Faults(vanish_after=ALIGN))
    gone.pwrite(0, buf)
    with pytest.raises(DriveGone, match="drive removed"):
        gone.pwrite(ALIGN, buf)
    flip = FaultyTarget(file_target(make_image(tmp_path / "d", MiB)), Faults(flip_on_read_at=10))
    flip.pwrite(0, buf)
    back = aligned_buffer(ALIGN)
    flip.read_direct(0, memoryview(back))
    assert back[10] != 0 and bytes(back[:10]) == bytes(10)


def test_wrap_around_fake_really_wraps(tmp_path: Path) -> None:
    fake = wrap_around_target(tmp_path / "f.img", claimed=64 * MiB, real=8 * MiB)
    assert fake.capacity == 64 * MiB
    buf = aligned_buffer(ALIGN)
    memoryview(buf)[:4] = b"HIGH"
    fake.pwrite(8 * MiB + ALIGN, buf)
    back = aligned_buffer(ALIGN)
    fake.read_direct(ALIGN, memoryview(back))
    assert bytes(back[:4]) == b"HIGH"


def test_probe_offsets_cover_the_drive_and_its_last_block() -> None:
    for capacity in (64 * MiB, 1000 * 1000 * 1000, 16 * 1024 * MiB + 512, 7_987_527_680):
        offs = probe_offsets(capacity)
        assert len(offs) >= 64
        assert offs[-1] == capacity - ALIGN
        assert all(o % 512 == 0 and o + ALIGN <= capacity for o in offs)
        assert max(offs[:-1]) > capacity * 0.9


@pytest.mark.parametrize(("claimed", "real"), [(256 * MiB, 32 * MiB), (512 * MiB, 96 * MiB)])
def test_probe_estimates_real_size_of_wrap_around_fakes(
    tmp_path: Path, claimed: int, real: int
) -> None:
    fake = wrap_around_target(tmp_path / "f.img", claimed=claimed, real=real)
    with pytest.raises(FakeCapacity) as info:
        fake_capacity_check(fake)
    assert info.value.real == real
    assert f"about {real / 1e9:.1f} GB real of {claimed / 1e9:.1f} GB claimed" in str(info.value)


def test_probe_catches_a_fake_that_drops_writes_past_its_real_size(tmp_path: Path) -> None:
    class Dropping(FaultyTarget):
        def pwrite(self, offset, data):  # type: ignore[no-untyped-def]
            if offset < 40 * MiB:
                super().pwrite(offset, data)

    t = Dropping(file_target(make_image(tmp_path / "d.img", 128 * MiB)), Faults())
    with pytest.raises(FakeCapacity) as info:
        fake_capacity_check(t)
    assert 38 * MiB <= info.value.real <= 42 * MiB


def test_probe_passes_a_healthy_drive(tmp_path: Path) -> None:
    t = file_target(make_image(tmp_path / "ok.img", 128 * MiB))
    result = fake_capacity_check(t)
    assert result.bus_bytes < MiB


def test_old_partition_areas_from_mbr_and_gpt() -> None:
    first = bytearray(32 * 1024)
    first[446 + 4] = 0x0C
    first[446 + 8 : 446 + 12] = struct.pack("<I", 2048)
    first[446 + 16 + 4] = 0xEE
    first[446 + 16 + 8 : 446 + 16 + 12] = struct.pack("<I", 1)
    first[510:512] = b"\x55\xaa"
    first[512:520] = b"EFI PART"
    struct.pack_into("<QII", first, 512 + 72, 2, 4, 128)
    entry = 1024 + 128
    first[entry : entry + 16] = b"\x01" * 16
    struct.pack_into("<Q", first, entry + 32, 409600)
    areas = old_partition_areas(bytes(first), 1 << 30, span=32 * MiB)
    assert (2048 * 512, 2048 * 512 + 32 * MiB) in areas
    assert (409600 * 512, 409600 * 512 + 32 * MiB) in areas
    assert old_partition_areas(bytes(32 * 1024), 1 << 30) == []


def test_without_o_direct_the_buffered_fallback_still_loads_and_verifies(tmp_path: Path) -> None:
    """Where O_DIRECT is refused (some file systems), fsync + fadvise(DONTNEED) is used."""
    import os

    from appliance.drives.target import DeviceTarget
    from appliance.engine import Job, LoadOptions, start_batch
    from tests.enginekit import TinyPlan, expected_image, make_content

    content = make_content(tmp_path / "c", [3 * MiB + 5, 100])
    path = make_image(tmp_path / "t.img", 16 * MiB)
    target = DeviceTarget(
        str(path), None, os.open(path, os.O_RDWR), 16 * MiB, is_block_device=False
    )
    assert not target.direct
    plan = TinyPlan(16 * MiB, content)
    (r,) = start_batch([Job(target, plan)], LoadOptions(min_capacity=MiB)).wait(60)
    assert r.ok, r.reason
    assert path.read_bytes() == expected_image(plan)
