"""Staggered starts in the hosted station's engine loader: sticks plugged at once start apart,
in one engine batch that still reads the content once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from appliance import engine
from appliance.content import load_trusted, open_pack
from appliance.engine import source as engine_source
from appliance.service.power import Stagger
from appliance.station import adapters
from appliance.station import events as ev
from appliance.station.adapters import EngineLoader
from appliance.station.effects import JobRequest, StartBatch
from appliance.ui.simulator import SAMPLE_PACK, TEST_KEY

MiB = 1024 * 1024
DELAY = 0.3
BATCHES: list[engine.Batch] = []


def _loader(
    tmp_path: Path, wait_turn: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[EngineLoader, list[tuple[float, list[str]]]]:
    """An EngineLoader on the sample pack whose engine batch starts are recorded."""
    pack = open_pack(SAMPLE_PACK, load_trusted([TEST_KEY]))
    starts: list[tuple[float, list[str]]] = []
    real_start = engine.start_batch

    def recording(jobs: Any, *args: Any, **kwargs: Any) -> engine.Batch:
        starts.append((time.monotonic(), [job.label for job in jobs]))
        batch = real_start(jobs, *args, **kwargs)
        BATCHES.append(batch)
        return batch

    monkeypatch.setattr(adapters.engine, "start_batch", recording)
    loader = EngineLoader(
        lambda: pack,
        engine.LoadOptions(wipe="quick", chunk_size=MiB),
        target_for=lambda job: str(tmp_path / f"stick{job.slot}.img"),
        observer=pack.stream_checker,
        protect=lambda: [SAMPLE_PACK],
        wait_turn=wait_turn,
    )
    return loader, starts


def _batch(tmp_path: Path, slots: tuple[int, ...]) -> StartBatch:
    for slot in slots:
        with open(tmp_path / f"stick{slot}.img", "wb") as f:
            f.truncate(80 * MiB)
    return StartBatch(
        1, tuple(JobRequest(s, str(tmp_path / f"stick{s}.img"), 80 * MiB) for s in slots)
    )


def _wait_finished(posted: list[ev.Event], slots: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while sum(isinstance(e, (ev.JobDone, ev.JobFailed)) for e in posted) < slots:
        assert time.monotonic() < end, f"jobs did not finish: {posted[-3:]}"
        time.sleep(0.05)


def test_sticks_of_one_batch_start_their_turns_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    BATCHES.clear()
    # a loaded machine may probe slowly: the grace after the last gate is not the point here
    monkeypatch.setattr(engine_source, "START_GRACE", 10.0)
    stagger = Stagger(DELAY)
    asked: list[float] = []
    passed: list[float] = []

    def wait_turn(cancel: threading.Event) -> bool:
        asked.append(time.monotonic())
        ok = stagger.wait_turn(cancel)
        passed.append(time.monotonic())
        return ok

    loader, starts = _loader(tmp_path, wait_turn, monkeypatch)
    posted: list[ev.Event] = []
    try:
        loader.start(_batch(tmp_path, (1, 2, 3)), posted.append)
        _wait_finished(posted, 3)
    finally:
        loader.close()
    # one engine batch for the three sticks; each waited its turn at the engine's start
    # gate: the k-th went through no sooner than k turns after the first asked (lower
    # bounds only: a slow machine is later)
    assert [labels for _, labels in starts] == [["slot 1", "slot 2", "slot 3"]]
    assert len(asked) == 3
    for k, when in enumerate(sorted(passed)):
        assert when - min(asked) >= k * DELAY * 0.95, (k, when - min(asked))
    assert {e.slot for e in posted if isinstance(e, ev.JobDone)} == {1, 2, 3}
    # ... and the content was still read once for all of them
    (batch,) = BATCHES
    results = batch.wait(10)
    assert all(r.ok for r in results)
    assert batch.source_bytes_read == batch.content_bytes


def test_without_stagger_a_batch_shares_one_engine_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader, starts = _loader(tmp_path, None, monkeypatch)
    posted: list[ev.Event] = []
    try:
        loader.start(_batch(tmp_path, (1, 2)), posted.append)
        _wait_finished(posted, 2)
    finally:
        loader.close()
    assert [labels for _, labels in starts] == [["slot 1", "slot 2"]]


def test_a_stick_cancelled_while_waiting_never_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stagger = Stagger(1.0)
    turns: dict[str, bool] = {}

    def wait_turn(cancel: threading.Event) -> bool:
        name = threading.current_thread().name
        turns[name] = stagger.wait_turn(cancel)
        return turns[name]

    loader, _ = _loader(tmp_path, wait_turn, monkeypatch)
    posted: list[ev.Event] = []
    batch = _batch(tmp_path, (1, 2))
    marker = b"DONOR-MBR" * 50
    with open(tmp_path / "stick2.img", "r+b") as f:
        f.write(marker)
    try:
        loader.start(batch, posted.append)
        deadline = time.monotonic() + 10
        while not turns:  # slot 1 went through its turn; slot 2 waits for its own
            assert time.monotonic() < deadline
            time.sleep(0.01)
        loader.cancel(2)
        _wait_finished(posted, 2)
    finally:
        loader.close()
    assert sorted(turns.values()) == [False, True]
    failed = [e for e in posted if isinstance(e, ev.JobFailed)]
    assert [(e.slot, e.reason) for e in failed] == [(2, adapters.FailReason.CANCELLED)]
    assert [e.slot for e in posted if isinstance(e, ev.JobDone)] == [1]
    # slot 2's drive was never opened: not even sector 0 was zeroed
    assert (tmp_path / "stick2.img").read_bytes()[: len(marker)] == marker


def test_closing_wakes_a_stick_waiting_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stagger = Stagger(30.0)
    loader, starts = _loader(tmp_path, stagger.wait_turn, monkeypatch)
    posted: list[ev.Event] = []
    loader.start(_batch(tmp_path, (1, 2)), posted.append)
    deadline = time.monotonic() + 10
    while not starts:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    t0 = time.monotonic()
    loader.close()
    for thread in list(loader._threads):
        thread.join(5)
        assert not thread.is_alive()
    assert time.monotonic() - t0 < 10  # not the 30 s turn
    assert [labels for _, labels in starts] == [["slot 1", "slot 2"]]
