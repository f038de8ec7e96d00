"""docs/admin-panel.md's PHP function, run by php-cli on a status file pulsed wrote (§11)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pulsed import _publish, _status
from pulsed._status import ShopView
from tests.support.figures import HOUR, NOW, VIEWS

REPO = Path(__file__).resolve().parent.parent
FUNCTION = REPO / "docs" / "admin-panel.php"
PAGE = REPO / "docs" / "admin-panel.md"

DRIVER = """<?php
require $argv[1];
echo json_encode(pulsed_heartbeat_figures($argv[2], $argv[3], (int) $argv[4]));
"""


@pytest.fixture(scope="module")
def php() -> str:
    found = shutil.which("php")
    if found is None:
        if os.environ.get("PULSED_REQUIRE_PHP"):
            pytest.fail("PULSED_REQUIRE_PHP is set but there is no php on PATH")
        pytest.skip("no php here; CI installs php-cli and sets PULSED_REQUIRE_PHP")
    return found


def figures(php: str, tmp_path: Path, status: Path, shop: str, now: float, *ini: str) -> Any:
    driver = tmp_path / "driver.php"
    driver.write_text(DRIVER)
    # -n: no php.ini, so a host's settings change nothing; UTC: times as the tests expect.
    options = ["-n", "-d", "date.timezone=UTC", *ini]
    done = subprocess.run(
        [php, *options, str(driver), str(FUNCTION), str(status), shop, str(int(now))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stderr == ""
    return json.loads(done.stdout)


def written(tmp_path: Path, *views: ShopView, now: float = NOW) -> Path:
    """A status file as the daemon writes it: its own writer, a real document."""
    status = tmp_path / "status.json"
    assert _publish.publish(views, now, status_file=status, metrics_file=None, version="0.9.0")
    return status


def test_the_page_shows_the_function_verbatim() -> None:
    page = PAGE.read_text(encoding="utf-8")
    blocks = re.findall(r"```php\n(.*?)```", page, re.DOTALL)
    assert blocks == [FUNCTION.read_text(encoding="utf-8")]


def test_a_healthy_shop_in_figures(php: str, tmp_path: Path) -> None:
    status = written(tmp_path, VIEWS["healthy"], VIEWS["busy"])
    got = figures(php, tmp_path, status, "default", NOW)
    assert got == {
        "last_heartbeat": int(NOW - 12 * 60),
        "delivered_7d": 1,
        "next_due": int(NOW + 48 * 60),
        "failures_in_a_row": 0,
        "line": "last heartbeat 12 minutes ago, 100 % delivered over 7 days, next at 08:48",
    }
    busy = figures(php, tmp_path, status, "eu-shop_2", NOW)
    assert busy["line"] == "last heartbeat 12 minutes ago, 89.8 % delivered over 7 days, next now"


@pytest.mark.parametrize("which", ["fresh", "healthy", "busy"])
@pytest.mark.parametrize(
    "later", [0, 59, 60, 119 * 60 - 721, 2 * HOUR, 47 * HOUR, 3 * 86400, -3 * 86400]
)
def test_php_says_what_pulsed_status_says(
    php: str, tmp_path: Path, which: str, later: float
) -> None:
    """The admin page's line is the summary `pulsed status` prints, in the shop's time zone."""
    view = VIEWS[which]
    if later < 0:  # a next heartbeat days away: shown with its date
        view = ShopView(view.name, view.domain, view.state, NOW - later)
    status = written(tmp_path, view)
    now = NOW + max(later, 0)
    (shop,) = json.loads(status.read_text())["shops"]
    expected = _status.one_line(shop, now).removesuffix(" UTC")
    assert figures(php, tmp_path, status, view.name, now)["line"] == expected


def test_no_file_no_shop_or_open_basedir_is_null(php: str, tmp_path: Path) -> None:
    status = written(tmp_path, VIEWS["healthy"])
    assert figures(php, tmp_path, tmp_path / "absent.json", "default", NOW) is None
    assert figures(php, tmp_path, status, "other", NOW) is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # The web server's open_basedir must list the status file's folder, or PHP refuses it.
    refused = figures(
        php,
        tmp_path,
        status,
        "default",
        NOW,
        "-d",
        f"open_basedir={elsewhere}:{FUNCTION.parent}:{tmp_path / 'driver.php'}",
    )
    assert refused is None


def test_a_file_that_is_not_a_status_document_is_null(php: str, tmp_path: Path) -> None:
    for content in ("", "{", "[]", '{"schema": 2, "shops": []}', '{"schema": 1, "shops": 3}'):
        (tmp_path / "bad.json").write_text(content)
        assert figures(php, tmp_path, tmp_path / "bad.json", "default", NOW) is None


def test_the_function_reads_the_status_file_a_real_daemon_wrote(
    php: str, tmp_path: Path, shop: Any, receiver: Any
) -> None:
    """The whole path: `pulsed once` writes the file, php-cli reads what an admin page shows."""
    from tests.support.process import run_pulsed

    status = tmp_path / "run" / "status.json"
    status.parent.mkdir()
    env = {**shop.env, "PULSED_STATUS_FILE": str(status)}
    code, _, err = run_pulsed(["once"], env)
    assert code == 0, err
    assert status.stat().st_mode & 0o777 == 0o644
    now = json.loads(status.read_text())["shops"][0]
    got = figures(php, tmp_path, status, "default", _status._parse_time(now["last_success"]) or 0)
    assert got["line"].startswith("last heartbeat less than a minute ago, 100 % delivered")


# --- a status file that lies about its types (issue 16, row 13) -------------------


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("last_success", ["2026-11-29T13:05:00Z"], "last_success is not a time"),
        ("last_success", {"a": 1}, "last_success is not a time"),
        ("last_success", 1800000000, "last_success is not a time"),
        ("last_success", "not a time at all", "last_success is not a time"),
        ("next_due", ["x"], "next_due is not a time"),
        ("delivered_share_7d", "0.5", "delivered_share_7d is not a share"),
        ("delivered_share_7d", "abc", "delivered_share_7d is not a share"),
        ("delivered_share_7d", [1], "delivered_share_7d is not a share"),
        ("delivered_share_7d", 5, "delivered_share_7d is not a share"),
        ("delivered_share_7d", -0.1, "delivered_share_7d is not a share"),
        ("delivered_share_7d", True, "delivered_share_7d is not a share"),
        ("failures_in_a_row", "3", "failures_in_a_row is not a count"),
        ("failures_in_a_row", [3], "failures_in_a_row is not a count"),
        ("failures_in_a_row", -1, "failures_in_a_row is not a count"),
        ("failures_in_a_row", 2.5, "failures_in_a_row is not a count"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_problem_line_never_a_fatal_error(
    php: str, tmp_path: Path, field: str, value: object, said: str
) -> None:
    doc = json.loads(written(tmp_path, VIEWS["busy"]).read_text())
    doc["shops"][0][field] = value
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    got = figures(php, tmp_path, forged, "eu-shop_2", NOW)  # exit 0, nothing on stderr
    assert got["line"].startswith("status file malformed: " + said), got
    assert (got["last_heartbeat"], got["delivered_7d"], got["failures_in_a_row"]) == (
        None,
        None,
        None,
    )


def test_a_disabled_shop_says_what_is_wrong_with_its_last_figures(php: str, tmp_path: Path) -> None:
    kept = VIEWS["healthy"]
    off = ShopView(kept.name, None, kept.state, None, "disabled", "shop.root")
    got = figures(php, tmp_path, written(tmp_path, off), kept.name, NOW)
    assert got["line"] == (
        "heartbeat off: pulsed cannot work with this shop's shop.root (run pulsed check); "
        "last heartbeat 12 minutes ago, 100 % delivered over 7 days"
    )
    assert got["last_heartbeat"] == int(NOW - 12 * 60) and got["next_due"] is None


def test_a_problem_setting_that_is_no_setting_name_is_malformed(php: str, tmp_path: Path) -> None:
    doc = _status.document([VIEWS["healthy"]], NOW)
    doc["shops"][0].update(problem="disabled", problem_setting="<script>")
    status = tmp_path / "status.json"
    status.write_text(json.dumps(doc))
    got = figures(php, tmp_path, status, VIEWS["healthy"].name, NOW)
    assert got["line"] == "status file malformed: problem_setting is not a setting name"
