"""``pulsed`` as a real process against a real receiver: the whole contract from outside.

Each test starts the command with a clean environment, a copied example shop, a
stub php and its own state folder, and waits on log events — never on a sleep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from itertools import pairwise
from pathlib import Path

import pytest

from devtools import faultserver as fs
from devtools.fake_telegram import FakeTelegram
from devtools.receiver import Receiver
from pulsed import _commands, _timefmt
from pulsed._identity import fingerprint
from pulsed._state import Identity, State, StateStore
from pulsed.verify import verify_heartbeat
from tests.support.nobody import as_nobody
from tests.support.process import SECRET, TOKEN, Pulsed, Shop, events_of, run_pulsed


def no_secret_anywhere(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "ABC-secret" not in text


def test_run_sends_a_signed_heartbeat_saves_state_and_stops_on_sigterm(
    shop: Shop, receiver: Receiver
) -> None:
    daemon = Pulsed(["run"], shop.env)
    (sent,) = daemon.wait_for("heartbeat.sent")
    (beat,) = receiver.wait_for_accepted(1)
    assert beat == {
        "domain": "demo-shop.example",
        "bot_username": None,
        "php_version": "8.2.7",
        "module_version": "1.4.0",
        "ecommerce_version": "3.0.3.8",
        "ecommerce_core_version": "ocStore 3.0.3.8",
        "timestamp": beat["timestamp"],
    }
    (request,) = receiver.server.requests
    assert request.headers["x-megapay-version"] == "1.4.0"
    assert (sent["status"], sent["attempts"]) == (200, 1)
    assert daemon.named("identity.missing")  # no token: a warning, and null
    state = shop.read_state()
    assert state["last_success"] and state["consecutive_failures"] == 0
    start = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.finish() == 0
    assert time.monotonic() - start < 3
    daemon.wait_for("daemon.stopped")
    no_secret_anywhere(*daemon.lines, (shop.state / "state.json").read_text())


def test_restarts_never_send_before_due(shop: Shop, receiver: Receiver) -> None:
    first = Pulsed(["run"], shop.env)
    first.wait_for("heartbeat.sent")
    assert first.stop() == 0
    for _ in range(3):
        again = Pulsed(["run"], shop.env)
        (started,) = again.wait_for("daemon.started")
        assert again.stop() == 0
        assert started["next_due"] > receiver.accepted[0]["timestamp"]
        assert not again.named("heartbeat.sent")
    assert len(receiver.accepted) == 1
    code, _, err = run_pulsed(["once"], shop.env)
    assert code == 0
    assert [e["event"] for e in events_of(err)] == ["heartbeat.skipped"]
    assert len(receiver.accepted) == 1


def test_small_interval_sends_each_interval(shop: Shop, receiver: Receiver) -> None:
    env = dict(shop.env, PULSED_INTERVAL="1")
    daemon = Pulsed(["run"], env)
    daemon.wait_for("heartbeat.sent", count=3)
    assert daemon.stop() == 0
    stamps = [b["timestamp"] for b in receiver.wait_for_accepted(3)]
    assert len(set(stamps[:3])) == 3
    received = [r.received_at for r in receiver.server.requests]
    # On time, the schedule is kept (due + interval), so two may come closer than the
    # interval by at most its grace, a tenth of it (contract §5).
    assert all(b - a >= 0.89 for a, b in pairwise(received))


def test_second_instance_and_once_refuse_while_a_daemon_runs(
    shop: Shop, receiver: Receiver
) -> None:
    daemon = Pulsed(["run"], shop.env)
    daemon.wait_for("heartbeat.sent")
    pid = daemon.proc.pid
    second = Pulsed(["run"], shop.env)
    assert second.finish() == 75
    (locked,) = second.named("state.locked")
    assert f"pid {pid}" in locked["message"]
    code, _, err = run_pulsed(["once", "--force"], shop.env)
    assert code == 75 and f"pid {pid}" in err
    # Readers always work.
    assert run_pulsed(["status"], shop.env).code == 0
    assert run_pulsed(["check"], shop.env).code == 0
    code, out, _ = run_pulsed(["once", "--dry-run"], shop.env)
    assert code == 0 and "X-Pulse-Signature: sha256=" in out
    assert daemon.stop() == 0
    assert len(receiver.accepted) == 1


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"PULSE_API_HOST": None}, "pulse.api_host"),
        ({"PULSE_API_HOST": "http://pulse.example.com"}, "pulse.api_host"),
        ({"PULSE_HEARTBEAT_SECRET": None, "PULSE_API_KEY": "legacy"}, "pulse.heartbeat_secret"),
        ({"OPENCART_ROOT": "/nonexistent"}, "shop.domain"),
        ({"PULSED_INTERVAL": "hourly"}, "daemon.interval"),
        ({"PULSED_CONFIG": "/nonexistent/pulsed.toml"}, "config"),
    ],
)
@pytest.mark.parametrize("command", ["run", "once", "check"])
def test_config_errors_exit_78_with_one_line(
    shop: Shop, change: dict[str, str | None], setting: str, command: str
) -> None:
    env = dict(shop.env)
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code, out, err = run_pulsed([command], env)
    assert code == 78
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    (event,) = events_of(err)
    assert event["event"] == "config.invalid" and event["setting"] == setting
    assert setting in event["message"]
    no_secret_anywhere(out, err)


def test_secret_on_the_command_line_is_refused_and_not_echoed(shop: Shop) -> None:
    code, out, err = run_pulsed(["run", "--heartbeat-secret", "topsecret-argv"], shop.env)
    assert code == 78 and "topsecret-argv" not in out + err
    code, out, err = run_pulsed(["run", "--bogus=topsecret-argv"], shop.env)
    assert code == 2 and "topsecret-argv" not in out + err and "--bogus" in err


def test_once_sends_when_due_and_reports_failure_with_75(shop: Shop, receiver: Receiver) -> None:
    code, _, err = run_pulsed(["once"], shop.env)
    assert code == 0
    assert [e["event"] for e in events_of(err)] == ["identity.missing", "heartbeat.sent"]
    code, _, _ = run_pulsed(["once", "--force"], shop.env)
    assert code == 0 and len(receiver.accepted) == 2
    receiver.server.plan(then=fs.status(401))
    code, _, err = run_pulsed(["once", "--force"], shop.env)
    assert code == 75
    (failed,) = [e for e in events_of(err) if e["event"] == "heartbeat.failed"]
    assert failed["status"] == 401 and failed["attempts"] == 1 and failed["level"] == "warning"
    assert shop.read_state()["consecutive_failures"] == 1


def test_dry_run_prints_a_verifiable_request_and_writes_nothing(
    shop: Shop, receiver: Receiver
) -> None:
    code, out, err = run_pulsed(["once", "--dry-run"], shop.env)
    assert code == 0
    head, _, body = out.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == f"POST {receiver.url}/heartbeat"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    # Everything after the blank line is the signed body, byte for byte: no newline added,
    # so `pulsed once --dry-run | tail -c +N | curl --data-binary @-` sends what was signed.
    payload = verify_heartbeat(SECRET, body.encode(), headers["X-Pulse-Signature"])
    assert body.endswith("}")
    assert payload["domain"] == "demo-shop.example"
    assert headers["X-MEGAPAY-VERSION"] == "1.4.0"
    assert receiver.server.requests == []
    assert not shop.state.exists()
    no_secret_anywhere(out, err)


def test_status_reads_the_state(shop: Shop, receiver: Receiver) -> None:
    code, out, _ = run_pulsed(["status"], shop.env)
    assert code == 0 and "no heartbeat yet" in out
    run_pulsed(["once"], shop.env)
    code, out, _ = run_pulsed(
        ["status", "--json"],
        {
            "PULSED_STATE_DIR": str(shop.state),
            "PATH": shop.env["PATH"],
            "PYTHONPATH": shop.env["PYTHONPATH"],
        },
    )
    (doc,) = json.loads(out)["shops"]
    assert code == 0
    assert doc["name"] == "default" and doc["heartbeats_sent"] == 1
    # The body is stamped before it is sent, the success after: the same second or the next.
    stamped = _timefmt.parse(receiver.accepted[0]["timestamp"])
    succeeded = _timefmt.parse(doc["last_success"])
    assert 0 <= succeeded - stamped <= 5
    assert doc["failures_in_a_row"] == 0 and doc["next_due"] > doc["last_success"]
    code, out, _ = run_pulsed(["status"], shop.env)
    assert "shop default (demo-shop.example)" in out
    assert "last success:" in out and "next due:" in out
    assert "100 % delivered over 7 days" in out


def test_check_shows_what_would_be_sent_without_secrets(shop: Shop) -> None:
    code, out, err = run_pulsed(
        ["check"],
        dict(shop.env, TELEGRAM_BOT_TOKEN="1:ABC-secret", TELEGRAM_API_BASE="http://127.0.0.1:9"),
    )
    assert code == 0
    assert "configuration: ok" in out and '"module_version": "1.4.0"' in out
    assert "(set, not shown)" in out
    no_secret_anywhere(out, err)


def test_version() -> None:
    code, out, _ = run_pulsed(["--version"], {"PATH": os.environ["PATH"]})
    assert code == 0 and out.startswith("pulsed ")


def test_receiver_down_is_a_warning_and_the_daemon_goes_on(shop: Shop, free_tcp_port: int) -> None:
    env = dict(shop.env, PULSE_API_HOST=f"http://127.0.0.1:{free_tcp_port}")
    daemon = Pulsed(["run"], env)
    (failed,) = daemon.wait_for("heartbeat.failed")
    assert failed["level"] == "warning" and failed["reason"] == "connect"
    assert failed["attempts"] == 3 and failed["next_due"]
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0
    assert shop.read_state()["consecutive_failures"] == 1


def test_corrupt_state_is_moved_aside_and_the_heartbeat_goes(
    shop: Shop, receiver: Receiver
) -> None:
    shop.state.mkdir()
    (shop.state / "state.json").write_text("{not json")
    daemon = Pulsed(["run"], shop.env)
    daemon.wait_for("state.corrupt")
    daemon.wait_for("heartbeat.sent")
    assert daemon.stop() == 0
    assert len(list(shop.state.glob("state.json.corrupt-*"))) == 1


def test_future_last_success_means_the_clock_went_back(shop: Shop, receiver: Receiver) -> None:
    shop.state.mkdir()
    (shop.state / "state.json").write_text(
        json.dumps(
            {
                "version": 1,
                "last_success": "2099-01-01T00:00:00Z",
                "next_due": "2099-01-01T01:00:00Z",
            }
        )
    )
    daemon = Pulsed(["run"], shop.env)
    daemon.wait_for("state.clock_future")
    daemon.wait_for("heartbeat.sent")
    assert daemon.stop() == 0


def test_unwritable_state_keeps_running_and_warns(shop: Shop, receiver: Receiver) -> None:
    # A file where the folder should be: no write can succeed, even as root.
    shop.state.write_text("not a folder")
    daemon = Pulsed(["run"], dict(shop.env, PULSED_INTERVAL="1"))
    daemon.wait_for("heartbeat.sent", count=2)
    warnings = daemon.wait_for("state.unwritable", count=2)
    assert "restart" in warnings[0]["message"]
    assert daemon.stop() == 0


def test_sighup_reloads_and_keeps_the_old_config_when_the_new_one_is_bad(
    shop: Shop, receiver: Receiver, tmp_path: Path
) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_text("[daemon]\ninterval = 3600\n")
    env = dict(shop.env, PULSED_CONFIG=str(conf))
    daemon = Pulsed(["run"], env)
    daemon.wait_for("heartbeat.sent")
    conf.write_text("[daemon\ninterval = ")
    daemon.signal(signal.SIGHUP)
    (refused,) = daemon.wait_for("config.reload_failed")
    assert refused["level"] == "warning" and refused["setting"] == "config"
    assert daemon.proc.poll() is None
    conf.write_text("[daemon]\ninterval = 1\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config.reloaded")
    daemon.wait_for("heartbeat.sent", count=2)  # the new interval is in force
    assert daemon.stop() == 0


def test_journald_priority_prefix_when_stderr_is_the_journal(shop: Shop, tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.touch()
    st = log.stat()
    env = dict(
        shop.env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}", PULSE_API_HOST="http://127.0.0.1:9"
    )
    daemon = Pulsed(["once"], env, stderr_path=log)
    assert daemon.finish(30) == 75
    lines = log.read_text().splitlines()
    assert lines and all(line[:3] in ("<4>", "<6>", "<3>", "<7>") for line in lines)
    failed = [line for line in lines if '"heartbeat.failed"' in line]
    assert failed and failed[0].startswith("<4>")
    # Without the match, plain JSON.
    daemon = Pulsed(["once"], dict(env, JOURNAL_STREAM="1:2"), stderr_path=log)
    daemon.finish(30)
    assert log.read_text().startswith("{")


def test_bot_identity_through_a_child_and_kept(
    shop: Shop, receiver: Receiver, tmp_path: Path
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram_bot_token").write_text(TOKEN + "\n")
    with FakeTelegram() as telegram:
        env = dict(shop.env, CREDENTIALS_DIRECTORY=str(creds), TELEGRAM_API_BASE=telegram.url)
        code, _, err = run_pulsed(["once"], env)
        assert code == 0, err
        assert receiver.accepted[0]["bot_username"] == "acme_shop_bot"
        assert telegram.calls == [TOKEN]
        code, _, err = run_pulsed(["once", "--force"], env)
        assert code == 0 and len(telegram.calls) == 1  # kept, not fetched again
        assert receiver.accepted[1]["bot_username"] == "acme_shop_bot"
        state_text = (shop.state / "state.json").read_text()
        assert json.loads(state_text)["identity"]["username"] == "acme_shop_bot"
        telegram.set_mode("unauthorized")
        (shop.state / "state.json").write_text(
            state_text.replace(
                json.loads(state_text)["identity"]["fetched_at"], "2020-01-01T00:00:00.000000Z"
            )
        )
        code, _, err = run_pulsed(["once", "--force"], env)
        assert code == 0 and len(telegram.calls) == 2
        (warning,) = [e for e in events_of(err) if e["event"] == "identity.failed"]
        assert warning["kind"] == "unauthorized" and warning["kept"] == "acme_shop_bot"
        assert receiver.accepted[2]["bot_username"] == "acme_shop_bot"
        no_secret_anywhere(err, state_text, (shop.state / "state.json").read_text())


def test_log_lines_are_json_with_time_level_message_event(shop: Shop, receiver: Receiver) -> None:
    code, _, err = run_pulsed(["once"], shop.env)
    assert code == 0
    for event in events_of(err):
        assert {"time", "level", "message", "event"} <= set(event)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])
        assert event["level"] in ("debug", "info", "warning", "error")
    assert len(err.strip().splitlines()) == len(events_of(err))


def test_log_level_filters(shop: Shop, receiver: Receiver) -> None:
    code, _, err = run_pulsed(["once"], dict(shop.env, PULSED_LOG_LEVEL="warning"))
    assert code == 0 and len(receiver.accepted) == 1
    assert [e["event"] for e in events_of(err)] == ["identity.missing"]


def status_without_permission(state_dir: Path, *, as_json: bool) -> tuple[int, str]:
    """``pulsed status`` by a user who may not read ``state_dir``."""
    if os.geteuid() != 0:
        state_dir.chmod(0)
    try:
        return as_nobody(lambda: _commands.status({"state-dir": str(state_dir)}, [], as_json))
    finally:
        state_dir.chmod(0o700)


def test_status_without_permission_says_so_and_how_to_get_it(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text('{"version": 1}')
    code, out = status_without_permission(state_dir, as_json=False)
    assert code == 0  # contract §6: status always exits 0
    assert "cannot be read" in out and "permission denied" in out, out
    assert "sudo pulsed status" in out, out
    code, out = status_without_permission(state_dir, as_json=True)
    doc = json.loads(out)
    assert code == 0
    (error,) = [e for e in doc["errors"] if "permission denied" in e]
    assert "sudo pulsed status" in error, doc
    assert doc["shops"][0]["problem"] == "unreadable"


def test_php_receives_no_secret_and_none_of_the_daemons_own_variables(
    shop: Shop, tmp_path: Path
) -> None:
    # What the child really got, read by the child itself: a filter that let everything
    # through would show here, whatever pulsed passes around internally.
    dump = tmp_path / "php.environ"
    shop.php.write_text(f"#!/bin/sh\ncat /proc/$$/environ > '{dump}'\nprintf 8.2.7\n")
    # A fresh identity for this token in the state: no identity child, only php.
    shop.state.mkdir(mode=0o700)
    StateStore(shop.state).save(
        State(identity=Identity("acme_bot", time.time(), fingerprint(TOKEN)))
    )
    empty = tmp_path / "credentials"
    empty.mkdir()
    env = dict(
        shop.env,
        TELEGRAM_BOT_TOKEN=TOKEN,
        PULSE_API_KEY="legacy-key-0042",
        CREDENTIALS_DIRECTORY=str(empty),
        NOTIFY_SOCKET="/nonexistent/notify",
        WATCHDOG_USEC="30000000",
        LISTEN_FDS="1",
        ECHOED_URL=f"https://example.invalid/?k={SECRET}",
        KEEP_ME="yes",
    )
    code, out, err = run_pulsed(["once", "--dry-run"], env)
    assert code == 0, err
    assert '"bot_username":"acme_bot"' in out.replace(" ", "")
    raw = dump.read_bytes()
    received = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    assert received["KEEP_ME"] == "yes" and received["PATH"] == env["PATH"]
    assert set(env) - set(received) == {
        "PULSE_HEARTBEAT_SECRET",
        "PULSE_API_KEY",
        "TELEGRAM_BOT_TOKEN",
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "LISTEN_FDS",
        "ECHOED_URL",
    }
    for secret in (SECRET, TOKEN, "legacy-key-0042"):
        assert secret.encode() not in raw


def test_status_json_with_an_unreadable_state_still_matches_the_schema(tmp_path: Path) -> None:
    import jsonschema

    schema = json.loads((Path(__file__).parent.parent / "docs/status.schema.json").read_text())
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    (state_dir / "state.json").write_text('{"version": 1}')
    code, out = status_without_permission(state_dir, as_json=True)
    assert code == 0
    jsonschema.Draft202012Validator(schema).validate(json.loads(out))
