"""Load and validate ``station.yaml`` files against :mod:`appliance.config.schema`.

Files are read with PyYAML's safe loader (``yaml.safe_load`` for the values,
``yaml.compose`` with the same safe loader for line numbers). Every problem of
every layer is collected before anything is raised.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.config.schema import StationConfig
from appliance.errors import FlashStationError
from appliance.units import parse_size

KeyPath = tuple[str, ...]


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str  # dotted key path, e.g. "ui.buttons.start"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top)'}: {self.message}"


class ConfigError(FlashStationError):
    """One or more problems in configuration files; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[ConfigProblem]):
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' * (count != 1)} in configuration:\n{lines}")

    @property
    def first(self) -> ConfigProblem:
        return self.problems[0]


class _Located:
    """Values of the merged layers plus where each key path was last set."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.where: dict[KeyPath, tuple[str, int]] = {}

    def locate(self, path: KeyPath) -> tuple[str, int | None]:
        while path:
            if path in self.where:
                return self.where[path]
            path = path[:-1]
        return (self.where.get((), ("<defaults>", 0))[0], None)


def _marks(node: yaml.Node, path: KeyPath, file: str, out: dict[KeyPath, tuple[str, int]]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            out[(*path, key)] = (file, key_node.start_mark.line + 1)
            _marks(value_node, (*path, key), file, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*path, str(index))] = (file, item.start_mark.line + 1)
            _marks(item, (*path, str(index)), file, out)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _read_layer(path: Path, located: _Located, problems: list[ConfigProblem]) -> None:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ConfigProblem(file, None, "", f"cannot read: {exc}"))
        return
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problems.append(ConfigProblem(file, line, "", f"not valid YAML: {exc.problem}"))
        return
    except yaml.YAMLError as exc:
        problems.append(ConfigProblem(file, None, "", f"not valid YAML: {exc}"))
        return
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(ConfigProblem(file, 1, "", "expected a mapping of sections"))
        return
    located.where[()] = (file, 1)
    if node is not None:
        _marks(node, (), file, located.where)
    _merge(located.data, data)


_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class _Invalid(Exception):
    pass


def _convert(value: Any, hint: Any, meta: dict[str, Any]) -> Any:
    """Convert one scalar-ish value, raising :class:`_Invalid` with what was expected."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        _base, tag = typing.get_args(hint)[:2]
        if tag == "size":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise _Invalid(f"expected a size like 8GiB or bytes, got {value!r}")
            try:
                result: Any = value if isinstance(value, int) else parse_size(value)
            except ValueError as exc:
                raise _Invalid(str(exc)) from None
        elif tag == "seconds":
            if isinstance(value, bool):
                raise _Invalid(f"expected a duration like 5s, got {value!r}")
            if isinstance(value, int | float):
                result = float(value)
            else:
                match = _DURATION_RE.match(str(value))
                if not match:
                    raise _Invalid(f"expected a duration like 5s, 500ms or 2m, got {value!r}")
                result = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        else:  # pragma: no cover - schema error
            raise TypeError(f"unknown annotation {tag!r}")
        return _check_limits(result, meta)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise _Invalid(f"expected one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], meta)
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid(f"expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected a whole number, got {value!r}")
        return _check_limits(value, meta)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"expected a number, got {value!r}")
        return _check_limits(float(value), meta)
    if hint is str:
        if not isinstance(value, str):
            raise _Invalid(f"expected text, got {value!r}")
        return value
    raise TypeError(f"unsupported schema type {hint!r}")  # pragma: no cover


def _check_limits(value: Any, meta: dict[str, Any]) -> Any:
    if "minimum" in meta and value < meta["minimum"]:
        raise _Invalid(f"must be at least {meta['minimum']}, got {value!r}")
    if "maximum" in meta and value > meta["maximum"]:
        raise _Invalid(f"must be at most {meta['maximum']}, got {value!r}")
    return value


class _Builder:
    def __init__(self, located: _Located, problems: list[ConfigProblem]):
        self.located = located
        self.problems = problems

    def problem(self, path: KeyPath, message: str) -> None:
        file, line = self.located.locate(path)
        self.problems.append(ConfigProblem(file, line, ".".join(path), message))

    def build(self, cls: type, value: Any, path: KeyPath) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping (section), got {value!r}")
            return cls()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls, include_extras=True)
        for key in value:
            if str(key) not in fields:
                guess = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
                hint = f"; did you mean {guess[0]!r}?" if guess else ""
                known = ", ".join(fields)
                self.problem((*path, str(key)), f"unknown key (known: {known}){hint}")
        kwargs: dict[str, Any] = {}
        for name, fld in fields.items():
            if name not in value:
                continue
            converted = self.value(hints[name], value[name], (*path, name), dict(fld.metadata))
            if converted is not _SKIP:
                kwargs[name] = converted
        return cls(**kwargs)

    def value(self, hint: Any, value: Any, path: KeyPath, meta: dict[str, Any]) -> Any:
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.build(hint, value, path)
        origin = typing.get_origin(hint)
        if origin is list:
            (item_hint,) = typing.get_args(hint)
            if value is None:
                return []
            if not isinstance(value, list):
                self.problem(path, f"expected a list, got {value!r}")
                return _SKIP
            items = [self.value(item_hint, v, (*path, str(i)), {}) for i, v in enumerate(value)]
            return [v for v in items if v is not _SKIP]
        if origin is dict:
            _, item_hint = typing.get_args(hint)
            if value is None:
                return {}
            if not isinstance(value, dict):
                self.problem(path, f"expected a mapping, got {value!r}")
                return _SKIP
            out = {}
            for k, v in value.items():
                converted = self.value(item_hint, v, (*path, str(k)), meta)
                if converted is not _SKIP:
                    out[str(k)] = converted
            return out
        try:
            return _convert(value, hint, meta)
        except _Invalid as exc:
            self.problem(path, str(exc))
            return _SKIP


_SKIP = object()


def load_layers(paths: Iterable[Path | str]) -> StationConfig:
    """Merge the given files in order (later wins, key by key) over the schema's defaults.

    Raises :class:`ConfigError` naming every problem in every file.
    """
    located = _Located()
    problems: list[ConfigProblem] = []
    for path in paths:
        _read_layer(Path(path), located, problems)
    config = _Builder(located, problems).build(StationConfig, located.data, ())
    if problems:
        raise ConfigError(problems)
    return typing.cast(StationConfig, config)


def load_config(path: Path | str | None = None) -> StationConfig:
    """Load one file over the defaults (or just the defaults when ``path`` is None)."""
    return load_layers([] if path is None else [path])
