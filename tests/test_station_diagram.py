"""The mermaid diagrams in docs/architecture.md list exactly the transitions in the code."""

from __future__ import annotations

import re
from pathlib import Path

from appliance.station.states import (
    PORTS_TRANSITIONS,
    SLOT_TRANSITIONS,
    STATION_TRANSITIONS,
    SlotState,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"
LINE = re.compile(r"^\s*(\w+)\s*-->\s*(\w+)\s*:\s*(\w+)\s*$")


def _diagrams() -> list[set[tuple[str, str, str]]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Station state machines", 1)[1].split("\n## ", 1)[0]
    found = []
    for block in re.findall(r"```mermaid\n(.*?)```", section, re.S):
        if "stateDiagram" not in block:
            continue
        edges = set()
        for line in block.splitlines():
            m = LINE.match(line)
            if m:
                source, target, trigger = m.groups()
                edges.add((source, trigger, target))
        found.append(edges)
    return found


def _as_text(table: frozenset[tuple[object, str, object]]) -> set[tuple[str, str, str]]:
    return {(str(s), k, str(t)) for s, k, t in table}


def test_station_diagram_matches_table() -> None:
    station, _slot, _ports = _diagrams()
    assert station == _as_text(STATION_TRANSITIONS)


def test_slot_diagram_matches_table() -> None:
    _station, slot, _ports = _diagrams()
    assert slot == _as_text(SLOT_TRANSITIONS)


def test_ports_diagram_matches_table() -> None:
    _station, _slot, ports = _diagrams()
    assert ports == _as_text(PORTS_TRANSITIONS)


def test_slot_table_is_deterministic() -> None:
    seen: dict[tuple[SlotState, str], SlotState] = {}
    for source, trigger, target in SLOT_TRANSITIONS:
        assert (source, trigger) not in seen, f"{source} --{trigger}--> two targets"
        seen[(source, trigger)] = target


def test_parser_sees_a_missing_edge(tmp_path: Path) -> None:
    """The comparison is not vacuous: dropping one line makes the sets differ."""
    station, _, _ = _diagrams()
    assert len(station) == len(STATION_TRANSITIONS) > 10
    station.discard(("busy", "jobs_idle", "ready"))
    assert station != _as_text(STATION_TRANSITIONS)
