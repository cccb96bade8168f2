"""Config layering with a last-good fallback.

Layers, later winning key by key: the packaged defaults (the schema, which a
test keeps equal to ``config/station.yaml``), ``/etc/flashstation/station.yaml``,
then ``flashstation.yaml`` on the boot partition, which an operator can edit
from any laptop. A missing file is simply skipped.

A station on a shelf must not stop working because someone mistyped a key on
the boot partition: when the layers do not validate, it runs on the last
merged configuration that did (kept in the state directory), or on the
defaults on a first boot, and the station shows the first problem — file and
line — on an error screen until the file is fixed.

The last-good file lives in the *default or command-line* state directory: the
state directory named inside a broken file cannot be trusted, and the one in
the last good config cannot be found before it is read.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from appliance.config import ConfigError, StationConfig, load_layers
from appliance.config.loader import ConfigProblem
from appliance.fileio import write_atomic
from appliance.service.ledger import blur_mtime

log = logging.getLogger(__name__)

ETC_CONFIG = Path("/etc/flashstation/station.yaml")
BOOT_CONFIG = Path("/boot/firmware/flashstation.yaml")
DEFAULT_LAYERS: tuple[Path, ...] = (ETC_CONFIG, BOOT_CONFIG)
LAST_GOOD_NAME = "last-good-config.yaml"


@dataclass(frozen=True)
class LoadedConfig:
    config: StationConfig
    source: str  # "files", "last good" or "defaults"
    files: tuple[Path, ...]  # the layers that existed and were read
    problems: tuple[ConfigProblem, ...] = field(default=())

    @property
    def first_problem(self) -> ConfigProblem | None:
        """What the error screen shows (file and line); None when the files were good."""
        return self.problems[0] if self.problems else None

    def error_screen(self) -> tuple[str, str] | None:
        """(title, detail) for the station's error screen, or None."""
        problem = self.first_problem
        if problem is None:
            return None
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        more = len(self.problems) - 1
        detail = f"{where}: {problem.path or '(top)'}: {problem.message}"
        if more:
            detail += f" (+{more} more)"
        return (f"bad config, using {self.source} values", detail)


def save_last_good(config: StationConfig, state_dir: Path) -> Path:
    """Write the merged config atomically (it is read back through the same validator)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = state_dir / LAST_GOOD_NAME
    text = "# written by flashstation: the last configuration that validated\n"
    text += yaml.safe_dump(dataclasses.asdict(config), sort_keys=False, allow_unicode=True)
    write_atomic(path, text)
    blur_mtime(path, "day")
    return path


def load_station_config(
    layers: Sequence[Path] = DEFAULT_LAYERS, state_dir: Path | None = None
) -> LoadedConfig:
    """Merge the existing ``layers``; on any problem fall back to last good, then defaults."""
    state = Path(state_dir or StationConfig().service.state_dir)
    present = tuple(Path(p) for p in layers if Path(p).exists())
    try:
        config = load_layers(present)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config: %s", problem)
        last_good = state / LAST_GOOD_NAME
        if last_good.exists():
            try:
                return LoadedConfig(
                    load_layers([last_good]), "last good", present, tuple(exc.problems)
                )
            except ConfigError as bad:
                log.error("last good config %s is unusable too: %s", last_good, bad.first)
        return LoadedConfig(StationConfig(), "defaults", present, tuple(exc.problems))
    try:
        save_last_good(config, state)
    except OSError as exc:
        log.warning("cannot keep the last good config in %s: %s", state, exc)
    return LoadedConfig(config, "files", present)
