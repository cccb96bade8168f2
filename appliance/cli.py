"""The ``flashstation`` command line.

Each module in :mod:`appliance.commands` adds its sub-commands through
``register(subparsers)``; every sub-command's handler takes the parsed
namespace and returns an exit status. Library errors are turned into a
one-line message and an exit status only here, at the top.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

from appliance import __version__, commands
from appliance.errors import FlashStationError, UsageError

log = logging.getLogger("flashstation")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashstation",
        description="Wipe, load and verify donated USB sticks.",
    )
    parser.add_argument("--version", action="version", version=f"flashstation {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args))
    except UsageError as exc:
        print(f"flashstation: error: {exc}", file=sys.stderr)
        return 2
    except FlashStationError as exc:
        print(f"flashstation: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("flashstation: interrupted", file=sys.stderr)
        return 130
