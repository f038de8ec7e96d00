"""``pulsed discover``'s walk and the tables it prints, on real folders."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pulsed import _discover, _provision
from pulsed._config import DEFAULT_CONFIG_PATH, SHOP_NAME
from pulsed._errors import ConfigError
from pulsed._provision import Known
from pulsed._settings import MODULE_COMPOSER
from pulsed._toml import tomllib


def make_shop(root: Path, config: str = "define('HTTPS_SERVER', 'https://shop.example/');") -> Path:
    (root / MODULE_COMPOSER).parent.mkdir(parents=True)
    (root / MODULE_COMPOSER).write_text('{"version": "1.0.0"}')
    (root / "index.php").write_text("<?php\n")
    (root / "config.php").write_text(f"<?php\n{config}\n")
    return root


def found(tmp_path: Path, max_depth: int = _discover.MAX_DEPTH) -> list[str]:
    return [str(p.relative_to(tmp_path)) for p in _discover.shop_roots(tmp_path, max_depth)]


def test_the_folder_given_can_itself_be_the_shop(tmp_path: Path) -> None:
    make_shop(tmp_path)
    assert found(tmp_path) == ["."]


def test_shops_are_found_in_sorted_order_and_not_looked_into(tmp_path: Path) -> None:
    for name in ("b", "a", "c/deeper"):
        make_shop(tmp_path / name)
    make_shop(tmp_path / "a" / "inner")  # inside a shop's tree: not a shop of its own
    assert found(tmp_path) == ["a", "b", "c/deeper"]


@pytest.mark.parametrize("missing", ["index.php", "config.php", str(MODULE_COMPOSER)])
def test_a_folder_without_all_three_files_is_not_a_shop(tmp_path: Path, missing: str) -> None:
    (make_shop(tmp_path / "shop") / missing).unlink()
    assert found(tmp_path) == []


def test_the_module_composer_must_be_a_file(tmp_path: Path) -> None:
    shop = make_shop(tmp_path / "shop")
    (shop / MODULE_COMPOSER).unlink()
    (shop / MODULE_COMPOSER).mkdir()
    assert found(tmp_path) == []


def test_the_walk_stops_at_its_depth(tmp_path: Path) -> None:
    make_shop(tmp_path / "1" / "2" / "3")
    assert found(tmp_path, max_depth=3) == ["1/2/3"]
    assert found(tmp_path, max_depth=2) == []


def test_a_symlinked_folder_is_not_walked(tmp_path: Path) -> None:
    make_shop(tmp_path / "elsewhere" / "shop")
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "link").symlink_to(tmp_path / "elsewhere")
    assert found(tmp_path / "www") == []


@pytest.mark.parametrize(
    ("domain", "name"),
    [
        ("shop.example:8443", "shop_example_8443"),
        ("...", "shop"),
        ("_a.b_", "a_b"),
        ("x" * 40, "x" * 32),
        # The operator's example: cut at 29 it was shop-ocstore-3-0-3-7_example_.
        ("shop-ocstore-3-0-3-7.example.com", "shop-ocstore-3-0-3-7_example_com"),
        # A cut that ends on a "_" standing for a dot is not left ending in one.
        ("a" * 31 + ".example", "a" * 31),
        ("Xmas-shop", "Xmas-shop"),
        # Dots in front are dropped before the cut, not counted in it.
        ("..." + "x" * 40, "x" * 32),
    ],
)
def test_a_name_is_the_domain_in_name_characters(domain: str, name: str) -> None:
    assert _discover.name_for(domain, set()) == name


def test_a_name_already_taken_gets_a_number() -> None:
    taken: set[str] = set()
    names = [_discover.name_for("shop.example", taken) for _ in range(3)]
    assert names == ["shop_example", "shop_example-2", "shop_example-3"]
    assert taken == set(names)


def test_a_numbered_name_keeps_within_the_length_of_a_name() -> None:
    taken: set[str] = set()
    names = [_discover.name_for("x" * 40, taken) for _ in range(11)]
    assert names[0] == "x" * 32
    assert names[1] == "x" * 30 + "-2"
    assert names[10] == "x" * 29 + "-11"
    assert all(SHOP_NAME.fullmatch(name) for name in names)
    assert len(set(names)) == 11


def test_a_numbered_name_cut_on_a_dot_does_not_end_in_one() -> None:
    taken = {"a" * 30 + "_b"}
    assert _discover.name_for("a" * 30 + ".b", taken) == "a" * 30 + "-2"


def test_tables_are_valid_toml_with_each_shops_root(tmp_path: Path) -> None:
    make_shop(tmp_path / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    make_shop(tmp_path / "b", "define('HTTP_SERVER', 'http://b.example:8080/');")
    text = _discover.tables([tmp_path])
    assert tomllib.loads(text)["shops"] == {
        "a_example": {"root": str(tmp_path / "a")},
        "b_example_8080": {"root": str(tmp_path / "b")},
    }
    assert "# no shop with the module found" not in text


def test_a_root_with_quotes_backslashes_and_control_characters_stays_one_toml_string(
    tmp_path: Path,
) -> None:
    shop = make_shop(tmp_path / 'we"ird\\ na\tme\u2028\x1b')
    shops = tomllib.loads(_discover.tables([tmp_path]))["shops"]
    assert shops["shop_example"]["root"] == str(shop)


def test_a_shop_reached_twice_is_listed_once(tmp_path: Path) -> None:
    make_shop(tmp_path / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    make_shop(tmp_path / "b", "define('HTTPS_SERVER', 'https://b.example/');")
    text = _discover.tables([tmp_path / "a", tmp_path])
    assert sorted(tomllib.loads(text)["shops"]) == ["a_example", "b_example"]


def test_a_folder_that_is_not_there_does_not_stop_the_ones_after_it(tmp_path: Path) -> None:
    make_shop(tmp_path / "shop")
    text = _discover.tables([tmp_path / "absent", tmp_path])
    assert list(tomllib.loads(text)["shops"]) == ["shop_example"]


def test_a_shop_without_a_domain_is_listed_with_an_empty_one_and_the_reason(
    tmp_path: Path,
) -> None:
    make_shop(tmp_path / "nodomain", "define('DB_PREFIX', 'oc_');")
    text = _discover.tables([tmp_path])
    assert tomllib.loads(text)["shops"] == {
        "nodomain": {"root": str(tmp_path / "nodomain"), "domain": ""}
    }
    (note,) = [line for line in text.splitlines() if line.startswith("# no domain in config.php (")]
    assert "HTTPS_SERVER" in note


def test_a_path_that_is_not_a_folder_is_a_comment_with_control_characters_shown_as_marks(
    tmp_path: Path,
) -> None:
    text = _discover.tables([tmp_path / "no\nsuch"])
    assert text.splitlines() == [
        f"# {tmp_path}/no?such: not a folder",
        "",
        "# no shop with the module found",
    ]


def test_main_prints_the_tables_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_shop(tmp_path / "shop")
    assert _discover.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out == _discover.tables([tmp_path])


# --- a hostile tree (issue 16, rows 7-9) -----------------------------------------


@pytest.mark.parametrize("linked", ["config.php", "index.php", MODULE_COMPOSER])
def test_a_shop_file_linked_out_of_the_tree_is_not_a_shop(tmp_path: Path, linked: str) -> None:
    other = make_shop(
        tmp_path / "other-tenant", "define('HTTPS_SERVER', 'https://other.example/');"
    )
    (other / "config.php").chmod(0o600)
    tenant = make_shop(tmp_path / "www" / "tenant")
    (tenant / linked).unlink()
    (tenant / linked).symlink_to(other / linked)
    text = _discover.tables([tmp_path / "www"])
    assert "other" not in text
    assert "[shops." not in text


def test_a_shop_file_linked_inside_the_tree_still_counts(tmp_path: Path) -> None:
    shop = make_shop(tmp_path / "shop")
    (shop / "config.dist.php").write_text((shop / "config.php").read_text())
    (shop / "config.php").unlink()
    (shop / "config.php").symlink_to(shop / "config.dist.php")
    assert list(tomllib.loads(_discover.tables([tmp_path]))["shops"]) == ["shop_example"]


def test_a_relative_folder_is_printed_as_an_absolute_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(tmp_path / "www" / "shop")
    monkeypatch.chdir(tmp_path)
    shops = tomllib.loads(_discover.tables([Path("www")]))["shops"]
    assert shops == {"shop_example": {"root": str(tmp_path / "www" / "shop")}}


def test_a_folder_whose_path_is_not_utf8_is_left_out_with_a_note(tmp_path: Path) -> None:
    make_shop(tmp_path / "good")
    bad = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xff"))
    bad.mkdir()
    make_shop(bad, "define('HTTPS_SERVER', 'https://bad.example/');")
    text = _discover.tables([tmp_path])
    assert list(tomllib.loads(text)["shops"]) == ["shop_example"]
    (note,) = [line for line in text.splitlines() if "not UTF-8" in line]
    assert note == f"# {tmp_path}/caf?: left out, its path is not UTF-8"


@pytest.mark.parametrize("name", ["\U000e0001x", "shop\U0001f6d2", "\U0010ffff"])
def test_a_folder_name_past_the_basic_plane_names_exactly_that_folder(
    tmp_path: Path, name: str
) -> None:
    shop = make_shop(tmp_path / name)
    (table,) = tomllib.loads(_discover.tables([tmp_path]))["shops"].values()
    assert table["root"] == str(shop)
    assert Path(table["root"]).is_dir()


def test_no_printed_name_is_default(tmp_path: Path) -> None:
    make_shop(tmp_path / "a", "define('HTTPS_SERVER', 'https://default/');")
    make_shop(tmp_path / "default", "define('DB_PREFIX', 'oc_');")
    shops = tomllib.loads(_discover.tables([tmp_path]))["shops"]
    assert "default" not in shops
    assert sorted(shops) == ["default-2", "default-3"]


def test_two_shops_of_one_domain_print_one_and_a_note(tmp_path: Path) -> None:
    make_shop(tmp_path / "a")
    make_shop(tmp_path / "b")
    text = _discover.tables([tmp_path])
    assert tomllib.loads(text)["shops"] == {"shop_example": {"root": str(tmp_path / "a")}}
    assert (
        f"# {tmp_path}/b: left out, its domain shop.example is also [shops.shop_example]'s" in text
    )


def test_a_name_already_configured_is_not_printed_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(tmp_path / "www" / "shop")
    etc = tmp_path / "etc"
    (etc / "shops.d").mkdir(parents=True)
    (etc / "pulsed.toml").write_text('[shops.shop_example]\nroot = "/srv/x"\n')
    (etc / "shops.d" / "shop_example-2.toml").write_text("[shop]\n")
    monkeypatch.setenv("PULSED_CONFIG", str(etc / "pulsed.toml"))
    assert _discover.main([str(tmp_path / "www")]) == 0
    assert list(tomllib.loads(capsys.readouterr().out)["shops"]) == ["shop_example-3"]


def test_a_shop_whose_root_is_configured_is_not_listed_again(tmp_path: Path) -> None:
    make_shop(tmp_path / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    make_shop(tmp_path / "b", "define('HTTPS_SERVER', 'https://b.example/');")
    have = Known(frozenset({"a_example"}), {(tmp_path / "a").resolve(): "a_example"})
    text = _discover.tables([tmp_path], have)
    assert list(tomllib.loads(text)["shops"]) == ["b_example"]
    assert f"# {tmp_path}/a: already configured, as shop a_example" in text.splitlines()


def test_a_shop_of_a_configured_domain_is_left_out_naming_that_shop(tmp_path: Path) -> None:
    make_shop(tmp_path / "copy", "define('HTTPS_SERVER', 'https://a.example/');")
    have = Known(frozenset({"anna"}), {}, {"a.example": "anna"})
    text = _discover.tables([tmp_path], have)
    assert "shops" not in tomllib.loads(text)
    assert f"# {tmp_path}/copy: left out, its domain a.example is also [shops.anna]'s" in text
    assert text.endswith("# no shop with the module found\n")


def test_when_every_shop_found_is_configured_the_text_says_so(tmp_path: Path) -> None:
    make_shop(tmp_path / "a")
    have = Known(frozenset({"a"}), {(tmp_path / "a").resolve(): "a"})
    text = _discover.tables([tmp_path], have)
    assert text.endswith("# no shop with the module found but those configured\n")


# --- discover --write ---------------------------------------------------------------


def etc_with_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration whose shared settings work, and its (missing) shops.d."""
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "pulsed.toml").write_text('[pulse]\napi_host = "https://pulse.example"\n')
    (etc / "pulsed.toml").chmod(0o600)
    monkeypatch.setenv("PULSED_CONFIG", str(etc / "pulsed.toml"))
    return etc / "shops.d"


def test_write_makes_one_shop_file_per_shop_that_the_configuration_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulsed._config import load_setup

    shops_d = etc_with_config(tmp_path, monkeypatch)
    make_shop(tmp_path / "www" / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    make_shop(tmp_path / "www" / "b", "define('DB_PREFIX', 'oc_');")  # no domain
    old = os.umask(0o077)  # as sudo may leave it: the service's user must still read them
    try:
        assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    finally:
        os.umask(old)
    out = capsys.readouterr().out
    assert sorted(p.name for p in shops_d.iterdir()) == ["a_example.toml", "b.toml"]
    for path in shops_d.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the service's user reads them
    assert stat.S_IMODE(shops_d.stat().st_mode) == 0o755
    assert tomllib.loads((shops_d / "a_example.toml").read_text()) == {
        "shop": {"root": str(tmp_path / "www" / "a")}
    }
    assert f"wrote    {shops_d}/a_example.toml  a.example" in out
    assert f"wrote    {shops_d}/b.toml  no domain: set shop.domain in it" in out
    assert f"2 written (mode 0644), 0 kept, 0 left out, in {shops_d}" in out
    assert "  sudo pulsed add-secrets FILE\n" in out
    assert "  sudo systemctl daemon-reload\n" in out
    setup = load_setup({}, os.environ, secrets=False)
    assert [c.name for c in setup.shops] == ["a_example"]
    assert [(d.name, d.error.setting) for d in setup.disabled] == [("b", "shop.domain")]


def test_a_disabled_shop_found_again_is_kept_under_its_name_not_listed_anew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its config.php lost the domain after it was listed: pulsed disables it, and
    # discover knows the folder by the root its file names, not by a domain.
    shops_d = etc_with_config(tmp_path, monkeypatch)
    shop = tmp_path / "www" / "a"
    make_shop(shop, "define('HTTPS_SERVER', 'https://a.example/');")
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    (shop / "config.php").write_text("<?php\n// the define lost in an edit\n")
    capsys.readouterr()
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    out = capsys.readouterr().out
    assert f"kept     {shop}: already configured, as shop a_example" in out, out
    assert sorted(p.name for p in shops_d.iterdir()) == ["a_example.toml"]


def test_write_again_keeps_every_shop_already_configured_and_writes_the_new_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shops_d = etc_with_config(tmp_path, monkeypatch)
    make_shop(tmp_path / "www" / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    (shops_d / "a_example.toml").write_text((shops_d / "a_example.toml").read_text() + "# edited\n")
    make_shop(tmp_path / "www" / "c", "define('HTTPS_SERVER', 'https://c.example/');")
    capsys.readouterr()
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    out = capsys.readouterr().out
    assert f"kept     {tmp_path}/www/a: already configured, as shop a_example" in out
    assert f"wrote    {shops_d}/c_example.toml  c.example" in out
    assert "1 written (mode 0644), 1 kept, 0 left out" in out
    assert (shops_d / "a_example.toml").read_text().endswith("# edited\n")  # not touched


def test_write_never_writes_over_a_file_of_the_folder_even_one_not_in_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    etc_with_config(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a_example.toml").write_text("mine")
    make_shop(tmp_path / "www" / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    assert _discover.main([str(tmp_path / "www")], str(elsewhere)) == 0
    out = capsys.readouterr().out
    assert (elsewhere / "a_example.toml").read_text() == "mine"
    assert f"wrote    {elsewhere}/a_example-2.toml  a.example" in out
    assert f"the configuration in force reads {tmp_path}/etc/shops.d, not this folder" in out


def test_a_file_that_appears_while_writing_is_kept_and_said_so(tmp_path: Path) -> None:
    root = make_shop(tmp_path / "www" / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    findings = _discover.find([tmp_path / "www"])
    shops_d = tmp_path / "shops.d"
    shops_d.mkdir()
    (shops_d / "a_example.toml").write_text("raced")
    out = _discover.write(findings, shops_d, shops_d)
    assert (shops_d / "a_example.toml").read_text() == "raced"
    assert f"kept     {shops_d}/a_example.toml: it exists; not written over" in out
    assert "0 written (mode 0644), 1 kept, 0 left out" in out
    assert "next:" not in out  # nothing written, nothing to load
    assert root.is_dir()


def test_write_refuses_a_folder_others_may_write_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shops_d = etc_with_config(tmp_path, monkeypatch)
    shops_d.mkdir(mode=0o777)
    shops_d.chmod(0o777)
    make_shop(tmp_path / "www" / "a")
    with pytest.raises(ConfigError, match="writable by others"):
        _discover.main([str(tmp_path / "www")], str(shops_d))
    assert list(shops_d.iterdir()) == []


def one_shop_and_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second_domain: str
) -> tuple[Path, Path]:
    """A one-shop configuration ([shop] root, f.example) and a second shop of
    ``second_domain`` beside it under www/: the shops.d folder and the first's root."""
    shops_d = etc_with_config(tmp_path, monkeypatch)
    first = make_shop(tmp_path / "www" / "first", "define('HTTPS_SERVER', 'https://f.example/');")
    make_shop(tmp_path / "www" / "second", f"define('HTTPS_SERVER', 'https://{second_domain}/');")
    config = shops_d.parent / "pulsed.toml"
    config.write_text(config.read_text() + f'[shop]\nroot = "{first}"\n')
    return shops_d, first


def test_the_one_shop_configurations_shop_is_written_as_default_keeping_its_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pulsed._config import load_setup

    shops_d, first = one_shop_and_another(tmp_path, monkeypatch, "s.example")
    printed = _discover.tables([tmp_path / "www"], _provision.known({}, os.environ))
    assert tomllib.loads(printed)["shops"] == {
        "default": {"root": str(first)},
        "s_example": {"root": str(tmp_path / "www" / "second")},
    }
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    out = capsys.readouterr().out
    assert f"wrote    {shops_d}/default.toml  f.example\nnote     default: the one shop" in out
    setup = load_setup({}, os.environ, secrets=False)
    assert [(c.name, c.domain) for c in setup.shops] == [
        ("default", "f.example"),
        ("s_example", "s.example"),
    ]
    assert setup.shops[0].state_dir == setup.state_dir  # <state_dir>/state.json, as before


def test_the_one_shops_domain_set_in_its_configuration_goes_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shops_d = etc_with_config(tmp_path, monkeypatch)
    first = make_shop(tmp_path / "www" / "first", "define('DB_PREFIX', 'oc_');")  # no domain
    config = shops_d.parent / "pulsed.toml"
    config.write_text(config.read_text() + f'[shop]\nroot = "{first}"\ndomain = "F.example"\n')
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    assert (shops_d / "default.toml").read_text() == (
        f'# {_provision.CARRIED}\n[shop]\nroot = "{first}"\ndomain = "f.example"\n'
    )


def test_the_write_report_line_by_line(tmp_path: Path) -> None:
    make_shop(tmp_path / "www" / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    make_shop(tmp_path / "www" / "b", "define('HTTPS_SERVER', 'https://a.example/');")
    findings = _discover.find([tmp_path / "nope", tmp_path / "www"])
    shops_d = tmp_path / "shops.d"
    report = _discover.write(findings, shops_d, None)
    assert report.splitlines()[:5] == [
        f"note     {tmp_path}/nope: not a folder",
        f"wrote    {shops_d}/a_example.toml  a.example",
        f"note     {tmp_path}/www/b: left out, its domain a.example is also [shops.a_example]'s",
        f"1 written (mode 0644), 0 kept, 2 left out, in {shops_d}",
        "note     the configuration in force reads no shops.d, not this folder: move the files"
        " there",
    ]
    assert report.endswith(_discover.NEXT + "\n")
    assert (shops_d / "a_example.toml").read_text() == (
        f'# a.example: found by pulsed discover\n[shop]\nroot = "{tmp_path}/www/a"\n'
    )


def test_write_with_no_shop_found_makes_no_folder(tmp_path: Path) -> None:
    shops_d = tmp_path / "shops.d"
    report = _discover.write(_discover.find([tmp_path]), shops_d, shops_d)
    assert report == f"0 written (mode 0644), 0 kept, 0 left out, in {shops_d}\n"
    assert not shops_d.exists()


def test_a_folder_given_twice_is_walked_once_without_a_note(tmp_path: Path) -> None:
    make_shop(tmp_path / "a")
    findings = _discover.find([tmp_path, tmp_path / "a"])
    assert [type(f).__name__ for f in findings] == ["Found"]


def test_a_shop_without_a_domain_is_written_with_the_reason_and_an_empty_one(
    tmp_path: Path,
) -> None:
    root = make_shop(tmp_path / "www" / "b", "define('DB_PREFIX', 'oc_');")
    shops_d = tmp_path / "shops.d"
    _discover.write(_discover.find([tmp_path / "www"]), shops_d, shops_d)
    assert (shops_d / "b.toml").read_text() == (
        "# no domain: found by pulsed discover\n"
        "[shop]\n"
        f'root = "{root}"\n'
        "# no domain in config.php (no define('HTTPS_SERVER', …) nor"
        f" define('HTTP_SERVER', …) in {root}/config.php)\n"
        'domain = ""  # set it, or the shop stays disabled\n'
    )


def test_a_folder_others_may_write_is_refused_naming_write(tmp_path: Path) -> None:
    make_shop(tmp_path / "www" / "a")
    shops_d = tmp_path / "shops.d"
    shops_d.mkdir()
    shops_d.chmod(0o777)
    with pytest.raises(ConfigError) as refused:
        _discover.write(_discover.find([tmp_path / "www"]), shops_d, shops_d)
    assert str(refused.value) == (
        f"--write: {shops_d} is writable by others (mode 0777); chmod go-w {shops_d}"
    )


def test_a_link_to_a_folder_inside_the_tree_is_not_walked_either(tmp_path: Path) -> None:
    make_shop(tmp_path / "a")
    (tmp_path / "link").symlink_to(tmp_path / "a")
    (tmp_path / "z").symlink_to(tmp_path)
    assert found(tmp_path) == ["a"]


def test_the_shops_after_one_without_a_domain_or_of_a_domain_seen_are_still_listed(
    tmp_path: Path,
) -> None:
    make_shop(tmp_path / "a", "define('DB_PREFIX', 'oc_');")
    make_shop(tmp_path / "b", "define('HTTPS_SERVER', 'https://b.example/');")
    make_shop(tmp_path / "c", "define('HTTPS_SERVER', 'https://b.example/');")
    make_shop(tmp_path / "d", "define('HTTPS_SERVER', 'https://d.example/');")
    shops = tomllib.loads(_discover.tables([tmp_path]))["shops"]
    assert sorted(shops) == ["a", "b_example", "d_example"]


def test_a_shop_of_the_one_shops_domain_is_left_out_naming_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_shop_and_another(tmp_path, monkeypatch, "f.example")
    text = _discover.tables([tmp_path / "www"], _provision.known({}, os.environ))
    assert list(tomllib.loads(text)["shops"]) == ["default"]
    assert (
        f"# {tmp_path}/www/second: left out, its domain f.example is also [shops.default]'s"
        in text.splitlines()
    )


@pytest.mark.skipif(
    DEFAULT_CONFIG_PATH.exists(), reason="this host has a configuration file at the default path"
)
def test_write_with_no_configuration_anywhere_says_no_shops_d_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULSED_CONFIG", raising=False)
    make_shop(tmp_path / "www" / "a", "define('HTTPS_SERVER', 'https://a.example/');")
    shops_d = tmp_path / "shops.d"
    assert _discover.main([str(tmp_path / "www")], str(shops_d)) == 0
    out = capsys.readouterr().out
    assert (
        "note     the configuration in force reads no shops.d, not this folder: move the files"
        " there\n" in out
    )
    assert (shops_d / "a_example.toml").is_file()
