"""Content hashing throughput, as ratios against plain reading measured in the same run.

What it answers: does verifying an SSD (BLAKE3 over every file) or hashing
while streaming (``StreamChecker``) cost much more than just reading? And how
much slower would SHA-256 be (the reason ``seal`` writes BLAKE3)?

Run: ``make bench`` or ``.venv/bin/python bench/bench_content.py [MiB]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from appliance.content.hashing import hash_file
from appliance.content.manifest import FileEntry
from appliance.content.stream import StreamChecker

CHUNK = 4 * 1024 * 1024


def best_of(n: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    size = mib * 1024 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "content.bin"
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1024 * 1024))
        data = path.read_bytes()

        def read_only() -> None:
            with open(path, "rb", buffering=0) as f:
                while f.read(1024 * 1024):
                    pass

        entry = FileEntry("content.bin", size, "blake3", blake3.blake3(data).hexdigest())

        def stream() -> None:
            checker = StreamChecker([(path, entry)])
            for off in range(0, size, CHUNK):
                checker.chunk(path, off, data[off : off + CHUNK])
            checker.file_done(path)

        def memcopy() -> None:
            for off in range(0, size, CHUNK):
                bytes(data[off : off + CHUNK])

        t_read = best_of(3, read_only)
        t_b3 = best_of(3, lambda: hash_file(path, "blake3"))
        t_sha = best_of(3, lambda: hash_file(path, "sha256"))
        t_stream = best_of(3, stream)
        t_copy = best_of(3, memcopy)
    mb = size / 1e6
    print(f"file of {mib} MiB, page cache warm (a real SSD reads slower: hashing looks worse here)")
    print(f"  read only        {mb / t_read:7.0f} MB/s  (baseline)")
    print(f"  read + BLAKE3    {mb / t_b3:7.0f} MB/s  {t_b3 / t_read:5.2f}x the read time")
    print(f"  read + SHA-256   {mb / t_sha:7.0f} MB/s  {t_sha / t_read:5.2f}x the read time")
    print(f"  SHA-256 vs BLAKE3: {t_sha / t_b3:.2f}x slower")
    print(f"  StreamChecker    {mb / t_stream:7.0f} MB/s  {t_stream / t_copy:5.2f}x a chunk copy")


if __name__ == "__main__":
    main()
