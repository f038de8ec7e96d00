"""The status and metrics files on real files: atomic, 0644, one warning when refused (§11)."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulsed import _metrics, _publish, _status, _timefmt
from pulsed import _state as st
from pulsed._status import ShopView
from tests.support.figures import HOUR, NOW, SCHEMA, VERSIONS, VIEWS

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


def test_the_status_file_is_compact_ascii_json_ending_with_a_newline(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    shops = [*SHOPS, replace(VIEWS["fresh"], name="zz", domain="bücher.example")]
    _publish.publish(shops, NOW, status_file=status, metrics_file=None, version="0")
    document = _status.public(_status.document(shops, NOW))
    # The C encoder's compact form; ASCII, the domain's ü escaped for any reader.
    expected = json.dumps(document, separators=(",", ":")) + "\n"
    assert status.read_bytes() == expected.encode("ascii")
    assert '"domain":"b\\u00fccher.example"' in expected


def test_a_value_json_cannot_hold_is_refused_not_written_as_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        _publish.entry({"last_error": None, "last_status": None, "uptime": float("nan")})


def test_no_shop_is_an_empty_list() -> None:
    empty = b'{"schema":1,"generated_at":"2027-01-15T08:00:00Z","shops":[]}\n'
    assert _publish.status_bytes([], NOW) == empty


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


# --- each shop's pieces kept between writes --------------------------------------


def rendered_shops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the shops whose entry of the status file is made from now on."""
    made: list[str] = []
    real = _publish.entry

    def entry(shop_doc: dict[str, Any]) -> bytes:
        made.append(shop_doc["name"])
        return real(shop_doc)

    monkeypatch.setattr(_publish, "entry", entry)
    return made


def both(tmp_path: Path, clock: list[float]) -> _publish.Publisher:
    return _publish.Publisher(
        status_file=tmp_path / "status.json",
        metrics_file=tmp_path / "pulsed.prom",
        version="0.9.0",
        clock=lambda: clock[0],
    )


def a_and_b_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], list[float], _publish.Publisher]:
    """Both files kept for shops a and b, rendered at ``NOW``; the names of the shops
    rendered from now on, and the clock, which the test moves."""
    made = rendered_shops(monkeypatch)
    clock = [NOW]
    publisher = both(tmp_path, clock)
    publisher.sync([named("a"), named("b")])
    return made, clock, publisher


def written(tmp_path: Path) -> tuple[dict[str, Any], str]:
    status = json.loads((tmp_path / "status.json").read_text(encoding="ascii"))
    return status, (tmp_path / "pulsed.prom").read_text()


def expected(views: list[ShopView], now: float) -> tuple[dict[str, Any], str]:
    document = _status.document(views, now)
    return _status.public(document), _metrics.render(document, "0.9.0")


def named(name: str, view: ShopView = VIEWS["healthy"]) -> ShopView:
    return replace(view, name=name)


def sent_again(view: ShopView, at: float) -> ShopView:
    state = st.succeeded(view.state, at, 200, at + HOUR, attempts=1, elapsed=0.2)
    return replace(view, state=state, next_due=at + HOUR)


def test_a_write_renders_no_shop_and_a_change_renders_that_shop_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = rendered_shops(monkeypatch)
    publisher = both(tmp_path, [NOW])
    views = [named("a"), named("b", VIEWS["busy"]), named("c")]
    publisher.sync(views)
    assert made == ["a", "b", "c"]
    assert publisher.write() and publisher.write()
    assert made == ["a", "b", "c"]  # writes join what is kept
    views[1] = sent_again(views[1], NOW)
    publisher.update([views[0], views[1]])  # a as it was: nothing to render again
    assert made == ["a", "b", "c", "b"]
    assert publisher.write()
    assert written(tmp_path) == expected(views, NOW)


def test_the_files_list_the_shops_by_name_as_they_come_and_go(tmp_path: Path) -> None:
    publisher = both(tmp_path, [NOW])
    publisher.sync([named("c"), named("a")])
    publisher.update([named("b")])  # a shop seen first after the start
    publisher.write()
    assert written(tmp_path) == expected([named("a"), named("b"), named("c")], NOW)
    publisher.sync([named("c"), named("b")])  # a reload removed a
    publisher.write()
    assert written(tmp_path) == expected([named("b"), named("c")], NOW)


def test_the_header_is_the_writes_and_a_piece_an_hour_old_is_rendered_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made, clock, publisher = a_and_b_rendered(tmp_path, monkeypatch)
    clock[0] = NOW + 100
    b = sent_again(named("b"), NOW + 100)
    publisher.update([b])
    assert made == ["a", "b", "b"]
    # An hour less a second: the shares are as rendered, the header is now.
    clock[0] = NOW + _publish.RENDER_AGE - 1
    publisher.write()
    status, _ = written(tmp_path)
    assert status["generated_at"] == _timefmt.rfc3339(clock[0])
    assert [s["deliveries_24h"] for s in status["shops"]] == [24, 25]
    assert made == ["a", "b", "b"]
    # An hour: a is rendered again (a delivery left its 24 h), b was rendered since.
    clock[0] = NOW + _publish.RENDER_AGE
    publisher.write()
    assert made == ["a", "b", "b", "a"]
    status, _ = written(tmp_path)
    assert status["shops"][0] == expected([named("a")], clock[0])[0]["shops"][0]
    assert status["shops"][0]["deliveries_24h"] == 23
    publisher.write()
    assert made == ["a", "b", "b", "a"]  # once, not at every write after
    clock[0] = NOW + 100 + _publish.RENDER_AGE
    publisher.write()
    assert made == ["a", "b", "b", "a", "b"]
    assert written(tmp_path) == expected([named("a"), b], clock[0])


def test_a_shop_removed_is_not_brought_back_when_its_piece_is_an_hour_old(
    tmp_path: Path,
) -> None:
    clock = [NOW]
    publisher = both(tmp_path, clock)
    publisher.sync([named("a"), named("b")])
    publisher.sync([named("b")])
    clock[0] = NOW + _publish.RENDER_AGE
    publisher.write()
    assert written(tmp_path) == expected([named("b")], clock[0])


@pytest.mark.parametrize("which", ["status", "metrics"])
def test_only_the_configured_files_pieces_are_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    def never(*_: object) -> Any:
        raise AssertionError("a piece of a file that is not written")

    other = (_metrics, "samples") if which == "status" else (_publish, "entry")
    monkeypatch.setattr(*other, never)
    path = tmp_path / which
    files = {"status_file": None, "metrics_file": None, f"{which}_file": path}
    publisher = _publish.Publisher(version="0.9.0", clock=lambda: NOW, **files)
    publisher.sync(SHOPS)
    assert publisher.write()
    document = _status.document(SHOPS, NOW)
    if which == "status":
        assert json.loads(path.read_text()) == _status.public(document)
    else:
        assert path.read_text() == _metrics.render(document, "0.9.0")


@pytest.mark.parametrize("which", ["status", "metrics"])
def test_a_shop_removed_leaves_the_one_file_written(tmp_path: Path, which: str) -> None:
    path = tmp_path / which
    files = {"status_file": None, "metrics_file": None, f"{which}_file": path}
    publisher = _publish.Publisher(version="0.9.0", clock=lambda: NOW, **files)
    publisher.sync([named("a"), named("b")])
    publisher.sync([named("b")])
    assert publisher.write()
    document = _status.document([named("b")], NOW)
    if which == "status":
        assert json.loads(path.read_text()) == _status.public(document)
    else:
        assert path.read_text() == _metrics.render(document, "0.9.0")


def test_a_shop_rendered_every_second_keeps_the_renewals_to_the_shops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shop at a 1 s interval renders 3,600 times before its first piece is an hour
    # old: each rendering's entry kept until then grew the daemon by 50 KiB a minute.
    made, clock, publisher = a_and_b_rendered(tmp_path, monkeypatch)
    b = named("b")
    for second in range(1, 5000):
        clock[0] = NOW + second
        b = sent_again(b, clock[0])
        publisher.update([b])
        assert len(publisher._renewals) <= 2 * 2 + _publish.SPARE_RENEWALS + 1
    # What was dropped was only what newer renderings replaced: a, rendered once,
    # still comes up an hour after.
    made.clear()
    clock[0] = NOW + _publish.RENDER_AGE
    publisher.write()
    assert made == ["a"]
    assert written(tmp_path) == expected([named("a"), b], clock[0])
