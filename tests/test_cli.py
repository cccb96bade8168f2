"""The CLI's command table and lazy loading."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from appliance import cli


def _registered(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register = getattr(importlib.import_module(f"appliance.commands.{module}"), "register", None)
    if register is None:
        return set()
    register(sub)
    return set(sub.choices)


def test_command_table_matches_what_modules_register() -> None:
    table: dict[str, str] = {}
    for module in cli.command_modules():
        for name in _registered(module):
            table[name] = module
    assert table == cli.COMMANDS


def test_one_command_imports_only_its_module() -> None:
    code = (
        "import sys; from appliance.cli import main; main(['config', 'check', "
        "'config/station.yaml']); "
        "print(sorted(m for m in sys.modules if m.startswith('appliance.commands.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "['appliance.commands.config']"


def test_help_lists_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_a_usage_error(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli.main(["frobnicate"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "invalid choice" in capsys.readouterr().err
