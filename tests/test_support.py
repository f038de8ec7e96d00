"""The test support checked: a clean secrets scan means something, and the stubs report
what they were given."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.lab import CLOSED_PORT_URL, SECRET, TOKEN, Lab
from tests.support.process import Result


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
