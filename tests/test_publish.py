"""The status and metrics files on real files: atomic, 0644, one warning when refused (§11)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsed import _publish, _status
from pulsed import _state as st
from pulsed._status import ShopView
from tests.support.figures import NOW, SCHEMA, VERSIONS, VIEWS

SHOPS = [VIEWS["healthy"], VIEWS["busy"]]


def test_both_files_are_written_0644_whatever_the_umask(tmp_path: Path) -> None:
    status, metrics = tmp_path / "status.json", tmp_path / "pulsed.prom"
    old = os.umask(0o077)  # as under the units' UMask=0077
    try:
        assert _publish.publish(
            SHOPS, NOW, status_file=status, metrics_file=metrics, version="0.9.0"
        )
    finally:
        os.umask(old)
    for path in (status, metrics):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
    doc = json.loads(status.read_text(encoding="ascii"))
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc == _status.document(SHOPS, NOW)
    families = {f.name for f in text_string_to_metric_families(metrics.read_text())}
    assert "pulsed_heartbeats_sent" in families
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pulsed.prom", "status.json"]


def test_nothing_configured_writes_nothing(tmp_path: Path) -> None:
    assert _publish.publish(SHOPS, NOW, status_file=None, metrics_file=None, version="0.9.0")
    assert list(tmp_path.iterdir()) == []


def test_files_that_cannot_be_written_are_one_warning_and_no_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status = tmp_path / "absent" / "status.json"
    metrics = tmp_path / "pulsed.prom"
    metrics.mkdir()  # a folder where the file should be: rename refuses
    ok = _publish.publish(SHOPS, NOW, status_file=status, metrics_file=metrics, version="0.9.0")
    assert ok is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.event for r in warnings] == ["status.unwritable"]  # type: ignore[attr-defined]
    # Each file named with its setting, whether its folder was refused or its write failed.
    assert f"daemon.status_file {status}: " in warnings[0].getMessage()
    assert f"daemon.metrics_file {metrics}: " in warnings[0].getMessage()
    assert metrics.is_dir() and not status.parent.exists()


def test_one_file_refused_still_writes_the_other(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    ok = _publish.publish(
        SHOPS, NOW, status_file=status, metrics_file=tmp_path / "no" / "m.prom", version="0"
    )
    assert ok is False
    assert json.loads(status.read_text())["schema"] == 1


def test_the_status_file_is_json_indented_by_two_and_ends_with_a_newline(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    _publish.publish(SHOPS, NOW, status_file=status, metrics_file=None, version="0")
    expected = json.dumps(_status.document(SHOPS, NOW), indent=2) + "\n"
    assert status.read_text(encoding="ascii") == expected


def test_a_value_json_cannot_hold_is_refused_not_written_as_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        _publish.status_bytes({"uptime": float("nan")})


@pytest.mark.parametrize("which", ["status", "metrics"])
def test_one_file_configured_is_written_alone(tmp_path: Path, which: str) -> None:
    path = tmp_path / which
    files = {"status_file": None, "metrics_file": None, f"{which}_file": path}
    assert _publish.publish(SHOPS, NOW, version="0", **files)
    assert [p.name for p in tmp_path.iterdir()] == [which]


def test_the_warning_lists_each_refused_file_and_says_heartbeats_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status, metrics = tmp_path / "no" / "status.json", tmp_path / "no" / "m.prom"
    _publish.publish(SHOPS, NOW, status_file=status, metrics_file=metrics, version="0")
    (warning,) = caplog.records
    errors = warning.errors  # type: ignore[attr-defined]
    assert len(errors) == 2 and str(status) in errors[0] and str(metrics) in errors[1]
    assert warning.getMessage() == (
        f"status cannot be written ({errors[0]}; {errors[1]}); heartbeats are not affected"
    )


# --- nothing a peer wrote reaches the public file (issue 16, row 4) ---------------

ECHOED = (
    'status: HTTP 422 {"detail":[{"input":{"php_version":"8.2.7","module_version":"1.4.0",'
    '"ecommerce_version":"4.0.2.3","domain":"shop.example"}}]}'
)


def _echoed_view() -> ShopView:
    state = st.failed(
        st.State(), NOW - 60, ECHOED, 422, NOW + 300, reason="status", attempts=1, elapsed=0.1
    )
    return ShopView("echo", "shop.example", state, NOW + 300)


def test_the_status_file_says_the_reason_and_status_only_never_the_receivers_text(
    tmp_path: Path,
) -> None:
    status = tmp_path / "status.json"
    assert _publish.publish(
        [_echoed_view()], NOW, status_file=status, metrics_file=None, version="0.9.0"
    )
    written = status.read_text(encoding="ascii")
    (shop,) = json.loads(written)["shops"]
    assert shop["last_error"] == "status HTTP 422"
    assert [v for v in VERSIONS if v in written] == []
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(written))
    # status --json, for the operator, keeps the state's words
    (kept,) = _status.document([_echoed_view()], NOW)["shops"]
    assert kept["last_error"] == ECHOED


@pytest.mark.parametrize(
    ("error", "status", "shown"),
    [
        (None, 200, None),
        ("timeout: no complete answer in time", None, "timeout"),
        ("redirect: HTTP 302 to https://x.example/ not followed", 302, "redirect HTTP 302"),
        # a state written by hand (or an older pulsed) says anything: no word of it goes out
        ("8.2.7 secret words: HTTP 500", 500, "failed HTTP 500"),
        ("no colon at all", None, "failed"),
        ("status: HTTP 500", True, "status"),
    ],
)
def test_the_public_error_is_a_word_of_pulsed_and_a_status(
    error: str | None, status: object, shown: str | None
) -> None:
    assert _status.public_error(error, status) == shown


# --- a folder swapped after the start (issue 16, row 3) ---------------------------


@pytest.mark.parametrize("which", ["status", "metrics"])
@pytest.mark.parametrize("how", ["link", "open"])
def test_a_folder_swapped_for_a_link_or_opened_to_all_is_written_into_never(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, which: str, how: str
) -> None:
    target = tmp_path / "roots-folder"
    target.mkdir(mode=0o755)
    folder = tmp_path / "run"
    if how == "link":
        folder.symlink_to(target)
    else:
        folder.mkdir(mode=0o755)
        folder.chmod(0o777)
    path = folder / ("status.json" if which == "status" else "pulsed.prom")
    files = {"status_file": None, "metrics_file": None, f"{which}_file": path}
    with caplog.at_level("WARNING", logger="pulsed"):
        assert not _publish.publish(SHOPS, NOW, version="0.9.0", **files)
    assert list(target.iterdir()) == []
    if how == "open":
        assert list(folder.iterdir()) == []
    (warned,) = [r for r in caplog.records if getattr(r, "event", "") == "status.unwritable"]
    said = "symlink" if how == "link" else "writable by others"
    assert said in warned.getMessage()


def test_withdraw_removes_the_status_file_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status_file, metrics_file = tmp_path / "status.json", tmp_path / "pulsed.prom"
    _publish.publish(SHOPS, NOW, status_file=status_file, metrics_file=metrics_file, version="0")
    _publish.withdraw(status_file)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pulsed.prom"]
    with caplog.at_level("WARNING", logger="pulsed"):
        _publish.withdraw(status_file)  # already gone: nothing to say
        _publish.withdraw(None)
    assert caplog.records == []


def test_a_status_file_that_cannot_be_withdrawn_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    status_file = tmp_path / "status.json"
    status_file.mkdir()  # unlink() refuses a folder
    with caplog.at_level("WARNING", logger="pulsed"):
        _publish.withdraw(status_file)
    (warned,) = caplog.records
    error = f"daemon.status_file {status_file} cannot be removed: Is a directory"
    assert getattr(warned, "event", "") == "status.unwritable"
    assert getattr(warned, "errors", None) == [error]
    assert warned.getMessage() == (
        f"status cannot be withdrawn ({error}); it will say pulsed runs until the next start"
    )
