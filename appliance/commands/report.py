"""``flashstation report``: what this station loaded; ``export`` it; ``merge`` many stations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from appliance.errors import UsageError
from appliance.service.ledger import LEDGER_NAME, Ledger
from appliance.service.report import (
    SystemMount,
    build_report,
    export_report,
    merge,
    parse_since,
    read_report,
    to_csv,
    to_json,
    to_text,
)
from appliance.service.settings import DEFAULT_LAYERS, load_station_config


def _formats(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--csv", action="store_true", help="CSV: one row per pack, version, tier")
    group.add_argument("--json", action="store_true", help="JSON (the format merge reads)")


def register(sub: Any) -> None:
    parser = sub.add_parser("report", help="how many sticks were loaded (no identifying data)")
    parser.add_argument("--since", metavar="DATE", help="only jobs started since DATE (UTC)")
    parser.add_argument("--state-dir", type=Path, help="where the ledger is (default: config)")
    _formats(parser)
    parser.set_defaults(handler=report_command)
    actions = parser.add_subparsers(dest="report_command", metavar="ACTION")
    export = actions.add_parser(
        "export", help="write the report to a mounted SSD or report stick (remounted rw briefly)"
    )
    export.add_argument("--to", type=Path, required=True, metavar="MOUNTPOINT")
    export.add_argument("--since", metavar="DATE", help="only jobs started since DATE (UTC)")
    export.add_argument("--state-dir", type=Path, help="where the ledger is (default: config)")
    export.set_defaults(handler=export_command)
    merged = actions.add_parser("merge", help="sum JSON exports of many stations")
    merged.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _formats(merged)
    merged.set_defaults(handler=merge_command)


def _open_ledger(state_dir: Path | None) -> Ledger:
    if state_dir is None:
        state_dir = Path(load_station_config(DEFAULT_LAYERS).config.service.state_dir)
    if not (state_dir / LEDGER_NAME).exists():
        raise UsageError(f"no ledger in {state_dir} (has the station run? try --state-dir)")
    config = load_station_config(DEFAULT_LAYERS, state_dir).config
    # recover=False: the service may be running; its running jobs are not leftovers
    return Ledger(state_dir, config.service.ledger_time_resolution, recover=False)


def _print(report: dict[str, Any], args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(to_json(report))
    elif getattr(args, "csv", False):
        sys.stdout.write(to_csv(report))
    else:
        sys.stdout.write(to_text(report))


def report_command(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    with _open_ledger(args.state_dir) as ledger:
        _print(build_report(ledger, since), args)
    return 0


def export_command(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    with _open_ledger(args.state_dir) as ledger:
        for path in export_report(ledger, SystemMount(args.to), since):
            print(path)
    return 0


def merge_command(args: argparse.Namespace) -> int:
    _print(merge((str(p), read_report(p)) for p in args.files), args)
    return 0
