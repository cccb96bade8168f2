"""``flashstation config check FILE``: validate a configuration file."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.config import ConfigError, load_layers


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="check configuration files")
    config_sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser(
        "check", help="validate FILE(s); with several, later files override earlier ones"
    )
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(handler=check_command)


def check_command(args: argparse.Namespace) -> int:
    try:
        load_layers(args.files)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' * (count != 1)} found", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(args.files)}")
    return 0
