"""The defaults that depend on who runs pulsed (contract §12): root or not, the XDG
variables and the home, as plain functions of the environment and the user."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulsed import _config
from pulsed._config import User
from pulsed._errors import ConfigError
from tests.support.process import SECRET, Shop

ALICE = User(1000, "/home/alice")
ROOT = User(0, "/root")


# --- the defaults, pure ---------------------------------------------------------------------


def test_root_keeps_var_lib_pulsed_and_no_status_file_whatever_xdg_says() -> None:
    env = {"XDG_STATE_HOME": "/x/state", "XDG_RUNTIME_DIR": "/run/user/0"}
    assert _config.default_state_dir(env, ROOT) == (Path("/var/lib/pulsed"), "default")
    assert _config.default_status_file(env, ROOT) == (None, "default")


def test_systemds_state_directory_comes_first_for_root_and_users_alike() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/private/pulsed:/other", "XDG_STATE_HOME": "/x"}
    for user in (ROOT, ALICE):
        assert _config.default_state_dir(env, user) == (
            Path("/var/lib/private/pulsed"),
            "default: $STATE_DIRECTORY",
        )


def test_a_user_keeps_state_under_xdg_state_home() -> None:
    assert _config.default_state_dir({"XDG_STATE_HOME": "/srv/alice/state"}, ALICE) == (
        Path("/srv/alice/state/pulsed"),
        "default: $XDG_STATE_HOME, not root",
    )


@pytest.mark.parametrize("xdg", [None, "", "relative/state"], ids=["unset", "empty", "relative"])
def test_without_a_usable_xdg_state_home_a_user_keeps_state_in_the_home(xdg: str | None) -> None:
    # The XDG spec: a relative path in these variables is invalid and ignored.
    env = {} if xdg is None else {"XDG_STATE_HOME": xdg}
    assert _config.default_state_dir(env, ALICE) == (
        Path("/home/alice/.local/state/pulsed"),
        "default: ~/.local/state, not root",
    )


def test_a_user_with_no_home_is_told_to_name_a_state_folder() -> None:
    with pytest.raises(ConfigError) as refused:
        _config.default_state_dir({}, User(1000, None))
    assert refused.value.setting == "daemon.state_dir"
    assert "neither $XDG_STATE_HOME nor a home" in str(refused.value)


def test_a_users_status_file_goes_under_xdg_runtime_dir_when_set() -> None:
    assert _config.default_status_file({"XDG_RUNTIME_DIR": "/run/user/1000"}, ALICE) == (
        Path("/run/user/1000/pulsed/status.json"),
        "default: $XDG_RUNTIME_DIR, not root",
    )
    # cron sets no XDG_RUNTIME_DIR: then there is none, unless configured.
    for env in ({}, {"XDG_RUNTIME_DIR": "run/user/1000"}):
        assert _config.default_status_file(env, ALICE) == (
            None,
            "default: not root, no $XDG_RUNTIME_DIR",
        )


def test_the_home_is_the_environments_else_the_password_databases() -> None:
    assert User.current({"HOME": "/somewhere"}).home == "/somewhere"
    if os.geteuid() != 0:
        assert User.current({}).home == str(Path("~").expanduser())


# --- secrets in a folder of the user's -------------------------------------------------------


def test_a_credential_file_others_may_read_is_a_warning(shop: Shop, tmp_path: Path) -> None:
    # The user unit and the cron line read ~/.config/pulsed/credentials where it is: no
    # systemd copy makes the file private, its mode does.
    folder = tmp_path / "credentials"
    folder.mkdir(mode=0o700)
    secret = folder / "pulse_heartbeat_secret"
    secret.write_text(SECRET)
    own = folder / "pulse_heartbeat_secret.beta"
    own.write_text("beta's-own-secret-key")
    conf = tmp_path / "pulsed.toml"
    conf.write_text(f'[shops.alpha]\nroot = "{shop.root}"\n[shops.beta]\nroot = "{shop.root}"\n')
    conf.chmod(0o600)
    env = {
        k: v for k, v in shop.env.items() if k not in ("PULSE_HEARTBEAT_SECRET", "OPENCART_ROOT")
    }
    env.update(CREDENTIALS_DIRECTORY=str(folder), PULSED_CONFIG=str(conf))
    for path in (secret, own):
        path.chmod(0o644)
    warnings = _config.load_setup({}, env, user=ALICE).warnings
    assert [w for w in warnings if "credential" in w] == [
        f"credential {secret} holds a secret but others may read it (chmod 600)",
        f"credential {own} holds a secret but others may read it (chmod 600)",
    ]
    for path in (secret, own):
        path.chmod(0o600)
    assert _config.load_setup({}, env, user=ALICE).warnings == ()
