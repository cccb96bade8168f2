"""START on the all-time totals while the content SSD is still being checked.

The SSD is in; its check is reading it. The page says so in plain words
("Wait: checking content" / "콘텐츠 검사 중: 기다리세요") instead of "Insert
content SSD", and no export is started (nothing is remounted); once the check
has ended the page offers "START: save report" again and START exports.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import ImageDraw

from appliance.commands.hosting import station as hosting
from appliance.config.schema import StationConfig
from appliance.service.app import ServiceContext
from appliance.service.ledger import Ledger
from appliance.service.power import Stagger
from appliance.station import events as ev
from appliance.station.effects import ExportReport
from appliance.station.fakes import GB, SimLoader
from appliance.station.machine import Station
from appliance.station.runtime import StationRunner
from appliance.station.states import FailReason, StationState
from appliance.ui.messages import catalogue
from appliance.ui.screens import SCREENS, Painter, render

TIERS = (("small", 4 * GB, 2 * GB),)


def _totals_while_checking() -> Station:
    station = Station(slots=4, feeding="auto", batch_window=1.0)
    station.apply(ev.Started())
    station.apply(ev.ContentInserted("Films", "7", TIERS))
    station.apply(ev.ContentProgress(3, 10))
    station.apply(ev.TotalsLoaded(12, ((FailReason.REMOVED, 1),)))
    while station.view != "totals":
        station.apply(ev.MenuPressed())
    assert station.state is StationState.CHECKING_CONTENT
    return station


def test_start_while_checking_says_so_and_exports_nothing() -> None:
    station = _totals_while_checking()
    assert station.apply(ev.StartPressed()) == []  # no ExportReport
    assert station.snapshot().report == "checking"
    assert station.apply(ev.StartPressed()) == []  # pressing again changes nothing
    station.apply(ev.ContentProgress(9, 10))
    assert station.snapshot().report == "checking"  # still checking: still said
    station.apply(ev.ContentVerified())
    assert station.snapshot().report is None  # the hint "START: save report" is back
    assert station.apply(ev.StartPressed()) == [ExportReport()]
    assert station.snapshot().report == "exporting"


@pytest.mark.parametrize("after", ["menu", "removed", "damaged"])
def test_the_checking_answer_goes_when_it_is_no_longer_true(after: str) -> None:
    station = _totals_while_checking()
    station.apply(ev.StartPressed())
    event = {
        "menu": ev.MenuPressed(),
        "removed": ev.ContentRemoved(),
        "damaged": ev.ContentDamaged("a file"),
    }[after]
    station.apply(event)
    assert station.snapshot().report is None


@pytest.mark.parametrize(
    ("language", "words", "wrong"),
    [
        ("en", "Wait: checking content", "Insert content SSD"),
        ("ko", "콘텐츠 검사 중: 기다리세요", "콘텐츠 SSD를 넣으세요"),
    ],
)
def test_the_totals_page_says_the_check_is_running(language: str, words: str, wrong: str) -> None:
    station = _totals_while_checking()
    station.apply(ev.StartPressed())
    m = catalogue(language)
    assert m("report.checking") == words
    frame = render(station.snapshot(), m)
    assert frame.name == "totals" and frame.overflows == []
    painter = Painter(ImageDraw.Draw(frame.image.copy()))
    SCREENS["totals"](painter, station.snapshot(), m)
    drawn = [text for text, _box in painter.texts]
    assert words in drawn and wrong not in drawn


def test_runner_never_calls_the_exporter_while_checking() -> None:
    station = Station(slots=4, feeding="auto", batch_window=1.0)
    runner = StationRunner(station, SimLoader(TIERS))
    calls: list[int] = []
    runner.report_exporter = lambda post: calls.append(1)
    runner.open()
    for event in (
        ev.ContentInserted("Films", "7", TIERS),
        ev.TotalsLoaded(12, ()),
        ev.MenuPressed(),
        ev.StartPressed(),
    ):
        station.post(event)
    runner.drain()
    assert station.view == "totals" and station.snapshot().report == "checking"
    assert calls == []
    station.post(ev.ContentVerified())
    station.post(ev.StartPressed())
    runner.drain()
    runner.close()
    for thread in threading.enumerate():
        if thread.name == "report":
            thread.join(5)
    assert calls == [1]


def test_hosted_exporter_answers_checking_without_mounting(tmp_path: Path) -> None:
    """The exporter's own check (the station thought the content ready): nothing mounted."""
    mounts: list[Path] = []
    with Ledger(tmp_path / "state") as ledger:
        context = ServiceContext(StationConfig(), ledger, Stagger(0), None)
        hardware = SimpleNamespace(content=SimpleNamespace(ready=False, root=tmp_path))
        export = hosting.report_exporter(
            context,
            hardware,  # type: ignore[arg-type]
            lambda path: mounts.append(path),  # type: ignore[arg-type,func-returns-value]
        )
        posted: list[ev.Event] = []
        export(posted.append)
    assert posted == [ev.ReportExported("checking")] and mounts == []
