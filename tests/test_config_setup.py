"""The loaded whole: which shops ``--shop`` keeps, and every secret the redactor learns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pulsed._config import Config, Disabled, Secret, Setup, load_setup
from pulsed._errors import ConfigError
from pulsed._settings import SETTINGS
from tests.support.host import Host
from tests.support.loop import loop_config


def shop(tmp_path: Path, name: str, **values: object) -> Config:
    return replace(loop_config(tmp_path / name, name=name), **values)  # type: ignore[arg-type]


def setup_of(tmp_path: Path) -> Setup:
    broken = Disabled("c", ConfigError("shop.root", "missing"))
    return Setup(
        shops=(shop(tmp_path, "a"), shop(tmp_path, "b")),
        disabled=(broken,),
        state_dir=tmp_path,
        log_level="info",
        config_file=None,
        warnings=(),
        listed=True,
    )


def test_no_shop_named_selects_every_shop(tmp_path: Path) -> None:
    whole = setup_of(tmp_path)
    assert whole.select([]) == whole


def test_the_shops_named_are_kept_working_or_disabled(tmp_path: Path) -> None:
    chosen = setup_of(tmp_path).select(["b", "c"])
    assert [c.name for c in chosen.shops] == ["b"]
    assert [d.name for d in chosen.disabled] == ["c"]
    assert chosen.state_dir == tmp_path


def test_a_working_shop_named_alone_leaves_the_disabled_ones_out(tmp_path: Path) -> None:
    chosen = setup_of(tmp_path).select(["a"])
    assert ([c.name for c in chosen.shops], chosen.disabled) == (["a"], ())


def test_no_shared_setting_is_a_required_secret() -> None:
    # load_setup(secrets=False) relies on it: only a shop's own settings can lack a secret.
    assert not [s.key for s in SETTINGS if s.scope != "shop" and s.required and s.secret]


def test_a_name_that_is_no_shop_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        setup_of(tmp_path).select(["a", "zz"])
    assert (refused.value.setting, refused.value.reason) == (
        "--shop",
        "no shop named 'zz' (known: a, b, c)",
    )


def test_a_shop_lists_every_secret_it_has_set(tmp_path: Path) -> None:
    cfg = shop(tmp_path, "a", api_key=Secret("key-1"), bot_token=Secret("123:tok"))
    assert sorted(cfg.secrets()) == sorted(["s", "key-1", "123:tok"])


def test_a_shop_without_a_key_or_token_lists_its_heartbeat_secret_alone(tmp_path: Path) -> None:
    assert shop(tmp_path, "a").secrets() == ("s",)


def test_the_setup_lists_each_shops_secrets_once(tmp_path: Path) -> None:
    whole = replace(
        setup_of(tmp_path),
        shops=(
            shop(tmp_path, "a", heartbeat_secret=Secret("one")),
            shop(tmp_path, "b", heartbeat_secret=Secret("two"), api_key=Secret("one")),
        ),
    )
    assert sorted(whole.secrets()) == ["one", "two"]


def test_a_disabled_shop_keeps_the_root_its_configuration_names(tmp_path: Path) -> None:
    # discover and add-shop know a disabled shop by its folder (None: it names none).
    host = Host(tmp_path / "host", "https://pulse.example", [])
    tables = {"beta": f'root = "{tmp_path}/gone"', "gamma": "root = 5"}  # not a path
    host.write(["alpha"], extra=tables)
    setup = load_setup({}, host.env)
    assert [c.name for c in setup.shops] == ["alpha"]
    assert {d.name: d.root for d in setup.disabled} == {"beta": tmp_path / "gone", "gamma": None}
