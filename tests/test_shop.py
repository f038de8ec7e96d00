"""The shop's files (contract §1, §2): the bounded read, versions, the domain, composer.json."""

from __future__ import annotations

import errno
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from pulsed import _shop
from pulsed._config import resolve_domain
from pulsed._errors import CollectError, ConfigError
from pulsed._shop import (
    READ_LIMIT,
    ShopFile,
    composer_version,
    plausible_version,
    read,
)


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fails a test that blocks for 5 s instead of hanging the run."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("blocked for 5 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(5)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def php(text: str, name: str = "index.php", *, cut: bool = False) -> ShopFile:
    return ShopFile(Path("/shop") / name, text, cut)


# --- the read ---------------------------------------------------------------------------


def test_read_decodes_utf8_replacing_bad_bytes(tmp_path: Path) -> None:
    (tmp_path / "index.php").write_bytes(b"<?php \xff\xc3\xa9")
    assert read(tmp_path / "index.php") == ShopFile(tmp_path / "index.php", "<?php \ufffdé", False)


def test_read_stops_at_the_limit_and_says_it_cut(tmp_path: Path) -> None:
    (tmp_path / "index.php").write_bytes(b"x" * 11)
    assert (
        read(tmp_path / "index.php", limit=10).text,
        read(tmp_path / "index.php", limit=10).cut,
    ) == ("x" * 10, True)


def test_read_of_a_file_exactly_at_the_limit_is_not_cut(tmp_path: Path) -> None:
    (tmp_path / "index.php").write_bytes(b"x" * 10)
    assert read(tmp_path / "index.php", limit=10).cut is False


def test_read_refuses_a_fifo_without_blocking(tmp_path: Path, alarm: None) -> None:
    os.mkfifo(tmp_path / "index.php")
    with pytest.raises(CollectError, match=r"index\.php: not a regular file$"):
        read(tmp_path / "index.php")


@pytest.mark.parametrize("path", [Path("/dev/null"), Path("/")], ids=["device", "directory"])
def test_read_refuses_what_is_not_a_regular_file(path: Path, alarm: None) -> None:
    with pytest.raises(CollectError, match=r": not a regular file$"):
        read(path)


def test_read_refuses_a_socket(tmp_path: Path, alarm: None) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s"))
        with pytest.raises(CollectError, match=r": not a regular file$"):
            read(tmp_path / "s")


def test_read_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CollectError, match=rf"^{tmp_path}/index\.php: not found$"):
        read(tmp_path / "index.php")


def test_read_names_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "a")
    with pytest.raises(CollectError, match=r"a: symlink loop$"):
        read(tmp_path / "a")


def test_read_names_a_refusal_of_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root reads a mode-000 file, so the kernel's refusal is simulated.
    def refuse(path: object, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(CollectError, match=r"index\.php: permission denied$"):
        read(tmp_path / "index.php")


def test_read_refuses_a_path_with_a_nul_byte() -> None:
    with pytest.raises(CollectError, match="not a valid path"):
        read(Path("/x\x00y"))


# --- versions ---------------------------------------------------------------------------


def test_versions_of_plain_opencart_have_no_core_and_no_problem() -> None:
    assert _shop.versions(php("<?php define('VERSION', '4.0.2.3');")) == ("4.0.2.3", None, [])


def test_a_missing_version_is_one_problem_naming_the_file() -> None:
    assert _shop.versions(php("<?php")) == (
        None,
        None,
        [("ecommerce_version", "no define('VERSION', …) in /shop/index.php")],
    )


def test_a_missing_version_in_a_cut_file_says_it_was_cut() -> None:
    _, _, problems = _shop.versions(php("<?php", cut=True))
    assert problems == [
        (
            "ecommerce_version",
            "no define('VERSION', …) in the first 1 MiB of /shop/index.php"
            " (file is larger; cut at the read limit)",
        )
    ]


def test_a_version_chosen_at_run_time_is_one_problem_naming_the_lines() -> None:
    source = "<?php\nif ($a) {\n define('VERSION', '1');\n} else {\n define('VERSION', '2');\n}"
    assert _shop.versions(php(source)) == (
        None,
        None,
        [
            (
                "ecommerce_version",
                "/shop/index.php: VERSION is defined differently on lines 3 and 5,"
                " chosen only at run time",
            )
        ],
    )


def test_a_core_version_that_is_not_a_version_is_null_saying_why() -> None:
    source = "<?php define('VERSION', '3.0'); define('VERSION_CORE', \"ocStore\\r\\nX: 1\");"
    version, core, problems = _shop.versions(php(source))
    assert (version, core) == ("3.0", None)
    assert [(f, "1-64 printable ASCII" in why) for f, why in problems] == [
        ("ecommerce_core_version", True)
    ]


def test_a_version_that_is_not_a_version_names_its_field_in_the_reason() -> None:
    source = "<?php define('VERSION', '3.0'); define('VERSION_CORE', '');"
    _, _, problems = _shop.versions(php(source))
    assert [why.split(":")[0] for _, why in problems] == ["ecommerce_core_version"]


@pytest.mark.parametrize(
    "value", ["1", "1.4.0", "ocStore 3.0.3.8", "1.0-X", "~!@#$%^&*()_+", "9" * 64]
)
def test_plausible_version_keeps_printable_ascii(value: str) -> None:
    assert plausible_version(value, "module_version") == value


@pytest.mark.parametrize("value", ["", " 1.0", "1.0 ", "1.0\r\nX: 1", "1\x00", "é", "9" * 65])
def test_plausible_version_refuses_the_rest(value: str) -> None:
    with pytest.raises(
        CollectError, match=r"^module_version: .* is not a version \(1-64 printable"
    ):
        plausible_version(value, "module_version")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "a/b", "version": "1.4.0"}', "1.4.0"),
        ('\ufeff{"version": "2.0.0-beta.1"}', "2.0.0-beta.1"),
    ],
)
def test_composer_version_reads_the_version(text: str, expected: str) -> None:
    assert composer_version(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{", "not valid JSON (line 1 column 2"),
        ("[" * 100_000, "not valid JSON"),
        ('["1"]', 'no "version" string in a JSON object'),
        ('{"version": 1}', 'no "version" string in a JSON object'),
        ('{"version": ""}', 'no "version" string in a JSON object'),
    ],
)
def test_composer_version_refuses_what_has_none(text: str, why: str) -> None:
    with pytest.raises(CollectError, match=r"^composer\.json ") as caught:
        composer_version(text)
    assert why in str(caught.value)


def test_a_refused_version_is_quoted_cut_at_80_characters() -> None:
    with pytest.raises(CollectError) as caught:
        plausible_version("é" * 100, "module_version")
    assert repr("é" * 80) in str(caught.value)


# --- the domain -------------------------------------------------------------------------


CONFIG_3 = (
    "<?php\n// HTTP\ndefine('HTTP_SERVER', 'http://shop.example/');\n\n"
    "// HTTPS\ndefine('HTTPS_SERVER', 'https://Secure.Example/');\n\n"
    "define('DB_PASSWORD', 'db-secret');\n"
)


def test_domain_prefers_https_server() -> None:
    assert _shop.domain(php(CONFIG_3, "config.php")) == "secure.example"


def test_domain_falls_back_to_http_server_only_when_https_server_is_absent() -> None:
    assert (
        _shop.domain(php("<?php define('HTTP_SERVER', 'http://localhost:8080/oc/');"))
        == "localhost:8080"
    )


@pytest.mark.parametrize(
    ("https", "why"),
    [
        (
            "'https://' . $_SERVER['HTTP_HOST'] . '/'",
            r"HTTPS_SERVER \(line 1\) cannot be read statically",
        ),
        ("'   '", "HTTPS_SERVER: no host"),
    ],
    ids=["dynamic", "blank"],
)
def test_an_https_server_that_cannot_be_known_is_never_replaced_by_http_server(
    https: str, why: str
) -> None:
    source = (
        f"<?php define('HTTPS_SERVER', {https});\ndefine('HTTP_SERVER', 'http://shop.example/');"
    )
    with pytest.raises(CollectError, match=why):
        _shop.domain(php(source, "config.php"))


# A shop without SSL (common on 1.5.x) writes HTTPS_SERVER as '', and OpenCart then
# uses HTTP_SERVER; contract §2 says the domain comes from it too.
NO_SSL_CONFIG = """<?php
// HTTP
define('HTTP_SERVER', 'http://Plain-Shop.example/');
define('HTTP_IMAGE', 'http://Plain-Shop.example/image/');

// HTTPS
define('HTTPS_SERVER', '');
define('HTTPS_IMAGE', '');
"""


def test_an_https_server_defined_empty_takes_the_domain_from_http_server(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.php").write_text(NO_SSL_CONFIG)
    assert resolve_domain(None, tmp_path) == "plain-shop.example"


def test_an_empty_https_server_and_an_empty_http_server_is_no_host() -> None:
    source = "<?php define('HTTPS_SERVER', '');\ndefine('HTTP_SERVER', '');\n"
    with pytest.raises(CollectError, match="HTTP_SERVER: no host"):
        _shop.domain(php(source, "config.php"))


def test_a_protocol_relative_fully_qualified_host_is_sent_as_written_lower_cased(
    tmp_path: Path,
) -> None:
    (tmp_path / "config.php").write_text(
        "<?php\ndefine('HTTP_SERVER', '//www.Shop.example.com./');\n"
        "define('HTTPS_SERVER', '//www.Shop.example.com./');\n"
    )
    assert resolve_domain(None, tmp_path) == "www.shop.example.com."


def test_an_https_server_chosen_at_run_time_is_refused_naming_the_lines() -> None:
    source = (
        "<?php\nif ($live) {\n define('HTTPS_SERVER', 'https://a.example/');\n} else {\n"
        " define('HTTPS_SERVER', 'https://b.example/');\n}\ndefine('HTTP_SERVER', 'http://a.example/');"
    )
    with pytest.raises(CollectError, match="HTTPS_SERVER is defined differently on lines 3 and 5"):
        _shop.domain(php(source, "config.php"))


def test_a_host_taken_from_the_environment_is_refused_naming_the_line() -> None:
    # The shape OpenCart 4's upgrader writes when the old config named its host so.
    source = (
        "<?php\n// APPLICATION\ndefine('APPLICATION', 'Catalog');\n\n// HTTP\n"
        "define('HOST_NAME', getenv('HOST_NAME', true));\ndefine('HTTP_SERVER', HOST_NAME . '/');\n"
    )
    with pytest.raises(CollectError, match=r"HTTP_SERVER \(line 7\) .*uses the name 'HOST_NAME'"):
        _shop.domain(php(source, "config.php"))


def test_no_server_define_in_a_config_names_both() -> None:
    with pytest.raises(CollectError) as caught:
        _shop.domain(php("<?php", "config.php"))
    assert str(caught.value) == (
        "no define('HTTPS_SERVER', …) nor define('HTTP_SERVER', …) in /shop/config.php"
    )


def test_no_server_define_in_a_cut_config_says_it_was_cut() -> None:
    with pytest.raises(
        CollectError, match=r"in the first 1 MiB of /shop/config\.php \(file is larger"
    ):
        _shop.domain(php("<?php", "config.php", cut=True))


def test_resolve_domain_refuses_a_run_time_choice_as_shop_domain(tmp_path: Path) -> None:
    (tmp_path / "config.php").write_text(
        "<?php if ($a) { define('HTTPS_SERVER', 'https://a.example/'); }"
        "\nelse { define('HTTPS_SERVER', 'https://b.example/'); }"
    )
    with pytest.raises(ConfigError, match=r"^shop\.domain: not set, and .*lines 1 and 2") as caught:
        resolve_domain(None, tmp_path)
    assert caught.value.setting == "shop.domain"
    assert resolve_domain("https://Shop.Example/", tmp_path) == "shop.example"


def test_resolve_domain_refuses_an_invalid_override() -> None:
    with pytest.raises(ConfigError, match=r"^shop\.domain: .*at most 253"):
        resolve_domain("x" * 254, None)


def test_the_read_limit_is_one_mebibyte() -> None:
    assert READ_LIMIT == 1 << 20
