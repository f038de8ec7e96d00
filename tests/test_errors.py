"""The error tree: what each error says and carries, as the callers that log it read it."""

from __future__ import annotations

import pytest

from pulsed import _errors as e


@pytest.mark.parametrize(
    "error",
    [
        e.ConfigError("a.b", "r"),
        e.FileError("/p", "r", "missing"),
        e.CollectError("x"),
        e.IdentityError("network", "down"),
        e.StateError("x"),
        e.LockHeldError("/l", "pid 1"),
        e.DeliveryError("timeout", ""),
        e.SubprocessError("x"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_every_error_is_a_pulsed_error(error: e.PulsedError) -> None:
    assert isinstance(error, e.PulsedError)


def test_a_config_error_names_the_setting_before_the_reason() -> None:
    error = e.ConfigError("daemon.interval", "must be a number")
    assert str(error) == "daemon.interval: must be a number"
    assert (error.setting, error.reason) == ("daemon.interval", "must be a number")


def test_a_file_error_names_the_path_and_keeps_its_kind() -> None:
    error = e.FileError("/etc/x", "permission denied", "denied")
    assert str(error) == "/etc/x: permission denied"
    assert (error.reason, error.kind) == ("permission denied", "denied")


@pytest.mark.parametrize(
    ("detail", "text"), [("connection refused", "network: connection refused"), ("", "network")]
)
def test_an_identity_error_is_its_kind_and_any_detail(detail: str, text: str) -> None:
    error = e.IdentityError("network", detail)
    assert str(error) == text
    assert (error.kind, error.detail) == ("network", detail)


def test_a_state_error_is_not_corrupt_unless_said() -> None:
    assert e.StateError("cannot write").corrupt is False
    assert e.StateError("unparsable", corrupt=True).corrupt is True
    assert str(e.StateError("cannot write")) == "cannot write"


def test_a_held_lock_names_its_holder_and_the_lock() -> None:
    error = e.LockHeldError("/var/lib/pulsed/.lock", "pid 42 (pulsed)")
    assert str(error) == "state directory is held by pid 42 (pulsed) (lock /var/lib/pulsed/.lock)"
    assert (error.lock_path, error.holder) == ("/var/lib/pulsed/.lock", "pid 42 (pulsed)")


def test_a_delivery_error_carries_what_the_delivery_saw() -> None:
    error = e.DeliveryError(
        "status", "503 from receiver", status=503, retry_after=30.0, attempts=3, elapsed=1.5
    )
    assert str(error) == "status: 503 from receiver"
    assert (error.reason, error.detail, error.status) == ("status", "503 from receiver", 503)
    assert (error.retry_after, error.attempts, error.elapsed) == (30.0, 3, 1.5)


def test_a_delivery_error_without_detail_is_its_reason_and_nothing_seen() -> None:
    error = e.DeliveryError("timeout", "")
    assert str(error) == "timeout"
    assert (error.status, error.retry_after, error.attempts, error.elapsed) == (None, None, 0, 0.0)


def test_exit_codes_are_the_sysexits_ones_systemd_is_told_about() -> None:
    assert (e.EX_OK, e.EX_SOFTWARE, e.EX_TEMPFAIL, e.EX_CONFIG) == (0, 70, 75, 78)


def test_a_state_error_without_a_short_reason_gives_its_message_as_why() -> None:
    error = e.StateError("state.json: cannot be read")
    assert (error.why, error.corrupt) == ("state.json: cannot be read", False)
    assert e.StateError("m", why="Permission denied", corrupt=True).why == "Permission denied"


def test_a_state_folder_that_cannot_be_written_names_the_folder_and_why() -> None:
    error = e.StateUnwritableError("/home/u/.local/state/pulsed", "Permission denied")
    assert str(error) == (
        "state folder /home/u/.local/state/pulsed cannot be written (Permission denied)"
    )
    assert (error.folder, error.why) == ("/home/u/.local/state/pulsed", "Permission denied")
    assert isinstance(error, e.StateError)
