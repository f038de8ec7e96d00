"""Every log event declared once: the code's literals and the README's table follow it (§7)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

from pulsed._errors import Reason
from pulsed._events import EVENTS, FAILURE_REASONS, Event, EventName, event

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "pulsed").glob("*.py"))
LOG_LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "error": "error"}
LOG_LEVELS["exception"] = "error"
BY_NAME: dict[str, Event] = {e.name: e for e in EVENTS}
# A log call names its event as event("x.y", ...), which mypy checks against
# EventName; the scans also find one written out as {"event": "x.y", ...}, which
# mypy cannot check, to refuse it.
EVENT_LITERAL = re.compile(r'"event":\s*"([^"]*)"|\bevent\(\s*"([^"]*)"')


def events_in_code() -> dict[str, set[str]]:
    """Every event name the package's source spells out, with the files it is in."""
    found: dict[str, set[str]] = {}
    for path in SOURCES:
        for old, new in EVENT_LITERAL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(old or new, set()).add(path.name)
    return found


def _event_of(extra: ast.expr, where: str) -> tuple[str, str] | None:
    """The event an ``extra=`` argument names, and its spelling, or None if it names none."""
    if isinstance(extra, ast.Call) and isinstance(extra.func, ast.Name):
        if extra.func.id != "event":
            return None
        name = extra.args[0]
        assert isinstance(name, ast.Constant) and isinstance(name.value, str), where
        return name.value, "call"
    if isinstance(extra, ast.Dict):
        for key, value in zip(extra.keys, extra.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "event":
                assert isinstance(value, ast.Constant) and isinstance(value.value, str), where
                return value.value, "dict"
    return None


def logged_events() -> list[tuple[str, str, str, str]]:
    """(event, level, spelling, where) of every ``log.<level>(..., extra=...)`` naming one."""
    calls = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            for kw in node.keywords:
                where = f"{path.name}:{node.lineno}"
                named = _event_of(kw.value, where) if kw.arg == "extra" else None
                if named is not None:
                    level = LOG_LEVELS.get(node.func.attr, node.func.attr)
                    calls.append((named[0], level, named[1], where))
    return calls


def logged_levels() -> list[tuple[str, str, str]]:
    """(event, level, where) of every log call that names an event."""
    return [(name, level, where) for name, level, _, where in logged_events()]


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


def test_the_event_names_type_is_the_declared_events() -> None:
    assert get_args(EventName) == tuple(e.name for e in EVENTS)


def test_event_builds_the_extra_of_a_log_call() -> None:
    assert event("heartbeat.failed", reason="timeout", status=None) == {
        "event": "heartbeat.failed",
        "reason": "timeout",
        "status": None,
    }


def test_every_log_call_names_its_event_through_event() -> None:
    assert [where for _, _, how, where in logged_events() if how == "dict"] == []


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


def test_failure_reasons_are_exactly_the_reason_type() -> None:
    assert tuple(FAILURE_REASONS) == get_args(Reason)


def test_failure_reasons_are_the_ones_the_code_produces() -> None:
    assert reasons_in_code() == set(FAILURE_REASONS)
    assert readme_reasons() == list(FAILURE_REASONS)
