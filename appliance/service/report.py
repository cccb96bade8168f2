"""Reports: what a station loaded, as text, CSV or JSON; exports; merging many stations.

A report is aggregate counts only: no drive hashes, no job rows, no hostnames,
only the station's random id (created with the ledger) so that merging can
tell two stations apart and recognise the same station exported twice. Times
are at the ledger's resolution (an hour by default).

Exports go to the content SSD or a dedicated report stick, which the station
keeps read-only: the mount is remounted read-write only for the write (behind
the :class:`Mount` interface, faked in tests) and read-only again in a
``finally``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from appliance.errors import FlashStationError, UsageError
from appliance.service.ledger import Ledger, stamp

log = logging.getLogger(__name__)

FORMAT = "flashstation-report/1"
COUNTS = ("done", "failed", "cancelled", "interrupted")
_SINCE = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2})?)?)?)?)?$")


class ReportError(FlashStationError):
    """An export could not be written or a file to merge is not a report."""


def parse_since(text: str | None) -> str | None:
    """Check ``--since`` (``2026``, ``2026-11``, ``2026-11-25``, ``2026-11-25T14``...)."""
    if text is None:
        return None
    text = text.strip().replace(" ", "T")
    if not _SINCE.match(text):
        raise UsageError(f"--since: expected a date like 2026-11-25 or 2026-11-25T14, got {text!r}")
    return text


def build_report(ledger: Ledger, since: str | None = None) -> dict[str, Any]:
    """The report of one station (a JSON-ready dict)."""
    totals = ledger.totals(since)
    groups: dict[tuple[str, str, str], dict[str, int]] = {}
    for row in ledger.jobs(since):
        key = (str(row["pack"] or ""), str(row["pack_version"] or ""), str(row["tier"]))
        group = groups.setdefault(key, {k: 0 for k in (*COUNTS, "bytes_loaded")})
        state = str(row["state"])
        if state in COUNTS:
            group[state] += 1
        if state == "done":
            group["bytes_loaded"] += int(str(row["capacity"]))
    return {
        "format": FORMAT,
        "stations": [ledger.station_id],
        "generated": stamp(None, ledger.resolution),
        "since": since,
        "totals": {
            "done": totals.done,
            "failed": totals.failed,
            "cancelled": totals.cancelled,
            "interrupted": totals.interrupted,
            "bytes_loaded": totals.bytes_loaded,
        },
        "failed_by_reason": dict(sorted(totals.failed_by_reason.items())),
        "groups": [
            {"pack": p, "version": v, "tier": t, **counts}
            for (p, v, t), counts in sorted(groups.items())
        ],
    }


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def to_csv(report: dict[str, Any]) -> str:
    """One row per pack, version and tier, then a total row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pack", "version", "tier", *COUNTS, "bytes_loaded"])
    for g in report["groups"]:
        writer.writerow(
            [g["pack"], g["version"], g["tier"], *(g[k] for k in COUNTS), g["bytes_loaded"]]
        )
    t = report["totals"]
    writer.writerow(["(total)", "", "", *(t[k] for k in COUNTS), t["bytes_loaded"]])
    return out.getvalue()


def to_text(report: dict[str, Any]) -> str:
    t = report["totals"]
    stations = report["stations"]
    lines = [
        f"Flash Station report ({len(stations)} station{'s' * (len(stations) != 1)}"
        + (f", since {report['since']}" if report["since"] else "")
        + f", generated {report['generated']})",
        f"  done:        {t['done']}  ({t['bytes_loaded'] / 1e9:.1f} GB of sticks loaded)",
        f"  failed:      {t['failed']}",
    ]
    for reason, count in report["failed_by_reason"].items():
        lines.append(f"    {reason or 'unknown'}: {count}")
    lines += [f"  cancelled:   {t['cancelled']}", f"  interrupted: {t['interrupted']}"]
    for g in report["groups"]:
        lines.append(
            f"  {g['pack'] or '(no pack)'} {g['version']} tier {g['tier']}: "
            f"{g['done']} done, {g['failed']} failed"
        )
    return "\n".join(lines) + "\n"


def merge(reports: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Sum reports of many stations. Exports of one station: the newest counts, once."""
    newest: dict[tuple[str, ...], tuple[str, dict[str, Any]]] = {}
    for name, report in reports:
        if not isinstance(report, dict) or report.get("format") != FORMAT:
            raise ReportError(f"{name}: not a flashstation report ({FORMAT})")
        key = tuple(report["stations"])
        if key in newest:
            other_name, other = newest[key]
            keep = report if report["generated"] >= other["generated"] else other
            dropped = other_name if keep is report else name
            log.warning("%s: an older export of the same station; counted once", dropped)
            newest[key] = (name, keep) if keep is report else (other_name, other)
        else:
            newest[key] = (name, report)
    stations: list[str] = []
    for key in newest:
        overlap = set(stations) & set(key)
        if overlap:
            raise ReportError(f"station {sorted(overlap)[0]} appears in two different reports")
        stations.extend(key)
    totals = {k: 0 for k in (*COUNTS, "bytes_loaded")}
    reasons: dict[str, int] = {}
    groups: dict[tuple[str, str, str], dict[str, int]] = {}
    sinces = set()
    generated = ""
    for _, report in newest.values():
        sinces.add(report.get("since"))
        generated = max(generated, str(report["generated"]))
        for k in totals:
            totals[k] += int(report["totals"][k])
        for reason, count in report["failed_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + int(count)
        for g in report["groups"]:
            key3 = (g["pack"], g["version"], g["tier"])
            into = groups.setdefault(key3, {k: 0 for k in (*COUNTS, "bytes_loaded")})
            for k in into:
                into[k] += int(g[k])
    return {
        "format": FORMAT,
        "stations": sorted(stations),
        "generated": generated,
        "since": sinces.pop() if len(sinces) == 1 else None,
        "totals": totals,
        "failed_by_reason": dict(sorted(reasons.items())),
        "groups": [
            {"pack": p, "version": v, "tier": t, **c} for (p, v, t), c in sorted(groups.items())
        ],
    }


def read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: cannot read a report: {exc}") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not a flashstation report ({FORMAT})")
    return data


# -- exports ------------------------------------------------------------------------


class Mount(Protocol):
    """A filesystem the station keeps read-only, remounted read-write only to write to it."""

    path: Path

    def remount(self, writable: bool) -> None: ...


@dataclass
class SystemMount:
    """A real mount point, remounted with ``mount -o remount,rw|ro``."""

    path: Path

    def remount(self, writable: bool) -> None:
        if not os.path.ismount(self.path):
            raise ReportError(f"{self.path} is not a mount point")
        mode = "rw" if writable else "ro"
        done = subprocess.run(
            ["mount", "-o", f"remount,{mode}", str(self.path)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise ReportError(f"cannot remount {self.path} {mode}: {done.stderr.strip()}")


@dataclass
class FakeMount:
    """A folder standing in for a mount; records remounts; can be told to fail."""

    path: Path
    writable: bool = False
    history: list[str] = field(default_factory=list)
    fail_rw: bool = False

    def remount(self, writable: bool) -> None:
        if writable and self.fail_rw:
            raise ReportError(f"cannot remount {self.path} rw: fake failure")
        self.history.append("rw" if writable else "ro")
        self.writable = writable


@contextmanager
def writable(mount: Mount) -> Iterator[Path]:
    """Read-write for the block, read-only again afterwards, whatever happened."""
    mount.remount(True)
    try:
        yield mount.path
    finally:
        mount.remount(False)


def _write_synced(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def export_report(
    ledger: Ledger, mount: Mount, since: str | None = None, folder: str = "flashstation-reports"
) -> list[Path]:
    """Write the report (JSON, for merging, and CSV, for people) into ``folder`` on ``mount``.

    On a content SSD the folder must be hidden (a leading dot): the pack's
    listing skips hidden names, so the report neither fails the pack's
    verification ("extra" files) nor is ever loaded onto a stick.
    """
    report = build_report(ledger, since)
    base = f"flashstation-{report['stations'][0]}-{report['generated'].replace(':', '')}"
    written: list[Path] = []
    with writable(mount) as root:
        where = root / folder
        try:
            where.mkdir(exist_ok=True)
            for suffix, text in ((".json", to_json(report)), (".csv", to_csv(report))):
                target = where / (base + suffix)
                _write_synced(target, text)
                written.append(target)
            fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ReportError(f"cannot write the report to {where}: {exc}") from exc
    log.info("report exported: %s", ", ".join(p.name for p in written))
    return written
