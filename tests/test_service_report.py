"""Reports: text/CSV/JSON, exports on a (fake) read-only mount, merging stations, no serials."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.service.interface import BatchStarted, JobFinished, JobStarted
from appliance.service.ledger import Ledger
from appliance.service.report import (
    FakeMount,
    ReportError,
    build_report,
    export_report,
    merge,
    parse_since,
    to_csv,
)

SERIALS = ["4C530001230712345", "AA00BB11CC22", "07A1B2C3D4E5F6"]


def _fill(state: Path, done: int = 2, failed: int = 1, pack: str = "films") -> Ledger:
    led = Ledger(state)
    led.record(BatchStarted("b", pack, "2026.11"))
    for i in range(done + failed):
        serial = SERIALS[i % len(SERIALS)] + str(i)
        led.record(JobStarted(f"j{i}", "b", serial, 16 * 10**9, "16GB"))
        if i < done:
            led.record(JobFinished(f"j{i}", "done"))
        else:
            led.record(JobFinished(f"j{i}", "failed", f"fake capacity: serial {serial} lies"))
    return led


def test_report_cli_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fill(tmp_path).close()
    assert main(["report", "--state-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "done:        2" in text and "fake capacity: 1" in text
    assert main(["report", "--state-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["done"] == 2 and data["totals"]["failed"] == 1
    assert data["totals"]["bytes_loaded"] == 32 * 10**9
    assert main(["report", "--state-dir", str(tmp_path), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["pack"] == "films" and rows[0]["tier"] == "16GB" and rows[0]["done"] == "2"
    assert rows[-1]["pack"] == "(total)" and rows[-1]["failed"] == "1"
    assert main(["report", "--state-dir", str(tmp_path), "--since", "2999-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["done"] == 0


def test_report_does_not_run_recovery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    led = _fill(tmp_path)
    led.record(JobStarted("live", "b", "LIVE1", 1, "t"))  # a job running right now
    assert main(["report", "--state-dir", str(tmp_path), "--json"]) == 0
    capsys.readouterr()
    assert led.totals().running == 1
    led.record(JobFinished("live", "done"))
    assert led.totals().done == 3
    led.close()


def test_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--state-dir", str(tmp_path / "none")]) == 2
    assert "no ledger" in capsys.readouterr().err
    _fill(tmp_path).close()
    assert main(["report", "--state-dir", str(tmp_path), "--since", "yesterday"]) == 2
    assert parse_since("2026-11-25 14") == "2026-11-25T14"


def test_export_remounts_rw_only_for_the_write(tmp_path: Path) -> None:
    media = tmp_path / "ssd"
    media.mkdir()
    mount = FakeMount(media)
    with _fill(tmp_path / "state") as led:
        written = export_report(led, mount)
        station = led.station_id
    assert mount.history == ["rw", "ro"] and not mount.writable
    assert {p.suffix for p in written} == {".json", ".csv"}
    assert all(p.parent == media / "flashstation-reports" for p in written)
    report = json.loads(written[0].read_text()) if written[0].suffix == ".json" else None
    report = report or json.loads(written[1].read_text())
    assert report["stations"] == [station] and report["totals"]["done"] == 2
    assert not list(media.rglob("*.tmp"))


def test_export_failure_still_remounts_ro(tmp_path: Path) -> None:
    media = tmp_path / "ssd"
    media.mkdir()
    (media / "flashstation-reports").write_text("a file in the way")
    mount = FakeMount(media)
    with _fill(tmp_path / "state") as led, pytest.raises(ReportError, match="cannot write"):
        export_report(led, mount)
    assert mount.history == ["rw", "ro"]
    refused = FakeMount(media, fail_rw=True)
    with _fill(tmp_path / "state2") as led, pytest.raises(ReportError, match="remount"):
        export_report(led, refused)
    assert refused.history == []


def test_merge_sums_stations_and_counts_a_station_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with _fill(tmp_path / "a", done=2, failed=1) as a, _fill(tmp_path / "b", 5, 0, "books") as b:
        ra, rb = build_report(a), build_report(b)
        a.record(JobStarted("x", "b", "NEWONE", 8 * 10**9, "8GB"))
        a.record(JobFinished("x", "done"))
        ra_later = build_report(a)
    ra_later["generated"] = "9999-01-01T00"  # a later export of station a
    files = []
    for name, rep in (("a1", ra), ("b", rb), ("a2", ra_later)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(rep))
        files.append(str(path))
    assert main(["report", "merge", *files, "--json"]) == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["totals"]["done"] == 3 + 5  # a's newer export only, plus b
    assert merged["totals"]["failed"] == 1
    assert len(merged["stations"]) == 2
    assert {(g["pack"], g["tier"]) for g in merged["groups"]} == {
        ("films", "16GB"),
        ("films", "8GB"),
        ("books", "16GB"),
    }
    assert merge([("x", ra)]) == {**ra, "stations": ra["stations"]}
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    assert main(["report", "merge", str(bad)]) == 1
    assert "not a flashstation report" in capsys.readouterr().err
    csv_text = to_csv(merged)
    assert csv_text.splitlines()[-1].startswith("(total),,,8,1,")


def test_no_serial_in_any_report(tmp_path: Path) -> None:
    media = tmp_path / "ssd"
    media.mkdir()
    with _fill(tmp_path / "state") as led:
        written = export_report(led, FakeMount(media))
        report = build_report(led)
    blobs = [p.read_bytes() for p in written] + [json.dumps(report).encode()]
    for blob in blobs:
        for serial in SERIALS:
            assert serial.encode() not in blob
        assert b"drive" not in blob  # no drive hashes in reports either
