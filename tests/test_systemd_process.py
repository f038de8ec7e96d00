"""The daemon under a real NOTIFY_SOCKET, and its signals, as systemd sees them (§8)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from devtools import faultserver as fs
from devtools.receiver import Receiver
from tests.support.manager import Manager
from tests.support.process import SECRET, Pulsed, Shop


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_ready_status_watchdog_stopping(shop: Shop, tmp_path: Path, kind: str) -> None:
    address = str(tmp_path / "notify") if kind == "path" else f"@pulsed-test-{os.getpid()}"
    manager = Manager(address)
    env = dict(shop.env, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")
    daemon = Pulsed(["run"], env)
    try:
        assert manager.next() == "READY=1"
        manager.until("STATUS=last heartbeat")
        # Half of WATCHDOG_USEC: a ping every 0.1 s while the loop is healthy.
        for _ in range(3):
            manager.until("WATCHDOG=1")
        daemon.signal(signal.SIGTERM)
        manager.until("STOPPING=1")
        assert daemon.finish() == 0
    finally:
        daemon.stop()
        manager.sock.close()


def test_watchdog_pid_of_another_process_means_no_pings(shop: Shop, tmp_path: Path) -> None:
    """WATCHDOG_PID naming another process means the pings are not ours to send."""
    manager = Manager(str(tmp_path / "notify"))
    env = dict(shop.env, NOTIFY_SOCKET=manager.address, WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    daemon = Pulsed(["run"], env)
    try:
        assert manager.next() == "READY=1"
        manager.until("STATUS=last heartbeat")
        daemon.signal(signal.SIGTERM)
        manager.until("STOPPING=1")
        assert daemon.finish() == 0
        assert "WATCHDOG=1" not in manager.messages
    finally:
        daemon.stop()
        manager.sock.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_during_a_delivery_ends_within_3_s_with_state_saved(
    shop: Shop, receiver: Receiver, sig: signal.Signals
) -> None:
    receiver.server.plan(then=fs.delayed(30.0))  # the receiver sits on every request
    daemon = Pulsed(["run"], shop.env)
    try:
        receiver.server.wait_for_requests(1, timeout=30)
        start = time.monotonic()
        daemon.signal(sig)
        assert daemon.finish() == 0
        assert time.monotonic() - start < 3
    finally:
        daemon.stop()
    state = shop.read_state()
    assert state["consecutive_failures"] == 1 and state["pending"] is None
    assert "timeout" in state["last_error"]


def test_children_never_see_notify_socket_or_secrets(shop: Shop, tmp_path: Path) -> None:
    seen = tmp_path / "php-env.json"
    shop.php.write_text(
        "#!/bin/sh\n"
        f'python3 -c \'import json, os; json.dump(dict(os.environ), open("{seen}", "w"))\'\n'
        "printf 8.2.7\n"
    )
    manager = Manager(str(tmp_path / "notify"))
    env = dict(shop.env, NOTIFY_SOCKET=manager.address, WATCHDOG_USEC="60000000")
    daemon = Pulsed(["run"], env)
    try:
        daemon.wait_for("heartbeat.sent")
    finally:
        daemon.stop()
        manager.sock.close()
    child_env = json.loads(seen.read_text())
    assert not {"NOTIFY_SOCKET", "WATCHDOG_USEC", "PULSE_HEARTBEAT_SECRET"} & set(child_env)
    assert SECRET not in json.dumps(child_env)
