"""The operator's report export: START on the ledger's totals screen writes the report."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from appliance.commands.hosting import station as hosting
from appliance.config.schema import StationConfig
from appliance.content import load_trusted, open_pack
from appliance.service.app import ServiceContext
from appliance.service.interface import BatchStarted, JobFinished, JobStarted
from appliance.service.ledger import Ledger
from appliance.service.power import Stagger
from appliance.service.report import FakeMount
from appliance.station import events as ev
from appliance.station.effects import ExportReport, StartBatch
from appliance.station.fakes import GB, SimLoader
from appliance.station.machine import Station
from appliance.station.runtime import StationRunner
from appliance.station.states import FailReason
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
        checking = SimpleNamespace(ready=False, root=ssd)
        assert _export(context, checking, None) == [ev.ReportExported("no_content")]
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
