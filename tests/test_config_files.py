"""The configuration file as read from disk: its size, its encoding, its TOML, the
``[shops]`` table, and a shop's own credential beside the shared one (§1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulsed._config import load_setup
from pulsed._errors import ConfigError

API = {"PULSE_API_HOST": "https://pulse.example"}


def refused(conf: Path) -> ConfigError:
    env = {**API, "PULSE_HEARTBEAT_SECRET": "s", "PULSED_CONFIG": str(conf)}
    with pytest.raises(ConfigError) as info:
        load_setup({}, env)
    return info.value


def test_a_config_file_over_a_mebibyte_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_text("#" * (1 << 20) + "\n")
    error = refused(conf)
    assert (error.setting, error.reason) == ("config", f"{conf}: larger than 1 MiB")


def test_a_config_file_that_is_not_toml_is_refused_with_where(tmp_path: Path) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_text("[pulse\n")
    error = refused(conf)
    assert error.setting == "config"
    assert error.reason.startswith(f"{conf}: not valid TOML (")


def test_a_config_file_that_is_not_utf8_is_refused_with_why(tmp_path: Path) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_bytes(b"# \xff\n")
    error = refused(conf)
    assert (error.setting, error.reason) == ("config", f"{conf}: not UTF-8 (invalid start byte)")


def test_shops_that_are_not_a_table_are_refused(tmp_path: Path) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_text("shops = 5\n")
    error = refused(conf)
    assert (error.setting, error.reason) == (
        "shops",
        f"{conf}: [shops] must hold one table per shop",
    )


def test_a_shops_own_credential_beats_the_shared_one(tmp_path: Path) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_text('[shops.a]\ndomain = "a.example"\n[shops.b]\ndomain = "b.example"\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pulse_heartbeat_secret").write_text("shared-secret-of-16\n")
    (creds / "pulse_heartbeat_secret.a").write_text("own-secret-of-shop-a\n")
    env = {**API, "PULSED_CONFIG": str(conf), "CREDENTIALS_DIRECTORY": str(creds)}
    setup = load_setup({}, env)
    secrets = {c.name: c.heartbeat_secret.reveal() for c in setup.shops}
    assert secrets == {"a": "own-secret-of-shop-a", "b": "shared-secret-of-16"}
