"""``flashstation run``: the station as a long-running (systemd) service."""

from __future__ import annotations

import argparse
import importlib
import logging
from pathlib import Path
from typing import Any

from appliance.errors import FlashStationError, UsageError
from appliance.service.app import Service, ServiceContext, StationBuild
from appliance.service.fake import FakeStation
from appliance.service.logsetup import setup_logging
from appliance.service.poweroff import PowerOff, PowerOffError
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
    # the real-systemd test of MENU held: the stand-in asks for the operator shutdown after
    # SECONDS, and the power-off only writes FILE ("refused": it fails) instead of systemctl
    parser.add_argument("--fake-shutdown-after", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--fake-poweroff", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fake-poweroff-refused", action="store_true", help=argparse.SUPPRESS)
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
    faking = args.fake_shutdown_after is not None or args.fake_poweroff is not None
    if faking and args.fake_station is None:
        raise UsageError("--fake-shutdown-after and --fake-poweroff need --fake-station")
    if args.fake_shutdown_after is not None and args.fake_poweroff is None:
        raise UsageError("--fake-shutdown-after needs --fake-poweroff: a stand-in never powers off")
    level = logging.DEBUG if args.verbose else logging.INFO
    where = setup_logging(level)
    loaded = load_station_config(args.config or DEFAULT_LAYERS, args.state_dir)
    log.info(
        "config from %s (%s); logging to %s",
        ", ".join(map(str, loaded.files)) or "defaults only",
        loaded.source,
        where,
    )
    power_off: PowerOff | None = None
    if args.fake_poweroff is not None:
        power_off = _recording_poweroff(args.fake_poweroff, args.fake_poweroff_refused)
    if args.fake_station is not None:
        period = args.fake_station

        def factory(context: ServiceContext) -> StationBuild:
            return StationBuild(
                FakeStation(
                    simulate_every=period,
                    hang_file=args.fake_hang_file,
                    shutdown_after=args.fake_shutdown_after,
                    on_shutdown=context.request_shutdown,
                )
            )

    else:
        factory = _real_station
    return Service(loaded, factory, state_dir=args.state_dir, power_off=power_off).run()


def _recording_poweroff(path: Path, refused: bool) -> PowerOff:
    """A stand-in power-off for the real-systemd test: writes ``path``, never powers off."""

    def power_off() -> None:
        path.write_text("power-off asked\n")
        if refused:
            raise PowerOffError("refused (stand-in)")

    return power_off
