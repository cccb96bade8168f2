"""Thin adapters from the real engine, hotplug and content packages to the station's ports.

- :class:`EngineLoader` (port ``Loader``): picks each slot's tier from the
  content (:func:`appliance.content.planner.choose_tier`), compiles its plan
  (:func:`appliance.fat32.compile_plan`), starts an engine batch
  (:func:`appliance.engine.start_batch`) and translates the engine's events
  into :class:`JobProgress` / :class:`JobDone` / :class:`JobFailed`. Planning
  and starting happen on a helper thread, so the station thread never waits
  on the content SSD. With a ``wait_turn`` (the service's ``Stagger``), each
  stick's engine job waits its turn at the engine's start gate before its
  drive is opened, so sticks plugged at once do not all start writing (and
  drawing current from the hub's supply) in the same instant; the batch still
  reads the content once (the engine holds the write pass for gated sticks).
- :func:`from_hotplug`: hotplug events to station events (a callback for
  :func:`appliance.hotplug.factory.make_monitor`).
- :func:`content_callbacks`: progress and result of the content verifier
  (:func:`appliance.content.inserted.insert`) as station events.

The station imports these packages; they never import the station.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance import engine, fat32
from appliance.content.planner import TierSource, choose_tier
from appliance.hotplug import events as hp
from appliance.hotplug.classify import Verdict
from appliance.station import events as ev
from appliance.station.effects import JobRequest, StartBatch
from appliance.station.ports import Post
from appliance.station.states import FailReason

log = logging.getLogger(__name__)

#: the engine's phases as the station's. The engine writes content and wipe in one
#: ascending pass; with a full wipe, the part of that pass past the content's last
#: cluster (``FatPlan.data_end``) is shown as the station's ``wipe`` (see _phase_of).
PHASES = {
    "open": "probe",
    "probe": "probe",
    "write": "load",
    "verify": "verify",
    "commit": "verify",
}
#: how far through a whole job each phase starts, and its share (for the grid's percent)
WEIGHTS = {
    "probe": (0.0, 0.02),
    "write": (0.02, 0.58),
    "verify": (0.60, 0.38),
    "commit": (0.98, 0.02),
}
#: hotplug rules whose refusal the operator sees, as the screen's reject.<code> message
REJECT_CODES = {
    "too_small": "too_small",
    "too_large": "too_large",
    "ata_bridge": "too_large",
    "spinning": "too_large",
    "disk_model": "too_large",
    "composite": "not_storage",
}
#: refusals that need no operator action (an empty card reader, a partition event)
SILENT_RULES = frozenset({"no_media", "partition", "not_block"})
_FAKE = re.compile(r"about ([0-9.]+) GB real of ([0-9.]+) GB claimed")


def reason_of(text: str) -> tuple[FailReason, dict[str, float]]:
    """The station's failure reason for an engine result's one-line reason."""
    low = text.lower()
    fake = _FAKE.search(text)
    if fake:
        return FailReason.FAKE_CAPACITY, {
            "real": float(fake.group(1)) * 1e9,
            "claimed": float(fake.group(2)) * 1e9,
        }
    table = (
        ("content ssd removed", FailReason.CONTENT_REMOVED),
        ("damaged", FailReason.CONTENT_DAMAGED),
        ("does not match", FailReason.CONTENT_DAMAGED),
        ("fake capacity", FailReason.FAKE_CAPACITY),
        ("drive removed", FailReason.REMOVED),
        ("write-protected", FailReason.READ_ONLY),
        ("too small", FailReason.TOO_SMALL),
        ("verify failed", FailReason.VERIFY_FAILED),
        ("differs", FailReason.VERIFY_FAILED),
        ("i/o error", FailReason.WRITE_ERROR),
        ("cancelled", FailReason.CANCELLED),
    )
    for needle, reason in table:
        if needle in low:
            return reason, {}
    return FailReason.UNKNOWN, {}


def result_reason(result: engine.TargetResult) -> tuple[FailReason, dict[str, float]]:
    """The station's failure reason for an engine result: its stable ``cause`` code.

    The engine's cause codes are the station's reason values; a code the station has
    no plain words for (``refused``, ``busy``) falls back to reading the text.
    """
    try:
        reason = FailReason(result.cause)
    except ValueError:
        return reason_of(result.reason)
    if reason is FailReason.UNKNOWN:
        return reason_of(result.reason)
    return reason, dict(result.detail)


def _slot_of(name: str) -> int | None:
    m = re.fullmatch(r"slot (\d+)", name)
    return int(m.group(1)) if m else None


class EngineLoader:
    """The real engine behind the station's ``Loader`` port."""

    def __init__(
        self,
        source: Callable[[], TierSource | None],
        options: engine.LoadOptions | None = None,
        *,
        headroom: float = 0.02,
        layout: fat32.LayoutOptions | None = None,
        target_for: Callable[[JobRequest], Any] | None = None,
        observer: Callable[[], engine.SourceObserver | None] | None = None,
        protect: Callable[[], list[Path]] | None = None,
        wait_turn: Callable[[threading.Event], bool] | None = None,
    ) -> None:
        self.source = source
        self.options = options or engine.LoadOptions()
        self.headroom = headroom
        self.layout = layout or fat32.LayoutOptions()
        self.target_for = target_for or (lambda job: job.device)
        self.observer = observer or (lambda: None)
        self.protect = protect or (lambda: [])
        #: each stick's start gate in the engine: blocks until its turn; False when the
        #: stick's cancel event was set meanwhile
        self.wait_turn = wait_turn
        self._lock = threading.Lock()
        self._batches: dict[int, engine.Batch] = {}  # slot -> its running batch
        self._tiers: dict[int, str] = {}
        #: full wipe: where each slot's write pass leaves the content and only wipes
        self._wipe_from: dict[int, int] = {}
        self._cancelled: set[int] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def start(self, batch: StartBatch, post: Post) -> None:
        with self._lock:
            for job in batch.jobs:
                self._cancelled.discard(job.slot)
        thread = threading.Thread(
            target=self._start, args=(batch, post), name=f"plan-{batch.batch}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _start(self, batch: StartBatch, post: Post) -> None:
        source = self.source()
        jobs = []
        for req in batch.jobs:
            if source is None:
                post(ev.JobFailed(req.slot, FailReason.CONTENT_REMOVED))
                continue
            try:
                index = choose_tier(source, req.capacity, headroom=self.headroom)
                if index is None:
                    post(ev.JobFailed(req.slot, FailReason.TOO_SMALL))
                    continue
                plan = fat32.compile_plan(source.content_tree(index), req.capacity, self.layout)
                target = self.target_for(req)
            except Exception as exc:  # content unreadable, layout error: this slot fails alone
                log.warning("slot %d: cannot plan: %s", req.slot, exc)
                reason, detail = reason_of(str(exc))
                post(ev.JobFailed(req.slot, reason, detail))
                continue
            data_end = getattr(plan, "data_end", None)
            with self._lock:
                self._tiers[req.slot] = source.tiers()[index].name
                if self.options.wipe == "full" and callable(data_end):
                    self._wipe_from[req.slot] = int(data_end())
                else:
                    self._wipe_from.pop(req.slot, None)
            jobs.append(
                engine.Job(target, plan, name=f"slot {req.slot}", start_gate=self.wait_turn)
            )
        if not jobs:
            return
        self._start_engine(jobs, post)

    def _start_engine(self, jobs: list[engine.Job], post: Post) -> None:
        with self._lock:
            if self._closed:
                return
            running = engine.start_batch(
                jobs,
                self.options,
                on_event=lambda e: self._on_event(e, post),
                observer=self.observer(),
                protect=self.protect(),
            )
            for job in jobs:
                slot = _slot_of(job.label)
                if slot is not None:
                    self._batches[slot] = running
            late = [s for s in self._cancelled if s in self._batches]
        for slot in late:
            self.cancel(slot)

    def _on_event(self, event: engine.Event, post: Post) -> None:
        if isinstance(event, engine.BatchFinished):
            if event.error and ("damaged" in event.error or "does not match" in event.error):
                post(ev.ContentDamaged(event.error))
            return
        if isinstance(event, engine.TargetFinished):
            result = event.result
            slot = _slot_of(result.target)
            if slot is None:
                return
            with self._lock:
                self._batches.pop(slot, None)
                tier = self._tiers.pop(slot, None)
            if result.ok:
                post(ev.JobDone(slot, tier))
            elif result.status == "cancelled":
                post(ev.JobFailed(slot, FailReason.CANCELLED))
            else:
                reason, detail = result_reason(result)
                log.info("slot %d failed: %s", slot, result.reason)
                post(ev.JobFailed(slot, reason, detail))
            return
        slot = _slot_of(event.target)
        if slot is None:
            return
        with self._lock:
            tier = self._tiers.get(slot)
            wipe_from = self._wipe_from.get(slot)
        if isinstance(event, engine.PhaseChanged):
            if event.phase in PHASES:
                start, _share = WEIGHTS.get(event.phase, (0.0, 0.0))
                post(ev.JobProgress(slot, PHASES[event.phase], 0, 0, tier=tier, fraction=start))
        elif isinstance(event, engine.Progress) and event.phase in PHASES:
            start, share = WEIGHTS.get(event.phase, (0.0, 0.0))
            part = event.done / event.total if event.total else 0.0
            phase = PHASES[event.phase]
            if event.phase == "write" and wipe_from is not None and event.done >= wipe_from:
                phase = "wipe"  # the ascending pass is past the content: only zeros now
            post(
                ev.JobProgress(
                    slot,
                    phase,
                    event.done,
                    event.total,
                    event.speed,
                    event.eta,
                    tier=tier,
                    fraction=start + share * part,
                )
            )

    def cancel(self, slot: int) -> None:
        with self._lock:
            self._cancelled.add(slot)
            batch = self._batches.get(slot)
        if batch is not None:
            with contextlib.suppress(KeyError):
                batch.cancel(f"slot {slot}")

    def cancel_all(self) -> None:
        with self._lock:
            self._cancelled.update(self._tiers)  # planned sticks whose batch has not started
            running = {id(b): b for b in self._batches.values()}
        for batch in running.values():
            batch.cancel_all()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._batches) or any(t.is_alive() for t in self._threads)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel everything and wait (bounded) for the engine to stop writing."""
        with self._lock:
            self._closed = True
            running = {id(b): b for b in self._batches.values()}
        for batch in running.values():
            batch.cancel_all()
        for batch in running.values():
            try:
                batch.wait(timeout)
            except TimeoutError:
                log.error("engine batch still running after %.0f s", timeout)


def from_hotplug(post: Post) -> Callable[[hp.HotplugEvent], None]:
    """A callback for the hotplug monitor that posts the station's drive events."""

    def callback(event: hp.HotplugEvent) -> None:
        slot = event.slot
        if slot is None:
            log.info("hotplug %s on an unnumbered port ignored", event.kind)
            return
        if isinstance(event, hp.DriveArrived) or (
            isinstance(event, hp.MediaChanged) and event.present
        ):
            decision = event.decision
            if decision.verdict is Verdict.TARGET:
                size = getattr(event, "size", None) or 0
                post(
                    ev.DriveArrived(
                        slot,
                        size,
                        device=event.devname,
                        drive_id=event.drive_id,
                        port=event.port or "",
                    )
                )
            elif decision.rule in SILENT_RULES:
                log.info("slot %d: %s (%s), not shown", slot, decision.verdict, decision.reason)
            elif decision.verdict in (Verdict.IGNORE, Verdict.SYSTEM):
                code = REJECT_CODES.get(decision.rule, "other")
                post(ev.DeviceRejected(slot, code, decision.reason, port=event.port or ""))
            # Verdict.CONTENT: the content watcher handles the SSD
        elif isinstance(event, (hp.DriveGone, hp.MediaChanged)):
            post(ev.DriveGone(slot))
        elif isinstance(event, hp.DeviceRejected):
            post(ev.DeviceRejected(slot, "not_storage", event.reason, port=event.port or ""))

    return callback


def content_callbacks(post: Post) -> dict[str, Callable[..., None]]:
    """``on_progress`` and ``on_done`` for :func:`appliance.content.inserted.insert`."""

    def on_progress(done: int, total: int, path: str = "") -> None:
        post(ev.ContentProgress(done, total))

    def on_done(result: Any) -> None:
        if result.ok:
            post(ev.ContentVerified())
        elif result.cancelled:
            return
        elif result.removed:  # pulled while being checked: back to "insert content"
            post(ev.ContentRemoved())
        else:
            post(ev.ContentDamaged(result.message))

    return {"on_progress": on_progress, "on_done": on_done}
