"""The operator's report export: START on the ledger's totals screen writes the report."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from appliance.commands.hosting import station as hosting
from appliance.config.schema import StationConfig
from appliance.content import load_trusted, open_pack
from appliance.service.app import ServiceContext
from appliance.service.interface import BatchStarted, JobFinished, JobStarted
from appliance.service.ledger import Ledger
from appliance.service.power import Stagger
from appliance.service.report import FakeMount
from appliance.station import events as ev
from appliance.station.adapters import EngineLoader
from appliance.station.effects import ExportReport, StartBatch
from appliance.station.fakes import GB, SimLoader, SimStick
from appliance.station.machine import Station
from appliance.station.runtime import StationRunner
from appliance.station.states import ACTIVE, FailReason, SlotState
from appliance.ui.simulator import SAMPLE_PACK, TEST_KEY

TIERS = (("small", 4 * GB, 2 * GB),)


def _on_totals(ledger_fed: bool) -> Station:
    station = Station(slots=4, feeding="button", batch_window=1.0)
    station.apply(ev.Started())
    station.apply(ev.ContentInserted("Films", "7", TIERS))
    station.apply(ev.ContentVerified())
    station.apply(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))  # waits for START
    if ledger_fed:
        station.apply(ev.TotalsLoaded(5, ((FailReason.REMOVED, 1),)))
    while station.view != "totals":
        station.apply(ev.MenuPressed())
    return station


def test_start_on_the_ledgers_totals_exports_once_and_shows_the_outcome() -> None:
    station = _on_totals(ledger_fed=True)
    effects = station.apply(ev.StartPressed())
    assert effects == [ExportReport()]
    assert station.snapshot().report == "exporting"
    assert station.apply(ev.StartPressed()) == []  # no second export while one runs
    assert not any(isinstance(e, StartBatch) for e in effects)  # the waiting stick waits
    station.apply(ev.ReportExported("saved"))
    assert station.snapshot().report == "saved"
    station.apply(ev.MenuPressed())  # away: the outcome is not shown again
    assert station.snapshot().report is None


def test_start_on_the_unhosted_totals_still_starts_the_waiting_sticks() -> None:
    station = _on_totals(ledger_fed=False)
    effects = station.apply(ev.StartPressed())
    assert any(isinstance(e, StartBatch) for e in effects)
    assert not any(isinstance(e, ExportReport) for e in effects)
    assert station.snapshot().report is None


def test_runner_without_an_exporter_reports_failure() -> None:
    station = _on_totals(ledger_fed=True)
    runner = StationRunner(station, SimLoader(TIERS))
    runner.open()
    runner.drain()
    station.post(ev.StartPressed())
    runner.drain()
    runner.drain()
    assert station.snapshot().report == "failed"


def _ledger(state: Path) -> Ledger:
    ledger = Ledger(state)
    ledger.record(BatchStarted("1", "Films", "7"))
    ledger.record(JobStarted("b1-s1", "1", "serial", 8 * GB, "small"))
    ledger.record(JobFinished("b1-s1", "done", "", {"write": 1.0}, tier="small"))
    return ledger


def _export(context: ServiceContext, content: Any, mount: FakeMount | None) -> list[ev.Event]:
    hardware = SimpleNamespace(content=content)
    mounts: list[Path] = []

    def mount_for(path: Path) -> FakeMount:
        mounts.append(path)
        assert mount is not None
        return mount

    export = hosting.report_exporter(context, hardware, mount_for)  # type: ignore[arg-type]
    posted: list[ev.Event] = []
    thread = threading.Thread(target=export, args=(posted.append,))
    thread.start()
    thread.join(30)
    assert mount is None or mounts == [mount.path]
    return posted


def test_exporter_writes_the_report_on_the_content_ssd_and_leaves_it_read_only(
    tmp_path: Path,
) -> None:
    ssd = tmp_path / "ssd"
    shutil.copytree(SAMPLE_PACK, ssd)  # a signed pack, as on the content SSD
    with _ledger(tmp_path / "state") as ledger:
        context = ServiceContext(StationConfig(), ledger, Stagger(0), None)
        mount = FakeMount(ssd)
        posted = _export(context, SimpleNamespace(ready=True, root=ssd), mount)
    assert posted == [ev.ReportExported("saved")]
    assert mount.history == ["rw", "ro"] and not mount.writable
    written = sorted((ssd / ".flashstation-reports").iterdir())
    assert [p.suffix for p in written] == [".csv", ".json"]
    report = json.loads(written[1].read_text())
    assert report["totals"]["done"] == 1
    # the pack still verifies (no "extra" files) and the report is in no tier's tree
    pack = open_pack(ssd, load_trusted([TEST_KEY]))
    assert pack.problems_without_hashing() == []
    for index in range(len(pack.tiers())):
        names = {f.relpath[0] for f in pack.content_tree(index).files}
        assert ".flashstation-reports" not in names


def test_exporter_without_content_or_with_a_failing_remount(tmp_path: Path) -> None:
    ssd = tmp_path / "ssd"
    ssd.mkdir()
    with _ledger(tmp_path / "state") as ledger:
        context = ServiceContext(StationConfig(), ledger, Stagger(0), None)
        assert _export(context, None, None) == [ev.ReportExported("no_content")]
        checking = SimpleNamespace(ready=False, root=ssd)  # inserted, its check still running
        assert _export(context, checking, None) == [ev.ReportExported("checking")]
        mount = FakeMount(ssd, fail_rw=True)
        posted = _export(context, SimpleNamespace(ready=True, root=ssd), mount)
    assert posted == [ev.ReportExported("failed")]
    assert not (ssd / "flashstation-reports").exists()


def test_service_build_wires_the_exporter(tmp_path: Path) -> None:
    with Ledger(tmp_path / "state") as ledger:
        context = ServiceContext(StationConfig(), ledger, Stagger(0), None)
        host = hosting.service_build(context).station
        assert isinstance(host, hosting.StationHost)
        assert host.runner.report_exporter is not None


# --- never while sticks are loading: the engine reads the SSD the export would remount rw ---


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _hosted_station(feeding: str, clock: Clock) -> Station:
    station = Station(slots=4, feeding=feeding, batch_window=2.0, clock=clock)
    for e in (
        ev.Started(),
        ev.ContentInserted("Films", "7", TIERS),
        ev.ContentVerified(),
        ev.TotalsLoaded(5, ((FailReason.REMOVED, 1),)),
    ):
        station.apply(e)
    return station


def _to_view(station: Station, view: str) -> None:
    while station.view != view:
        station.apply(ev.MenuPressed())


@pytest.mark.parametrize("phase", ["probe", "wipe", "load", "verify"])
def test_export_is_refused_while_a_stick_is_loading_and_works_once_idle(phase: str) -> None:
    clock = Clock()
    station = _hosted_station("button", clock)
    station.apply(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))
    started = station.apply(ev.StartPressed())
    assert any(isinstance(e, StartBatch) for e in started)  # slot 1 probing: batch planned
    if phase != "probe":
        station.apply(ev.JobProgress(1, phase, 1, 10))
    _to_view(station, "totals")
    assert station.apply(ev.StartPressed()) == []
    snap = station.snapshot()
    assert snap.report == "busy" and snap.slot(1).state != SlotState.DONE
    assert station.apply(ev.StartPressed()) == []  # still refused, no export queued
    if phase != "verify":
        station.apply(ev.JobProgress(1, "verify", 5, 10))
    assert station.snapshot().report == "busy"
    station.apply(ev.JobDone(1, "small"))
    assert station.snapshot().report is None  # idle: the line offers the export again
    assert station.apply(ev.StartPressed()) == [ExportReport()]
    assert station.snapshot().report == "exporting"


def test_the_exporters_own_busy_stays_on_screen_while_the_station_looks_idle() -> None:
    """A cancelled stick's slot is free at once; the engine may still be winding down."""
    station = _hosted_station("button", Clock())
    _to_view(station, "totals")
    assert station.apply(ev.StartPressed()) == [ExportReport()]
    station.apply(ev.ReportExported("busy"))
    station.apply(ev.Tick())
    assert station.snapshot().report == "busy" and not station.loading()
    assert station.apply(ev.StartPressed()) == [ExportReport()]  # and START tries again


def test_export_is_refused_while_an_auto_batch_window_is_open() -> None:
    clock = Clock()
    station = _hosted_station("auto", clock)
    _to_view(station, "totals")
    station.apply(ev.DriveArrived(2, 8 * GB, "/dev/sdb", "def"))  # queued: starts in 2 s
    assert station.snapshot().slot(2).state is SlotState.WAITING
    assert station.apply(ev.StartPressed()) == []
    assert station.snapshot().report == "busy"
    clock.t += 2
    effects = station.apply(ev.Tick())
    assert [type(e) for e in effects] == [StartBatch]  # the refusal did not hold the batch


def test_a_batch_waits_while_an_export_has_the_ssd_read_write() -> None:
    """auto: a stick plugged during the export starts only after ReportExported."""
    clock = Clock()
    station = _hosted_station("auto", clock)
    _to_view(station, "totals")
    assert station.apply(ev.StartPressed()) == [ExportReport()]
    station.apply(ev.DriveArrived(3, 8 * GB, "/dev/sdc", "ghi"))
    clock.t += 10  # the batch window has long closed
    assert station.apply(ev.Tick()) == []
    assert station.snapshot().slot(3).state is SlotState.WAITING
    assert station.next_deadline() is None  # no busy ticking: ReportExported wakes it
    effects = station.apply(ev.ReportExported("saved"))
    batches = [e for e in effects if isinstance(e, StartBatch)]
    assert [j.slot for b in batches for j in b.jobs] == [3]
    assert station.snapshot().slot(3).state is SlotState.PROBING


def test_start_on_the_grid_during_an_export_starts_the_sticks_after_it() -> None:
    """button: START while the report is written is remembered, not lost."""
    clock = Clock()
    station = _hosted_station("button", clock)
    station.apply(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))
    _to_view(station, "totals")
    assert station.apply(ev.StartPressed()) == [ExportReport()]
    _to_view(station, "main")
    assert station.snapshot().report == "exporting"
    assert station.apply(ev.StartPressed()) == []
    assert station.snapshot().slot(1).state is SlotState.WAITING
    effects = station.apply(ev.ReportExported("failed"))
    assert [j.slot for e in effects if isinstance(e, StartBatch) for j in e.jobs] == [1]


def test_runner_never_calls_the_exporter_while_a_stick_loads() -> None:
    clock = Clock()
    station = _hosted_station("button", clock)
    loader = SimLoader(TIERS, sticks={1: SimStick(8 * GB, speed=1e9)})
    runner = StationRunner(station, loader)
    calls: list[bool] = []

    def exporter(post: Any) -> None:
        calls.append(loader.busy())
        post(ev.ReportExported("saved"))

    runner.report_exporter = exporter
    runner.open()
    station.post(ev.DriveArrived(1, 8 * GB, "/dev/sda", "abc"))
    station.post(ev.StartPressed())
    runner.drain()
    loader.advance(3.0)  # past the probe: wiping
    runner.drain()
    assert station.snapshot().slot(1).state in ACTIVE
    while station.view != "totals":
        station.post(ev.MenuPressed())
        runner.drain()
    station.post(ev.StartPressed())
    runner.drain()
    assert station.snapshot().report == "busy"
    assert calls == [] and not any(isinstance(e, ExportReport) for e in runner.effects_log)
    loader.advance(1000.0)  # done and verified
    runner.drain()
    assert station.snapshot().slot(1).state is SlotState.DONE
    station.post(ev.MenuPressed())
    runner.drain()
    while station.view != "totals":
        station.post(ev.MenuPressed())
        runner.drain()
    station.post(ev.StartPressed())
    runner.drain()
    deadline = time.monotonic() + 5
    while station.snapshot().report != "saved":
        assert time.monotonic() < deadline, "the export never ended"
        runner.drain()
        time.sleep(0.01)
    assert calls == [False]


def test_exporter_refuses_while_the_engine_is_still_reading(tmp_path: Path) -> None:
    """A cancelled stick's slot is free at once; its engine batch may still be running."""
    ssd = tmp_path / "ssd"
    ssd.mkdir()
    with _ledger(tmp_path / "state") as ledger:
        context = ServiceContext(StationConfig(), ledger, Stagger(0), None)
        hardware = SimpleNamespace(content=SimpleNamespace(ready=True, root=ssd))
        mounts: list[Path] = []

        def mount_for(path: Path) -> FakeMount:
            mounts.append(path)
            return FakeMount(path)

        busy = [True]
        export = hosting.report_exporter(
            context,
            hardware,  # type: ignore[arg-type]
            mount_for,
            busy=lambda: busy[0],
        )
        posted: list[ev.Event] = []
        export(posted.append)
        assert posted == [ev.ReportExported("busy")] and mounts == []
        busy[0] = False
        export(posted.append)
    assert posted[1:] == [ev.ReportExported("saved")] and mounts == [ssd]


def test_service_build_checks_the_engine_loader_before_remounting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssd = tmp_path / "ssd"
    ssd.mkdir()
    built: list[Any] = []
    real_build = hosting.build

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(real_build(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(hosting, "build", spy)
    with _ledger(tmp_path / "state") as ledger:
        context = ServiceContext(StationConfig(), ledger, Stagger(0), None)
        host = hosting.service_build(context).station
        runner = host.runner  # type: ignore[attr-defined]
        assert isinstance(runner.loader, EngineLoader)
        ((_, hardware),) = built
        hardware.content = SimpleNamespace(ready=True, root=ssd)
        release = threading.Event()
        planning = threading.Thread(target=release.wait, daemon=True)
        planning.start()
        runner.loader._threads.append(planning)  # a batch being planned on a plan-N thread
        posted: list[ev.Event] = []
        try:
            runner.report_exporter(posted.append)
        finally:
            release.set()
            planning.join(5)
        # idle again: the real SystemMount is tried (tmp_path is no mount point: failed)
        runner.report_exporter(posted.append)
    assert posted == [ev.ReportExported("busy"), ev.ReportExported("failed")]
