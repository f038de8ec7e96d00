"""The test support checked: a clean secrets scan means something, the stubs report what
they were given, and every test asserts something of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.lab import CLOSED_PORT_URL, SECRET, TOKEN, Lab
from tests.support.process import Result

TESTS = Path(__file__).resolve().parent


def test_the_scan_finds_a_planted_secret_everywhere_it_looks(tmp_path: Path) -> None:
    with Lab(tmp_path) as lab:
        rig = lab.rig(CLOSED_PORT_URL)
        rig.state.mkdir()
        (rig.state / "state.json.corrupt-x").write_text(f"...{SECRET}...")
        (rig.dump / "php-1.environ").write_bytes(b"X=" + TOKEN.encode())
        rig.captured.append(("/proc/1/cmdline", TOKEN.replace(":", "%3A").encode()))
        rig.results.append(Result(0, "", f'{{"message": "{SECRET}"}}', 0.0))
        with pytest.raises(AssertionError, match="a secret leaked") as info:
            lab.close()
    assert str(info.value).count("holds") == 4


def test_the_php_stub_and_the_identity_child_report_what_they_were_given(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL)
    result = rig.run("once", "--dry-run")
    assert result.code == 0, result.err
    (php,) = rig.dumps("php")
    (child,) = rig.dumps("child")
    for dump in (php, child):
        environ = dict(
            item.split("=", 1) for item in dump.read_bytes().decode().split("\0") if "=" in item
        )
        assert environ["PULSED_STATE_DIR"] == str(rig.state)  # a real environment was read
        assert "PULSE_HEARTBEAT_SECRET" not in environ and "TELEGRAM_BOT_TOKEN" not in environ
    assert b"pulsed._identity_child" in child.with_suffix(".cmdline").read_bytes()
    (failed,) = result.named("identity.failed")  # PULSED_TEST_CHILD=exit: no aiogram import
    assert failed["kind"] == "child" and failed["kept"] is None


# --- every test asserts something itself ---------------------------------------------


def _asserts(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the body holds an ``assert``, ``pytest.raises`` or ``pytest.warns`` itself.

    A call to a helper does not count: a helper may assert nothing, or stop asserting
    what the test's name promises, and the test would stay green.
    """
    for node in ast.walk(function):
        if isinstance(node, ast.Assert):
            return True
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "pytest"
            and node.attr in ("raises", "warns")
        ):
            return True
    return False


def functions_without_an_assertion(source: str, where: str) -> list[str]:
    return [
        f"{where}:{node.lineno} {node.name}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test")  # what pytest collects
        and not _asserts(node)
    ]


def test_the_scan_for_assertions_tells_a_test_that_only_calls_a_helper() -> None:
    source = (
        "def test_calls_a_helper():\n    check()\n"
        "def test_asserts():\n    assert check()\n"
        "def test_expects_an_error():\n    with pytest.raises(ValueError):\n        check()\n"
    )
    assert functions_without_an_assertion(source, "x.py") == ["x.py:1 test_calls_a_helper"]


def test_every_test_function_asserts_something_of_its_own() -> None:
    missing = [
        hit
        for path in sorted(TESTS.rglob("test_*.py"))
        for hit in functions_without_an_assertion(path.read_text(), str(path.relative_to(TESTS)))
    ]
    assert missing == [], "tests with no assertion of their own:\n" + "\n".join(missing)
