"""Ledger write cost: synchronous=FULL (what the ledger uses) against NORMAL, same run.

A job costs two commits (started, finished). With FULL every commit fsyncs the
WAL; this prints the cost per job on this machine's disk, to show it is
negligible next to loading a stick (minutes). Run: ``python bench/bench_service.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from appliance.service.interface import JobFinished, JobStarted
from appliance.service.ledger import Ledger

JOBS = 300


def run(sync: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        led = Ledger(Path(tmp))
        led._db.execute(f"PRAGMA synchronous={sync}")
        t0 = time.perf_counter()
        for i in range(JOBS):
            led.record(JobStarted(f"j{i}", "b", f"SERIAL{i}", 16 * 10**9, "16GB"))
            led.record(JobFinished(f"j{i}", "done", seconds={"write": 300.0}))
        elapsed = time.perf_counter() - t0
        t1 = time.perf_counter()
        led.totals()
        query = time.perf_counter() - t1
        led.close()
    per_job = elapsed / JOBS * 1000
    print(f"  synchronous={sync:6} {per_job:7.2f} ms per job (totals query {query * 1000:.1f} ms)")
    return elapsed


def main() -> None:
    print(f"ledger: {JOBS} jobs, 2 commits each")
    normal = run("NORMAL")
    full = run("FULL")
    print(f"  FULL / NORMAL = {full / normal:.2f}x; FULL per job = {full / JOBS * 1000:.2f} ms")


if __name__ == "__main__":
    main()
