"""``pulsed discover``'s walk and the tables it prints, on real folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulsed import _discover
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
        ("x" * 40, "x" * 29),
        ("Xmas-shop", "Xmas-shop"),
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
    first, second = (_discover.name_for("x" * 40, taken) for _ in range(2))
    assert second == first + "-2"


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
