"""make mutate's results table: a run of some modules refreshes only their rows."""

from __future__ import annotations

from devtools.mutate import Figures, merge, parse, report, table


def _figures(module: str, killed: int, survived: int, date: str) -> Figures:
    return Figures(module, killed + survived, killed, survived, 12.0, 1, date)


def test_a_written_table_reads_back_as_the_same_figures() -> None:
    rows = [
        _figures("pulsed/_a.py", 90, 10, "2026-01-02"),
        _figures("pulsed/b.py", 5, 0, "2026-01-03"),
    ]
    assert parse(report(rows)) == rows


def test_a_partial_run_replaces_its_rows_and_keeps_the_others() -> None:
    old = [
        _figures("pulsed/_a.py", 90, 10, "2026-01-01"),
        _figures("pulsed/_b.py", 50, 5, "2026-01-01"),
    ]
    new = [_figures("pulsed/_b.py", 55, 0, "2026-02-01")]
    merged = merge(old, new, ["pulsed/_a.py", "pulsed/_b.py"])
    assert merged == [old[0], new[0]]


def test_a_module_run_for_the_first_time_gets_its_row_in_the_mapping_order() -> None:
    old = [
        _figures("pulsed/_a.py", 90, 10, "2026-01-01"),
        _figures("pulsed/_c.py", 9, 1, "2026-01-01"),
    ]
    new = [_figures("pulsed/_b.py", 55, 0, "2026-02-01")]
    merged = merge(old, new, ["pulsed/_a.py", "pulsed/_b.py", "pulsed/_c.py"])
    assert [f.module for f in merged] == ["pulsed/_a.py", "pulsed/_b.py", "pulsed/_c.py"]


def test_a_module_no_longer_mapped_loses_its_row() -> None:
    old = [_figures("pulsed/_gone.py", 9, 1, "2026-01-01")]
    assert merge(old, [], ["pulsed/_a.py"]) == []


def test_a_row_shows_the_survival_share() -> None:
    assert "| 10.0% |" in table([_figures("pulsed/_a.py", 90, 10, "2026-01-01")])[2]
