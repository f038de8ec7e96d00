"""The environment a child process gets: nothing of the daemon's own, no secret."""

from __future__ import annotations

from pulsed._proc import child_environ
from pulsed._settings import SECRET_VARIABLES

ENVIRON = {
    "PATH": "/usr/bin",
    "NOTIFY_SOCKET": "/run/systemd/notify",
    "PULSE_API_KEY": "another-shop-s-key",
    "SHOP_SECRET": "unrelated",
    "ECHOED": "https://x.invalid/?k=this-shop-s-secret",
}


def test_the_named_variables_go_whatever_they_hold() -> None:
    kept = child_environ(ENVIRON, ["this-shop-s-secret"], {"PULSE_API_KEY", "SHOP_SECRET"})
    assert kept == {"PATH": "/usr/bin"}


def test_a_variable_holding_a_secret_goes_whatever_its_name() -> None:
    kept = child_environ(ENVIRON, ["this-shop-s-secret", ""], frozenset())
    assert kept == {
        "PATH": "/usr/bin",
        "PULSE_API_KEY": "another-shop-s-key",
        "SHOP_SECRET": "unrelated",
    }


def test_without_names_the_secret_settings_variables_go() -> None:
    assert child_environ(ENVIRON, []) == child_environ(ENVIRON, [], SECRET_VARIABLES)
    assert "PULSE_API_KEY" not in child_environ(ENVIRON, [])
