"""Configuration: precedence, credentials, and every way a setting can be refused (§1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulsed import _config
from pulsed._errors import ConfigError
from tests.support.config import load_one

SECRET = "hb-secret-0123456789"
TOKEN = "123456:AAH-token-value"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "config.php").write_text(
        "<?php\ndefine('HTTP_SERVER', 'http://plain.example/');\n"
        "define('HTTPS_SERVER', 'https://Shop.Example.com:8443/store/');\n"
    )
    return root


def base_env(shop: Path, **extra: str) -> dict[str, str]:
    env = {
        "PULSE_API_HOST": "https://pulse.example",
        "PULSE_HEARTBEAT_SECRET": SECRET,
        "OPENCART_ROOT": str(shop),
    }
    env.update(extra)
    return env


def nofile(tmp_path: Path) -> Path:
    return tmp_path / "absent.toml"


def test_defaults(shop: Path, tmp_path: Path) -> None:
    cfg = load_one({}, base_env(shop), default_path=nofile(tmp_path))
    assert cfg.heartbeat_url == "https://pulse.example/heartbeat"
    assert cfg.heartbeat_secret.reveal() == SECRET
    assert cfg.timeout == 5.0
    assert cfg.interval == 3600.0
    assert cfg.telegram_api_base == "https://api.telegram.org"
    assert cfg.php_binary == "php"
    assert cfg.state_dir == Path("/var/lib/pulsed")
    assert cfg.log_level == "info"
    assert cfg.bot_token is None
    assert cfg.domain == "shop.example.com:8443"
    assert cfg.composer_json == shop / "system/library/oc_telegram_shop/composer.json"
    assert cfg.config_file is None


def test_http_server_is_used_when_there_is_no_https_server(shop: Path, tmp_path: Path) -> None:
    (shop / "config.php").write_text("<?php define('HTTP_SERVER', 'http://Plain.Example/');")
    assert load_one({}, base_env(shop), default_path=nofile(tmp_path)).domain == "plain.example"


def test_precedence_flag_env_credential_file_default(shop: Path, tmp_path: Path) -> None:
    conf = tmp_path / "pulsed.toml"
    conf.write_text(
        '[pulse]\napi_host = "https://file.example"\ntimeout = 7\n'
        'heartbeat_secret = "file-secret-0123456789"\n'
        '[daemon]\ninterval = 60\nlog_level = "debug"\n'
    )
    conf.chmod(0o600)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pulse_heartbeat_secret").write_text("from-credential-0123456789\n")
    env = {
        "PULSED_CONFIG": str(conf),
        "PULSE_API_HOST": "https://env.example",
        "CREDENTIALS_DIRECTORY": str(creds),
        "OPENCART_ROOT": str(shop),
        "PULSED_INTERVAL": "120",
    }
    cfg = load_one({"interval": "30"}, env)
    assert cfg.api_host == "https://env.example"  # env beats file
    assert cfg.interval == 30.0  # flag beats env
    assert cfg.timeout == 7.0  # file beats default
    assert cfg.log_level == "debug"
    assert cfg.heartbeat_secret.reveal() == "from-credential-0123456789"  # credential beats file
    assert cfg.sources["pulse.heartbeat_secret"] == "credential"
    env["PULSE_HEARTBEAT_SECRET"] = "from-env-0123456789"
    assert (
        load_one({}, env).heartbeat_secret.reveal() == "from-env-0123456789"
    )  # env beats credential


def test_config_flag_beats_variable(shop: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("[daemon]\ninterval = 11\n")
    b.write_text("[daemon]\ninterval = 22\n")
    env = base_env(shop, PULSED_CONFIG=str(a))
    assert load_one({"config": str(b)}, env).interval == 22.0
    assert load_one({}, env).interval == 11.0


def test_default_config_path_used_only_when_it_exists(shop: Path, tmp_path: Path) -> None:
    default = tmp_path / "etc.toml"
    default.write_text("[daemon]\ninterval = 99\n")
    assert load_one({}, base_env(shop), default_path=default).interval == 99.0


def test_state_directory_from_systemd(shop: Path, tmp_path: Path) -> None:
    env = base_env(shop, STATE_DIRECTORY="/var/lib/pulsed/one:/var/lib/other")
    assert load_one({}, env, default_path=nofile(tmp_path)).state_dir == Path("/var/lib/pulsed/one")


def test_telegram_token_from_credential(shop: Path, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram_bot_token").write_text(TOKEN + "\n")
    env = base_env(shop, CREDENTIALS_DIRECTORY=str(creds))
    cfg = load_one({}, env, default_path=nofile(tmp_path))
    assert cfg.bot_token is not None and cfg.bot_token.reveal() == TOKEN
    assert TOKEN not in repr(cfg) and SECRET not in repr(cfg)


def test_domain_override_is_normalised(shop: Path, tmp_path: Path) -> None:
    env = base_env(shop, PULSED_DOMAIN="HTTPS://Other.Example/path")
    assert load_one({}, env, default_path=nofile(tmp_path)).domain == "other.example"


def test_domain_override_needs_no_shop_root(tmp_path: Path) -> None:
    env = {
        "PULSE_API_HOST": "https://p.example",
        "PULSE_HEARTBEAT_SECRET": SECRET,
        "PULSED_DOMAIN": "shop.example",
    }
    cfg = load_one({}, env, default_path=nofile(tmp_path))
    assert (cfg.domain, cfg.shop_root, cfg.composer_json) == ("shop.example", None, None)


@pytest.mark.parametrize("host", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:9"])
def test_http_allowed_for_loopback(shop: Path, tmp_path: Path, host: str) -> None:
    cfg = load_one({}, base_env(shop, PULSE_API_HOST=host + "/"), default_path=nofile(tmp_path))
    assert cfg.heartbeat_url == host + "/heartbeat"


def test_api_key_is_never_a_substitute_for_the_secret(shop: Path, tmp_path: Path) -> None:
    env = base_env(shop, PULSE_API_KEY="legacy")
    del env["PULSE_HEARTBEAT_SECRET"]
    with pytest.raises(ConfigError) as info:
        load_one({}, env, default_path=nofile(tmp_path))
    assert info.value.setting == "pulse.heartbeat_secret"


BAD = [
    ({"PULSE_API_HOST": None}, "pulse.api_host", "required"),
    ({"PULSE_API_HOST": "http://pulse.example"}, "pulse.api_host", "https"),
    ({"PULSE_API_HOST": "http://10.0.0.1"}, "pulse.api_host", "https"),
    ({"PULSE_API_HOST": "ftp://pulse.example"}, "pulse.api_host", "https"),
    ({"PULSE_API_HOST": "pulse.example"}, "pulse.api_host", "https"),
    ({"PULSE_API_HOST": "https://user:pw@pulse.example"}, "pulse.api_host", "user"),
    ({"PULSE_API_HOST": "https://pulse.example:99999"}, "pulse.api_host", "URL"),
    ({"PULSE_API_HOST": "https://exa mple.com"}, "pulse.api_host", "spaces"),
    ({"PULSE_API_HOST": "https://exa%20mple.com"}, "pulse.api_host", "not a host name"),
    ({"PULSE_API_HOST": f"https://{'a' * 254}.com"}, "pulse.api_host", "at most 253"),
    ({"TELEGRAM_API_BASE": "https://api.tele gram.org"}, "telegram.api_base", "spaces"),
    ({"PULSE_HEARTBEAT_SECRET": None}, "pulse.heartbeat_secret", "required"),
    ({"PULSE_HEARTBEAT_SECRET": "   "}, "pulse.heartbeat_secret", "empty"),
    ({"PULSE_HEARTBEAT_SECRET": "abc "}, "pulse.heartbeat_secret", "whitespace"),
    ({"PULSE_HEARTBEAT_SECRET": "e"}, "pulse.heartbeat_secret", "shorter than 16 bytes"),
    ({"PULSE_HEARTBEAT_SECRET": "x" * 15}, "pulse.heartbeat_secret", "guessable"),
    ({"PULSE_TIMEOUT": "soon"}, "pulse.timeout", "number"),
    ({"PULSE_TIMEOUT": "0"}, "pulse.timeout", "> 0"),
    ({"PULSE_TIMEOUT": "nan"}, "pulse.timeout", "> 0"),
    ({"PULSED_INTERVAL": "0.5"}, "daemon.interval", "from 1 to 315360000 (10 years)"),
    ({"PULSED_INTERVAL": "-5"}, "daemon.interval", "from 1 to 315360000 (10 years)"),
    # Infinity is not "less than 1": the message gives the whole range instead.
    ({"PULSED_INTERVAL": "inf"}, "daemon.interval", "a finite number of seconds from 1 to"),
    ({"PULSED_INTERVAL": "nan"}, "daemon.interval", "a finite number of seconds from 1 to"),
    ({"PULSED_INTERVAL": "1e12"}, "daemon.interval", "a finite number of seconds from 1 to"),
    ({"PULSE_TIMEOUT": "inf"}, "pulse.timeout", "a finite number of seconds > 0"),
    ({"PULSED_LOG_LEVEL": "loud"}, "daemon.log_level", "one of"),
    ({"TELEGRAM_BOT_TOKEN": "not-a-token"}, "telegram.bot_token", "malformed"),
    ({"TELEGRAM_API_BASE": "http://api.telegram.org"}, "telegram.api_base", "https"),
    ({"OPENCART_ROOT": None}, "shop.domain", "shop.root"),
    ({"OPENCART_ROOT": "/nonexistent/shop"}, "shop.domain", "not found"),
    ({"PULSED_DOMAIN": "https:///path-only"}, "shop.domain", ""),
    ({"PULSED_PHP": " "}, "shop.php_binary", "empty"),
]


@pytest.mark.parametrize(("change", "setting", "words"), BAD)
def test_refused_naming_the_setting(
    shop: Path, tmp_path: Path, change: dict[str, str | None], setting: str, words: str
) -> None:
    env = base_env(shop)
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with pytest.raises(ConfigError) as info:
        load_one({}, env, default_path=nofile(tmp_path))
    assert info.value.setting == setting
    assert words in str(info.value)
    assert SECRET not in str(info.value)
    assert "\n" not in str(info.value)


def test_config_php_without_server_is_refused(shop: Path, tmp_path: Path) -> None:
    (shop / "config.php").write_text("<?php define('DIR_SYSTEM', '/x/');")
    with pytest.raises(ConfigError) as info:
        load_one({}, base_env(shop), default_path=nofile(tmp_path))
    assert info.value.setting == "shop.domain"


@pytest.mark.parametrize(
    ("text", "drop", "words"),
    [
        ("[pulse\napi_host = 1", "", "not valid TOML"),
        ('[pulse]\ntimeout = "x"', "", "number"),
        ("[daemon]\ninterval = true", "", "number"),
        ('pulse = "flat"', "", "must be a table"),
        ("[pulse]\napi_host = 5", "PULSE_API_HOST", "must be a string"),
        ("[shop]\nroot = []", "OPENCART_ROOT", "must be a string"),
    ],
)
def test_bad_file_values_are_refused(
    shop: Path, tmp_path: Path, text: str, drop: str, words: str
) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    env = base_env(shop, PULSED_CONFIG=str(conf))
    env.pop(drop, None)
    with pytest.raises(ConfigError, match=words):
        load_one({}, env)


def test_unreadable_or_missing_named_config_file_is_refused(shop: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read") as info:
        load_one({"config": str(tmp_path / "missing.toml")}, base_env(shop))
    assert info.value.setting == "config"
    with pytest.raises(ConfigError, match="not a regular file"):
        load_one({"config": str(tmp_path)}, base_env(shop))
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_one({"config": str(fifo)}, base_env(shop))  # refused, never blocks


@pytest.mark.parametrize(
    ("where", "mode"),
    [("file", 0o620), ("file", 0o602), ("folder", 0o775), ("folder", 0o757)],
    ids=["file-group", "file-others", "folder-group", "folder-others"],
)
def test_a_config_file_or_folder_its_group_or_others_may_write_is_refused(
    shop: Path, tmp_path: Path, where: str, mode: int
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    conf = folder / "pulsed.toml"
    conf.write_text("[daemon]\ninterval = 60\n")
    conf.chmod(0o600)
    named = conf if where == "file" else folder
    named.chmod(mode)
    with pytest.raises(ConfigError) as info:
        _config.load_setup({"config": str(conf)}, base_env(shop))
    assert (info.value.setting, info.value.reason) == (
        "config",
        f"{named} is writable by others (mode {mode:04o}); chmod go-w {named}",
    )


def test_unknown_keys_are_named_in_a_warning(shop: Path, tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[pulse]\napi_hots = "typo"\n[extra]\nx = 1\n[daemon]\ninterval = 10\n')
    setup = _config.load_setup({}, base_env(shop, PULSED_CONFIG=str(conf)))
    assert setup.warnings == (f"{conf}: unknown settings ignored: extra.x, pulse.api_hots",)


def test_world_readable_file_with_a_secret_warns(shop: Path, tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(f'[pulse]\nheartbeat_secret = "{SECRET}"\n')
    conf.chmod(0o644)
    env = base_env(shop, PULSED_CONFIG=str(conf))
    del env["PULSE_HEARTBEAT_SECRET"]
    warnings = _config.load_setup({}, env).warnings
    assert any("others may read it" in w for w in warnings)
    assert all(SECRET not in w for w in warnings)
    conf.chmod(0o600)
    assert _config.load_setup({}, env).warnings == ()


def test_unreadable_credential_is_refused(shop: Path, tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pulse_heartbeat_secret").mkdir()  # unreadable for root too
    env = base_env(shop, CREDENTIALS_DIRECTORY=str(creds))
    del env["PULSE_HEARTBEAT_SECRET"]
    with pytest.raises(ConfigError, match="credential"):
        load_one({}, env, default_path=nofile(tmp_path))


def test_state_dir_alone_survives_a_broken_config(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[daemon]\nstate_dir = "/srv/state"\n[pulse]\ntimeout = "broken"\n')
    assert _config.load_state_dir({}, {"PULSED_CONFIG": str(conf)}) == Path("/srv/state")
    conf.write_text("garbage [")
    assert _config.load_state_dir({}, {"PULSED_CONFIG": str(conf)}) == Path("/var/lib/pulsed")
    assert _config.load_state_dir({"state-dir": "/x"}, {}) == Path("/x")


def test_secret_never_printed_by_repr() -> None:
    s = _config.Secret("value")
    assert "value" not in repr(s) and "value" not in str(s) and "value" not in f"{s}"


def test_empty_credential_means_not_set(shop: Path, tmp_path: Path) -> None:
    # The units give each credential an empty fallback so a host without a bot
    # token still starts; that must read as "no token", not as a broken one.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram_bot_token").write_text("\n")
    (creds / "pulse_heartbeat_secret").write_text("\n")
    conf = tmp_path / "c.toml"
    conf.write_text('[pulse]\nheartbeat_secret = "from-file-0123456789"\n')
    conf.chmod(0o600)
    env = base_env(shop, CREDENTIALS_DIRECTORY=str(creds), PULSED_CONFIG=str(conf))
    del env["PULSE_HEARTBEAT_SECRET"]
    cfg = load_one({}, env)
    assert cfg.bot_token is None
    assert cfg.heartbeat_secret.reveal() == "from-file-0123456789"


def test_config_file_with_a_byte_order_mark_is_read(shop: Path, tmp_path: Path) -> None:
    # Windows editors save UTF-8 with a BOM; the composer.json reader accepts it too.
    conf = tmp_path / "bom.toml"
    conf.write_bytes(b"\xef\xbb\xbf[daemon]\ninterval = 42\n")
    setup = _config.load_setup({}, base_env(shop, PULSED_CONFIG=str(conf)))
    assert setup.shops[0].interval == 42.0 and setup.warnings == ()


def test_missing_secret_says_where_credentials_are_read_from(shop: Path, tmp_path: Path) -> None:
    # `pulsed check` by hand has no $CREDENTIALS_DIRECTORY: systemd sets it for the
    # service only, so a secret kept as a credential looks missing.
    env = base_env(shop)
    del env["PULSE_HEARTBEAT_SECRET"]
    with pytest.raises(ConfigError) as info:
        load_one({}, env, default_path=nofile(tmp_path))
    assert info.value.setting == "pulse.heartbeat_secret"
    assert "$CREDENTIALS_DIRECTORY" in info.value.reason
    assert "systemd sets only for the service" in info.value.reason
    assert "sudo CREDENTIALS_DIRECTORY=/etc/pulsed/credentials pulsed check" in info.value.reason
    creds = tmp_path / "creds"
    creds.mkdir()
    with pytest.raises(ConfigError) as info:
        load_one({}, dict(env, CREDENTIALS_DIRECTORY=str(creds)), default_path=nofile(tmp_path))
    assert f"no credential pulse_heartbeat_secret in $CREDENTIALS_DIRECTORY ({creds})" in str(
        info.value
    )


def test_a_heartbeat_secret_is_counted_in_bytes_so_16_bytes_of_any_script_do(
    shop: Path, tmp_path: Path
) -> None:
    env = base_env(shop, PULSE_HEARTBEAT_SECRET="\u00e4" * 8)
    cfg = load_one({}, env, default_path=nofile(tmp_path))
    assert cfg.heartbeat_secret.reveal() == "\u00e4" * 8


@pytest.mark.parametrize(
    ("variable", "inside"),
    [
        ("PULSED_STATUS_FILE", "state.json"),
        ("PULSED_STATUS_FILE", "shops/alpha/state.json"),
        ("PULSED_METRICS_FILE", "pulsed.prom"),
        ("PULSED_METRICS_FILE", "../state/sub/pulsed.prom"),
    ],
)
def test_a_public_file_inside_the_state_folder_is_refused(
    shop: Path, tmp_path: Path, variable: str, inside: str
) -> None:
    state = tmp_path / "state"
    env = base_env(shop, PULSED_STATE_DIR=str(state), **{variable: str(state / inside)})
    with pytest.raises(ConfigError) as info:
        load_one({}, env, default_path=nofile(tmp_path))
    assert info.value.setting == variable.replace("PULSED_", "daemon.").lower()
    assert "inside the state folder" in info.value.reason


def test_a_public_file_beside_the_state_folder_is_fine(shop: Path, tmp_path: Path) -> None:
    env = base_env(
        shop,
        PULSED_STATE_DIR=str(tmp_path / "state"),
        PULSED_STATUS_FILE=str(tmp_path / "state-public" / "status.json"),
    )
    assert load_one({}, env, default_path=nofile(tmp_path)).status_file is not None
