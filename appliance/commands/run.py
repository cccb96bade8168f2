"""``flashstation run``: the station as a long-running (systemd) service."""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path
from typing import Any

from appliance.errors import FlashStationError
from appliance.service.app import Service, ServiceContext, StationBuild
from appliance.service.fake import FakeStation
from appliance.service.logsetup import setup_logging
from appliance.service.settings import DEFAULT_LAYERS, load_station_config

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run the station as a service (systemd Type=notify; also by hand)",
        description="Run the station until SIGTERM. Config layers: packaged defaults, then "
        + ", then ".join(str(p) for p in DEFAULT_LAYERS)
        + " (missing files are skipped; a bad file shows an error and the last good values "
        "are used).",
    )
    parser.add_argument(
        "--config",
        action="append",
        type=Path,
        metavar="FILE",
        help="config layer(s) instead of the default ones (repeatable; later wins)",
    )
    parser.add_argument(
        "--state-dir", type=Path, help="ledger, salt and last good config (overrides config)"
    )
    parser.add_argument(
        "--fake-station",
        type=float,
        nargs="?",
        const=1.0,
        metavar="SECONDS",
        help="host a simulated station starting a job every SECONDS (service tests, try-outs)",
    )
    parser.add_argument("--fake-hang-file", type=Path, help=argparse.SUPPRESS)
    parser.set_defaults(handler=run_command)


def _real_station(context: ServiceContext) -> StationBuild:
    try:
        service_build = importlib.import_module("appliance.commands.hosting.station").service_build
    except (ImportError, AttributeError) as exc:
        raise FlashStationError(
            "the station (appliance.commands.hosting.station.service_build) is not part of "
            "this build; try --fake-station"
        ) from exc
    build: StationBuild = service_build(context)
    return build


def run_command(args: argparse.Namespace) -> int:
    level = logging.DEBUG if args.verbose else logging.INFO
    where = setup_logging(level)
    loaded = load_station_config(args.config or DEFAULT_LAYERS, args.state_dir)
    log.info(
        "config from %s (%s); logging to %s",
        ", ".join(map(str, loaded.files)) or "defaults only",
        loaded.source,
        where,
    )
    if args.fake_station is not None:
        period = args.fake_station

        def factory(context: ServiceContext) -> StationBuild:
            return StationBuild(FakeStation(simulate_every=period, hang_file=args.fake_hang_file))

    else:
        factory = _real_station
    return Service(loaded, factory, state_dir=args.state_dir).run()
