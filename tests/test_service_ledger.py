"""The ledger: what it records, what it never keeps, recovery, migrations, durability."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.service import ledger as ledger_mod
from appliance.service.interface import BatchFinished, BatchStarted, JobFinished, JobStarted
from appliance.service.ledger import Ledger, LedgerError, reason_code, scrub, stamp

SERIAL = "AA0123456789XYZ"


def _job(led: Ledger, job: str, serial: str, result: str | None, reason: str = "") -> None:
    led.record(JobStarted(job, "b1", serial, 8_000_000_000, "8GB", "stick"))
    if result is not None:
        led.record(
            JobFinished(job, result, reason, {"probe": 1.23, "write": 100.0, "verify": 50.04})  # type: ignore[arg-type]
        )


def test_records_batches_packs_and_jobs(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        led.record(BatchStarted("b1", "films", "2026.11"))
        _job(led, "j1", SERIAL, "done")
        _job(led, "j2", "OTHER1", "failed", "fake capacity: about 2 GB real of 64 GB claimed")
        _job(led, "j3", "OTHER2", "failed", "/dev/sdc: EIO at offset 4096")
        _job(led, "j4", "OTHER3", "cancelled", "cancelled by the operator")
        _job(led, "j5", "OTHER4", None)
        led.record(BatchFinished("b1"))
        totals = led.totals()
        rows = led.jobs()
        packs = led.packs()
    assert (totals.done, totals.failed, totals.cancelled, totals.running) == (1, 2, 1, 1)
    assert totals.failed_by_reason == {"fake capacity": 1, "i/o error": 1}
    assert totals.bytes_loaded == 8_000_000_000
    assert totals.drives == 5
    assert packs == [("films", "2026.11")]
    done = rows[0]
    assert done["state"] == "done" and done["pack"] == "films" and done["pack_version"] == "2026.11"
    assert done["seconds_probe"] == 1.2 and done["seconds_total"] == 151.2
    assert done["capacity"] == 8_000_000_000 and done["tier"] == "8GB"
    assert rows[2]["reason"] == "<device>: EIO at offset 4096"


def test_drive_is_a_salted_hash_and_salt_is_private_and_per_station(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with Ledger(a) as one, Ledger(b) as two:
        assert one.hash_serial(SERIAL) != two.hash_serial(SERIAL)  # salt differs per station
        first = one.hash_serial(SERIAL)
    mode = stat.S_IMODE((a / "salt").stat().st_mode)
    assert mode == 0o600
    with Ledger(a) as again:  # the salt survives a restart: the same drive, the same hash
        assert again.hash_serial(SERIAL) == first
        assert again.hash_serial(f"  {SERIAL}\n") == first
    assert SERIAL.encode() not in first.encode()


def test_raw_serial_never_reaches_the_database_files(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        led.record(BatchStarted("b1", "films", "1"))
        # a reason that quotes the serial and a by-id path (which embeds vendor and serial)
        _job(
            led,
            "j1",
            SERIAL,
            "failed",
            f"/dev/disk/by-id/usb-Kingston_DataTraveler_{SERIAL}-0:0: "
            f"serial {SERIAL.lower()} vanished",
        )
        _job(led, "j2", SERIAL, "done")
        assert "Kingston" not in str(led.jobs())
    for path in tmp_path.iterdir():  # ledger, WAL, shm, salt
        data = path.read_bytes()
        assert SERIAL.encode() not in data, path
        assert SERIAL.lower().encode() not in data, path
        assert b"Kingston" not in data, path


def test_vendor_reduced_to_coarse_class(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        led.record(JobStarted("j", "b", "S", 1, "t", "SanDisk Cruzer Blade"))  # type: ignore[arg-type]
        assert led.jobs()[0]["drive_class"] == "other"


def test_times_are_truncated_to_the_configured_resolution(tmp_path: Path) -> None:
    with Ledger(tmp_path / "h") as led:
        _job(led, "j", "S", "done")
        row = led.jobs()[0]
    assert len(str(row["started"])) == len("2026-11-25T02")
    with Ledger(tmp_path / "d", "day") as led:
        _job(led, "j", "S", "done")
        assert len(str(led.jobs()[0]["started"])) == len("2026-11-25")
    when = datetime(2026, 11, 25, 2, 59, 59, tzinfo=UTC)
    assert stamp(when, "hour") == "2026-11-25T02"
    assert stamp(when, "second") == "2026-11-25T02:59:59"


def test_totals_since(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        _job(led, "j1", "S1", "done")
        led._db.execute("UPDATE jobs SET started='2020-01-01T00'")
        _job(led, "j2", "S2", "done")
        assert led.totals().done == 2
        assert led.totals(since=datetime(2025, 1, 1, tzinfo=UTC)).done == 1
        assert led.totals(since="2019").done == 2
        assert len(led.jobs(since="2025")) == 1


def test_recovery_marks_running_jobs_interrupted_never_done(tmp_path: Path) -> None:
    led = Ledger(tmp_path)
    led.record(BatchStarted("b1", "films", "1"))
    _job(led, "j1", "S1", "done")
    _job(led, "j2", "S2", None)
    _job(led, "j3", "S3", None)
    led._db.close()  # as if the process died: no finish, no close
    with Ledger(tmp_path) as again:
        assert again.interrupted_on_open == 2
        totals = again.totals()
        assert (totals.done, totals.interrupted, totals.running) == (1, 2, 0)
        rows = again.jobs()
        assert [r["state"] for r in rows] == ["done", "interrupted", "interrupted"]
        assert all(r["ended"] for r in rows)
        # a late finish from the old run cannot turn an interrupted job into done
        again._jobs["j2"] = (int(rows[1]["id"]), "S2")  # type: ignore[call-overload]
        again.record(JobFinished("j2", "done"))
        assert again.totals().done == 1
    with Ledger(tmp_path) as third:
        assert third.interrupted_on_open == 0


def test_wal_and_full_sync(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        assert led._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert led._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_migrates_an_old_ledger_and_refuses_a_newer_one(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / ledger_mod.LEDGER_NAME)
    db.executescript(ledger_mod.MIGRATIONS[0])
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO meta VALUES ('station_id', 'abc')")
    db.execute(
        "INSERT INTO jobs (drive, drive_class, capacity, tier, wipe, state, started) "
        "VALUES ('h', 'stick', 1, 't', 'full', 'done', '2026-01-01T00')"
    )
    db.commit()
    db.close()
    with Ledger(tmp_path) as led:
        assert led.schema_version() == ledger_mod.SCHEMA_VERSION
        assert led.totals().done == 1  # old rows kept
        assert led.station_id == "abc"
        led._db.execute(f"PRAGMA user_version={ledger_mod.SCHEMA_VERSION + 1}")
    with pytest.raises(LedgerError, match="newer"):
        Ledger(tmp_path)


def test_unwritable_state_dir_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        Ledger(blocker / "state")


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("fake capacity: about 1 GB real of 32 GB claimed", "fake capacity"),
        ("device is write-protected (BLKROGET)", "write-protected"),
        ("verify mismatch at offset 123", "verify mismatch"),
        ("drive removed during write", "removed"),
        ("EIO at offset 5", "i/o error"),
        ("something new", "other"),
        ("", ""),
    ],
)
def test_reason_codes(reason: str, code: str) -> None:
    assert reason_code(reason) == code


def test_scrub() -> None:
    assert scrub("x abc123 /dev/sdb1 y", "ABC123") == "x <drive> <device> y"


def test_writer_never_blocks_the_station_and_drains_on_stop(tmp_path: Path) -> None:
    import time

    from appliance.service.ledger import LedgerWriter

    with Ledger(tmp_path) as led:
        slow_record = led.record

        def slow(event: object) -> None:
            time.sleep(0.05)  # an SD card's fsync
            slow_record(event)  # type: ignore[arg-type]

        led.record = slow  # type: ignore[method-assign]
        writer = LedgerWriter(led)
        t0 = time.monotonic()
        for i in range(10):
            writer.send(JobStarted(f"j{i}", "b", f"S{i}", 1, "t"))
            writer.send(JobFinished(f"j{i}", "done"))
        assert time.monotonic() - t0 < 0.2  # 20 events x 50 ms would be 1 s on the caller
        writer.stop()
        assert led.totals().done == 10


def test_file_times_are_truncated_too(tmp_path: Path) -> None:
    with Ledger(tmp_path) as led:
        _job(led, "j", "S", "done")
        wal = (tmp_path / "ledger.sqlite3-wal").stat().st_mtime
        assert wal % 3600 == 0
    for path in tmp_path.glob("ledger.sqlite3*"):
        assert path.stat().st_mtime % 3600 == 0, path
    assert (tmp_path / "salt").stat().st_mtime % 86400 == 0
