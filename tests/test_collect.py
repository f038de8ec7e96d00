"""Collecting from a shop tree: real files, a real or stub PHP, a warning for every null (§2)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import anyio
import pytest

from pulsed import _collect, _logging, _shop
from pulsed._body import ShopFacts
from pulsed._collect import collect, parse_php_version

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.anyio
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(REPO / "examples" / "shop", root)
    return root


def stub_php(tmp_path: Path, script: str) -> str:
    php = tmp_path / "php-stub"
    php.write_text("#!/bin/sh\n" + script + "\n")
    php.chmod(0o755)
    return str(php)


def unavailable(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    return {
        r.field: r.reason  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "event", "") == "collect.unavailable"
    }


async def test_example_shop(shop: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    php = stub_php(tmp_path, "printf 8.3.14")
    composer = shop / "system/library/oc_telegram_shop/composer.json"
    facts = await collect(shop, composer, php, 5.0, ENV)
    assert facts == ShopFacts("8.3.14", "1.4.0", "3.0.3.8", "ocStore 3.0.3.8")
    assert unavailable(caplog) == {}


async def test_plain_opencart_has_no_core_version_and_no_warning(
    shop: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (shop / "index.php").write_text("<?php\n// Version\ndefine('VERSION', '4.0.2.3');\n")
    facts = await collect(shop, None, stub_php(tmp_path, "printf 8.2.7"), 5.0, ENV)
    assert (facts.ecommerce_version, facts.ecommerce_core_version) == ("4.0.2.3", None)
    assert set(unavailable(caplog)) == {"module_version"}


@pytest.mark.parametrize(
    ("script", "words"),
    [
        ("exit 3", "exited 3"),
        ("echo 'PHP Fatal error'; exit 255", "exited 255"),
        ("printf 'not a version'", "not a PHP version"),
        ("exec sleep 30", "no answer within"),
    ],
    ids=["exit", "fatal", "garbage", "hang"],
)
async def test_php_failures_are_null_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str, words: str
) -> None:
    version = await _collect.php_version(stub_php(tmp_path, script), 0.5, ENV)
    assert version is None
    assert words in unavailable(caplog)["php_version"]


async def test_missing_php_binary(caplog: pytest.LogCaptureFixture) -> None:
    assert await _collect.php_version("/nonexistent/php", 1.0, ENV) is None
    assert "not found" in unavailable(caplog)["php_version"]


async def test_php_startup_noise_before_the_version_is_ignored(tmp_path: Path) -> None:
    php = stub_php(
        tmp_path,
        "echo 'PHP Warning:  Module \"x\" already loaded in Unknown'; printf 8.1.2-1ubuntu2.14",
    )
    assert await _collect.php_version(php, 5.0, ENV) == "8.1.2-1ubuntu2.14"


async def test_php_gets_exactly_the_environment_it_is_given(tmp_path: Path) -> None:
    # Dropping secrets is child_environ's job (test_process.py checks what php receives
    # from the daemon); running php must add nothing of the daemon's own environment.
    seen = tmp_path / "env"
    php = stub_php(tmp_path, f"cat /proc/$$/environ > {seen}; printf 8.2.7")
    given = {"PATH": ENV["PATH"], "ONLY": "this"}
    assert await _collect.php_version(php, 5.0, given) == "8.2.7"
    raw = seen.read_bytes().decode()
    assert dict(item.split("=", 1) for item in raw.split("\0") if "=" in item) == given


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"8.2.7", "8.2.7"),
        (b"8.3.0RC1\n", "8.3.0RC1"),
        (b"v8.2.7", None),
        (b"x 1.2.3.4.5", "1.2.3.4.5"),
        (b"7.4.33", "7.4.33"),
        (b"8.2.7-1~deb12u1", "8.2.7-1~deb12u1"),
        (b"", None),
    ],
)
def test_parse_php_version(text: bytes, expected: str | None) -> None:
    assert parse_php_version(text) == expected


async def test_real_php(caplog: pytest.LogCaptureFixture) -> None:
    """The contract's own command against Debian's php-cli (CI installs it)."""
    php = shutil.which("php")
    if php is None:
        if os.environ.get("PULSED_REQUIRE_PHP"):
            pytest.fail("PULSED_REQUIRE_PHP is set but there is no php on PATH")
        pytest.skip("no php here; CI installs php-cli and sets PULSED_REQUIRE_PHP")
    version = await _collect.php_version(php, 10.0, ENV)
    assert version is not None and version[0].isdigit() and version.count(".") >= 2


async def test_a_php_version_longer_than_64_characters_is_null_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    php = tmp_path / "php"
    php.write_text("#!/bin/sh\nprintf '8.2.%s' " + "1" * 101 + "\n")
    php.chmod(0o755)
    assert await _collect.php_version(str(php), 10.0, ENV) is None
    (warned,) = [r for r in caplog.records if getattr(r, "event", "") == "collect.unavailable"]
    assert "1-64 printable ASCII" in warned.getMessage()


def replace_with_link(path: Path, *, fifo: bool) -> None:
    """``path`` becomes a symlink to a FIFO, or to itself (a loop)."""
    path.unlink()
    if fifo:
        os.mkfifo(path.with_suffix(".fifo"))
        path.symlink_to(path.with_suffix(".fifo"))
    else:
        path.symlink_to(path)


@pytest.mark.parametrize(
    ("setup", "field", "words"),
    [
        (lambda s: (s / "index.php").unlink(), "ecommerce_version", "not found"),
        (lambda s: (s / "index.php").write_bytes(b""), "ecommerce_version", "VERSION"),
        (
            lambda s: (s / "index.php").write_bytes(b"\x00\xff\xfe" * 1000),
            "ecommerce_version",
            "VERSION",
        ),
        (lambda s: replace_with_link(s / "index.php", fifo=True), "ecommerce_version", "regular"),
        (lambda s: replace_with_link(s / "index.php", fifo=False), "ecommerce_version", "loop"),
        (
            lambda s: (s / "index.php").write_text("<?php define('VERSION', \"$v\");"),
            "ecommerce_version",
            "statically",
        ),
        (
            lambda s: (s / "system/library/oc_telegram_shop/composer.json").write_text("{"),
            "module_version",
            "composer.json",
        ),
        (
            lambda s: (s / "system/library/oc_telegram_shop/composer.json").write_text(
                '{"name": "x"}'
            ),
            "module_version",
            "version",
        ),
        (
            lambda s: (s / "system/library/oc_telegram_shop/composer.json").write_text(
                '{"version": "1.0\\r\\nX-Evil: 1"}'
            ),
            "module_version",
            "not a version",
        ),
        (lambda s: shutil.rmtree(s / "system"), "module_version", "not found"),
    ],
    ids=[
        "missing",
        "empty",
        "binary",
        "fifo",
        "symlink-loop",
        "interpolated",
        "bad-json",
        "no-version",
        "header-injection",
        "no-module",
    ],
)
async def test_bad_shop_files_are_null_with_one_warning(
    shop: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    setup: object,
    field: str,
    words: str,
) -> None:
    setup(shop)  # type: ignore[operator]
    composer = shop / "system/library/oc_telegram_shop/composer.json"
    with caplog.at_level(logging.WARNING):
        facts = await collect(shop, composer, stub_php(tmp_path, "printf 8.2.7"), 5.0, ENV)
    assert getattr(facts, field) is None
    reasons = unavailable(caplog)
    assert words in reasons[field], reasons
    assert facts.php_version == "8.2.7"  # one bad file costs one field only
    assert len([r for r in caplog.records if getattr(r, "field", "") == field]) == 1


async def test_huge_index_php_is_read_only_up_to_the_cap(shop: Path, tmp_path: Path) -> None:
    with (shop / "index.php").open("w") as fh:
        fh.write("<?php\ndefine('VERSION', '3.0.3.8');\n")
        fh.write("// padding\n" * 10_000_000)  # ~110 MB
    facts = await collect(shop, None, stub_php(tmp_path, "printf 8.2.7"), 5.0, ENV)
    assert facts.ecommerce_version == "3.0.3.8"


def test_a_composer_json_cut_at_the_read_limit_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    composer = tmp_path / "composer.json"
    composer.write_text('{"version": "1.4.0", "pad": "' + "x" * (2 << 20) + '"}')
    assert _collect.module_version(composer) is None
    assert (
        "(cut at the 1 MiB read limit): composer.json is not valid JSON"
        in (unavailable(caplog)["module_version"])
    )


async def test_a_slow_to_scan_index_php_never_holds_up_the_event_loop(
    shop: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 16, row 14: 1 MiB of one-character PHP tokens takes seconds to scan; the loop
    (every other shop's heartbeat) must keep running meanwhile."""
    (shop / "index.php").write_text("<?php\ndefine('VERSION', '3.0.3.8');\n" + ";" * (1 << 20))
    php = stub_php(tmp_path, "printf 8.2.7")
    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await anyio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.sleep(0.05)  # the ticker is running before the scan starts
        scan_started = time.monotonic()
        facts = await collect(shop, None, php, 5.0, ENV)
        done.set()
    took = time.monotonic() - scan_started
    assert facts.ecommerce_version == "3.0.3.8"
    assert took > 0.3, "the file was scanned too fast to show anything; make it slower"
    assert max(gaps) < 0.25, f"the loop stood still for {max(gaps):.2f} s of {took:.2f} s"


async def test_warnings_from_the_worker_thread_still_name_the_shop(
    shop: Path, tmp_path: Path
) -> None:
    seen: list[str | None] = []

    class Shops(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(_logging.SHOP.get())  # what the JSON formatter would write

    (shop / "index.php").write_text("<?php\n")
    handler = Shops()
    logging.getLogger("pulsed").addHandler(handler)
    token = _logging.SHOP.set("anna")
    try:
        await collect(shop, None, stub_php(tmp_path, "printf 8.2.7"), 5.0, ENV)
    finally:
        _logging.SHOP.reset(token)
        logging.getLogger("pulsed").removeHandler(handler)
    assert seen and set(seen) == {"anna"}


# --- each warning word for word -------------------------------------------------------


def warnings(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, str, str]]:
    """Each collect.unavailable line: level, field, reason and the message written."""
    return [
        (r.levelno, r.field, r.reason, r.getMessage())  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "event", "") == "collect.unavailable"
    ]


def test_no_composer_json_is_named_word_for_word(caplog: pytest.LogCaptureFixture) -> None:
    assert _collect.module_version(None) is None
    why = "neither shop.composer_json nor shop.root is set"
    assert warnings(caplog) == [
        (logging.WARNING, "module_version", why, f"module_version is null: {why}")
    ]


def test_no_shop_root_is_named_word_for_word(caplog: pytest.LogCaptureFixture) -> None:
    assert _collect.shop_versions(None) == (None, None)
    why = "shop.root is not set"
    assert warnings(caplog) == [
        (logging.WARNING, "ecommerce_version", why, f"ecommerce_version is null: {why}")
    ]


def test_a_composer_version_that_is_no_version_names_the_file_and_the_field(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    composer = tmp_path / "composer.json"
    composer.write_text('{"version": "1.0\\r\\nX-Evil: 1"}')
    assert _collect.module_version(composer) is None
    why = (
        f"{composer}: module_version: '1.0\\r\\nX-Evil: 1' is not a version"
        " (1-64 printable ASCII characters)"
    )
    assert [w[1:3] for w in warnings(caplog)] == [("module_version", why)]


def test_bytes_that_are_not_utf8_before_the_version_are_ignored() -> None:
    assert parse_php_version(b"\xff\xfe PHP Warning: \xc3(\n8.2.7") == "8.2.7"


async def test_php_is_run_with_the_contracts_command(tmp_path: Path) -> None:
    args = tmp_path / "args"
    php = stub_php(tmp_path, f"printf '%s\\n' \"$@\" > {args}; printf 8.2.7")
    assert await _collect.php_version(php, 5.0, ENV) == "8.2.7"
    assert args.read_text() == "-r\necho PHP_VERSION;\n"  # contract §2: -r 'echo PHP_VERSION;'


async def test_what_a_failed_php_printed_is_quoted_to_its_last_80_characters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A byte that is not UTF-8 first, then 100 characters, then a newline stripped.
    php = stub_php(tmp_path, "printf '\\377'; printf '0123456789%.0s' 1 2 3 4 5 6 7 8 9 10; exit 3")
    assert await _collect.php_version(php, 5.0, ENV) is None
    said = "0123456789" * 8
    assert [w[1:3] for w in warnings(caplog)] == [
        ("php_version", f"{php} exited 3 and printed {said!r}, not a PHP version")
    ]


async def test_a_php_that_exits_0_without_a_version_says_what_it_printed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    php = stub_php(tmp_path, "printf '  not a version\\n'")
    assert await _collect.php_version(php, 5.0, ENV) is None
    assert [w[1:3] for w in warnings(caplog)] == [
        ("php_version", f"{php} exited 0 and printed 'not a version', not a PHP version")
    ]


async def test_a_php_version_that_is_no_version_is_named_word_for_word(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    php = stub_php(tmp_path, "printf '8.2.%s' " + "1" * 101)
    assert await _collect.php_version(php, 5.0, ENV) is None
    shown = ("8.2." + "1" * 101)[:80]
    why = f"{php} printed php_version: {shown!r} is not a version (1-64 printable ASCII characters)"
    assert warnings(caplog) == [
        (logging.WARNING, "php_version", why, f"php_version is null: {why}")
    ]


async def test_collect_gives_php_its_timeout(
    shop: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with anyio.fail_after(10):  # a php left without its limit would hang for 30 s
        facts = await collect(shop, None, stub_php(tmp_path, "exec sleep 30"), 0.5, ENV)
    assert facts.php_version is None
    assert unavailable(caplog)["php_version"] == "php-stub: no answer within 0.5 s"


# --- which php binary is which --------------------------------------------------------


def key_of(path: Path) -> _collect.BinaryKey:
    info = path.stat()
    return (str(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def test_a_bare_php_name_is_looked_up_on_the_path_php_is_given(tmp_path: Path) -> None:
    folder = tmp_path / "php 8.2" / "bin"  # a space: PATH splits at ":" only
    folder.mkdir(parents=True)
    php = Path(stub_php(folder, "printf 8.2.7"))
    assert _collect.binary_key(php.name, {"PATH": str(folder)}) == key_of(php)
    assert _collect.binary_key(php.name, {"PATH": f"/nonexistent:{folder}"}) == key_of(php)
    assert _collect.binary_key(php.name, ENV) is None  # not on the daemon's PATH


def test_a_bare_php_name_without_a_path_given_is_looked_up_where_exec_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # the daemon's own PATH is not php's
    assert os.defpath.split(":")[0] == "/bin"
    assert _collect.binary_key("sh", {}) == key_of(Path("/bin/sh"))


def test_a_php_path_is_taken_as_it_is(tmp_path: Path) -> None:
    php = Path(stub_php(tmp_path, "printf 8.2.7"))
    assert _collect.binary_key(str(php), {"PATH": "/nonexistent"}) == key_of(php)


def test_there_is_no_key_for_a_php_that_cannot_be_run(tmp_path: Path) -> None:
    plain = tmp_path / "php"
    plain.write_text("#!/bin/sh\nprintf 8.2.7\n")
    plain.chmod(0o644)
    assert _collect.binary_key(str(plain), ENV) is None
    assert _collect.binary_key(str(tmp_path / "absent"), ENV) is None
    assert _collect.binary_key(str(tmp_path), ENV) is None  # a folder


# --- one answer per binary --------------------------------------------------------------


async def test_a_php_that_is_not_there_is_asked_every_time_and_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    versions = _collect.PhpVersions()
    for _ in range(2):
        assert await versions.version("/nonexistent/php", 5.0, ENV) is None
    assert versions.asked == 2
    assert [w[1:3] for w in warnings(caplog)] == [
        ("php_version", "/nonexistent/php: not found")
    ] * 2


async def test_two_binaries_keep_their_own_answers(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    php7, php8 = stub_php(old, "printf 7.4.33"), stub_php(new, "printf 8.3.14")
    versions = _collect.PhpVersions()
    for _ in range(3):
        assert await versions.version(php7, 5.0, ENV) == "7.4.33"
        assert await versions.version(php8, 5.0, ENV) == "8.3.14"
    assert versions.asked == 2


async def test_a_php_that_hangs_holds_up_only_the_shops_that_use_it(tmp_path: Path) -> None:
    # The first php waits until the second has run: it opens a FIFO for reading, which
    # blocks until the second opens it for writing. Asked one after the other, both
    # would wait out their limit.
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    waits = stub_php(first, f"cat {fifo} > /dev/null; printf 7.4.33")
    frees = stub_php(second, f": > {fifo}; printf 8.3.14")
    versions = _collect.PhpVersions()
    got: dict[str, str | None] = {}

    async def ask(php: str) -> None:
        got[php] = await versions.version(php, 5.0, ENV)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, waits)
            tg.start_soon(ask, frees)
    assert got == {waits: "7.4.33", frees: "8.3.14"}


async def test_the_shared_answers_keep_php_to_its_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    versions = _collect.PhpVersions()
    with anyio.fail_after(10):  # a php left without its limit would hang for 30 s
        assert await versions.version(stub_php(tmp_path, "exec sleep 30"), 0.5, ENV) is None
    assert unavailable(caplog)["php_version"] == "php-stub: no answer within 0.5 s"


async def test_a_relative_php_binary_is_the_one_php_runs_from_root_not_from_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # php runs from /: a relative php_binary (or a relative folder on PATH) names what
    # it names from there, and the version cache keys that file, never a file of the
    # same relative name under pulsed's working folder. Its limit holds as always.
    php = stub_php(tmp_path, "exec sleep 30")
    elsewhere = tmp_path / "elsewhere"
    relative = php.lstrip("/")
    decoy = elsewhere / relative
    decoy.parent.mkdir(parents=True)
    shutil.copy(php, decoy)
    monkeypatch.chdir(elsewhere)
    assert _collect.binary_key(relative, ENV) == key_of(Path(php))
    folder = str(Path(php).parent).lstrip("/")
    assert _collect.binary_key(Path(php).name, {"PATH": folder}) == key_of(Path(php))
    versions = _collect.PhpVersions()
    with anyio.fail_after(10):  # a php left without its limit would hang for 30 s
        assert await versions.version(relative, 0.5, ENV) is None
    assert unavailable(caplog)["php_version"] == "php-stub: no answer within 0.5 s"


async def test_collect_asks_through_the_shared_answers_when_given_them(
    shop: Path, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    php = stub_php(tmp_path, f"echo x >> {calls}; printf 8.2.7")
    versions = _collect.PhpVersions()
    for _ in range(2):
        facts = await collect(shop, None, php, 5.0, ENV, php=versions)
        assert facts.php_version == "8.2.7"
    assert versions.asked == 1
    assert calls.read_text() == "x\n"


# --- shop files read again only when they change ------------------------------------


def settled() -> int:
    """An hour from now: every file the test wrote has settled (see SETTLED_NS)."""
    return time.time_ns() + 3600 * 10**9


class Reads:
    """The shop reader, counting the paths it reads."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def __call__(self, path: Path) -> _shop.ShopFile:
        self.paths.append(path)
        return _shop.read(path)


def composer_of(shop: Path) -> Path:
    return shop / "system/library/oc_telegram_shop/composer.json"


def change_ctime(path: Path, before: os.stat_result) -> None:
    """Set ``path``'s mtime back to ``before``'s, until its ctime differs from ``before``'s.

    The file system's clock may not have ticked since ``before`` was taken: setting the
    times again until it has is the premise of the test, not a wait for an event.
    """
    for _ in range(100_000):
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if path.stat().st_ctime_ns != before.st_ctime_ns:
            return
    pytest.fail("the ctime never changed")


async def test_unchanged_shop_files_are_read_once_over_many_heartbeats(
    shop: Path, tmp_path: Path
) -> None:
    reads = Reads()
    files = _collect.ShopFiles(reads, settled)
    php = stub_php(tmp_path, "printf 8.2.7")
    for _ in range(3):
        facts = await collect(shop, composer_of(shop), php, 5.0, ENV, files=files)
        assert facts == ShopFacts("8.2.7", "1.4.0", "3.0.3.8", "ocStore 3.0.3.8")
    assert reads.paths == [shop / "index.php", composer_of(shop)]


def test_an_edit_that_keeps_the_size_and_the_mtime_is_read_again(shop: Path) -> None:
    index = shop / "index.php"
    files = _collect.ShopFiles(Reads(), settled)
    assert _collect.shop_versions(shop, files)[0] == "3.0.3.8"
    before = index.stat()
    index.write_text(index.read_text().replace("'3.0.3.8'", "'3.0.3.9'"))
    change_ctime(index, before)
    after = index.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    assert _collect.shop_versions(shop, files)[0] == "3.0.3.9"


def test_a_file_replaced_by_another_of_the_same_size_and_mtime_is_read_again(
    shop: Path,
) -> None:
    composer = composer_of(shop)
    files = _collect.ShopFiles(Reads(), settled)
    assert _collect.module_version(composer, files) == "1.4.0"
    before = composer.stat()
    new = composer.with_name("composer.json.new")
    new.write_text(composer.read_text().replace('"1.4.0"', '"1.4.1"'))
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    new.replace(composer)
    assert composer.stat().st_ino != before.st_ino
    assert _collect.module_version(composer, files) == "1.4.1"


def test_a_file_is_kept_from_the_moment_its_last_change_has_settled(shop: Path) -> None:
    changed = (shop / "index.php").stat().st_ctime_ns
    now = changed + _collect.SETTLED_NS - 1
    reads = Reads()
    files = _collect.ShopFiles(reads, lambda: now)
    for _ in range(2):
        _collect.shop_versions(shop, files)
    assert len(reads.paths) == 2  # a change in the same tick could leave its stamps
    now += 1
    for _ in range(2):
        _collect.shop_versions(shop, files)
    assert len(reads.paths) == 3


def test_the_wall_clock_in_nanoseconds_says_when_a_file_has_settled() -> None:
    # A file of this Python's own library: installed long before this test ran.
    old = Path(json.__file__)
    reads = Reads()
    kept = _collect.ShopFiles(reads).composer
    assert kept.made(old) == kept.made(old)
    assert reads.paths == [old]


def test_a_kept_file_still_gives_its_warnings_at_every_heartbeat(
    shop: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (shop / "index.php").write_text("<?php\n")
    composer_of(shop).write_text('{"name": "x"}')
    reads = Reads()
    files = _collect.ShopFiles(reads, settled)
    for _ in range(3):
        assert _collect.shop_versions(shop, files) == (None, None)
        assert _collect.module_version(composer_of(shop), files) is None
    assert len(reads.paths) == 2
    first = warnings(caplog)[:2]
    assert [w[1] for w in first] == ["ecommerce_version", "module_version"]
    assert warnings(caplog) == first * 3


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.unlink(),
        lambda path: replace_with_link(path, fifo=True),
    ],
    ids=["missing", "fifo"],
)
def test_a_file_that_cannot_be_read_is_tried_and_warned_of_at_every_heartbeat(
    shop: Path, caplog: pytest.LogCaptureFixture, spoil: object
) -> None:
    index = shop / "index.php"
    reads = Reads()
    files = _collect.ShopFiles(reads, settled)
    assert _collect.shop_versions(shop, files)[0] == "3.0.3.8"
    spoil(index)  # type: ignore[operator]
    for _ in range(2):
        assert _collect.shop_versions(shop, files) == (None, None)
    assert len(reads.paths) == 3
    (first, second) = warnings(caplog)
    assert first == second and first[1] == "ecommerce_version"


def test_a_path_with_a_nul_byte_is_still_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = _collect.ShopFiles(Reads(), settled)
    assert _collect.module_version(tmp_path / "com\0poser.json", files) is None
    assert "not a valid path" in unavailable(caplog)["module_version"]


def test_a_shop_whose_path_changes_keeps_only_the_latest_file(shop: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(shop, other)
    reads = Reads()
    files = _collect.ShopFiles(reads, settled)
    for root in (shop, other, other, shop):
        assert _collect.shop_versions(root, files)[0] == "3.0.3.8"
    assert reads.paths == [shop / "index.php", other / "index.php", shop / "index.php"]
