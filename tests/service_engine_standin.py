"""A station that loads image files with the real engine, hosted by the real Service (a script).

The SIGKILL test's second tier (``tests/test_service_recovery.py``, marked
slow): like ``service_standin.py`` but every write, verify and commit is done
by :func:`appliance.engine.start_batch`. Drive ``--flip N`` is wrapped so one
byte reads back wrong (bad flash): the engine must fail it and leave it
without a partition table.

    python tests/service_engine_standin.py STATE CONTENT IMAGE:SERIAL ... [--flip N]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from pathlib import Path

from appliance.config import StationConfig
from appliance.drives.target import open_target
from appliance.engine import Job, LoadOptions, start_batch
from appliance.engine.events import Event, TargetFinished
from appliance.fat32 import compile_plan, scan_content
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

log = logging.getLogger("engine-standin")


class FlipOnRead:
    """Bad flash: one byte in the middle of the drive reads back wrong."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.path = inner.path  # type: ignore[attr-defined]
        self.capacity = inner.capacity  # type: ignore[attr-defined]
        self.is_block_device = False
        self.at = self.capacity // 2

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def read_direct(self, offset: int, buf: memoryview) -> None:
        self.inner.read_direct(offset, buf)  # type: ignore[attr-defined]
        if offset <= self.at < offset + len(buf):
            buf[self.at - offset] ^= 0x01


class EngineStation:
    def __init__(self, content: Path, drives: list[tuple[Path, str]], flip: set[int]) -> None:
        self.content = content
        self.drives = drives
        self.flip = flip
        self.listeners: list[Listener] = []
        self.batch = None
        self.thread: threading.Thread | None = None
        self.done = 0

    def emit(self, event: StationEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="batch")
        self.thread.start()

    def _run(self) -> None:
        tree = scan_content(self.content)
        jobs = []
        self.emit(BatchStarted("b", "sample", "1"))
        for index, (path, serial) in enumerate(self.drives):
            target = open_target(path, protect=[self.content])
            wrapped = FlipOnRead(target) if index in self.flip else target
            jobs.append(Job(wrapped, compile_plan(tree, target.capacity), name=f"slot{index}"))  # type: ignore[arg-type]
            self.emit(JobStarted(f"slot{index}", "b", serial, target.capacity, "sample"))
        print("batch-start", flush=True)
        self.batch = start_batch(
            jobs, LoadOptions(), on_event=self._on_event, protect=[self.content]
        )
        self.batch.wait()
        for job in jobs:
            job.target.close()  # type: ignore[union-attr]
        self.emit(BatchFinished("b"))
        print("batch-done", flush=True)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, TargetFinished):
            r = event.result
            result = {"ok": "done", "failed": "failed", "cancelled": "cancelled"}[r.status]
            self.done += result == "done"
            self.emit(
                JobFinished(
                    r.target, result, r.reason, r.seconds, r.bytes_written, r.bytes_verified
                )
            )  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.batch is not None:
            self.batch.cancel_all()
        if self.thread is not None:
            self.thread.join()

    def status_line(self) -> str:
        return f"busy: {self.done} done"

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
    parser.add_argument("content", type=Path)
    parser.add_argument("drives", nargs="+")
    parser.add_argument("--flip", type=int, action="append", default=[])
    args = parser.parse_args()
    setup_logging(logging.DEBUG, socket=Path("/nonexistent"))
    drives = [(Path(d.rsplit(":", 1)[0]), d.rsplit(":", 1)[1]) for d in args.drives]
    config = StationConfig()
    service_cfg = dataclasses.replace(config.service, state_dir=str(args.state_dir))
    config = dataclasses.replace(config, service=service_cfg)

    def factory(context: ServiceContext) -> StationBuild:
        return StationBuild(EngineStation(args.content, drives, set(args.flip)))

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
