"""sd_notify against real AF_UNIX datagram sockets: a bound path and an abstract name."""

from __future__ import annotations

import array
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from pulsed._notify import Notifier, _describe

KEYS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def hang_up(notifier: Notifier) -> None:
    """Close the socket a notifier opened: the daemon leaves it to its exit, a test cannot."""
    if notifier._sock is not None:
        notifier._sock.close()


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    path = tmp_path / "notify"
    if len(os.fsencode(path)) >= 107:  # sun_path limit; pytest's default basetemp fits
        pytest.skip(f"tmp_path too long for an AF_UNIX socket: {path}")
    return path


@pytest.fixture
def path_receiver(sock_path: Path) -> Iterator[socket.socket]:
    sock = _receiver(str(sock_path))
    yield sock
    sock.close()


@pytest.fixture
def abstract_name() -> str:
    return f"pulsed-test-{uuid.uuid4().hex}"


@pytest.fixture
def abstract_receiver(abstract_name: str) -> Iterator[socket.socket]:
    sock = _receiver("\0" + abstract_name)
    yield sock
    sock.close()


def _no_more(sock: socket.socket) -> None:
    """Nothing else is queued: each call sent exactly one datagram."""
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(65536)
    sock.settimeout(2.0)


def test_from_environ_removes_the_keys_and_keeps_the_rest(sock_path: Path) -> None:
    environ = {
        "NOTIFY_SOCKET": str(sock_path),
        "WATCHDOG_USEC": "30000000",
        "WATCHDOG_PID": str(os.getpid()),
        "PATH": "/usr/bin",
    }
    notifier = Notifier.from_environ(environ)
    assert environ == {"PATH": "/usr/bin"}
    assert notifier.watchdog_interval == 15.0
    assert notifier.last_error is None
    hang_up(notifier)


def test_each_message_arrives_exactly(sock_path: Path, path_receiver: socket.socket) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})

    notifier.ready()
    assert path_receiver.recv(65536) == b"READY=1"
    notifier.status("last: sent 200\nnext due 06:42Z\r\n")
    assert path_receiver.recv(65536) == b"STATUS=last: sent 200 next due 06:42Z"
    notifier.watchdog()
    assert path_receiver.recv(65536) == b"WATCHDOG=1"
    notifier.stopping()
    assert path_receiver.recv(65536) == b"STOPPING=1"
    notifier.notify("A=1", "B=2")
    assert path_receiver.recv(65536) == b"A=1\nB=2"

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = path_receiver.recv(65536).decode().split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after

    _no_more(path_receiver)
    assert notifier.last_error is None
    hang_up(notifier)


def test_abstract_socket(abstract_name: str, abstract_receiver: socket.socket) -> None:
    environ = {"NOTIFY_SOCKET": "@" + abstract_name}
    notifier = Notifier.from_environ(environ)
    assert environ == {}

    notifier.ready()
    assert abstract_receiver.recv(65536) == b"READY=1"
    notifier.status("ok")
    assert abstract_receiver.recv(65536) == b"STATUS=ok"
    notifier.stopping()
    assert abstract_receiver.recv(65536) == b"STOPPING=1"
    _no_more(abstract_receiver)
    assert notifier.last_error is None
    hang_up(notifier)


def test_sender_credentials_name_this_process(
    sock_path: Path, path_receiver: socket.socket
) -> None:
    """systemd attributes a message by the kernel's SCM_CREDENTIALS (NotifyAccess=main)."""
    path_receiver.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    notifier.ready()
    ucred = struct.calcsize("3i")
    data, ancdata, _flags, _addr = path_receiver.recvmsg(4096, socket.CMSG_SPACE(ucred))
    assert data == b"READY=1"
    creds = [c for c in ancdata if (c[0], c[1]) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)]
    assert len(creds) == 1
    pid, uid, _gid = array.array("i", creds[0][2][:ucred])
    assert (pid, uid) == (os.getpid(), os.getuid())
    hang_up(notifier)


def test_no_notify_socket_is_a_silent_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("a socket was created without NOTIFY_SOCKET")

    environ = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier.from_environ(environ)
    assert environ == {}  # the watchdog keys go even without a socket
    monkeypatch.setattr(socket, "socket", no_socket)
    assert notifier.watchdog_interval is None  # no one to ping
    notifier.ready()
    notifier.status("x")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    notifier.notify("A=1")
    hang_up(notifier)
    assert notifier.last_error is None


@pytest.mark.parametrize("value", ["", "relative/path", "@", "/"])
def test_unusable_notify_socket_disables(value: str) -> None:
    environ = {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "1000000"}
    notifier = Notifier.from_environ(environ)
    assert environ == {}
    assert notifier.watchdog_interval is None
    notifier.ready()  # no error


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("20000000", None, 10.0),
        ("20000000", "self", 10.0),
        ("1", "self", 0.0000005),
        ("3000000", "other", None),
        ("3000000", "not-a-pid", None),
        ("0", None, None),
        ("-5", None, None),
        ("", None, None),
        ("30s", None, None),
        ("1.5", None, None),
        (None, "self", None),
        (None, None, None),
    ],
)
def test_watchdog_usec_parsing(
    sock_path: Path, usec: str | None, pid: str | None, expected: float | None
) -> None:
    environ = {"NOTIFY_SOCKET": str(sock_path)}
    if usec is not None:
        environ["WATCHDOG_USEC"] = usec
    if pid is not None:
        environ["WATCHDOG_PID"] = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(
            pid, pid
        )
    notifier = Notifier.from_environ(environ)
    assert environ == {}
    assert notifier.watchdog_interval == expected


def test_vanished_socket_does_not_raise_and_recovers(sock_path: Path) -> None:
    receiver = _receiver(str(sock_path))
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    notifier.ready()
    assert receiver.recv(65536) == b"READY=1"

    receiver.close()
    sock_path.unlink()
    notifier.status("nobody listens")
    notifier.watchdog()
    assert notifier.last_error is not None
    assert "ENOENT" in notifier.last_error
    assert str(sock_path) in notifier.last_error

    # The manager comes back (re-exec) on the same path: messages flow again.
    receiver = _receiver(str(sock_path))
    notifier.watchdog()
    assert receiver.recv(65536) == b"WATCHDOG=1"
    assert notifier.last_error is None
    receiver.close()
    hang_up(notifier)


def test_a_broken_socket_is_one_warning_per_distinct_error(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})  # nobody bound it
    for _ in range(5):
        notifier.watchdog()
    receiver = _receiver(str(sock_path))
    notifier.watchdog()  # recovered: the next failure is news again
    receiver.close()
    sock_path.unlink()
    notifier.watchdog()
    warned = [r for r in caplog.records if getattr(r, "event", "") == "notify.failed"]
    assert [r.levelname for r in warned] == ["WARNING", "WARNING"]
    assert all(str(sock_path) in r.getMessage() for r in warned)
    hang_up(notifier)


def test_a_malformed_notify_socket_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    Notifier.from_environ({"NOTIFY_SOCKET": "relative/path"})
    (warned,) = [r for r in caplog.records if getattr(r, "event", "") == "notify.failed"]
    assert "relative/path" in warned.getMessage()


def test_bound_but_closed_socket_does_not_raise(sock_path: Path) -> None:
    receiver = _receiver(str(sock_path))
    receiver.close()  # the path stays, nobody listens: ECONNREFUSED
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    notifier.ready()
    assert notifier.last_error is not None
    assert "ECONNREFUSED" in notifier.last_error


def test_full_queue_never_blocks(sock_path: Path, path_receiver: socket.socket) -> None:
    def hung(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("notify() blocked on a full queue")

    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        for _ in range(10_000):  # nobody reads: the queue fills up
            notifier.watchdog()
            if notifier.last_error is not None:
                break
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert notifier.last_error is not None
    assert "EAGAIN" in notifier.last_error
    hang_up(notifier)


def test_status_is_one_bounded_line(sock_path: Path, path_receiver: socket.socket) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    notifier.status("a\0b\n\nc")
    assert path_receiver.recv(65536) == b"STATUS=ab c"
    notifier.status("é" * 5000)
    data = path_receiver.recv(65536)
    assert data.startswith(b"STATUS=\xc3\xa9")
    assert data.endswith(b"...")
    assert len(data) <= 1100
    data.decode("utf-8")  # not cut inside a character
    hang_up(notifier)


def test_children_do_not_inherit_the_variables(
    sock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environ(os.environ)
    code = f"import os; print(sorted(k for k in os.environ if k in {set(KEYS)}))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out.strip() == "[]"
    hang_up(notifier)


@pytest.mark.parametrize("address", ["@a", "/x"])
def test_the_shortest_addresses_are_taken(address: str) -> None:
    # One character after the "@" or the "/" is a name; only the bare sign is not.
    assert Notifier(address, 5.0).watchdog_interval == 5.0


def test_a_status_of_exactly_the_limit_is_sent_whole_and_one_byte_more_is_cut(
    sock_path: Path, path_receiver: socket.socket
) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    notifier.status("x" * 1024)
    assert path_receiver.recv(65536) == b"STATUS=" + b"x" * 1024
    notifier.status("y" * 1025)
    assert path_receiver.recv(65536) == b"STATUS=" + b"y" * 1021 + b"..."
    hang_up(notifier)


def test_text_that_cannot_be_utf8_is_sent_with_a_stand_in(
    sock_path: Path, path_receiver: socket.socket
) -> None:
    # A file name read with surrogate escapes can reach a status line: it must not
    # take the notification (or the daemon) down.
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})
    notifier.status("shop \udcff broke")
    assert path_receiver.recv(65536) == b"STATUS=shop ? broke"
    notifier.notify("A=\udcff")
    assert path_receiver.recv(65536) == b"A=?"
    assert notifier.last_error is None
    hang_up(notifier)


def test_a_failed_send_is_warned_about_in_one_line_naming_the_socket(
    sock_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(sock_path)})  # nobody bound it
    notifier.ready()
    (warned,) = [r for r in caplog.records if getattr(r, "event", "") == "notify.failed"]
    assert warned.getMessage() == (
        f"sd_notify to {sock_path} failed: ENOENT (No such file or directory); "
        "systemd does not hear from pulsed"
    )
    hang_up(notifier)


def test_a_failed_send_to_an_abstract_socket_names_it_as_systemd_does(
    abstract_name: str,
) -> None:
    notifier = Notifier("@" + abstract_name)  # nobody bound it
    notifier.ready()
    assert notifier.last_error == (
        f"sd_notify to @{abstract_name} failed: ECONNREFUSED (Connection refused)"
    )
    hang_up(notifier)


def test_an_error_number_without_a_name_is_given_as_a_number() -> None:
    assert _describe(OSError(4321, "odd"), "/run/x") == (
        f"sd_notify to /run/x failed: 4321 ({os.strerror(4321)})"
    )
