"""Every setting declared once: the README table, Config, the flags and check follow it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from pulsed import _cli, _commands, _settings
from pulsed._config import Config
from pulsed._errors import ConfigError
from pulsed._settings import LEVELS, SETTINGS
from tests.support.config import load_one

REPO = Path(__file__).resolve().parent.parent


def readme_settings_table() -> list[list[str]]:
    """The rows of the README's settings table, each cell stripped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("| setting | variable | flag | default | notes |\n", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[1:]  # below the |---| line
    return [[cell.strip() for cell in row.strip().strip("|").split(" | ")] for row in rows]


def test_readme_table_lists_every_setting_as_declared() -> None:
    rows = readme_settings_table()
    assert [row[0] for row in rows] == [f"`{s.key}`" for s in SETTINGS]
    for setting, (_, variable, flag, default, notes) in zip(SETTINGS, rows, strict=True):
        assert variable == f"`{setting.env}`", setting.key
        assert flag == (f"`--{setting.flag}`" if setting.flag else "—"), setting.key
        assert default == setting.shown_default, setting.key
        if setting.credential:
            assert f"credential `{setting.credential}`" in notes, setting.key


def test_config_has_one_field_per_setting() -> None:
    fields = {f.name for f in dataclasses.fields(Config)}
    assert fields - {"name", "config_file", "sources", "warnings"} == {s.field for s in SETTINGS}


def test_secrets_never_have_a_flag_and_only_secrets_have_a_credential() -> None:
    for setting in SETTINGS:
        if setting.secret:
            assert setting.flag is None, setting.key
        else:
            assert setting.credential is None and not setting.refused_flags, setting.key
    assert set(_settings.SECRETS) == {
        "pulse.heartbeat_secret",
        "pulse.api_key",
        "telegram.bot_token",
    }


def test_scope_is_shop_for_every_shop_key() -> None:
    for setting in SETTINGS:
        if setting.section == "shop":
            assert setting.scope == "shop", setting.key
        elif not setting.secret:
            assert setting.scope == "shared", setting.key


def test_every_flag_reaches_its_setting() -> None:
    parser = _cli.build_parser()
    for setting in SETTINGS:
        if setting.flag is None:
            continue
        args = parser.parse_args(["check", f"--{setting.flag}", "VALUE"])
        assert _cli.flags_of(args) == {setting.flag: "VALUE"}, setting.key


@pytest.mark.parametrize("flag", sorted(_settings.REFUSED_FLAGS))
def test_every_secret_flag_is_refused(flag: str) -> None:
    args = _cli.build_parser().parse_args(["check", f"--{flag}", "value"])
    with pytest.raises(ConfigError) as info:
        _cli.flags_of(args)
    assert info.value.setting == _settings.REFUSED_FLAGS[flag]
    assert "value" not in str(info.value)


def test_check_lists_every_setting_with_its_value(tmp_path: Path) -> None:
    env = {
        "PULSE_API_HOST": "https://pulse.example",
        "PULSE_HEARTBEAT_SECRET": "s3cret-value-0123456789",
        "PULSED_DOMAIN": "shop.example",
    }
    cfg = load_one({"interval": "60"}, env, default_path=tmp_path / "absent.toml")
    rows = {key: (value, source) for key, value, source in _commands.describe(cfg)}
    assert list(rows) == [s.key for s in SETTINGS]
    assert rows["daemon.interval"] == ("60.0", "flag")
    assert rows["pulse.heartbeat_secret"] == ("(set, not shown)", "env")
    assert rows["telegram.bot_token"] == ("(not set)", "default")
    assert rows["shop.domain"] == ("shop.example", "env")
    assert rows["daemon.log_level"] == ("info", "default")


def test_defaults_are_what_the_declarations_say(tmp_path: Path) -> None:
    env = {
        "PULSE_API_HOST": "https://pulse.example",
        "PULSE_HEARTBEAT_SECRET": "s3cret-value-0123456789",
        "PULSED_DOMAIN": "shop.example",
    }
    cfg = load_one({}, env, default_path=tmp_path / "absent.toml")
    for setting in SETTINGS:
        if setting.default is not None:
            assert getattr(cfg, setting.field) == setting.default, setting.key


def test_one_list_of_log_levels() -> None:
    level = next(s for s in SETTINGS if s.key == "daemon.log_level")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `daemon.log_level`")]
    assert re.findall(r"debug|info|warning|error", row.rsplit("|", 2)[1]) == list(LEVELS)
    with pytest.raises(ConfigError, match="debug, info, warning, error"):
        level.parse(level.key, "loud")


GIVEN = {
    "pulse.api_host": ("https://pulse.example", "https://pulse.example"),
    "pulse.heartbeat_secret": ("s3cret-value-0123456789", None),
    "pulse.timeout": ("7", 7.0),
    "pulse.api_key": ("legacy-key", None),
    "telegram.bot_token": ("42:abc", None),
    "telegram.api_base": ("https://tg.example/", "https://tg.example"),
    "shop.root": ("/srv/shop", Path("/srv/shop")),
    "shop.composer_json": ("/srv/c.json", Path("/srv/c.json")),
    "shop.domain": ("Shop.Example", "shop.example"),
    "shop.php_binary": ("/usr/bin/php8", "/usr/bin/php8"),
    "daemon.state_dir": ("/srv/state", Path("/srv/state")),
    "daemon.interval": ("60", 60.0),
    "daemon.log_level": ("DEBUG", "debug"),
    "daemon.status_file": ("/run/pulsed/status.json", Path("/run/pulsed/status.json")),
    "daemon.metrics_file": ("/srv/textfile/pulsed.prom", Path("/srv/textfile/pulsed.prom")),
}


def _given_by(setting: _settings.Setting, how: str) -> str:
    if setting.required or (how == "flag" and setting.flag is None):
        return "env"
    return how


@pytest.mark.parametrize("how", ["env", "flag", "file"])
def test_every_setting_lands_in_its_field(tmp_path: Path, how: str) -> None:
    assert set(GIVEN) == {s.key for s in SETTINGS}
    env = {s.env: GIVEN[s.key][0] for s in SETTINGS if _given_by(s, how) == "env"}
    flags = {s.flag: GIVEN[s.key][0] for s in SETTINGS if s.flag and _given_by(s, how) == "flag"}
    sections: dict[str, str] = {}
    for s in SETTINGS:
        if _given_by(s, how) == "file":
            sections[s.section] = sections.get(s.section, "") + f'{s.name} = "{GIVEN[s.key][0]}"\n'
    conf = tmp_path / "pulsed.toml"
    conf.write_text("".join(f"[{name}]\n{body}" for name, body in sections.items()))
    conf.chmod(0o600)
    cfg = load_one(flags, env, default_path=conf)
    for setting in SETTINGS:
        raw, expected = GIVEN[setting.key]
        value = getattr(cfg, setting.field)
        if setting.secret:
            assert value is not None and value.reveal() == raw, setting.key
        else:
            assert value == expected, (setting.key, how)
        assert cfg.sources[setting.key] == _given_by(setting, how), setting.key


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:8080", True),
        ("http://pulse.localhost:8080", True),
        ("http://[::1]:9", True),
        ("http://127.0.0.2", True),
        ("http://localhost.example", False),
        ("http://pulse.example", False),
    ],
)
def test_plain_http_is_taken_only_for_a_loopback_host(url: str, loopback: bool) -> None:
    if loopback:
        assert _settings.base_url("pulse.api_host", url) == url
    else:
        with pytest.raises(ConfigError, match="https"):
            _settings.base_url("pulse.api_host", url)


def test_a_metrics_file_must_be_one_node_exporter_reads() -> None:
    setting = _settings.BY_KEY["daemon.metrics_file"]
    assert setting.parse(setting.key, "/srv/t/pulsed.prom") == Path("/srv/t/pulsed.prom")
    with pytest.raises(ConfigError, match=r"must end in \.prom") as caught:
        setting.parse(setting.key, "/srv/t/pulsed.txt")
    assert caught.value.setting == "daemon.metrics_file"


def test_status_and_metrics_files_are_off_unless_set(tmp_path: Path) -> None:
    env = {
        "PULSE_API_HOST": "https://pulse.example",
        "PULSE_HEARTBEAT_SECRET": "s3cret-value-0123456789",
        "PULSED_DOMAIN": "shop.example",
    }
    cfg = load_one({}, env, default_path=tmp_path / "absent.toml")
    assert (cfg.status_file, cfg.metrics_file) == (None, None)
