"""A stand-in station hosted by the real :class:`appliance.service.app.Service` (run as a script).

Used by the SIGKILL recovery test until the real engine and station are on
main. Its writer follows the engine's commit-last protocol on image files:
sector 0 is zeroed (and flushed) first, the payload is written and flushed,
read back past the page cache and compared, and only then is the MBR written,
flushed and re-read. Drives listed in ``--flip`` get a byte flipped behind the
writer's back (bad flash: verification must fail), drives in ``--vanish`` fail
half-way (a pulled stick).

    python tests/service_standin.py STATE_DIR IMAGE:SERIAL ... [--flip N] [--vanish N]

Prints ``batch-start`` and ``batch-done`` on stdout; logs (DEBUG) to stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
import threading
import time
from pathlib import Path

from appliance.config import StationConfig
from appliance.service.app import Service, ServiceContext, StationBuild
from appliance.service.interface import (
    BatchFinished,
    BatchStarted,
    JobFinished,
    JobSnapshot,
    JobStarted,
    Listener,
    StationEvent,
)
from appliance.service.logsetup import setup_logging
from appliance.service.notify import Notifier
from appliance.service.settings import LoadedConfig

CHUNK = 64 * 1024
log = logging.getLogger("standin")


def payload(index: int, offset: int) -> bytes:
    """What drive ``index`` must hold in the chunk at ``offset`` (sector 0 aside)."""
    return bytes([(index * 7 + offset // CHUNK) % 251 + 1]) * CHUNK


def mbr(size: int, index: int) -> bytes:
    sector = bytearray(512)
    sector[440:444] = struct.pack("<I", 0x46530000 + index)
    sector[446:462] = struct.pack(
        "<B3sB3sII", 0, b"\xfe\xff\xff", 0x0C, b"\xfe\xff\xff", 128, size // 512 - 128
    )
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


class Cancelled(Exception):
    pass


def write_drive(
    path: Path, index: int, cancel: threading.Event, flip: bool, vanish: bool
) -> tuple[str, str, dict[str, float]]:
    seconds: dict[str, float] = {}
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        t0 = time.monotonic()
        os.pwrite(fd, bytes(512), 0)  # 1. invalidate the old table first
        os.fsync(fd)
        for offset in range(0, size, CHUNK):  # 2. payload
            if cancel.is_set():
                raise Cancelled
            if vanish and offset >= size // 2:
                return "failed", f"{path}: device removed during write", seconds
            data = payload(index, offset)
            if offset == 0:
                data = bytes(512) + data[512:]
            os.pwrite(fd, data, offset)
            time.sleep(0.001)
        os.fsync(fd)
        if flip:  # bad flash: one byte changes after it was written
            os.pwrite(fd, b"\x00", size // 3)
            os.fsync(fd)
        seconds["write"] = time.monotonic() - t0
        t0 = time.monotonic()
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        for offset in range(0, size, CHUNK):  # 3. verify on the device
            if cancel.is_set():
                raise Cancelled
            want = payload(index, offset)
            got = os.pread(fd, CHUNK, offset)
            if offset == 0:
                want, got = want[512:], got[512:]
            if got != want:
                return "failed", f"verify mismatch at offset {offset}", seconds
        seconds["verify"] = time.monotonic() - t0
        t0 = time.monotonic()
        os.pwrite(fd, mbr(size, index), 0)  # 4. commit last
        os.fsync(fd)
        if os.pread(fd, 512, 0) != mbr(size, index):
            return "failed", "verify mismatch in the partition table", seconds
        seconds["commit"] = time.monotonic() - t0
        return "done", "", seconds
    except Cancelled:
        return "cancelled", "cancelled: the station is stopping", seconds
    finally:
        os.close(fd)


class StandInStation:
    def __init__(
        self,
        context: ServiceContext,
        drives: list[tuple[Path, str]],
        flip: set[int],
        vanish: set[int],
    ):
        self.context = context
        self.drives = drives
        self.flip = flip
        self.vanish = vanish
        self.listeners: list[Listener] = []
        self.cancel = threading.Event()
        self.threads: list[threading.Thread] = []
        self.state: dict[int, str] = {}
        self.lock = threading.Lock()
        self.batch_thread: threading.Thread | None = None

    def emit(self, event: StationEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def start(self) -> None:
        self.batch_thread = threading.Thread(target=self._batch, name="batch")
        self.batch_thread.start()

    def _batch(self) -> None:
        self.emit(BatchStarted("b", "stand-in pack", "1.0"))
        print("batch-start", flush=True)
        for index, (path, serial) in enumerate(self.drives):
            if not self.context.stagger.wait_turn(self.cancel):
                break
            thread = threading.Thread(
                target=self._job, args=(index, path, serial), name=f"job{index}"
            )
            self.threads.append(thread)
            thread.start()
        for thread in self.threads:
            thread.join()
        self.emit(BatchFinished("b"))
        print("batch-done", flush=True)

    def _job(self, index: int, path: Path, serial: str) -> None:
        job = f"slot{index}"
        size = path.stat().st_size
        self.emit(JobStarted(job, "b", serial, size, "test", "stick"))
        log.debug(
            "job %s started on %s (serial %s must never be logged)", job, path.name, "<hidden>"
        )
        with self.lock:
            self.state[index] = "writing"
        result, reason, seconds = write_drive(
            path, index, self.cancel, index in self.flip, index in self.vanish
        )
        with self.lock:
            self.state[index] = result
        log.info("job %s: %s %s", job, result, reason)
        self.emit(JobFinished(job, result, reason, seconds, size, size))  # type: ignore[arg-type]

    def stop(self) -> None:
        self.cancel.set()
        if self.batch_thread is not None:
            self.batch_thread.join()

    def status_line(self) -> str:
        with self.lock:
            states = list(self.state.values())
        return f"busy: {states.count('writing')} loading, {states.count('done')} done"

    def snapshot(self) -> list[JobSnapshot]:
        return []

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def set_paused(self, reason: str | None) -> None:
        pass

    def show_config_error(self, problem: object, using: str) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("drives", nargs="+")
    parser.add_argument("--flip", type=int, action="append", default=[])
    parser.add_argument("--vanish", type=int, action="append", default=[])
    parser.add_argument("--stagger", type=float, default=0.01)
    args = parser.parse_args()
    setup_logging(logging.DEBUG, socket=Path("/nonexistent"))
    drives = [(Path(d.rsplit(":", 1)[0]), d.rsplit(":", 1)[1]) for d in args.drives]
    config = StationConfig()
    import dataclasses

    service_cfg = dataclasses.replace(
        config.service, state_dir=str(args.state_dir), stagger=args.stagger
    )
    config = dataclasses.replace(config, service=service_cfg)

    def factory(context: ServiceContext) -> StationBuild:
        return StationBuild(StandInStation(context, drives, set(args.flip), set(args.vanish)))

    service = Service(
        LoadedConfig(config, "files", ()),
        factory,
        notifier=Notifier({}),
        power_reader=lambda: None,
        loop_period=0.05,
    )
    return service.run()


if __name__ == "__main__":
    sys.exit(main())
