"""Imports only point down: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"

# Lower number = lower layer. A module may import its own layer or lower.
LAYERS = {
    "errors": 0,
    "units": 0,
    "fileio": 0,
    "config": 0,
    "fat32": 1,
    "drives": 1,
    "engine": 2,
    "content": 2,
    "hotplug": 2,
    "station": 3,
    "ui": 4,
    "service": 5,
    "commands": 6,
    "cli": 7,
    "__main__": 8,
}
# Packages beside each other at one layer that must not import each other.
_APART = [("fat32", "drives"), ("engine", "content"), ("engine", "hotplug"), ("content", "hotplug")]
SIBLINGS_APART = {pair for a, b in _APART for pair in ((a, b), (b, a))}


def _area(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "appliance" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_imports_point_down() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0].removesuffix(".py")
        if own == "__init__" or own not in LAYERS:
            continue
        for module in _imports(path):
            area = _area(module)
            if area is None or area == own or area == "__init__":
                continue
            assert area in LAYERS, f"{rel}: unknown area {area!r}; add it to LAYERS"
            if LAYERS[area] > LAYERS[own] or (own, area) in SIBLINGS_APART:
                violations.append(f"{rel} imports {module}")
    assert not violations, "\n".join(violations)
