"""Every log event declared once: the code's literals and the README's table follow it (§7)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pulsed._events import BY_NAME, EVENTS, FAILURE_REASONS

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "pulsed").glob("*.py"))
LOG_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "error": "error"}
LOG_LEVELS["exception"] = "error"


def events_in_code() -> dict[str, set[str]]:
    """Every ``"event": "<name>"`` literal in the package, with the files it is in."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        for name in re.findall(r'"event":\s*"([^"]*)"', path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(path.name)
    return found


def logged_levels() -> list[tuple[str, str, str]]:
    """(event, level, where) of every ``log.<level>(..., extra={"event": "..."})`` call."""
    calls = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            for kw in node.keywords:
                if kw.arg != "extra" or not isinstance(kw.value, ast.Dict):
                    continue
                for key, value in zip(kw.value.keys, kw.value.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "event":
                        assert isinstance(value, ast.Constant), f"{path.name}:{node.lineno}"
                        assert isinstance(value.value, str)
                        level = LOG_LEVELS.get(node.func.attr, node.func.attr)
                        calls.append((value.value, level, f"{path.name}:{node.lineno}"))
    return calls


def readme_events() -> dict[str, str]:
    """Event name to level, from the README's event table (rows may group events)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("| event | level | means |\n", 1)[1].split("\n\n", 1)[0]
    levels: dict[str, str] = {}
    for row in table.splitlines()[1:]:
        names_cell, level_cell, _ = (c.strip() for c in row.strip().strip("|").split(" | ", 2))
        names = re.findall(r"`([a-z_.]+)`", names_cell)
        cells = [c.strip() for c in level_cell.split("/")]
        assert len(cells) in (1, len(names)), row
        for name, level in zip(
            names, cells * len(names) if len(cells) == 1 else cells, strict=True
        ):
            assert name not in levels, f"{name} listed twice"
            levels[name] = level
    return levels


def readme_reasons() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("| reason | means |\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, re.MULTILINE)


def test_every_event_in_the_code_is_declared() -> None:
    found = events_in_code()
    assert found, "the scan found no event at all"
    undeclared = {name: files for name, files in found.items() if name not in BY_NAME}
    assert undeclared == {}


def test_every_declared_event_is_logged_somewhere() -> None:
    assert set(BY_NAME) - set(events_in_code()) == set()
    assert len(BY_NAME) == len(EVENTS)


def test_every_event_is_logged_at_its_declared_level() -> None:
    calls = logged_levels()
    assert {name for name, _, _ in calls} == set(events_in_code())
    wrong = [(n, lvl, where) for n, lvl, where in calls if BY_NAME[n].level != lvl]
    assert wrong == []


def test_readme_lists_exactly_the_declared_events_and_levels() -> None:
    assert readme_events() == {e.name: e.level for e in EVENTS}


def reasons_in_code() -> set[str]:
    """The literal first argument of every ``DeliveryError(...)`` the package raises."""
    reasons: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("DeliveryError", "_Retryable")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                reasons.add(node.args[0].value)
    return reasons


def test_failure_reasons_are_the_ones_the_code_produces() -> None:
    assert reasons_in_code() == set(FAILURE_REASONS)
    assert readme_reasons() == list(FAILURE_REASONS)
