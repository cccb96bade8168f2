"""The real station hosted by the service (``flashstation run``): :func:`service_build`.

Lives with the commands because it wires every layer together: the station
(:mod:`appliance.station`), its screen, buttons and LEDs (:mod:`appliance.ui`),
the hotplug monitor, the content SSD and the engine, and speaks the
service's interface (:mod:`appliance.service.interface`): start/stop, a
status line, job snapshots, ledger events, pause on undervoltage, error
screens. It has no ``register``: it adds no sub-command.

Content SSD detection: a disk the hotplug classifier refuses as a disk
(larger than ``hotplug.max_size``, or behind a SATA bridge) while no content
is in is mounted read-only (``CommandMounter``: ro,nosuid,nodev,noexec) and
opened as a pack; if it holds no signed pack it is shown as refused. Donated
sticks are never mounted. The classifier's ``content`` rule also marks a disk
as content media when udev saw a ``content.labels`` filesystem label or the
UUID of a filesystem that once held a verified pack on it
(:mod:`.contentmarks`): such a disk is tried the same way and never wiped.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from appliance.config import ConfigProblem
from appliance.config.schema import StationConfig
from appliance.content.errors import PackError
from appliance.content.inserted import InsertedContent, insert
from appliance.content.mount import CommandMounter
from appliance.content.pack import Pack
from appliance.engine import LoadOptions
from appliance.hotplug import events as hp
from appliance.hotplug.classify import Verdict
from appliance.hotplug.factory import make_monitor
from appliance.service.app import ServiceContext, StationBuild
from appliance.service.interface import (
    BatchFinished,
    BatchStarted,
    JobFinished,
    JobSnapshot,
    JobStarted,
    Listener,
    StationEvent,
)
from appliance.service.ledger import load_salt
from appliance.station import events as ev
from appliance.station.adapters import EngineLoader, content_callbacks, from_hotplug
from appliance.station.machine import Snapshot, Station
from appliance.station.runtime import StationRunner
from appliance.station.states import ACTIVE, SlotState
from appliance.ui.display import ScreenThread, make_device

from .contentmarks import ContentMarks, KnownContent

log = logging.getLogger(__name__)
CONTENT_CANDIDATE_RULES = frozenset({"too_large", "ata_bridge", "disk_model", "spinning"})


class HostedStation:
    """The service's ``Station``: the real station with its hardware."""

    def __init__(self, config: StationConfig, state_dir: Path, config_error: Any = None) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        s = config.station
        self.station = Station(s.slots, s.feeding, s.batch_window, clock=time.monotonic)
        self._content: InsertedContent | None = None
        self._content_lock = threading.Lock()
        self._content_disk: str | None = None
        self.marks = ContentMarks(config.content.labels, KnownContent(self.state_dir))
        e = config.engine
        self.loader = EngineLoader(
            self._source,
            LoadOptions(
                wipe=e.wipe,
                chunk_size=e.chunk_size,
                buffer_budget=e.buffer_budget,
                min_capacity=e.min_capacity,
                probe_points=e.probe_points,
            ),
            headroom=config.content.headroom,
            observer=self._observer,
            protect=lambda: [self._content.root] if self._content else [],
        )
        self.runner = StationRunner(self.station, self.loader)
        self.runner.observers.append(self._watch_jobs)
        self._listeners: list[Listener] = []
        self._seen: dict[int, SlotState] = {}
        self._jobs: dict[int, str] = {}
        self._batches: dict[int, set[int]] = {}
        self.screen: ScreenThread | None = None
        self.buttons: Any = None
        self.monitor: Any = None
        self._last: Snapshot = self.station.snapshot()
        if config_error is not None:
            title, detail = config_error
            self.station.post(ev.ConfigError(title, None, detail))

    # -- content --------------------------------------------------------------------------------

    def _source(self) -> Any:
        content = self._content
        return content.source if content is not None and content.ready else None

    def _observer(self) -> Any:
        content = self._content
        if content is not None and isinstance(content.source, Pack):
            return content.source.stream_checker()
        return None

    def _try_content(
        self, devname: str, slot: int | None, reason: str, marked: bool = False
    ) -> None:
        post = self.station.post
        callbacks = content_callbacks(post)
        device = self.marks.device_for(devname)
        try:
            inserted = insert(
                device,
                CommandMounter(),
                self.config.content,
                self.state_dir,
                on_progress=callbacks["on_progress"],
                on_done=callbacks["on_done"],
            )
        except PackError as exc:
            log.warning("%s is not a content SSD: %s", devname, exc)
            if marked:
                reason = f"labelled as content but no valid pack ({exc})"
            if slot is not None:
                post(ev.DeviceRejected(slot, "too_large", reason))
            return
        with self._content_lock:
            self._content = inserted
            self._content_disk = devname
        source = inserted.source
        if isinstance(source, Pack):
            try:
                self.marks.remember(devname, device, source.manifest_hash)
            except OSError as exc:
                log.warning("cannot remember the content filesystem: %s", exc)
            m = source.manifest
            tiers = tuple(
                (t.name, t.min_capacity, sum(f.size for f in m.tier_files(i)))
                for i, t in enumerate(source.tiers())
            )
            post(ev.ContentInserted(m.title, m.version, tiers))
        else:
            post(ev.ContentInserted(str(inserted.root.name), "", ()))
            post(ev.ContentVerified())

    def _hotplug(self, event: hp.HotplugEvent) -> None:
        content = self._content
        marked = isinstance(event, hp.DriveArrived) and event.decision.verdict is Verdict.CONTENT
        if (
            isinstance(event, hp.DriveArrived)
            and marked
            and content is not None
            and event.devname != self._content_disk
        ):
            if event.slot is not None:
                self.station.post(
                    ev.DeviceRejected(event.slot, "too_large", "content media; another is in use")
                )
            return
        if (
            isinstance(event, hp.DriveArrived)
            and (event.decision.rule in CONTENT_CANDIDATE_RULES or marked)
            and content is None
        ):
            threading.Thread(
                target=self._try_content,
                args=(event.devname, event.slot, event.decision.reason, marked),
                name="content-insert",
                daemon=True,
            ).start()
            return
        if (
            isinstance(event, hp.DriveGone)
            and content is not None
            and event.devname in (content.device, self._content_disk)
        ):
            with self._content_lock:
                self._content = None
                self._content_disk = None
            threading.Thread(target=content.close, name="content-close", daemon=True).start()
            self.station.post(ev.ContentRemoved())
            return
        self._to_station(event)

    # -- ledger events --------------------------------------------------------------------------

    def _send(self, event: StationEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("station listener %r", listener)

    def _watch_jobs(self, snap: Snapshot) -> None:
        """Turn slot changes into the service's job events (on the station thread)."""
        self._last = snap
        content = snap.content
        for slot in snap.slots:
            before = self._seen.get(slot.number, SlotState.EMPTY)
            now = slot.state
            self._seen[slot.number] = now
            if now is SlotState.PROBING and before is SlotState.WAITING:
                batch = str(slot.batch)
                if slot.batch not in self._batches:
                    self._batches[slot.batch] = set()
                    self._send(BatchStarted(batch, content.title, content.version))
                self._batches[slot.batch].add(slot.number)
                job = f"slot{slot.number}-{batch}"
                self._jobs[slot.number] = job
                self._send(JobStarted(job, batch, f"slot{slot.number}", slot.capacity, ""))
            elif before in ACTIVE and now not in ACTIVE and slot.number in self._jobs:
                job = self._jobs.pop(slot.number)
                if now is SlotState.DONE:
                    self._send(JobFinished(job, "done"))
                else:
                    cancelled = slot.reason is not None and slot.reason.value == "cancelled"
                    reason = slot.reason.value if slot.reason else ""
                    self._send(JobFinished(job, "cancelled" if cancelled else "failed", reason))
                members = self._batches.get(slot.batch, set())
                members.discard(slot.number)
                if not members and slot.batch in self._batches:
                    del self._batches[slot.batch]
                    self._send(BatchFinished(str(slot.batch)))
        if self.screen is not None:
            self.screen.show(snap)

    # -- the service's Station protocol ---------------------------------------------------------

    def start(self) -> None:
        ui = self.config.ui
        try:
            device = make_device(ui.display)
        except Exception as exc:  # no I2C bus, no screen: carry on without it
            log.error(
                "display %s not available (%s); running without a screen", ui.display.driver, exc
            )
            from appliance.config.schema import DisplayConfig

            device = make_device(DisplayConfig(driver="dummy"))
        self.screen = ScreenThread(device, ui).start()
        try:
            from appliance.ui.buttons import Buttons

            self.buttons = Buttons(ui.buttons, self.station.post)
        except Exception as exc:  # not a Pi (no GPIO): no buttons
            log.error("buttons not available (%s)", exc)
        self.runner.start()
        self._to_station = from_hotplug(self.station.post)
        try:
            self.monitor = make_monitor(
                self.config.hotplug,
                self._hotplug,
                load_salt(self.state_dir),
                is_content=self.marks.is_content,
            )
            self.monitor.start()
        except Exception as exc:
            log.error("hotplug monitor not started: %s", exc)

    def stop(self) -> None:
        self.station.post(ev.Shutdown())
        deadline = time.monotonic() + 5
        while self.station.state.value != "shutting_down" and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.monitor is not None:
            self.monitor.stop()
        if self.buttons is not None:
            self.buttons.close()
        self.runner.close()
        if self.screen is not None:
            self.screen.close()
        if self._content is not None:
            self._content.close()

    def status_line(self) -> str:
        snap = self._last
        active = sum(1 for s in snap.slots if s.state in ACTIVE)
        return f"{snap.state.value}: {active} loading, {snap.totals_done} done"

    def snapshot(self) -> list[JobSnapshot]:
        return [
            JobSnapshot(
                s.number, self._jobs.get(s.number, ""), s.phase, s.percent, s.capacity, s.tier or ""
            )
            for s in self._last.slots
            if s.state in ACTIVE
        ]

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def set_paused(self, reason: str | None) -> None:
        self.station.post(ev.Undervoltage() if reason else ev.PowerOk())

    def show_error(self, title: str, detail: str) -> None:
        self.station.post(ev.ConfigError(title, None, detail))

    def show_config_error(self, problem: ConfigProblem, using: str) -> None:
        """The bad config screen: file and line, while running on ``using`` values."""
        where = f"{problem.path}: " if problem.path else ""
        detail = f"{where}{problem.message} (running on {using} values)"
        self.station.post(ev.ConfigError(problem.file, problem.line, detail))


def service_build(context: ServiceContext) -> StationBuild:
    """What ``flashstation run`` hosts: the station and its parts in start order."""
    # the service itself starts and stops the station and shows context.config_error
    return StationBuild(HostedStation(context.config, context.ledger.state_dir))
