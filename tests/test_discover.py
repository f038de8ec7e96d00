"""``pulsed discover``'s walk and the tables it prints, on real folders."""

from __future__ import annotations

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
