"""In-memory fakes of the ports, driven by a clock: for tests, the simulator and the bench.

:class:`SimLoader` pretends to probe, wipe, load and verify each stick at a
configured speed; a :class:`SimStick` can be a fake-capacity stick, fail
verification, or be write-protected, and the loader reports the same
failures the engine would. It is driven by :meth:`SimLoader.advance` so a
scripted session is deterministic: the simulator calls it with simulated
time; a real-time runner calls it from a ticker thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from appliance.station import events as ev
from appliance.station.effects import StartBatch
from appliance.station.ports import Post
from appliance.station.states import FailReason

GB = 1000**3
PROBE_SECONDS = 2.0


@dataclass(frozen=True)
class SimStick:
    """A simulated stick: what it claims and how it behaves."""

    capacity: int
    real_capacity: int | None = None  # smaller than capacity: a fake-capacity stick
    speed: float = 400e6  # bytes per (simulated) second while writing
    read_only: bool = False
    bad_at: float | None = None  # fraction of the verify pass where a mismatch shows

    @property
    def fake(self) -> bool:
        return self.real_capacity is not None and self.real_capacity < self.capacity


@dataclass
class _Job:
    slot: int
    stick: SimStick
    payload: int
    tier: str | None
    started: float
    phase: str = "probe"
    phase_started: float = 0.0
    finished: bool = False


def pick_tier(
    tiers: tuple[tuple[str, int, int], ...], capacity: int, headroom: float = 0.02
) -> tuple[str | None, int]:
    """The largest tier whose minimum fits ``capacity`` less headroom: (name, payload)."""
    usable = capacity * (1 - headroom)
    best: tuple[str | None, int] = (None, 0)
    for name, minimum, payload in tiers:
        if minimum <= usable and payload <= usable:
            best = (name, payload)
    return best


@dataclass
class SimLoader:
    """A loader that simulates the engine's phases; thread-safe, advanced by a clock."""

    tiers: tuple[tuple[str, int, int], ...] = ()
    default_payload: int = 2 * GB
    sticks: dict[int, SimStick] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, _Job] = {}
        self._post: Post | None = None
        self._now = 0.0
        self.batches: list[StartBatch] = []
        self.cancelled: list[int] = []

    # ports.Loader
    def start(self, batch: StartBatch, post: Post) -> None:
        with self._lock:
            self._post = post
            self.batches.append(batch)
            for job in batch.jobs:
                stick = self.sticks.get(job.slot, SimStick(job.capacity))
                real = stick.real_capacity if stick.fake else stick.capacity
                tier, payload = pick_tier(self.tiers, real or stick.capacity)
                if not self.tiers:
                    payload = min(self.default_payload, int(stick.capacity * 0.9))
                self._jobs[job.slot] = _Job(
                    job.slot, stick, payload, tier, self._now, phase_started=self._now
                )

    def cancel(self, slot: int) -> None:
        with self._lock:
            job = self._jobs.pop(slot, None)
            if job is not None:
                self.cancelled.append(slot)

    def cancel_all(self) -> None:
        with self._lock:
            self.cancelled.extend(self._jobs)
            self._jobs.clear()

    def close(self) -> None:
        self.cancel_all()

    # simulation
    def busy(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def advance(self, now: float) -> None:
        """Move every job to simulated time ``now`` and post what happened."""
        out: list[ev.Event] = []
        with self._lock:
            self._now = now
            for slot, job in list(self._jobs.items()):
                out.extend(self._step(job, now))
                if job.finished:
                    del self._jobs[slot]
            post = self._post
        if post is not None:
            for event in out:
                post(event)

    def _step(self, job: _Job, now: float) -> list[ev.Event]:
        stick = job.stick
        out: list[ev.Event] = []
        while True:
            t = now - job.phase_started
            if job.phase == "probe":
                if t < PROBE_SECONDS:
                    out.append(self._progress(job, t / PROBE_SECONDS, 1.0, PROBE_SECONDS - t))
                    return out
                if stick.read_only:
                    job.finished = True
                    return [*out, ev.JobFailed(job.slot, FailReason.READ_ONLY)]
                if stick.fake:
                    job.finished = True
                    detail = {"real": float(stick.real_capacity or 0), "claimed": stick.capacity}
                    return [*out, ev.JobFailed(job.slot, FailReason.FAKE_CAPACITY, detail)]
                if job.tier is None and self.tiers:
                    job.finished = True
                    return [*out, ev.JobFailed(job.slot, FailReason.TOO_SMALL)]
                self._next(job, "wipe", job.phase_started + PROBE_SECONDS)
                continue
            spans = {
                "wipe": (stick.capacity - job.payload) / stick.speed,
                "load": job.payload / stick.speed,
                "verify": stick.capacity / (stick.speed * 3),
            }
            span = max(spans[job.phase], 0.001)
            if job.phase == "verify" and stick.bad_at is not None and t >= span * stick.bad_at:
                job.finished = True
                return [*out, ev.JobFailed(job.slot, FailReason.VERIFY_FAILED)]
            if t < span:
                out.append(self._progress(job, t / span, span, span - t))
                return out
            following = {"wipe": "load", "load": "verify", "verify": ""}[job.phase]
            if not following:
                job.finished = True
                return [*out, ev.JobDone(job.slot, job.tier)]
            self._next(job, following, job.phase_started + span)

    def _next(self, job: _Job, phase: str, at: float) -> None:
        job.phase = phase
        job.phase_started = at

    def _progress(self, job: _Job, fraction: float, span: float, left: float) -> ev.JobProgress:
        stick = job.stick
        total = {
            "probe": 64,
            "wipe": stick.capacity - job.payload,
            "load": job.payload,
            "verify": stick.capacity,
        }[job.phase]
        speed = {"probe": 0.0, "wipe": stick.speed, "load": stick.speed, "verify": stick.speed * 3}
        remaining = (
            left
            + {
                "probe": (stick.capacity / stick.speed) + stick.capacity / (3 * stick.speed),
                "wipe": job.payload / stick.speed + stick.capacity / (3 * stick.speed),
                "load": stick.capacity / (3 * stick.speed),
                "verify": 0.0,
            }[job.phase]
        )
        whole = (
            PROBE_SECONDS
            + (stick.capacity - job.payload) / stick.speed
            + job.payload / stick.speed
            + stick.capacity / (3 * stick.speed)
        )
        return ev.JobProgress(
            job.slot,
            job.phase,
            int(total * min(fraction, 1.0)),
            total,
            speed[job.phase],
            remaining,
            tier=job.tier,
            real_capacity=stick.capacity if job.phase != "probe" else None,
            fraction=max(0.0, min(1.0, 1.0 - remaining / whole)),
        )


class ManualWatcher:
    """A watcher whose events the test or simulator injects with :meth:`emit`."""

    def __init__(self) -> None:
        self._post: Post | None = None
        self.closed = False

    def start(self, post: Post) -> None:
        self._post = post

    def emit(self, event: ev.Event) -> None:
        if self._post is None:
            raise RuntimeError("watcher not started")
        self._post(event)

    def close(self) -> None:
        self.closed = True
