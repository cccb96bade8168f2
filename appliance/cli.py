"""The ``flashstation`` command line.

Each module in :mod:`appliance.commands` adds its sub-commands through
``register(subparsers)``; every sub-command's handler takes the parsed
namespace and returns an exit status. Library errors are turned into a
one-line message and an exit status only here, at the top.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from appliance import __version__, commands
from appliance.errors import FlashStationError, UsageError

#: Top-level command -> the module in :mod:`appliance.commands` that registers it.
#: ``main`` imports only the module of the command it runs, so a command's start-up
#: does not pay for every area's imports (cryptography, PIL, pyudev, ...).
#: ``tests/test_cli.py`` keeps this table equal to what the modules register.
COMMANDS = {
    "config": "config",
    "content": "content",
    "demo": "demo",
    "devices": "devices",
    "inspect": "image",
    "load": "load",
    "make-image": "image",
    "report": "report",
    "run": "run",
    "screens": "screens",
    "slots": "slots",
}


def command_modules() -> list[str]:
    """Every command module, in name order."""
    import pkgutil

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.ispkg)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one holding just that command's module."""
    parser = argparse.ArgumentParser(
        prog="flashstation",
        description="Wipe, load and verify donated USB sticks.",
    )
    parser.add_argument("--version", action="version", version=f"flashstation {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [COMMANDS[only]] if only in COMMANDS else command_modules()
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _command_word(argv: Sequence[str]) -> str | None:
    """The first word that is not an option (the command), if any."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_word(words))
    args = parser.parse_args(words)
    if args.verbose or "logging" in sys.modules:
        # A command that logs imports logging with its module; make-image does
        # not, and its start-up is part of its throughput.
        import logging

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
