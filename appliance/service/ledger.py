"""The ledger: every batch and drive job, in SQLite, surviving power cuts.

What it keeps, and what it never keeps (a seized station must not identify a
donor or a recipient):

* a drive is known only by ``HMAC-SHA256(salt, serial)``; the salt is 32
  random bytes created on first start in the state directory (mode 0600) and
  never leaves the station, so hashes cannot be matched across stations or
  against a list of serials without the card;
* the vendor is reduced to a coarse class (``stick``/``card``/``other``);
* times are truncated to ``service.ledger_time_resolution`` (an hour by
  default), in UTC; durations are kept to a tenth of a second;
* failure reasons are scrubbed of the serial and of ``/dev/disk/by-id`` style
  paths (which embed vendor and serial), and classified into a short code.

Durability: WAL journal with ``synchronous=FULL``. With WAL, ``NORMAL`` can
never corrupt the database but may roll back the last commits after a power
cut; ``FULL`` fsyncs the WAL on every commit, so a stick reported done on the
screen stays counted. A job costs two commits, so the extra fsyncs are
negligible next to writing a stick.

Schema changes are numbered migrations applied in order under
``PRAGMA user_version``; an older ledger is upgraded in place on open, a newer
one is refused rather than misread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import queue
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from appliance import fileio
from appliance.errors import FlashStationError
from appliance.service.interface import (
    BatchFinished,
    BatchStarted,
    JobFinished,
    JobStarted,
    StationEvent,
)

log = logging.getLogger(__name__)

Resolution = Literal["hour", "day", "minute", "second"]
LEDGER_NAME = "ledger.sqlite3"
SALT_NAME = "salt"
DRIVE_CLASSES = ("stick", "card", "other")
STATES = ("running", "done", "failed", "cancelled", "interrupted")
INTERRUPTED_REASON = "interrupted: the station stopped while this drive was being loaded"


class LedgerError(FlashStationError):
    """The ledger cannot be opened or is from a newer version."""


# Each entry upgrades user_version N to N+1. Never edit a released entry; append.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE packs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        first_used TEXT NOT NULL,
        UNIQUE (name, version)
    );
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        pack_id INTEGER REFERENCES packs (id),
        started TEXT NOT NULL,
        ended TEXT
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER REFERENCES batches (id),
        drive TEXT NOT NULL,
        drive_class TEXT NOT NULL CHECK (drive_class IN ('stick', 'card', 'other')),
        capacity INTEGER NOT NULL,
        tier TEXT NOT NULL,
        wipe TEXT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('running', 'done', 'failed', 'cancelled', 'interrupted')),
        reason_code TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        started TEXT NOT NULL,
        ended TEXT,
        seconds_probe REAL, seconds_write REAL, seconds_verify REAL, seconds_commit REAL,
        seconds_total REAL,
        bytes_written INTEGER NOT NULL DEFAULT 0,
        bytes_verified INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_state ON jobs (state);
    CREATE INDEX jobs_started ON jobs (started);
    """,
    # 2: how many times each start found running jobs (recovery statistics)
    """
    CREATE TABLE starts (
        id INTEGER PRIMARY KEY,
        started TEXT NOT NULL,
        interrupted_jobs INTEGER NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_FORMATS: dict[str, str] = {
    "day": "%Y-%m-%d",
    "hour": "%Y-%m-%dT%H",
    "minute": "%Y-%m-%dT%H:%M",
    "second": "%Y-%m-%dT%H:%M:%S",
}

# Reason codes: the first pattern that matches a (lower-cased) reason wins.
_REASON_CODES: tuple[tuple[str, str], ...] = (
    ("content damaged", "content damaged"),
    ("content removed", "content removed"),
    ("fake capacity", "fake capacity"),
    ("write-protect", "write-protected"),
    ("read-only", "write-protected"),
    ("erofs", "write-protected"),
    ("too small", "too small"),
    ("verif", "verify mismatch"),
    ("mismatch", "verify mismatch"),
    ("removed", "removed"),
    ("vanish", "removed"),
    ("disappear", "removed"),
    ("no such device", "removed"),
    ("enodev", "removed"),
    ("cancel", "cancelled"),
    ("eio", "i/o error"),
    ("i/o error", "i/o error"),
    ("input/output", "i/o error"),
    ("interrupted", "interrupted"),
)
_DEVICE_PATH = re.compile(r"(?:/dev|/sys)/\S+?(?=[:,;.]?(?:\s|$))")


def stamp(when: datetime | None, resolution: Resolution) -> str:
    """UTC time truncated to ``resolution`` as sortable text (``2026-11-25T02``)."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime(_FORMATS[resolution])


_SECONDS: dict[str, int] = {"hour": 3600, "day": fileio.DAY, "minute": 60, "second": 1}


def blur_mtime(path: Path, resolution: Resolution) -> None:
    """Set ``path``'s access and modification times to the start of the current period."""
    fileio.blur_mtime(path, _SECONDS[resolution])


def reason_code(reason: str) -> str:
    """A short, fixed category for a failure reason (what the statistics screen counts)."""
    lowered = reason.lower()
    for needle, code in _REASON_CODES:
        if needle in lowered:
            return code
    return "other" if reason else ""


def scrub(text: str, serial: str | None) -> str:
    """``text`` without the serial (any case) or device paths (by-id paths embed serials)."""
    if serial:
        text = re.sub(re.escape(serial.strip()), "<drive>", text, flags=re.IGNORECASE)
    return _DEVICE_PATH.sub("<device>", text)


def load_salt(state_dir: Path) -> bytes:
    """The station's salt, created (0600, fsynced) on first use."""
    path = state_dir / SALT_NAME
    try:
        salt = path.read_bytes()
        if len(salt) >= 16:
            return salt
        log.warning("salt file %s is too short; replacing it", path)
        path.unlink()
    except FileNotFoundError:
        pass
    salt = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, salt)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    blur_mtime(path, "day")
    _fsync_dir(state_dir)
    return salt


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drive_hash(salt: bytes, serial: str) -> str:
    """The only form of a serial the station keeps: 128 bits of a keyed hash."""
    return hmac.new(salt, serial.strip().encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Totals:
    """What the statistics screen and reports show."""

    done: int = 0
    failed: int = 0
    cancelled: int = 0
    interrupted: int = 0
    running: int = 0
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    bytes_loaded: int = 0  # capacity of drives done
    drives: int = 0  # distinct drives seen (by hash)

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.cancelled + self.interrupted


class Ledger:
    """The station's ledger; thread-safe (one connection behind a lock).

    Also a station listener: pass :meth:`record` to ``Station.add_listener``.
    """

    def __init__(
        self,
        state_dir: Path | str,
        resolution: Resolution = "hour",
        *,
        recover: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.resolution = resolution
        self._lock = threading.Lock()
        self._batches: dict[str, int] = {}
        self._jobs: dict[str, tuple[int, str]] = {}  # station job id -> (row id, serial)
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._salt = load_salt(self.state_dir)
            self.path = self.state_dir / LEDGER_NAME
            # private from the start; SQLite gives -wal and -shm the same mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10
            )
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger in {self.state_dir}: {exc}") from exc
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self.interrupted_on_open = self.recover() if recover else 0

    # -- set-up -----------------------------------------------------------------

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: ledger schema {version} is newer than this software "
                f"({SCHEMA_VERSION}); refusing to touch it"
            )
        for number in range(version, SCHEMA_VERSION):
            with self._transaction():
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number + 1}")
                if number == 0:
                    self._db.execute(
                        "INSERT INTO meta VALUES ('station_id', ?)", (secrets.token_hex(8),)
                    )
            log.info("ledger schema upgraded to version %d", number + 1)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        self._blur_mtimes()

    def _blur_mtimes(self) -> None:
        """File times would tell the last load to the second: truncate them too."""
        for suffix in ("", "-wal", "-shm"):
            blur_mtime(Path(f"{self.path}{suffix}"), self.resolution)

    def recover(self) -> int:
        """Mark jobs left running by a previous run as interrupted; returns how many.

        Run before the station starts: nothing is running yet, so every running
        row is a leftover. Their drives are never counted done; the engine's
        commit-last protocol left them without a valid partition table.
        """
        now = self._now()
        with self._lock, self._transaction() as db:
            count = db.execute(
                "UPDATE jobs SET state='interrupted', reason_code='interrupted', reason=?, "
                "ended=? WHERE state='running'",
                (INTERRUPTED_REASON, now),
            ).rowcount
            db.execute("UPDATE batches SET ended=? WHERE ended IS NULL", (now,))
            db.execute("INSERT INTO starts (started, interrupted_jobs) VALUES (?, ?)", (now, count))
        if count:
            log.warning("recovery: %d job(s) left running were marked interrupted", count)
        return count

    def close(self) -> None:
        with self._lock:
            self._db.close()  # the last connection checkpoints into the main file
        self._blur_mtimes()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- recording ----------------------------------------------------------------

    def _now(self) -> str:
        return stamp(None, self.resolution)

    @property
    def station_id(self) -> str:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='station_id'").fetchone()
        return str(row[0])

    @property
    def salt(self) -> bytes:
        """The station's salt, for other per-station ids (never written anywhere else)."""
        return self._salt

    def hash_serial(self, serial: str) -> str:
        return drive_hash(self._salt, serial)

    def record(self, event: StationEvent) -> None:
        """Station listener: store one event. Unknown job or batch ids are logged, not raised."""
        if isinstance(event, BatchStarted):
            self.batch_started(event)
        elif isinstance(event, BatchFinished):
            self.batch_finished(event)
        elif isinstance(event, JobStarted):
            self.job_started(event)
        elif isinstance(event, JobFinished):
            self.job_finished(event)

    def batch_started(self, event: BatchStarted) -> int:
        now = self._now()
        with self._lock, self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO packs (name, version, first_used) VALUES (?, ?, ?)",
                (event.pack_name, event.pack_version, now),
            )
            (pack_id,) = db.execute(
                "SELECT id FROM packs WHERE name=? AND version=?",
                (event.pack_name, event.pack_version),
            ).fetchone()
            row = db.execute(
                "INSERT INTO batches (pack_id, started) VALUES (?, ?)", (pack_id, now)
            ).lastrowid
        assert row is not None
        self._batches[event.batch] = row
        return row

    def batch_finished(self, event: BatchFinished) -> None:
        row = self._batches.pop(event.batch, None)
        if row is None:
            log.warning("ledger: finish of unknown batch %r ignored", event.batch)
            return
        with self._lock, self._transaction() as db:
            db.execute("UPDATE batches SET ended=? WHERE id=?", (self._now(), row))

    def job_started(self, event: JobStarted) -> int:
        drive_class = event.drive_class if event.drive_class in DRIVE_CLASSES else "other"
        with self._lock, self._transaction() as db:
            row = db.execute(
                "INSERT INTO jobs (batch_id, drive, drive_class, capacity, tier, wipe, state, "
                "started) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                (
                    self._batches.get(event.batch),
                    self.hash_serial(event.serial),
                    drive_class,
                    int(event.capacity),
                    event.tier,
                    event.wipe,
                    self._now(),
                ),
            ).lastrowid
        assert row is not None
        self._jobs[event.job] = (row, event.serial)
        return row

    def job_finished(self, event: JobFinished) -> None:
        entry = self._jobs.pop(event.job, None)
        if entry is None:
            log.warning("ledger: finish of unknown job %r ignored", event.job)
            return
        row, serial = entry
        if event.result not in ("done", "failed", "cancelled"):
            raise ValueError(f"unknown job result {event.result!r}")
        reason = scrub(event.reason, serial)
        code = "" if event.result == "done" else reason_code(reason) or event.result
        seconds = {k: round(float(v), 1) for k, v in event.seconds.items()}
        total = round(sum(seconds.values()), 1) if seconds else None
        with self._lock, self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state=?, reason_code=?, reason=?, ended=?, seconds_probe=?, "
                "seconds_write=?, seconds_verify=?, seconds_commit=?, seconds_total=?, "
                "bytes_written=?, bytes_verified=?, tier=COALESCE(?, tier) "
                "WHERE id=? AND state='running'",
                (
                    event.result,
                    code,
                    reason,
                    self._now(),
                    seconds.get("probe"),
                    seconds.get("write"),
                    seconds.get("verify"),
                    seconds.get("commit"),
                    total,
                    int(event.bytes_written),
                    int(event.bytes_verified),
                    event.tier,
                    row,
                ),
            )

    # -- queries ------------------------------------------------------------------

    def totals(self, since: datetime | str | None = None) -> Totals:
        """Counts of jobs started at or after ``since`` (all time when None)."""
        where, args = self._since(since)
        with self._lock:
            states = dict(
                self._db.execute(
                    f"SELECT state, COUNT(*) FROM jobs {where} GROUP BY state", args
                ).fetchall()
            )
            reasons = dict(
                self._db.execute(
                    f"SELECT reason_code, COUNT(*) FROM jobs {where} "
                    f"{'AND' if where else 'WHERE'} state='failed' GROUP BY reason_code",
                    args,
                ).fetchall()
            )
            (loaded, drives) = self._db.execute(
                f"SELECT COALESCE(SUM(CASE WHEN state='done' THEN capacity END), 0), "
                f"COUNT(DISTINCT drive) FROM jobs {where}",
                args,
            ).fetchone()
        return Totals(
            done=states.get("done", 0),
            failed=states.get("failed", 0),
            cancelled=states.get("cancelled", 0),
            interrupted=states.get("interrupted", 0),
            running=states.get("running", 0),
            failed_by_reason=reasons,
            bytes_loaded=int(loaded),
            drives=int(drives),
        )

    def _since(self, since: datetime | str | None) -> tuple[str, tuple[str, ...]]:
        if since is None:
            return "", ()
        if isinstance(since, datetime):
            since = stamp(since, self.resolution)
        return "WHERE started >= ?", (since,)

    def jobs(self, since: datetime | str | None = None) -> list[dict[str, object]]:
        """Every job row (no serials exist to return), oldest first."""
        where, args = self._since(since)
        with self._lock:
            cursor = self._db.execute(
                "SELECT jobs.*, packs.name AS pack, packs.version AS pack_version FROM jobs "
                "LEFT JOIN batches ON batches.id = jobs.batch_id "
                "LEFT JOIN packs ON packs.id = batches.pack_id "
                f"{where.replace('started', 'jobs.started')} "
                "ORDER BY jobs.id",
                args,
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def packs(self) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._db.execute("SELECT name, version FROM packs ORDER BY id").fetchall()
        return [(str(n), str(v)) for n, v in rows]

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])


class LedgerWriter:
    """Records station events on its own thread, so the station never waits for an fsync.

    Events go upward without blocking (Mopidy's ``listener.send``): :meth:`send`
    only queues. :meth:`stop` records everything queued, then ends the thread;
    the service calls it before closing the ledger. A failing write is logged,
    never raised into the station.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        #: called on the writer's thread after each event is recorded (e.g. to refresh totals)
        self.after: list[Callable[[StationEvent], None]] = []
        self._queue: queue.SimpleQueue[StationEvent | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="ledger", daemon=True)
        self._thread.start()

    def send(self, event: StationEvent) -> None:
        self._queue.put(event)

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.ledger.record(event)
            except Exception:
                log.exception("ledger: could not record %r", event)
            for hook in list(self.after):
                try:
                    hook(event)
                except Exception:
                    log.exception("ledger: hook failed after %r", event)
