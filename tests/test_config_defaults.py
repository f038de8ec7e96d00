"""The defaults that depend on who runs pulsed (contract §12): root or not, the XDG
variables and the home, as plain functions of the environment and the user."""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulsed import _config
from pulsed._config import User
from pulsed._errors import ConfigError
from tests.support.process import SECRET, Shop

ALICE = User(1000, "/home/alice")
ROOT = User(0, "/root")
AS_ROOT = os.geteuid() == 0


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
    assert refused.value.reason == (
        "not set, and this user (not root) has neither $XDG_STATE_HOME nor a home "
        "folder to keep the state in; set it"
    )


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


@contextlib.contextmanager
def running_as(uid: int) -> Iterator[None]:
    """This process's effective uid is ``uid`` inside the block; root's again after it."""
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.skipif(not AS_ROOT, reason="only root can be another user for a moment")
def test_a_user_who_is_not_root_is_found_with_a_home_from_the_environment_else_passwd() -> None:
    nobody = pwd.getpwnam("nobody")
    with running_as(nobody.pw_uid):
        assert User.current({"HOME": "/somewhere"}) == User(nobody.pw_uid, "/somewhere")
        for env in ({}, {"HOME": ""}):
            assert User.current(env) == User(nobody.pw_uid, nobody.pw_dir)
    # A uid with no passwd entry (a container's) has no home unless $HOME names one.
    unlisted = 54321
    with pytest.raises(KeyError):
        pwd.getpwuid(unlisted)
    with running_as(unlisted):
        assert User.current({}) == User(unlisted, None)


@pytest.mark.skipif(not AS_ROOT, reason="as root")
def test_root_looks_up_no_home_its_defaults_do_not_need_one() -> None:
    assert User.current({}) == User(0, None)
    assert User.current({"HOME": "/root"}) == User(0, "/root")


# --- the defaults, as a configuration loads them ---------------------------------------------


def user_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """A one-shop configuration in the environment, as a user's cron line or unit has it."""
    root = tmp_path / "shop"
    root.mkdir()
    (root / "config.php").write_text("<?php define('HTTPS_SERVER', 'https://shop.example/');")
    return {
        "PULSE_API_HOST": "https://pulse.example",
        "PULSE_HEARTBEAT_SECRET": SECRET,
        "OPENCART_ROOT": str(root),
        **more,
    }


def test_a_users_configuration_takes_the_users_defaults_and_says_where_from(
    tmp_path: Path,
) -> None:
    env = user_env(tmp_path, XDG_STATE_HOME="/srv/alice/state", XDG_RUNTIME_DIR="/run/user/1000")
    setup = _config.load_setup({}, env, default_path=tmp_path / "absent.toml", user=ALICE)
    state, status = Path("/srv/alice/state/pulsed"), Path("/run/user/1000/pulsed/status.json")
    assert (setup.state_dir, setup.status_file) == (state, status)
    # A user unit's RuntimeDirectory= makes this folder, a cron line's once does not: pulsed does.
    assert setup.status_folder == status.parent
    (cfg,) = setup.shops
    assert (cfg.state_dir, cfg.status_file) == (state, status)
    # What `pulsed check` prints as each setting's source.
    assert cfg.sources["daemon.state_dir"] == "default: $XDG_STATE_HOME, not root"
    assert cfg.sources["daemon.status_file"] == "default: $XDG_RUNTIME_DIR, not root"
    assert cfg.sources["pulse.api_host"] == "env"
    assert _config.load_state_dir({}, env, default_path=tmp_path / "absent.toml", user=ALICE) == (
        state
    )


def test_a_status_file_that_is_set_is_no_folder_for_pulsed_to_make(tmp_path: Path) -> None:
    env = user_env(
        tmp_path, XDG_RUNTIME_DIR="/run/user/1000", PULSED_STATUS_FILE="/srv/alice/status.json"
    )
    setup = _config.load_setup({}, env, default_path=tmp_path / "absent.toml", user=ALICE)
    assert setup.status_file == Path("/srv/alice/status.json")
    assert setup.status_folder is None
    assert setup.shops[0].sources["daemon.status_file"] == "env"


@pytest.mark.parametrize(
    ("user", "env", "source"),
    [
        (ROOT, {"XDG_RUNTIME_DIR": "/run/user/0"}, "default"),
        (ALICE, {}, "default: not root, no $XDG_RUNTIME_DIR"),
    ],
    ids=["root", "cron"],
)
def test_without_a_default_status_file_there_is_no_folder_to_make(
    tmp_path: Path, user: User, env: dict[str, str], source: str
) -> None:
    setup = _config.load_setup(
        {}, user_env(tmp_path, **env), default_path=tmp_path / "absent.toml", user=user
    )
    assert (setup.status_file, setup.status_folder) == (None, None)
    assert setup.shops[0].sources["daemon.status_file"] == source


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
    # The folder typed with a slash at its end names the same files, with one slash.
    for named in (str(folder), f"{folder}/"):
        env["CREDENTIALS_DIRECTORY"] = named
        warnings = _config.load_setup({}, env, user=ALICE).warnings
        assert [w for w in warnings if "credential" in w] == [
            f"credential {secret} holds a secret but others may read it (chmod 600)",
            f"credential {own} holds a secret but others may read it (chmod 600)",
        ]
    for path in (secret, own):
        path.chmod(0o600)
    assert _config.load_setup({}, env, user=ALICE).warnings == ()


def test_a_credential_file_the_secret_is_not_taken_from_is_no_warning(
    shop: Shop, tmp_path: Path
) -> None:
    # $PULSE_HEARTBEAT_SECRET comes before the credential: the file holds nothing in use.
    folder = tmp_path / "credentials"
    folder.mkdir(mode=0o700)
    unused = folder / "pulse_heartbeat_secret"
    unused.write_text("an-older-secret-no-longer-used")
    unused.chmod(0o644)
    env = {**shop.env, "CREDENTIALS_DIRECTORY": str(folder)}
    setup = _config.load_setup({}, env, default_path=tmp_path / "absent.toml", user=ALICE)
    assert setup.shops[0].sources["pulse.heartbeat_secret"] == "env"
    assert setup.warnings == ()
