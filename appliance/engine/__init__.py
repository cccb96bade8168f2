"""The fan-out engine: read the content once, write N drives, verify on each, commit last.

Library API (the station and ``flashstation load`` use it)::

    from appliance.engine import Job, LoadOptions, start_batch

    batch = start_batch(
        [Job("/dev/sdb", plan_b, name="slot 1"), Job(fake_target, plan_c, name="slot 2")],
        LoadOptions(wipe="full"),          # or "quick"
        on_event=callback,                 # optional; called on one engine thread, in order
        observer=content_observer,         # optional SourceObserver (content area)
        protect=[content_dir],             # disks holding these folders are refused
    )
    batch.cancel("slot 2")                 # or batch.cancel_all(); both return at once
    results = batch.wait()                 # tuple[TargetResult, ...] in job order

* A :class:`Job` is a target (a path, opened with the refusal checks of
  :mod:`appliance.drives`, or any :class:`appliance.drives.Target`, e.g. a fake)
  and its own :class:`~appliance.fat32.plan.Plan` compiled for exactly the
  target's capacity. The engine closes every target when its job ends. Plans may come from
  different subsets of one content tree (tiers): files are shared by
  ``ContentFile.source`` path and each is read once for every target.
* Events (:mod:`appliance.engine.events`): ``PhaseChanged`` (open, probe,
  write, verify, commit, done), ``Progress`` (bytes, speed, ETA per target,
  at most every ``progress_interval``), ``TargetFinished(result)`` and, last,
  ``BatchFinished(results, error)``. The callback runs on a dispatcher thread
  and never blocks the engine; its exceptions are logged. It must not call
  ``batch.wait()`` (the batch ends after the last event was delivered); hand
  the event to your own thread or queue instead.
* :class:`TargetResult` is a value: status ``ok``/``failed``/``cancelled``, a
  one-line reason naming path, offset and cause, a stable ``cause`` code
  (``fake_capacity``, ``removed``, ``read_only``, ``too_small``,
  ``write_error``, ``verify_failed``, ``refused``, ``busy``, ``cancelled``,
  ``content_damaged``, ``content_removed``, ``unknown``) with ``detail``
  numbers (``real``/``claimed`` for a fake), capacity, bytes written and
  verified, seconds per phase, bus bytes (and ``bus_ratio`` to content size),
  catch-up source reads, notes (a quick wipe says donor data may remain).
* ``observer`` (:class:`SourceObserver`): ``chunk(source, offset, data)`` sees
  every byte of every source file once, in order (primary reads only);
  ``file_done(source)`` may raise, which fails the whole batch with its
  message. An ``OSError`` reading the source fails every running target with
  "content SSD removed or unreadable (...)". Either way no target is committed:
  a drive that is not ``ok`` never has a valid partition table.

Threads: one reader (``engine-source``), one worker per target
(``engine-N``), one event dispatcher (``engine-events``). See
``docs/architecture.md`` and ``docs/throughput.md``.
"""

from appliance.engine.batch import Batch, Job, LoadOptions, run_batch, start_batch
from appliance.engine.events import (
    BatchFinished,
    Event,
    EventCallback,
    Phase,
    PhaseChanged,
    Progress,
    TargetFinished,
    TargetResult,
)
from appliance.engine.probe import fake_capacity_check, probe_offsets
from appliance.engine.source import SourceFailed, SourceObserver

__all__ = [
    "Batch",
    "BatchFinished",
    "Event",
    "EventCallback",
    "Job",
    "LoadOptions",
    "Phase",
    "PhaseChanged",
    "Progress",
    "SourceFailed",
    "SourceObserver",
    "TargetFinished",
    "TargetResult",
    "fake_capacity_check",
    "probe_offsets",
    "run_batch",
    "start_batch",
]
