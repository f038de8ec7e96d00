"""What loading the configuration says, word for word, and what each shop keeps from it.

An operator meets these lines once, at a start that was refused or in ``check``:
each names the setting, the file and what to do, so each is held exactly. The rest
holds what a listed shop takes from the shared settings and where each value came from.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulsed import _config
from pulsed._config import Listed, load_setup, load_state_dir
from pulsed._errors import ConfigError
from pulsed._settings import BY_KEY, DEFAULT_STATE_DIR

API = "https://pulse.example"
SECRET = "a-shared-secret-of-32-characters"
NOBODY = 65534


def env_for(conf: Path, **more: str) -> dict[str, str]:
    return {
        "PULSE_API_HOST": API,
        "PULSE_HEARTBEAT_SECRET": SECRET,
        "PULSED_CONFIG": str(conf),
        "PULSED_STATE_DIR": str(conf.parent / "state"),
        **more,
    }


def config(tmp_path: Path, text: str) -> Path:
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755, exist_ok=True)
    conf = etc / "pulsed.toml"
    conf.write_text(text)
    conf.chmod(0o600)
    return conf


def refusal(conf: Path, **more: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_setup({}, env_for(conf, **more))
    return caught.value


def shops_d(conf: Path, files: dict[str, str]) -> Path:
    folder = conf.parent / "shops.d"
    folder.mkdir(mode=0o755, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o600)
    return folder


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another user")


# --- files another user could change ---------------------------------------------------


@needs_root
@pytest.mark.parametrize(
    "which", ["config file", "config folder", "shops.d file", "shops.d folder"]
)
def test_a_file_or_folder_of_another_user_is_refused_naming_it_and_what_it_would_steer(
    tmp_path: Path, which: str
) -> None:
    conf = config(tmp_path, "")
    folder = shops_d(conf, {"anna.toml": '[shop]\ndomain = "anna.example"\n'})
    owned = {
        "config file": conf,
        "config folder": conf.parent,
        "shops.d file": folder / "anna.toml",
        "shops.d folder": folder,
    }[which]
    os.chown(owned, NOBODY, -1)
    error = refusal(conf)
    assert (error.setting, error.reason) == (
        "config",
        f"{owned} is owned by uid {NOBODY}, not by pulsed's user or root; "
        "refusing to take settings from it",
    )


# --- the file's own shape ------------------------------------------------------------------


def test_a_known_section_that_is_not_a_table_is_refused_naming_it_and_the_file(
    tmp_path: Path,
) -> None:
    conf = config(tmp_path, "pulse = 5\n")
    error = refusal(conf)
    assert (error.setting, error.reason) == ("pulse", f"{conf}: [pulse] must be a table")


def test_an_unknown_top_level_value_is_warned_about_and_the_tables_after_it_still_read(
    tmp_path: Path,
) -> None:
    conf = config(tmp_path, 'colour = "blue"\n[shop]\ndomain = "shop.example"\n')
    setup = load_setup({}, env_for(conf))
    assert setup.warnings == (f"{conf}: unknown settings ignored: colour",)
    assert [c.domain for c in setup.shops] == ["shop.example"]


def test_a_listed_config_keeps_the_files_own_warnings(tmp_path: Path) -> None:
    conf = config(tmp_path, 'colour = "blue"\n[shops.anna]\ndomain = "anna.example"\n')
    setup = load_setup({}, env_for(conf))
    assert setup.warnings == (f"{conf}: unknown settings ignored: colour",)


def test_unknown_keys_of_a_listed_shop_are_named_with_the_file(tmp_path: Path) -> None:
    conf = config(tmp_path, '[shops.anna]\ndomain = "anna.example"\ncolour = 1\nsize = 2\n')
    setup = load_setup({}, env_for(conf))
    assert setup.warnings == (f"{conf}: unknown keys of shop 'anna' ignored: colour, size",)


def test_a_listed_shop_that_is_not_a_table_is_a_problem_and_the_next_shop_still_loads(
    tmp_path: Path,
) -> None:
    conf = config(tmp_path, '[shops]\nanna = 5\n[shops.bert]\ndomain = "bert.example"\n')
    setup = load_setup({}, env_for(conf))
    assert [c.name for c in setup.shops] == ["bert"]
    assert setup.warnings == (f"{conf}: [shops.anna] must be a table",)


# --- shops.d ---------------------------------------------------------------------------


def test_a_shops_d_file_with_other_tables_keeps_its_shop_and_warns(tmp_path: Path) -> None:
    conf = config(tmp_path, "")
    folder = shops_d(conf, {"anna.toml": '[shop]\ndomain = "anna.example"\n[pulse]\ntimeout = 1\n'})
    setup = load_setup({}, env_for(conf))
    assert [c.domain for c in setup.shops] == ["anna.example"]
    assert setup.warnings == (
        f"{folder / 'anna.toml'}: only a [shop] table belongs here, not ['pulse']",
    )


def test_a_shops_d_file_without_a_shop_table_disables_its_shop_for_want_of_a_domain(
    tmp_path: Path,
) -> None:
    conf = config(tmp_path, "")
    folder = shops_d(conf, {"anna.toml": "[pulse]\ntimeout = 1\n"})
    setup = load_setup({}, env_for(conf))
    (off,) = setup.disabled
    assert (off.name, off.error.setting) == ("anna", "shop.domain")
    assert setup.warnings == (
        f"{folder / 'anna.toml'}: only a [shop] table belongs here, not ['pulse']",
    )


def test_a_shops_d_file_whose_shop_is_not_a_table_disables_that_shop(tmp_path: Path) -> None:
    conf = config(tmp_path, "")
    folder = shops_d(
        conf, {"anna.toml": "shop = 5\n", "bert.toml": '[shop]\ndomain = "b.example"\n'}
    )
    setup = load_setup({}, env_for(conf))
    assert [c.name for c in setup.shops] == ["bert"]
    (off,) = setup.disabled
    assert (off.name, off.error.setting, off.error.reason) == (
        "anna",
        "shops.d",
        f"{folder / 'anna.toml'}: shop must be a [shop] table",
    )


def test_shops_after_a_broken_or_doubled_shops_d_file_still_load(tmp_path: Path) -> None:
    conf = config(tmp_path, '[shops.anna]\ndomain = "anna.example"\n')
    shops_d(
        conf,
        {
            "anna.toml": '[shop]\ndomain = "other.example"\n',  # also a table: a problem
            "bad.toml": "[shop\n",
            "cleo.toml": '[shop]\ndomain = "cleo.example"\n',
        },
    )
    setup = load_setup({}, env_for(conf))
    assert [c.name for c in setup.shops] == ["cleo"]
    assert [d.name for d in setup.disabled] == ["bad"]


def test_a_shops_d_folder_holding_only_a_broken_file_still_lists_shops(tmp_path: Path) -> None:
    conf = config(tmp_path, "")
    shops_d(conf, {"bad.toml": "[shop\n"})
    setup = load_setup({}, env_for(conf))
    assert setup.listed and setup.shops == ()
    assert [d.name for d in setup.disabled] == ["bad"]
    assert bool(Listed({}, {"bad": ConfigError("shops.d", "x")}, []))
    assert bool(Listed({}, {}, ["a problem"]))
    assert not bool(Listed({}, {}, []))


def test_a_bad_shop_name_is_disabled_cut_to_40_characters_and_the_next_still_loads(
    tmp_path: Path,
) -> None:
    long = "x" * 50 + "!"
    conf = config(
        tmp_path, f'[shops."{long}"]\ndomain = "x.example"\n[shops.bert]\ndomain = "bert.example"\n'
    )
    setup = load_setup({}, env_for(conf))
    assert [c.name for c in setup.shops] == ["bert"]
    (off,) = setup.disabled
    assert (off.name, off.error.setting, off.error.reason) == (
        "x" * 40,
        "shops",
        f"'{'x' * 40}' is not a shop name (1-32 of A-Z a-z 0-9 _ -)",
    )


# --- what a listed shop takes --------------------------------------------------------------


def test_a_listed_shop_knows_its_file_and_which_values_are_its_own(tmp_path: Path) -> None:
    conf = config(
        tmp_path, '[shop]\nphp_binary = "/opt/php"\n[shops.anna]\ndomain = "anna.example"\n'
    )
    (cfg,) = load_setup({}, env_for(conf)).shops
    assert cfg.config_file == conf
    assert cfg.php_binary == "/opt/php"  # [shop] may still give every shop a default php
    assert cfg.sources["shop.domain"] == "file"
    assert cfg.sources["shop.php_binary"] == "file"
    assert cfg.sources["shop.root"] == "default"
    assert cfg.sources["pulse.heartbeat_secret"] == "env"


def test_a_one_shop_value_is_not_taken_by_listed_shops(tmp_path: Path) -> None:
    conf = config(
        tmp_path,
        '[shop]\ndomain = "one.example"\n[shops.anna]\ndomain = "anna.example"\n'
        '[shops.bert]\nroot = "/nowhere"\n',
    )
    setup = load_setup({}, env_for(conf))
    assert [c.domain for c in setup.shops] == ["anna.example"]
    (off,) = setup.disabled  # bert's domain comes from its own root, never [shop]'s
    assert (off.name, off.error.setting) == ("bert", "shop.domain")


def test_the_setup_carries_the_shared_settings(tmp_path: Path) -> None:
    conf = config(
        tmp_path,
        '[daemon]\nlog_level = "debug"\n'
        f'status_file = "{tmp_path}/pub/status.json"\n'
        f'metrics_file = "{tmp_path}/pub/pulsed.prom"\n'
        '[shop]\ndomain = "shop.example"\n',
    )
    setup = load_setup({}, env_for(conf))
    assert (setup.log_level, setup.config_file) == ("debug", conf)
    assert setup.status_file == tmp_path / "pub" / "status.json"
    assert setup.metrics_file == tmp_path / "pub" / "pulsed.prom"


# --- required settings ---------------------------------------------------------------------


def test_a_missing_secret_stops_a_start_but_not_a_status(tmp_path: Path) -> None:
    conf = config(tmp_path, '[shop]\ndomain = "shop.example"\n')
    environ = {k: v for k, v in env_for(conf).items() if k != "PULSE_HEARTBEAT_SECRET"}
    setup = load_setup({}, environ)
    (off,) = setup.disabled
    assert off.error.setting == "pulse.heartbeat_secret"
    assert "credentials are read from $CREDENTIALS_DIRECTORY" in off.error.reason
    assert [c.domain for c in load_setup({}, environ, secrets=False).shops] == ["shop.example"]


def test_a_missing_api_host_stops_even_a_status(tmp_path: Path) -> None:
    conf = config(tmp_path, '[shop]\ndomain = "shop.example"\n')
    environ = {k: v for k, v in env_for(conf).items() if k != "PULSE_API_HOST"}
    with pytest.raises(ConfigError) as caught:
        load_setup({}, environ, secrets=False)
    assert caught.value.setting == "pulse.api_host"


def test_a_missing_shared_credential_says_where_credentials_are_looked_for(
    tmp_path: Path,
) -> None:
    # pulse.api_key is shared, optional; a required shared credential is the api host's
    # neighbour only in name: the message is built the same way for every setting.
    setting = BY_KEY["pulse.heartbeat_secret"]
    error = _config._missing(setting, {"CREDENTIALS_DIRECTORY": "/run/creds/pulsed.service"})
    assert error.setting == "pulse.heartbeat_secret"
    assert "no credential pulse_heartbeat_secret in $CREDENTIALS_DIRECTORY" in error.reason
    assert "(/run/creds/pulsed.service)" in error.reason


# --- secrets held in the file ---------------------------------------------------------------


def test_a_secret_in_a_file_others_may_read_is_warned_about(tmp_path: Path) -> None:
    conf = config(
        tmp_path, f'[pulse]\nheartbeat_secret = "{SECRET}"\n[shop]\ndomain = "s.example"\n'
    )
    conf.chmod(0o644)
    environ = {k: v for k, v in env_for(conf).items() if k != "PULSE_HEARTBEAT_SECRET"}
    setup = load_setup({}, environ)
    assert setup.warnings == (
        f"{conf}: holds a secret but others may read it (chmod 600, or use a credential)",
    )


def test_a_secret_in_the_file_shadowed_by_the_environment_is_warned_about(
    tmp_path: Path,
) -> None:
    conf = config(
        tmp_path, f'[pulse]\nheartbeat_secret = "{SECRET}"\n[shop]\ndomain = "s.example"\n'
    )
    setup = load_setup({}, env_for(conf))
    assert setup.warnings == (
        f"{conf}: its pulse.heartbeat_secret is shadowed by the env value; "
        "remove it from the file so nobody relies on it",
    )


# --- one value and its source ----------------------------------------------------------------


def test_a_value_is_taken_from_the_flag_first_and_says_so() -> None:
    setting = BY_KEY["pulse.api_host"]
    assert _config.pick(
        setting, {"api-host": "https://a"}, {"PULSE_API_HOST": "https://b"}, {}
    ) == (
        "https://a",
        "flag",
    )
    assert _config.pick(setting, {}, {}, {}) == (None, "default")


def test_a_credential_ending_in_crlf_loses_both(tmp_path: Path) -> None:
    (tmp_path / "pulse_heartbeat_secret").write_bytes(b"\rkey-written-on-windows\r\n")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert _config.read_credential(environ, "pulse_heartbeat_secret") == "\rkey-written-on-windows"


def test_a_credential_that_cannot_be_read_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "pulse_api_key").mkdir()
    (tmp_path / "pulse_heartbeat_secret").write_bytes(b"\xff\xfe")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(ConfigError) as caught:
        _config.read_credential(environ, "pulse_api_key")
    assert (caught.value.setting, caught.value.reason) == (
        "pulse_api_key",
        f"credential {tmp_path / 'pulse_api_key'}: not a regular file; cannot be read",
    )
    with pytest.raises(ConfigError) as caught:
        _config.read_credential(environ, "pulse_heartbeat_secret")
    assert (caught.value.setting, caught.value.reason) == (
        "pulse_heartbeat_secret",
        f"credential {tmp_path / 'pulse_heartbeat_secret'} cannot be read (not UTF-8)",
    )


def test_a_credentials_folder_with_a_slash_at_its_end_names_a_file_with_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "pulse_api_key").write_text("the-key\n")
    (tmp_path / "pulse_heartbeat_secret").write_bytes(b"\xff\xfe")
    environ = {"CREDENTIALS_DIRECTORY": f"{tmp_path}/"}
    assert _config.read_credential(environ, "pulse_api_key") == "the-key"
    with pytest.raises(ConfigError) as caught:
        _config.read_credential(environ, "pulse_heartbeat_secret")
    assert caught.value.reason == (
        f"credential {tmp_path / 'pulse_heartbeat_secret'} cannot be read (not UTF-8)"
    )


def test_a_domain_that_cannot_be_one_is_refused_as_the_shop_domain() -> None:
    with pytest.raises(ConfigError) as caught:
        _config.resolve_domain("bad host!", None)
    assert caught.value.setting == "shop.domain"
    assert caught.value.reason != "None" and "bad host!" in caught.value.reason
    with pytest.raises(ConfigError) as caught:
        _config.resolve_domain(None, None)
    assert caught.value.reason == "not set, and no shop.root to read config.php from"


def test_an_empty_state_dir_is_refused_as_that_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        _config.state_dir_of("", {}, _config.ROOT)
    assert (caught.value.setting, caught.value.reason) == ("daemon.state_dir", "is empty")


def test_the_state_dir_without_a_config_file_is_the_services_or_the_default(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "none.toml"
    root = _config.ROOT  # a user's default is tests/test_without_root.py's
    assert load_state_dir({}, {}, default_path=missing, user=root) == DEFAULT_STATE_DIR
    assert load_state_dir(
        {}, {"STATE_DIRECTORY": "/var/lib/pulsed:/x"}, default_path=missing, user=root
    ) == (Path("/var/lib/pulsed"))


# --- public files beside the state ----------------------------------------------------------


def test_a_status_file_reached_through_a_link_is_compared_as_written_unless_asked(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "pub").symlink_to(state)
    status = tmp_path / "pub" / "status.json"
    _config.check_outside_state("daemon.status_file", status, state)  # the path as written
    with pytest.raises(ConfigError) as caught:
        _config.check_outside_state("daemon.status_file", status, state, real=True)
    assert caught.value.reason == (f"{status} is inside the state folder {state}; put it elsewhere")
