"""Catch fake-capacity sticks in seconds, before the long write.

Counterfeit firmware claims (say) 64 GB but stores 8 GB: offsets past the real
size wrap around onto lower ones, or are dropped. Writing a tag and reading it
back at the same offset does not catch a wrap-around fake (the read wraps the
same way), so the tags sit on a grid of a power-of-two step: a wrapping drive
with a power-of-two real size maps a high grid point onto a *lower grid point*,
whose tag is then overwritten by the later, higher one. Reading every tag back
after a flush (bypassing the cache) finds those: the foreign tag even says
which offset it came from, so ``real ≈ its offset - ours``. Dropped writes
(zeros or errors past the real size) show as a tail of bad grid points.
The last block of the drive is always probed. Cost: about 128 blocks of 4 KiB
written and read, well under a megabyte of bus traffic.
"""

from __future__ import annotations

import os
import struct

import xxhash

from appliance.drives.errors import DriveError, FakeCapacity, VerifyFailed
from appliance.drives.target import ALIGN, Target, aligned_buffer

MAGIC = b"FSPROBE1"
MiB = 1024 * 1024


def probe_offsets(capacity: int, points: int = 64) -> list[int]:
    """At least ``points`` aligned offsets spread over ``capacity``, plus the last block."""
    usable = capacity - capacity % ALIGN
    target_step = max(ALIGN, usable // points)
    step = 1 << (target_step.bit_length() - 1)  # power of two, so wrap-arounds collide
    while step > ALIGN and usable // step < points:
        step //= 2
    offsets = [
        ALIGN + i * step for i in range(usable // step) if ALIGN + i * step + ALIGN <= usable
    ]
    last = capacity - ALIGN
    if last > 0 and last not in offsets:
        offsets.append(last)
    return offsets


def _tag(nonce: bytes, offset: int) -> bytes:
    head = MAGIC + nonce + struct.pack("<Q", offset)
    fill = xxhash.xxh3_128_digest(head) * (ALIGN // 16)
    return head + fill[len(head) :]


class ProbeResult:
    """What the probe did: offsets used and bus bytes moved."""

    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets
        self.bus_bytes = 2 * ALIGN * len(offsets)


def fake_capacity_check(target: Target, points: int = 64) -> ProbeResult:
    """Write tagged blocks over the claimed capacity, flush, read back; raise if fake."""
    capacity = target.capacity
    offsets = probe_offsets(capacity, points)
    nonce = os.urandom(16)
    buf = aligned_buffer(ALIGN)
    view = memoryview(buf)
    try:
        for off in offsets:
            view[:] = _tag(nonce, off)
            target.pwrite(off, buf)
        target.flush()
        aliases: list[int] = []
        bad: list[int] = []
        for off in offsets:
            try:
                target.read_direct(off, view)
            except DriveError:
                bad.append(off)
                continue
            got = bytes(view)
            if got == _tag(nonce, off):
                continue
            if got.startswith(MAGIC + nonce):
                (came_from,) = struct.unpack_from("<Q", got, len(MAGIC) + len(nonce))
                if came_from > off:
                    aliases.append(came_from - off)
                    continue
            bad.append(off)
    finally:
        del view, buf  # freed when the last slice goes
    result = ProbeResult(offsets)
    if aliases:
        raise FakeCapacity(target.path, real=min(aliases), claimed=capacity)
    if bad:
        first = min(bad)
        tail = [off for off in offsets if off >= first]
        if len(tail) == len(bad) and len(tail) > 1:
            raise FakeCapacity(target.path, real=first, claimed=capacity)
        raise VerifyFailed(
            target.path,
            "probe read back different data (bad flash or a failing drive)",
            offset=first,
        )
    return result


def old_partition_areas(first: bytes, capacity: int, span: int = 32 * MiB) -> list[tuple[int, int]]:
    """Where a donor's partitions began (MBR and GPT in ``first`` = the first 32 KiB).

    A quick wipe overwrites ``span`` bytes from each start: boot sectors, FATs,
    superblocks and directories live there. Only the partition table is read,
    never a donor file system.
    """
    starts: set[int] = set()
    if len(first) >= 512 and first[510:512] == b"\x55\xaa":
        for i in range(4):
            entry = first[446 + 16 * i : 446 + 16 * (i + 1)]
            kind = entry[4]
            (lba,) = struct.unpack_from("<I", entry, 8)
            if kind and lba:
                starts.add(lba * 512)
    if first[512:520] == b"EFI PART":
        (entries_lba,) = struct.unpack_from("<Q", first, 512 + 72)
        (count,) = struct.unpack_from("<I", first, 512 + 80)
        (size,) = struct.unpack_from("<I", first, 512 + 84)
        if size >= 48:
            for i in range(min(count, 256)):
                pos = entries_lba * 512 + i * size
                if pos + 48 > len(first):
                    break
                (lba,) = struct.unpack_from("<Q", first, pos + 32)
                if any(first[pos : pos + 16]) and lba:
                    starts.add(lba * 512)
    return [(s, min(capacity, s + span)) for s in sorted(starts) if s < capacity]
