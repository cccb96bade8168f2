"""The config schema: defaults file, every error at once, line numbers, did-you-mean."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from appliance.cli import main
from appliance.config import ConfigError, StationConfig, load_config, load_layers

DEFAULTS = Path(__file__).resolve().parent.parent / "config" / "station.yaml"


def _keys(obj: object, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            out |= _keys(value, f"{prefix}{f.name}.")
        else:
            out.add(f"{prefix}{f.name}")
    return out


def _yaml_keys(data: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out |= _yaml_keys(value, f"{prefix}{key}.")
        else:
            out.add(f"{prefix}{key}")
    return out


def test_packaged_file_documents_exactly_the_schema_defaults() -> None:
    assert load_config(DEFAULTS) == StationConfig()
    assert _yaml_keys(yaml.safe_load(DEFAULTS.read_text())) == _keys(StationConfig())


def test_every_key_in_defaults_file_has_a_comment() -> None:
    lines = DEFAULTS.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue
        # the comment may sit directly above, or above a run of sibling keys
        j = i - 1
        while j >= 0 and lines[j].strip() and not lines[j].strip().startswith("#"):
            if lines[j].strip().endswith(":"):
                break
            j -= 1
        assert j >= 0 and lines[j].strip().startswith("#"), f"undocumented: {line}"


def test_all_errors_reported_at_once_with_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "engine:\n"
        "  wipe: partial\n"  # line 2: bad choice
        "  chunk_sise: 1MiB\n"  # line 3: typo
        "ui:\n"
        "  language: ko\n"
        "  buttons:\n"
        "    start: forty\n"  # line 7: not a number
        "    menu: 99\n"  # line 8: too large
        "station:\n"
        "  batch_window: soon\n"  # line 10
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) == {
        "engine.wipe",
        "engine.chunk_sise",
        "ui.buttons.start",
        "ui.buttons.menu",
        "station.batch_window",
    }
    assert problems["engine.wipe"].line == 2
    assert "full, quick" in problems["engine.wipe"].message
    assert problems["engine.chunk_sise"].line == 3
    assert "did you mean 'chunk_size'" in problems["engine.chunk_sise"].message
    assert problems["ui.buttons.start"].line == 7
    assert problems["ui.buttons.menu"].line == 8
    assert "at most 27" in problems["ui.buttons.menu"].message
    assert problems["station.batch_window"].line == 10
    assert str(problems["engine.wipe"]).startswith(f"{bad}:2: engine.wipe: ")


def test_units_and_layering(tmp_path: Path) -> None:
    base = tmp_path / "etc.yaml"
    base.write_text("engine:\n  chunk_size: 1MiB\n  wipe: quick\nui:\n  dim_after: 500ms\n")
    boot = tmp_path / "boot.yaml"
    boot.write_text("engine:\n  wipe: full\n")
    cfg = load_layers([DEFAULTS, base, boot])
    assert cfg.engine.chunk_size == 1024**2
    assert cfg.engine.wipe == "full"  # the later layer wins
    assert cfg.ui.dim_after == 0.5
    assert cfg.hotplug.max_size == 300 * 1000**3


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("engine:\n  wipe: full\n   chunk_size: [\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    (problem,) = info.value.problems
    assert problem.line is not None and problem.line >= 2
    assert "not valid YAML" in problem.message


def test_section_of_wrong_type(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: 5\nnonsense: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    paths = {p.path for p in info.value.problems}
    assert paths == {"engine", "nonsense"}


def test_config_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(DEFAULTS)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("ui:\n  langauge: ko\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: ui.langauge: unknown key" in err
    assert "did you mean 'language'" in err
    assert main(["config", "check", str(tmp_path / "missing.yaml")]) == 1
