"""Several shops in one daemon (contract §10), on real processes and a real receiver."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from devtools.receiver import Receiver
from pulsed import _state as st
from pulsed._toml import tomllib
from tests.support.host import Host
from tests.support.manager import Manager
from tests.support.process import SECRET, Pulsed, Shop, run_pulsed


@pytest.fixture
def host(tmp_path: Path, receiver: Receiver) -> Host:
    return Host(tmp_path, receiver.url, ["alpha", "beta"])


def domains(beats: list[dict[str, object]]) -> list[str]:
    return sorted(str(b["domain"]) for b in beats)


def test_each_shop_sends_signed_with_its_own_secret_and_logs_its_name(
    tmp_path: Path,
) -> None:
    with Receiver(SECRET, secrets={"alpha.example": "alpha's-own-secret"}) as receiver:
        host = Host(tmp_path, receiver.url, ["alpha", "beta"])
        host.secret("alpha", "alpha's-own-secret")
        code, _, err = run_pulsed(["once"], host.env)
        assert code == 0, err
        assert domains(receiver.accepted) == ["alpha.example", "beta.example"]
        assert receiver.rejected == []
    sent = [json.loads(line) for line in err.splitlines() if '"heartbeat.sent"' in line]
    assert sorted(e["shop"] for e in sent) == ["alpha", "beta"]


def test_a_shop_signed_with_the_wrong_secret_fails_alone(tmp_path: Path) -> None:
    # The receiver knows alpha by its own secret; without that credential alpha signs
    # with the shared one and is refused, while beta is delivered as before.
    with Receiver(SECRET, secrets={"alpha.example": "alpha's-own-secret"}) as receiver:
        host = Host(tmp_path, receiver.url, ["alpha", "beta"])
        code, _, _ = run_pulsed(["once"], host.env)
        assert code == 75
        assert domains(receiver.accepted) == ["beta.example"]
        assert [reason for reason, _ in receiver.rejected] == ["bad_signature"]


def test_a_broken_shop_is_disabled_and_the_others_run(host: Host, receiver: Receiver) -> None:
    host.write(["alpha", "beta"], extra={"broken": 'root = "/nonexistent/shop"'})
    daemon = Pulsed(["run"], host.env)
    daemon.wait_for("heartbeat.sent", count=2)
    (disabled,) = daemon.named("shop.disabled")
    assert (disabled["level"], disabled["shop"], disabled["setting"]) == (
        "error",
        "broken",
        "shop.domain",
    )
    assert daemon.stop() == 0
    assert domains(receiver.accepted) == ["alpha.example", "beta.example"]
    code, out, _ = run_pulsed(["check"], host.env)
    assert code == 78  # check refuses while any shop cannot work
    assert "  broken: cannot work: shop.domain" in out  # in the summary, one line a shop


def test_a_shop_that_breaks_on_reload_stays_in_every_listing(
    host: Host, receiver: Receiver, tmp_path: Path
) -> None:
    status_file, metrics_file = tmp_path / "run" / "status.json", tmp_path / "run" / "m.prom"
    status_file.parent.mkdir(mode=0o755)
    env = dict(host.env, PULSED_STATUS_FILE=str(status_file), PULSED_METRICS_FILE=str(metrics_file))
    manager = Manager(str(tmp_path / "notify"))
    daemon = Pulsed(["run"], dict(env, NOTIFY_SOCKET=manager.address))
    try:
        daemon.wait_for("heartbeat.sent", count=2)
        host.write(["alpha"], extra={"beta": 'root = "/nonexistent/shop"'})  # beta breaks
        daemon.proc.send_signal(signal.SIGHUP)
        line = manager.until_match("STATUS=", containing="disabled")
    finally:
        manager.sock.close()
    assert line.startswith("STATUS=2 shops: 1 ok, 1 disabled (beta); next "), line
    doc = json.loads(status_file.read_text())
    beta = next(s for s in doc["shops"] if s["name"] == "beta")
    assert (beta["problem"], beta["problem_setting"]) == ("disabled", "shop.domain")
    assert beta["heartbeats_sent"] == 1 and beta["last_success"] is not None  # kept figures
    assert beta["next_due"] is None
    assert "/nonexistent" not in status_file.read_text()  # no path in the public file
    metrics = metrics_file.read_text()
    assert 'pulsed_shop_up{shop="alpha"} 1' in metrics
    assert 'pulsed_shop_up{shop="beta"} 0' in metrics
    assert 'pulsed_heartbeats_sent_total{shop="beta"} 1' in metrics
    assert daemon.stop() == 0
    # A clean stop takes the status file back (the unit keeps the folder); the metrics
    # stay, to go stale rather than vanish.
    assert not status_file.exists()
    assert 'pulsed_shop_up{shop="beta"} 0' in metrics_file.read_text()
    code, out, _ = run_pulsed(["status"], host.env)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:3]}
    assert "disabled (shop.domain)" in rows["beta"] and "ok" in rows["alpha"], out
    assert "2 shops: 1 disabled, 1 ok" in out
    assert "shop beta: disabled: shop.domain: not set, and /nonexistent/shop" in out
    code, out, _ = run_pulsed(["status", "--failing", "--json"], host.env)
    assert [s["name"] for s in json.loads(out)["shops"]] == ["beta"]


def test_status_shows_every_domain_without_any_secret(host: Host, receiver: Receiver) -> None:
    env = {k: v for k, v in host.env.items() if k != "PULSE_HEARTBEAT_SECRET"}
    code, out, _ = run_pulsed(["status", "--json"], env)
    assert code == 0
    assert [(s["name"], s["domain"]) for s in json.loads(out)["shops"]] == [
        ("alpha", "alpha.example"),
        ("beta", "beta.example"),
    ]


def test_run_refuses_when_no_shop_can_work(host: Host) -> None:
    host.write([], extra={"broken": 'root = "/nonexistent/shop"'})
    code, _, err = run_pulsed(["run"], host.env)
    assert code == 78
    assert '"config.invalid"' in err and "no shop can work" in err


def public_files(host: Host, tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    status_file, metrics_file = tmp_path / "run" / "status.json", tmp_path / "run" / "m.prom"
    status_file.parent.mkdir(mode=0o755)
    env = dict(host.env, PULSED_STATUS_FILE=str(status_file), PULSED_METRICS_FILE=str(metrics_file))
    return env, status_file, metrics_file


def test_run_with_no_shop_that_can_work_says_so_in_its_files_before_it_exits_78(
    host: Host, receiver: Receiver, tmp_path: Path
) -> None:
    env, status_file, metrics_file = public_files(host, tmp_path)
    assert run_pulsed(["once"], host.env).code == 0  # alpha and beta have sent once
    host.write([], extra=dict.fromkeys(("alpha", "beta"), 'root = "/nonexistent/shop"'))
    code, _, err = run_pulsed(["run"], env)
    assert code == 78 and "no shop can work (2 disabled)" in err
    doc = json.loads(status_file.read_text())
    shops = {s["name"]: s for s in doc["shops"]}
    assert sorted(shops) == ["alpha", "beta"]
    for shop in shops.values():
        assert (shop["problem"], shop["problem_setting"]) == ("disabled", "shop.domain")
        assert shop["heartbeats_sent"] == 1 and shop["next_due"] is None  # kept figures
    assert "/nonexistent" not in status_file.read_text()
    metrics = metrics_file.read_text()
    assert 'pulsed_shop_up{shop="alpha"} 0' in metrics
    assert 'pulsed_shop_up{shop="beta"} 0' in metrics


def test_the_one_shop_configuration_that_cannot_work_says_so_in_its_status_file(
    tmp_path: Path,
) -> None:
    shop = Shop.create(tmp_path, "https://pulse.example")
    status_file = tmp_path / "run" / "status.json"
    status_file.parent.mkdir(mode=0o755)
    env = dict(shop.env, OPENCART_ROOT="/nonexistent/shop", PULSED_STATUS_FILE=str(status_file))
    code, _, err = run_pulsed(["run"], env)
    assert code == 78 and '"setting": "shop.domain"' in err
    ((only),) = json.loads(status_file.read_text())["shops"]
    assert (only["name"], only["problem"], only["problem_setting"]) == (
        "default",
        "disabled",
        "shop.domain",
    )


def test_a_refused_run_leaves_the_files_of_the_pulsed_that_holds_the_state_alone(
    host: Host, tmp_path: Path
) -> None:
    env, status_file, _ = public_files(host, tmp_path)
    status_file.write_text("the running daemon's view")
    host.write([], extra={"broken": 'root = "/nonexistent/shop"'})
    lock = st.StateLock(host.state)
    lock.acquire()  # as a running pulsed holds it
    try:
        code, _, err = run_pulsed(["run"], env)
    finally:
        lock.release()
    assert code == 78 and "no shop can work" in err
    assert status_file.read_text() == "the running daemon's view"


def test_sighup_adds_and_removes_shops_without_moving_the_others(
    host: Host, receiver: Receiver
) -> None:
    daemon = Pulsed(["run"], host.env)
    daemon.wait_for("heartbeat.sent", count=2)
    before = {name: host.state_of(name) for name in ("alpha", "beta")}
    host.write(["alpha", "beta", "gamma"])
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("heartbeat.sent", count=3)
    host.write(["gamma"])
    daemon.signal(signal.SIGHUP)
    daemon.wait_for("config.reloaded", count=2)
    assert daemon.stop() == 0
    assert domains(receiver.accepted) == ["alpha.example", "beta.example", "gamma.example"]
    # Neither reload touched the other shops' schedules.
    assert {name: host.state_of(name) for name in ("alpha", "beta")} == before


def test_a_kill_during_one_shops_delivery_repeats_nothing_of_the_other(tmp_path: Path) -> None:
    with Receiver(SECRET, hold={"alpha.example": 30.0}) as receiver:
        host = Host(tmp_path, receiver.url, ["alpha", "beta"])
        daemon = Pulsed(["run"], host.env)
        (sent,) = daemon.wait_for("heartbeat.sent")
        assert sent["shop"] == "beta"
        receiver.wait_for_accepted(2)  # alpha's is accepted, its answer held back
        daemon.kill()
        beta = host.state_of("beta")
        alpha = host.state_of("alpha")
        assert alpha is not None and alpha["pending"] is not None
        receiver.hold.clear()
        again = Pulsed(["run"], host.env)
        (resumed,) = again.wait_for("heartbeat.resumed")
        again.wait_for("heartbeat.sent")
        assert again.stop() == 0
        assert resumed["shop"] == "alpha"
        assert not [e for e in again.named("heartbeat.sent") if e["shop"] == "beta"]
        assert host.state_of("beta") == beta  # beta's heartbeat was neither repeated nor moved
        assert len(receiver.accepted) == 3
        assert domains(receiver.unique_accepted) == ["alpha.example", "beta.example"]


def test_restarts_send_nothing_early_for_any_shop(host: Host, receiver: Receiver) -> None:
    daemon = Pulsed(["run"], host.env)
    daemon.wait_for("heartbeat.sent", count=2)
    assert daemon.stop() == 0
    for _ in range(3):
        again = Pulsed(["run"], host.env)
        again.wait_for("daemon.started")
        assert again.stop() == 0
        assert not again.named("heartbeat.sent")
    assert len(receiver.accepted) == 2


def test_the_one_shop_configuration_and_its_old_state_continue_unchanged(
    tmp_path: Path, receiver: Receiver
) -> None:
    # A state written by the one-shop pulsed before shops existed (version 1, at the
    # top of the state folder), an hour's heartbeat sent 10 minutes ago.
    shop = Shop.create(tmp_path, receiver.url)
    shop.state.mkdir(mode=0o700)
    old = {
        "version": 1,
        "last_success": "2000-01-01T00:00:00Z",
        "next_due": None,
        "consecutive_failures": 0,
    }
    code, _, _ = run_pulsed(["once", "--force"], shop.env)
    assert code == 0
    sent = shop.read_state()
    old["last_success"] = sent["last_success"]
    (shop.state / "state.json").write_text(json.dumps(old))
    code, out, err = run_pulsed(["once"], shop.env)
    assert code == 0
    assert '"heartbeat.skipped"' in err  # not due: nothing sent early
    assert len(receiver.accepted) == 1
    assert st.shops_on_disk(shop.state) == ["default"]
    assert shop.read_state()["version"] == 1  # once changed nothing
    code, out, _ = run_pulsed(["status"], shop.env)
    assert "shop default (demo-shop.example)" in out


def test_once_and_status_take_shop_names(host: Host, receiver: Receiver) -> None:
    code, _, err = run_pulsed(["once", "--shop", "beta"], host.env)
    assert code == 0, err
    assert domains(receiver.accepted) == ["beta.example"]
    code, out, _ = run_pulsed(["status", "--json", "--shop", "beta"], host.env)
    (beta,) = json.loads(out)["shops"]
    assert (beta["name"], beta["heartbeats_sent"]) == ("beta", 1)
    code, _, err = run_pulsed(["once", "--shop", "nosuch"], host.env)
    assert code == 78 and "no shop named 'nosuch'" in err


def test_discover_prints_a_table_per_shop_and_stays_in_its_tree(tmp_path: Path) -> None:
    tree = tmp_path / "www"
    host = Host(tmp_path / "host", "http://127.0.0.1:9", ["alpha", "beta"])
    tree.mkdir()
    for name in ("alpha", "beta"):
        (tree / name).symlink_to(host.root(name))  # a symlink is not followed...
        (tree / f"{name}-copy").mkdir()
    copy = tree / "clients" / "a" / "public_html"
    shutil.copytree(host.root("alpha"), copy)
    # A domain of its own: one the configuration has already would be left out.
    (copy / "config.php").write_text("<?php define('HTTPS_SERVER', 'https://gamma.example/');")
    no_module = tree / "plain"
    shutil.copytree(host.root("beta"), no_module)
    shutil.rmtree(no_module / "system")
    code, out, _ = run_pulsed(["discover", str(tree)], host.env)
    assert code == 0
    found = tomllib.loads(out)["shops"]
    assert list(found) == ["gamma_example"]  # ...so only the real tree's shop is found
    assert found["gamma_example"]["root"] == str(copy)


def test_a_corrupt_state_found_at_start_names_its_shop(host: Host, receiver: Receiver) -> None:
    folder = st.shop_state_dir(host.state, "beta")
    folder.mkdir(parents=True, mode=0o700)
    (folder / "state.json").write_text("{not json")
    code, _, err = run_pulsed(["once"], host.env)
    assert code == 0, err
    (corrupt,) = [json.loads(line) for line in err.splitlines() if '"state.corrupt"' in line]
    assert corrupt["shop"] == "beta"
