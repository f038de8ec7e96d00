"""Reading shop files statically (§2): index.php defines, config.php domain, composer.json.

The define finder is checked against tables of what real OpenCart / ocStore files and
PHP's grammar hold, and by hypothesis: round trips through every quoting style, spacing,
comment and line ending; any text or bytes raising nothing but CollectError; the bulk
skipping finding what token-by-token reading finds. When a ``php`` binary is on PATH,
PHP itself is the reference: what it defines for the tables and for generated sources,
and where its own tokenizer puts strings, names and braces.

PULSED_HYPOTHESIS_EXAMPLES sets the examples per property (default 500; the soak run
uses 10000); the PHP comparisons take one example per 50 of them, 25-50 sources each.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsed import _phpsrc
from pulsed._errors import CollectError
from pulsed._phpsrc import (
    MAX_SOURCE_BYTES,
    composer_version,
    domain_from_config_php,
    find_define,
    normalize_domain,
    plausible_version,
    read_text,
)

T = TypeVar("T")
EXAMPLES = int(os.environ.get("PULSED_HYPOTHESIS_EXAMPLES", "500"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PHP = shutil.which("php")
needs_php = pytest.mark.skipif(PHP is None, reason="no php binary to compare with")


# --- read_text ------------------------------------------------------------------------


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


def test_read_text_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    path.write_text("<?php\ndefine('VERSION', '4.0.2.3');\n")
    assert read_text(path) == "<?php\ndefine('VERSION', '4.0.2.3');\n"


def test_read_text_of_an_empty_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    path.write_bytes(b"")
    assert read_text(path) == ""


def test_read_text_tolerates_binary_bytes(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    path.write_bytes(b"\xff\xfe\x00\x80<?php define('VERSION', '3.0.3.8'); \xc3(\x00")
    text = read_text(path)
    assert text.startswith("\ufffd\ufffd\x00\ufffd<?php")
    assert find_define(text, "VERSION") == "3.0.3.8"


def test_read_text_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    head = "<?php\n// Version\ndefine('VERSION', '4.0.2.3');\n"
    # Code, so that the cut at the limit falls inside a string literal.
    filler = "$rows[] = 'define(\\'VERSION_CORE\\', \\'no\\') " + "x" * 37 + "';\n"
    path.write_text(head + filler * (3 * MAX_SOURCE_BYTES // len(filler)))
    assert path.stat().st_size > 3 * MAX_SOURCE_BYTES - len(filler)
    started = time.perf_counter()
    text = read_text(path)
    found = find_define(text, "VERSION")
    elapsed = time.perf_counter() - started
    assert len(text) == MAX_SOURCE_BYTES
    assert found == "4.0.2.3"
    assert find_define(text, "VERSION_CORE") is None
    assert elapsed < 1.0
    assert read_text(path, limit=10) == "<?php\n// V"


def test_read_text_cut_inside_a_character_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    path.write_bytes("<?php é".encode())
    assert read_text(path, limit=7) == "<?php \ufffd"


def test_read_text_of_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    with pytest.raises(CollectError, match=r"index\.php: not found$") as caught:
        read_text(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)


def test_read_text_under_a_file_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(CollectError, match="not found"):
        read_text(tmp_path / "file" / "index.php")


def test_read_text_refuses_a_directory(tmp_path: Path) -> None:
    with pytest.raises(CollectError, match=r": not a regular file$"):
        read_text(tmp_path)


def test_read_text_refuses_a_fifo_without_blocking(tmp_path: Path, alarm: None) -> None:
    path = tmp_path / "index.php"
    os.mkfifo(path)
    with pytest.raises(CollectError, match=r"index\.php: not a regular file$"):
        read_text(path)


def test_read_text_refuses_a_device(alarm: None) -> None:
    with pytest.raises(CollectError, match=r"^/dev/null: not a regular file$"):
        read_text(Path("/dev/null"))


def test_read_text_refuses_a_socket(tmp_path: Path, alarm: None) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(CollectError, match=r": not a regular file$"):
            read_text(path)


def test_read_text_names_a_symlink_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(CollectError, match=r"a: symlink loop$"):
        read_text(tmp_path / "a")


def test_read_text_follows_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.php").write_text("<?php define('VERSION', '1');")
    (tmp_path / "index.php").symlink_to(tmp_path / "real.php")
    assert find_define(read_text(tmp_path / "index.php"), "VERSION") == "1"


def test_read_text_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root reads any mode-000 file, so the refusal of the kernel is simulated here;
    # test_read_text_permission_denied_for_real covers it where the tests are not root.
    def refuse(path: object, flags: int, mode: int = 0o777) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(CollectError, match=r"index\.php: permission denied$"):
        read_text(tmp_path / "index.php")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file")
def test_read_text_permission_denied_for_real(tmp_path: Path) -> None:
    path = tmp_path / "index.php"
    path.write_text("<?php")
    path.chmod(0)
    with pytest.raises(CollectError, match=r"index\.php: permission denied$"):
        read_text(path)


def test_read_text_of_an_impossible_path() -> None:
    with pytest.raises(CollectError, match="not a valid path"):
        read_text(Path("/nowhere/x\x00y"))


# --- find_define: real files ----------------------------------------------------------

OPENCART_4023 = """<?php
// Version
define('VERSION', '4.0.2.3');

// Configuration
if (is_file('config.php')) {
\trequire_once('config.php');
}

// Install
if (!defined('DIR_APPLICATION')) {
\theader('Location: install/index.php');
\texit();
}

// Startup
require_once(DIR_SYSTEM . 'startup.php');

// Framework
require_once(DIR_SYSTEM . 'framework.php');
"""

OPENCART_3038 = """<?php
// Version
define('VERSION', '3.0.3.8');

// Configuration
if (is_file('config.php')) {
\trequire_once('config.php');
}

// Install
if (!defined('DIR_APPLICATION')) {
\theader('Location: install/index.php');
\texit;
}

// Startup
require_once(DIR_SYSTEM . 'startup.php');

start('catalog');
"""

OCSTORE_3037 = """<?php
// Version
define('VERSION', '3.0.3.7');
define('VERSION_CORE', 'ocStore');
define('VERSION_BUILD', '0001');

// Configuration
if (is_file('config.php')) {
\trequire_once('config.php');
}

// Install
if (!defined('DIR_APPLICATION')) {
\theader('Location: install/index.php');
\texit;
}

// Startup
require_once(DIR_SYSTEM . 'startup.php');

start('catalog');
"""

# A fork that names its core and version in one string, with Windows line endings.
OCSTORE_3038_CRLF = (
    "<?php\r\n// Version\r\ndefine('VERSION', '3.0.3.8');\r\n"
    "define('VERSION_CORE', 'ocStore 3.0.3.8');\r\n"
    "define('VERSION_LANGPACK', 'UK-EN-RU');\r\n\r\n"
    "// Configuration\r\nif (is_file('config.php')) {\r\n\trequire_once('config.php');\r\n}\r\n"
)

# Blank lines between everything, as some shop builders save it, and a BOM.
OCSTORE_4000B = (
    "\ufeff<?php\n\n// Version\n\ndefine('VERSION', '4.0.0.0b');\n\n"
    "define('VERSION_CORE', 'ocStore');\n\ndefine('VERSION_BUILD', '0001');\n\n"
    "ini_set('display_errors', 1);\n"
)

OPENCART_3_CONFIG = """<?php
// HTTP
define('HTTP_SERVER', 'http://shop.example.com/');

// HTTPS
define('HTTPS_SERVER', 'https://Shop.Example.com/');

// DIR
define('DIR_APPLICATION', '/var/www/shop/catalog/');
define('DIR_SYSTEM', '/var/www/shop/system/');

// DB
define('DB_DRIVER', 'mysqli');
define('DB_HOSTNAME', 'localhost');
define('DB_USERNAME', 'shop');
define('DB_PASSWORD', 'db-secret-do-not-log');
define('DB_DATABASE', 'shop');
define('DB_PORT', '3306');
define('DB_PREFIX', 'oc_');
"""

OPENCART_4_CONFIG = """<?php
// APPLICATION
define('APPLICATION', 'Catalog');

// HTTP
define('HTTP_SERVER', 'http://localhost:8080/opencart/');

// DIR
define('DIR_OPENCART', '/var/www/opencart/');
define('DIR_APPLICATION', DIR_OPENCART . 'catalog/');
define('DIR_EXTENSION', DIR_OPENCART . 'extension/');
"""


@pytest.mark.parametrize(
    ("source", "version", "core"),
    [
        (OPENCART_4023, "4.0.2.3", None),
        (OPENCART_3038, "3.0.3.8", None),
        (OCSTORE_3037, "3.0.3.7", "ocStore"),
        (OCSTORE_3038_CRLF, "3.0.3.8", "ocStore 3.0.3.8"),
        (OCSTORE_4000B, "4.0.0.0b", "ocStore"),
        (OCSTORE_3037.replace("\n", "\r"), "3.0.3.7", "ocStore"),
    ],
    ids=["opencart-4.0.2.3", "opencart-3.0.3.8", "ocstore-3.0.3.7", "crlf", "blank-lines", "cr"],
)
def test_real_index_php(source: str, version: str, core: str | None) -> None:
    assert find_define(source, "VERSION") == version
    assert find_define(source, "VERSION_CORE") == core


def test_real_config_php_defines() -> None:
    assert find_define(OPENCART_3_CONFIG, "DB_PREFIX") == "oc_"
    assert find_define(OPENCART_4_CONFIG, "HTTPS_SERVER") is None
    with pytest.raises(CollectError, match=r"DIR_APPLICATION \(line 10\).*constant DIR_OPENCART"):
        find_define(OPENCART_4_CONFIG, "DIR_APPLICATION")


# --- find_define: every form PHP accepts ----------------------------------------------

V = "VERSION"
HEREDOC_INDENTED = "<?php\ndefine('VERSION', <<<EOT\n    4.0\n      .2.3\n    EOT);\n"

FORMS: list[tuple[str, str]] = [
    ("<?php\n// Version\ndefine('VERSION', '4.0.2.3');\n", "4.0.2.3"),
    ('<?php define("VERSION", "4.0.2.3");', "4.0.2.3"),
    ("<?php DEFINE('VERSION', '1');", "1"),
    ("<?php Define('VERSION', '1');", "1"),
    ("<?php \\define('VERSION', '1');", "1"),
    ("<?php \\DeFiNe('VERSION', '1');", "1"),
    ("<?php define /*x*/ ( \"VERSION\" , 'a' ) ;", "a"),
    ("<?php define\n(\n'VERSION'\n,\n'a'\n)\n;", "a"),
    ("<?php define\r\n(\r\n'VERSION'\r\n,\r\n'a'\r\n)\r\n;", "a"),
    ("<?php define\r(\r'VERSION'\r,\r'a'\r)\r;", "a"),
    ("<?php define # c\n ( // c\n 'VERSION' /** doc */, # c\n 'a' /* c */ ) ;", "a"),
    ("<?php define('VERSION', 'y', true);", "y"),
    ("<?php define('VERSION', 'y', false,);", "y"),
    ("<?php define('VERSION', 'y',);", "y"),
    ("<?php define(constant_name: 'VERSION', value: 'y');", "y"),
    ("<?php define(value: 'y', constant_name: 'VERSION');", "y"),
    ("<?php define('VERSION', value: 'y');", "y"),
    ("<?php define('VERSION', '3.0' . '.3.8');", "3.0.3.8"),
    ("<?php define('VERSION', '3' . \".0\" . <<<E\n.3\nE . '.8');", "3.0.3.8"),
    ("<?php define('VERSION', ('3.0' . ('.3' . '.8')));", "3.0.3.8"),
    ("<?php define(('VER' . 'SION'), 'y');", "y"),
    ("<?php define(\"VER\\x53ION\", 'y');", "y"),
    ("<?php define(<<<'N'\nVERSION\nN, 'y');", "y"),
    ("<?php define(b'VERSION', b\"y\");", "y"),
    ("<?php const VERSION = '4.0';", "4.0"),
    ("<?php CONST VERSION = '4.0';", "4.0"),
    ("<?php const A = 'x', VERSION = 'y' . 'z';", "yz"),
    ("<?php const A = 1, B = [2, 3], VERSION = 'y';", "y"),
    ("<?php namespace { const VERSION = 'g'; }", "g"),
    # single quotes: only \\ and \' are escapes
    (r"<?php define('VERSION', 'a\'b\\c\d\n');", "a'b\\c\\d\\n"),
    (r"<?php define('VERSION', '\\\'');", "\\'"),
    ("<?php define('VERSION', 'multi\nline\r\nvalue');", "multi\nline\r\nvalue"),
    # double quotes: the escapes of PHP, unknown ones kept
    (r'<?php define("VERSION", "\n\t\r\v\e\f\\\$\"");', '\n\t\r\v\x1b\f\\$"'),
    (
        r'<?php define("VERSION", "\101\60\0\x41\X42\x4g\u{48}\u{1F600}");',
        "A0\x00AB\x04gH\U0001f600",
    ),
    (r'<?php define("VERSION", "\xc3\xa9\303\251");', "éé"),
    (r'<?php define("VERSION", "\400");', "\x00"),
    (r'<?php define("VERSION", "\q\{\'\u00e9");', "\\q\\{\\'\\u00e9"),
    (r'<?php define("VERSION", "$ $1 $- {x} { $ \$a {\$a}");', "$ $1 $- {x} { $ $a {$a}"),
    ('<?php define("VERSION", "\\u{0000000041}");', "A"),
    (r'<?php define("VERSION", "\xff");', "\ufffd"),
    # heredoc and nowdoc, PHP 7.3+ closing markers
    ("<?php define('VERSION', <<<EOT\n4.0.2.3\nEOT\n);", "4.0.2.3"),
    ("<?php define('VERSION', <<<\"EOT\"\n4.0\\x2e2\nEOT);", "4.0.2"),
    ("<?php define('VERSION', <<<  EOT\r\n4.0\r\nEOT);", "4.0"),
    ("<?php define('VERSION', <<<'EOT'\n4.0\\x2e2 $x {$y}\nEOT);", "4.0\\x2e2 $x {$y}"),
    (HEREDOC_INDENTED, "4.0\n  .2.3"),
    ("<?php define('VERSION', <<<EOT\n\t\ta\n\n\t\t\tb\n\t\tEOT, true);", "a\n\n\tb"),
    ("<?php define('VERSION', <<<EOT\n    a\n  \n    b\n    EOT);", "a\n\nb"),
    ("<?php define('VERSION', <<<EOT\nEOT);", ""),
    ("<?php define('VERSION', <<<EOT\n\nEOT);", ""),
    ("<?php define('VERSION', <<<EOT\n\n\nEOT);", "\n"),
    ('<?php define(\'VERSION\', <<<EOT\na "q" \\" \\$ \\\\\nEOT);', 'a "q" \\" $ \\'),
    ("<?php define('VERSION', <<<EOT\nEOTX\n EOT2\nEOT);", "EOTX\n EOT2"),
    ("<?php define('VERSION', <<<EOT\na\\\nEOT);", "a\\"),
    ("<?php define('VERSION', <<<ÉTIQ\nv\nÉTIQ);", "v"),
    # PHP tags: inline HTML, short tags, close tags ending comments
    ("<html>define('VERSION', 'no')</html><?php define('VERSION', 'yes');", "yes"),
    ("<?PHP\ndefine('VERSION', 'yes');", "yes"),
    ("<?= define('VERSION', 'yes') ?>", "yes"),
    ("<? define('VERSION', 'yes');", "yes"),
    ("<?php // define('VERSION', 'no') ?> html <?php define('VERSION', 'yes');", "yes"),
    (
        "<?php # define('VERSION', 'no') ?>define('VERSION', 'no')<?php define('VERSION', 'yes');",
        "yes",
    ),
    ("<?php ?><?php define('VERSION', 'yes') ?>", "yes"),
    ("<?php define('VERSION', 'yes')", "yes"),
    # first definition wins, and conditions do not hide it
    ("<?php define('VERSION', 'first'); define('VERSION', 'second');", "first"),
    ("<?php const VERSION = 'first'; define('VERSION', 'second');", "first"),
    ("<?php if (!defined('VERSION')) { define('VERSION', 'c'); }", "c"),
    ("<?php defined('VERSION') or define('VERSION', 'c');", "c"),
    ("<?php if (true): define('VERSION', 'c'); endif;", "c"),
    ("<?php namespace Shop; define('VERSION', 'ns');", "ns"),
    ("<?php namespace Shop { define('VERSION', 'ns'); }", "ns"),
    ("<?php $v = define('VERSION', 'expr');", "expr"),
    ("<?php 'a' . define('VERSION', 'concat');", "concat"),
    # what comes before is skipped correctly
    (
        "<?php if (false) { $a = \"{$x['define(']} ${y} {$z->f('}')}\"; } define('VERSION', 'ok');",
        "ok",
    ),
    ("<?php $a = `ls {$x}`; define('VERSION', 'ok');", "ok"),
    ("<?php $h = <<<EOT\n{$a[\"\nEOT\n\"]}\nEOT;\ndefine('VERSION', 'ok');", "ok"),
    ("<?php $h = <<<EOT\n  {$a}\n  EOT . 'x'; define('VERSION', 'ok');", "ok"),
    ("<?php class A { const VERSION = 'no'; function define() {} } define('VERSION', 'ok');", "ok"),
    ("<?php function f() { define('VERSION', 'no'); } define('VERSION', 'ok');", "ok"),
    ("<?php $f = function () { define('VERSION', 'no'); }; define('VERSION', 'ok');", "ok"),
    (
        "<?php $o = new class { public function f() { define('VERSION', 'no'); } };\n"
        "define('VERSION', 'ok');",
        "ok",
    ),
    ("<?php enum E: string { case A = 'a'; const VERSION = 'no'; } define('VERSION', 'ok');", "ok"),
    (
        "<?php interface I { const VERSION = 'no'; } trait T { function f() { define('VERSION',"
        " 'no'); } } define('VERSION', 'ok');",
        "ok",
    ),
    ("<?php use function Foo\\bar; if (1) { define('VERSION', 'ok'); }", "ok"),
    ("<?php function f(...$a) { return 1; } if (f(class: 1)) { define('VERSION', 'ok'); }", "ok"),
    ("<?php #[Attr(['x' => 'define'])]\nfunction g() {}\ndefine('VERSION', 'ok');", "ok"),
    ("<?php echo Foo::class; { define('VERSION', 'ok'); }", "ok"),
    ("<?php $x = 1.5e3 . 0x1F . .5; define('VERSION', 'ok');", "ok"),
    ("<?php $a = $b?->define('VERSION', 'no'); define('VERSION', 'ok');", "ok"),
    ("<?php $c = 'ArrayObject'; $x = new $c; define('VERSION', 'ok');", "ok"),
    ("<?php $x = ArrayObject:: /* c */ class; define('VERSION', 'ok');", "ok"),
    ("<?php $f = fn() => 1; define('VERSION', 'ok');", "ok"),
]


@pytest.mark.parametrize(("source", "expected"), FORMS)
def test_define_forms(source: str, expected: str) -> None:
    assert find_define(source, V) == expected


ABSENT = [
    "",
    "<?php",
    "no php at all define('VERSION', 'x');",
    "<?php // define('VERSION', 'x');",
    "<?php # define('VERSION', 'x');",
    "<?php /* define('VERSION', 'x'); */",
    "<?php /** define('VERSION', 'x'); */",
    "<?php /* define('VERSION', 'x');",  # an unterminated comment runs to the end
    '<?php $s = \'define("VERSION", "x")\';',
    "<?php $s = \"define('VERSION', 'x')\";",
    "<?php $s = <<<EOT\ndefine('VERSION', 'x');\nEOT;",
    "<?php $s = <<<'EOT'\n  define('VERSION', 'x');\n  EOT;",
    "<?php ?>define('VERSION', 'x');",
    "<?php undefine('VERSION', 'x');",
    "<?php my_define('VERSION', 'x');",
    "<?php define_it('VERSION', 'x');",
    "<?php $define('VERSION', 'x');",
    "<?php $o->define('VERSION', 'x');",
    "<?php $o -> /* c */ define('VERSION', 'x');",
    "<?php $o?->define('VERSION', 'x');",
    "<?php Foo::define('VERSION', 'x');",
    "<?php Foo\\define('VERSION', 'x');",
    "<?php function define($a, $b) {}",
    "<?php function &define($a, $b) {}",
    "<?php new define('VERSION', 'x');",
    "<?php $f = define(...);",
    "<?php define('version', 'x');",
    "<?php define('VERSION_CORE', 'x');",
    "<?php define('\\VERSION', 'x');",
    "<?php define(\"VERSION \", 'x');",
    "<?php define;",
    "<?php define($name, 'x');",
    "<?php class C { const VERSION = 'x'; }",
    "<?php function f() { define('VERSION', 'x'); }",
    "<?php namespace Shop; const VERSION = 'x';",
    "<?php namespace Shop { const VERSION = 'x'; }",
    "<?php if (1) { const VERSION = 'x'; }",
    "<?php use const Foo\\VERSION;",
    "<?php #[Attr(define('VERSION', 'x'))]\nfunction g() {}",
    "<?php __halt_compiler(); define('VERSION', 'x');",
    "<?php $a = 'unterminated; define('VERSION', 'x');",
    '<?php $a = "{$a["{$b["',
    "<?php $h = <<<EOT\nno end define('VERSION', 'x');",
]


@pytest.mark.parametrize("source", ABSENT)
def test_define_absent(source: str) -> None:
    assert find_define(source, V) is None


UNREADABLE: list[tuple[str, str]] = [
    ("<?php define('VERSION', \"a$b\");", r"\(line 1\) cannot be read statically: .*interpolates"),
    ("<?php define('VERSION', \"a{$b}\");", "interpolates a variable"),
    ("<?php define('VERSION', \"a${b}\");", "interpolates a variable"),
    ("<?php define('VERSION', <<<EOT\n$x\nEOT);", "interpolates a variable"),
    ("<?php define('VERSION', `uname`);", "shell command"),
    ("<?php define('VERSION', getenv('V'));", r"calls getenv\(\)"),
    ("<?php define('VERSION', $v);", r"uses the variable \$v"),
    ("<?php define('VERSION', 3.0);", "uses the number 3.0"),
    ("<?php define('VERSION', OTHER);", "uses the constant OTHER"),
    ("<?php define('VERSION', '1' . PHP_EOL);", "uses the constant PHP_EOL"),
    ("<?php define('VERSION', 'a' ? 'b' : 'c');", r"uses the operator \?"),
    ("<?php define('VERSION', ('a');", "the call reaches the end of the file"),
    ("<?php define('VERSION', 'a' 'b');", 'has a string where "." was expected'),
    ("<?php define('VERSION', 'a' .);", "not a complete expression"),
    ("<?php define('VERSION');", "define\\(\\) has no value"),
    ("<?php define('VERSION', );", "define\\(\\) has no value"),
    ("<?php define('VERSION', 'unterminated);", "unterminated string"),
    ("<?php define('VERSION', \"\\u{110000}\");", "beyond U\\+10FFFF"),
    ("<?php define('VERSION', \"\\u{41\");", "invalid \\\\u"),
    ("<?php define('VERSION', \"\\u{}\");", "invalid \\\\u"),
    ("<?php define('VERSION', <<<EOT\n  a\n b\n  EOT);", "indented less than its closing marker"),
    ("<?php define('VERSION', <<<EOT\n \ta\n \tEOT);", "both tabs and spaces"),
    ("<?php define('VERSION', <<<EOT\n\ta\n  EOT);", "both tabs and spaces"),
    ("<?php const VERSION = 'a' . B;", "uses the constant B"),
    ("<?php const VERSION = 'a'", "the statement reaches the end of the file"),
    ("<?php define('VERSION', getenv('X')); define('VERSION', 'later');", "calls getenv"),
    ("<?php\n\n\ndefine(\n'VERSION', $x);", r"^VERSION \(line 4\) cannot be read statically"),
]


@pytest.mark.parametrize(("source", "message"), UNREADABLE)
def test_define_unreadable(source: str, message: str) -> None:
    with pytest.raises(CollectError, match=message) as caught:
        find_define(source, V)
    assert "cannot be read statically" in str(caught.value)


# --- composer.json, domains, versions -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"name": "acme/oc_telegram_shop", "version": "1.4.0"}', "1.4.0"),
        ('\ufeff{"version": "2.0.0-beta.1"}', "2.0.0-beta.1"),
        ('{"version": "1.0", "version": "1.1"}', "1.1"),
        ('{"version": " 1.0 "}', " 1.0 "),
    ],
)
def test_composer_version(text: str, expected: str) -> None:
    assert composer_version(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"not valid JSON \(line 1 column 1"),
        ("{", "not valid JSON"),
        ('{"version": "1.0",}', "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ('{"version": ' + "1" * 5000 + "}", "not valid JSON"),
        ('["1.0"]', "not a JSON object"),
        ('"1.0"', "not a JSON object"),
        ("null", "not a JSON object"),
        ('{"name": "x"}', 'no "version"'),
        ('{"version": 1.4}', "not a string"),
        ('{"version": null}', "not a string"),
        ('{"version": ["1"]}', "not a string"),
        ('{"version": ""}', "empty"),
    ],
)
def test_composer_version_refused(text: str, message: str) -> None:
    with pytest.raises(CollectError, match=message):
        composer_version(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Shop.Example.COM:8443/store/", "shop.example.com:8443"),
        ("//shop.example.com/", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),
        ("http://shop.example.com", "shop.example.com"),
        ("http://shop.example.com/?route=x#top", "shop.example.com"),
        ("http://shop.example.com?x", "shop.example.com"),
        ("https://user:pa55@Shop.example.com:443/", "shop.example.com:443"),
        ("http://localhost:8080/opencart/", "localhost:8080"),
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("[::1]:8080", "[::1]:8080"),
        ("http://[2001:DB8::1]/", "[2001:db8::1]"),
        ("http://shop.example.com:/", "shop.example.com"),
        ("http://shop.example.com:08080/", "shop.example.com:8080"),
        ("  https://shop.example.com/  ", "shop.example.com"),
        ("http://магазин.рф/", "магазин.рф"),
        ("HTTP://my_shop.local/", "my_shop.local"),
    ],
)
def test_normalize_domain(value: str, expected: str) -> None:
    assert normalize_domain(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no host"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("/store/", "no host"),
        ("http://:8080/", "no host"),
        ("http://shop example.com/", "not a host name"),
        ("http://shop\texample.com/", "not a host name"),
        ("http://shop\x00.com/", "not a host name"),
        ("http://shop%2ecom/", "not a host name"),
        ("http://shop.com\\evil/", "not a host name"),
        ("http://...", "not a host name"),
        ("http://shop.com:0/", "port '0' is not 1..65535"),
        ("http://shop.com:65536/", "is not 1..65535"),
        ("http://shop.com:80a/", "the port is not a number"),
        ("http://shop.com:1:2/", "the port is not a number"),
        ("http://shop.com:123456/", "port '123456' is not 1..65535"),
        ("http://[::1/", "unclosed"),
        ("http://[::g]/", "not an IPv6 address"),
        ("http://[::1]x/", "after the IPv6 address"),
    ],
)
def test_normalize_domain_refused(value: str, message: str) -> None:
    with pytest.raises(CollectError, match=message):
        normalize_domain(value)


def test_normalize_domain_never_repeats_userinfo() -> None:
    with pytest.raises(CollectError) as caught:
        normalize_domain("https://admin:hunter2@bad host/")
    assert "hunter2" not in str(caught.value)


def test_domain_from_config_php_prefers_https() -> None:
    assert domain_from_config_php(OPENCART_3_CONFIG) == "shop.example.com"


def test_domain_from_config_php_without_https_server() -> None:
    assert domain_from_config_php(OPENCART_4_CONFIG) == "localhost:8080"


def test_domain_from_config_php_falls_back_from_a_dynamic_https_server() -> None:
    source = (
        "<?php\ndefine('HTTPS_SERVER', 'https://' . $_SERVER['HTTP_HOST'] . '/');\n"
        "define('HTTP_SERVER', 'http://shop.example.com/');\n"
    )
    assert domain_from_config_php(source) == "shop.example.com"


def test_domain_from_config_php_falls_back_from_an_empty_https_server() -> None:
    source = "<?php define('HTTPS_SERVER', ''); define('HTTP_SERVER', 'http://a.example/');"
    assert domain_from_config_php(source) == "a.example"


def test_domain_from_config_php_neither() -> None:
    with pytest.raises(CollectError, match="defines neither HTTPS_SERVER nor HTTP_SERVER"):
        domain_from_config_php("<?php define('DB_PASSWORD', 'db-secret-do-not-log');")


def test_domain_from_config_php_says_why_both_failed() -> None:
    source = (
        "<?php define('HTTPS_SERVER', getenv('HOST')); define('HTTP_SERVER', 'http:///');\n"
        "define('DB_PASSWORD', 'db-secret-do-not-log');"
    )
    with pytest.raises(CollectError) as caught:
        domain_from_config_php(source)
    message = str(caught.value)
    assert "HTTPS_SERVER (line 1) cannot be read statically: the value calls getenv()" in message
    assert "HTTP_SERVER: no host" in message
    assert "db-secret" not in message


@pytest.mark.parametrize(
    "value", ["1.4.0", "3.0.3.8", "ocStore 3.0.3.8", "x", "~!@#$%^&*()_+ ok", "9" * 64]
)
def test_plausible_version(value: str) -> None:
    assert plausible_version(value, "module_version") is value


@pytest.mark.parametrize(
    "value", ["", " 1.0", "1.0 ", "1.0\n", "1.0\r\nX-Evil: 1", "1\x00", "1.0\x7f", "é", "9" * 65]
)
def test_plausible_version_refused(value: str) -> None:
    with pytest.raises(CollectError) as caught:
        plausible_version(value, "module_version")
    assert str(caught.value) == f"module_version: {value!r:.80} is not a plausible version"


# --- speed ----------------------------------------------------------------------------

REALISTIC_CHUNK = """
class ControllerProductProduct extends Controller {
\tprivate $error = array();

\tpublic function index() {
\t\t$this->load->language('product/product');
\t\t/* a block comment with define('VERSION', 'x') */
\t\t$data['breadcrumbs'][] = array(
\t\t\t'text' => $this->language->get('text_home'),
\t\t\t'href' => $this->url->link('common/home')
\t\t);
\t\t$html = "<div class=\\"x\\">{$data['name']} and $name[0] {$a->b(')')}</div>\\n";
\t\t$sql = <<<SQL
\t\t  SELECT * FROM `{$prefix}product` WHERE id = '$id'
\t\t  SQL;
\t\tif (isset($this->request->get['path'])) { // comment
\t\t\t$url .= '&path=' . $this->request->get['path'];
\t\t}
\t}
}
"""

ADVERSARIAL = {
    "tokens": "a;" * (MAX_SOURCE_BYTES // 2),
    "braces": "{" * (MAX_SOURCE_BYTES // 2) + "}" * (MAX_SOURCE_BYTES // 2),
    "strings": "'' " * (MAX_SOURCE_BYTES // 3),
    "interpolations": "\"{$a['x']()}\"" * (MAX_SOURCE_BYTES // 14),
    "functions": "function a(){}" * (MAX_SOURCE_BYTES // 14),
    "defines": "define('X', 'y');" * (MAX_SOURCE_BYTES // 17),
    "open-defines": "define(" * (MAX_SOURCE_BYTES // 7),
    "heredoc-openers": "<<<A\n" * (MAX_SOURCE_BYTES // 5),
    "comment-openers": "/*" * (MAX_SOURCE_BYTES // 2),
    "nested-interpolation": '"{$a[' * (MAX_SOURCE_BYTES // 5),
    "dollars": '"' + "$" * MAX_SOURCE_BYTES,
    "offsets": '"' + "$a[" * (MAX_SOURCE_BYTES // 3),
    "close-tags": "<?php ?>" * (MAX_SOURCE_BYTES // 8),
}


def test_a_mebibyte_of_php_is_read_quickly() -> None:
    source = "<?php\n" + REALISTIC_CHUNK * (MAX_SOURCE_BYTES // len(REALISTIC_CHUNK))
    source += "define('VERSION', '1');"
    started = time.perf_counter()
    assert find_define(source, V) == "1"
    assert time.perf_counter() - started < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_hostile_mebibytes_stay_linear(name: str) -> None:
    source = "<?php " + ADVERSARIAL[name]
    started = time.perf_counter()
    assert find_define(source, V) is None
    # Each takes 0.05-0.5 s here; anything quadratic would take minutes.
    assert time.perf_counter() - started < 3.0


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = "<?php define('VERSION', " + "(" * 20_000 + "'x'" + ")" * 20_000 + ");"
    assert find_define(deep, V) == "x"
    assert find_define("<?php " + '"{$a["' * 10_000, V) is None


# --- properties -----------------------------------------------------------------------

PHP_RESERVED = frozenset(
    [
        "abstract",
        "and",
        "array",
        "as",
        "break",
        "callable",
        "case",
        "catch",
        "class",
        "clone",
        "const",
        "continue",
        "declare",
        "default",
        "die",
        "do",
        "echo",
        "else",
        "elseif",
        "empty",
        "enddeclare",
        "endfor",
        "endforeach",
        "endif",
        "endswitch",
        "endwhile",
        "enum",
        "eval",
        "exit",
        "extends",
        "false",
        "final",
        "finally",
        "fn",
        "for",
        "foreach",
        "function",
        "global",
        "goto",
        "if",
        "implements",
        "include",
        "include_once",
        "instanceof",
        "insteadof",
        "interface",
        "isset",
        "list",
        "match",
        "namespace",
        "new",
        "null",
        "or",
        "print",
        "private",
        "protected",
        "public",
        "readonly",
        "require",
        "require_once",
        "return",
        "static",
        "switch",
        "throw",
        "trait",
        "true",
        "try",
        "unset",
        "use",
        "var",
        "while",
        "xor",
        "yield",
        "parent",
        "self",
        "int",
        "float",
        "bool",
        "string",
        "iterable",
        "object",
        "mixed",
        "void",
        "never",
    ]
)
names = st.from_regex(r"[A-Z][A-Z0-9_]{0,11}", fullmatch=True).filter(
    lambda n: n.lower() not in PHP_RESERVED and not n.startswith("__")
)
value_chars = st.one_of(
    st.sampled_from(list("'\"\\$`{}[]\n\r\t ?<>#/*;,.()x0eÉé€😀\x00\x0b")),
    st.characters(codec="utf-8"),
)
values = st.text(value_chars, max_size=24)
newlines = st.sampled_from(["\n", "\r\n", "\r"])

GAP_PIECES = (
    " ",
    "  ",
    "\t",
    "\n",
    "/* c */",
    "/**\n * define('X', 'y');\n */",
    "/*?>*/",
    "// define('X', 'y'); <?php\n",
    "# hash\n",
)
LABEL_START = re.compile(r"[A-Za-z_\x80-\U0010ffff]")
SIMPLE_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\v": "\\v", "\x1b": "\\e", "\f": "\\f"}


# Strategies are built once: building one per draw would triple the time of an example.
GAP_LISTS = st.lists(st.sampled_from(["", *GAP_PIECES]), max_size=3)
INDEXES = st.integers(0, 1 << 16)
SEEDS = st.integers(0, 2**32 - 1)


def pick(draw: st.DrawFn, options: Sequence[T]) -> T:
    return options[draw(INDEXES) % len(options)]


def gap(draw: st.DrawFn, nl: str) -> str:
    return "".join(draw(GAP_LISTS)).replace("\n", nl)


def _spelling(draw: st.DrawFn) -> random.Random:
    """Where each character is spelt: drawing per character would make examples slow."""
    return random.Random(draw(SEEDS))


def _escaped_char(rng: random.Random, ch: str, *, double: bool) -> str:
    """One character of a double-quoted or heredoc body, in a random PHP spelling."""
    forms = [ch]
    if ch in SIMPLE_ESCAPES:
        forms.append(SIMPLE_ESCAPES[ch])
    forms.append(f"\\u{{{ord(ch):x}}}")
    forms.append(f"\\u{{{ord(ch):06X}}}")
    encoded = ch.encode()
    forms.append("".join(f"\\x{b:02x}" for b in encoded))
    forms.append("".join(f"\\X{b:02X}" for b in encoded))
    forms.append("".join(f"\\{b:03o}" for b in encoded))
    if ch == '"' and double:
        return "\\" + ch
    return rng.choice(forms)


def render_single(draw: st.DrawFn, value: str) -> str:
    rng = _spelling(draw)
    out = []
    for i, ch in enumerate(value):
        following = value[i + 1 : i + 2]
        if ch == "'":
            out.append("\\'")
        elif ch == "\\" and following and following not in "\\'" and rng.random() < 0.5:
            out.append("\\")  # a lone backslash stays literal
        elif ch == "\\":
            out.append("\\\\")
        else:
            out.append(ch)
    return pick(draw, ["", "b", "B"]) + "'" + "".join(out) + "'"


def _body(draw: st.DrawFn, value: str, *, double: bool) -> str:
    rng = _spelling(draw)
    out = []
    for i, ch in enumerate(value):
        following = value[i + 1 : i + 2]
        if ch == "\\":
            out.append("\\\\")
        elif ch == "$":
            literal_ok = not (following and (LABEL_START.match(following) or following == "{"))
            literal_ok = literal_ok and not (out and out[-1].endswith("{"))
            out.append("$" if literal_ok and rng.random() < 0.5 else "\\$")
        elif ch == '"' and double:
            out.append('\\"')
        elif ch == '"':
            out.append('"')
        else:
            out.append(_escaped_char(rng, ch, double=double))
    return "".join(out)


def render_double(draw: st.DrawFn, value: str) -> str:
    return pick(draw, ["", "b"]) + '"' + _body(draw, value, double=True) + '"'


def _label_for(draw: st.DrawFn, text: str) -> str:
    label = pick(draw, ["EOT", "SQL", "HTML", "V_1", "ÉTIQ", "_"])
    while label in text:
        label += "Z"
    return label


def render_heredoc(draw: st.DrawFn, value: str, nl: str, *, nowdoc: bool) -> str | None:
    if nowdoc:
        # A nowdoc has no escapes: a value whose newlines would merge with the
        # heredoc's own cannot be written as one.
        if value.startswith("\n") or value.endswith("\r"):
            return None
        body = value
    else:
        # Newlines at the edges are written as escapes, for the same reason.
        head = value[:1] if value[:1] in ("\n", "\r") else ""
        tail = value[-1:] if len(value) > len(head) and value[-1:] in ("\n", "\r") else ""
        middle = value[len(head) : len(value) - len(tail)]
        body = (
            SIMPLE_ESCAPES.get(head, "")
            + _body(draw, middle, double=False)
            + SIMPLE_ESCAPES.get(tail, "")
        )
    indent = pick(draw, ["", "    ", "\t\t", "  "])
    lines = re.split(r"(\r\n|\r|\n)", body)
    indented = "".join(part if i % 2 else indent + part for i, part in enumerate(lines))
    label = _label_for(draw, indented)
    opener = pick(draw, ["", " ", "\t"])
    quoted = "'" + label + "'" if nowdoc else pick(draw, [label, '"' + label + '"'])
    prefix = pick(draw, ["", "b"])
    return f"{prefix}<<<{opener}{quoted}{nl}{indented}{nl}{indent}{label}"


def render_literal(draw: st.DrawFn, value: str, nl: str) -> str:
    style = pick(draw, ["single", "double", "heredoc", "nowdoc"])
    if style in ("heredoc", "nowdoc"):
        rendered = render_heredoc(draw, value, nl, nowdoc=style == "nowdoc")
        if rendered is not None:
            return rendered
    if style == "double":
        return render_double(draw, value)
    return render_single(draw, value)


def render_expression(draw: st.DrawFn, value: str, nl: str, depth: int = 0) -> str:
    """``value`` as a PHP constant string expression: literals, "." and parentheses."""
    if depth < 2 and len(value) >= 2 and pick(draw, (False, True)):
        cut = 1 + draw(INDEXES) % (len(value) - 1)
        left = render_expression(draw, value[:cut], nl, depth + 1)
        right = render_expression(draw, value[cut:], nl, depth + 1)
        rendered = left + gap(draw, nl) + "." + gap(draw, nl) + right
    else:
        rendered = render_literal(draw, value, nl)
    if draw(INDEXES) % 6 == 0:
        rendered = "(" + gap(draw, nl) + rendered + gap(draw, nl) + ")"
    return rendered


def render_statement(draw: st.DrawFn, name: str, value: str, nl: str) -> str:
    def g() -> str:
        return gap(draw, nl)

    # The argument after a heredoc starts on its own line or after "," / ")".
    name_expr = render_expression(draw, name, nl)
    value_expr = render_expression(draw, value, nl)
    end = pick(draw, [";", ";", " ?>"])
    if draw(INDEXES) % 5 == 0:
        other = pick(draw, ["", "OTHER_x = 'o', ", "OTHER_y = 1, "])
        return f"const {other}{name}{g()}={g()}{value_expr}{g()}{end}"
    function = pick(draw, ["define", "DEFINE", "Define", "\\define", "\\DEFINE"])
    named = draw(INDEXES) % 6
    if named == 0:
        args = f"constant_name:{g()}{name_expr}{g()},{g()}value:{g()}{value_expr}"
    elif named == 1:
        args = f"value:{g()}{value_expr}{g()},{g()}constant_name:{g()}{name_expr}"
    else:
        args = f"{name_expr}{g()},{g()}{value_expr}"
    # After a named argument only named ones may follow.
    flag = "case_insensitive:false" if named < 2 else "false"
    args += pick(draw, ["", ",", f",{g()}{flag}", f",{g()}{flag}{g()},"])
    return f"{function}{g()}({g()}{args}{g()}){g()}{end}"


DECOYS = (
    "// define('{N}', 'decoy');",
    "# define('{N}', 'decoy');",
    "/* define('{N}', 'decoy'); */",
    '$s_{N} = \'define("{N}", "decoy")\';',
    "$t_{N} = \"x {$a['define']} define('{N}', 'decoy')\";",
    "if (false) { $u = \"{$a->f('}')} define('{N}', 'decoy')\"; }",
    "if (false) { $o->define('{N}', 'decoy'); C_{N}::define('{N}', 'decoy'); }",
    "if (false) { $define = 'f'; $define('{N}', 'decoy'); undefine_{N}('{N}', 'd'); }",
    "function f_{N}() { define('{N}', 'decoy'); }",
    "class C_{N} { const {N} = 'decoy'; public function define() { define('{N}', 'd'); } }",
    "?> define('{N}', 'decoy') <?php ",
    "define('{N}_decoy', 'decoy');",
    "define('{N}' . '_decoy', 'decoy');",
    "$h_{N} = <<<EOT\ndefine('{N}', 'decoy');\nEOT;",
    "$n_{N} = <<<'EOT'\n  define('{N}', 'decoy');\n  EOT;",
    "$c_{N} = fn() => 1;",
    "#[Attr('define')]\nfunction g_{N}() {}",
    "$k_{N} = 'ArrayObject'; $o_{N} = new $k_{N};",
    "$m_{N} = ArrayObject:: /* c */ class; { $p_{N} = 1; }",
    "$f_{N} = fn($x) => $x . '}';",
    "$s2_{N} = \"a {$arr_{N}['k']} b ${'v'} c {$arr_{N}['}']}\";",
    "if (true): $y_{N} = 1; endif;",
    "#[Attr]\nclass A_{N} { const X = '}'; public function f() { return \"{\"; } }",
    "switch (1) { case 1: break; }",
    "$g_{N} = function () use (&$z) { return '{'; };",
    '?><div><?= "x" ?></div><?php ',
    "/* ?> */ // comment ?> html <?php ",
    '$h2_{N} = <<<EOT\n  {$arr_{N}["\nEOT\n"]} $v\n  EOT;',
    "$q_{N} = 1 ?: 2; $r_{N} = $q_{N} ?? 3; $t2_{N} = [1, 2][0] <=> 3;",
)


DECOY_LISTS = st.lists(st.sampled_from(DECOYS), max_size=3, unique=True)


@dataclass(frozen=True)
class Case:
    name: str
    value: str
    source: str


@st.composite
def define_cases(draw: st.DrawFn) -> Case:
    name = draw(names)
    value = draw(values)
    nl = draw(newlines)
    decoys = draw(DECOY_LISTS)
    if name.lower() != name.upper():
        decoys.append(f"define('{name.lower()}', 'decoy');")
    before = nl.join(d.replace("{N}", name).replace("\n", nl) for d in decoys)
    statement = render_statement(draw, name, value, nl)
    after = pick(draw, ["", f"define('{name}', 'second');", f"const {name}_z = 1;"])
    opening = pick(draw, ["<?php", "<?PHP", "<html>\n<?php"])
    if statement.endswith("?>"):
        after = "<?php " + after
    source = f"{opening}{nl}{before}{nl}{statement}{nl}{after}{nl}"
    return Case(name, value, source)


@PROPERTY
@given(define_cases())
def test_any_rendering_of_a_define_reads_back(case: Case) -> None:
    assert find_define(case.source, case.name) == case.value
    # The same source cut anywhere, as read_text cuts a file at its limit: about 40
    # cuts of each, none of which may raise anything but CollectError.
    step = max(1, len(case.source) // 40)
    for cut in range(0, len(case.source), step):
        assert _answers(lambda t: find_define(t, case.name), case.source[:cut])


FRAGMENTS = (
    "<?php ",
    "<?",
    "<?=",
    "?>",
    "define",
    "DEFINE",
    "\\define",
    "const ",
    "VERSION",
    "'VERSION'",
    '"VERSION"',
    "(",
    ")",
    ",",
    ";",
    ".",
    "=",
    ":",
    "'",
    '"',
    "`",
    "\\",
    "$",
    "$a",
    "{",
    "}",
    "{$",
    "${",
    "[",
    "]",
    "#[",
    "#",
    "//",
    "/*",
    "*/",
    "<<<EOT\n",
    "<<<'EOT'\n",
    '<<<"EOT"\n',
    "EOT",
    "  EOT",
    "\n",
    "\r",
    " ",
    "\t",
    "'1.0'",
    "\\u{",
    "\\x4",
    "function ",
    "class ",
    "namespace ",
    "enum ",
    "new ",
    "->",
    "::",
    "__halt_compiler",
    "b'",
    "value:",
    "...",
    '"{$a[',
    '"$a->b',
    '"$a[0]',
    "${a}",
    "->{",
    "?->",
    "\tEOT",
    "EOT;\n",
    "#[A]",
    "/**/",
    "0x1",
    "1.5",
    "1e3",
    "0",
    "\r\n",
    "<?php\n",
    'b"',
    "B<<<EOT\n",
    "'\\'",
    '"\\"',
    "<html>",
    "&",
    "?",
    "-",
    ">",
)
php_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
any_text = st.one_of(
    php_soup,
    st.text(),
    st.binary().map(lambda raw: raw.decode("utf-8", errors="replace")),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=30).map("".join),
)


def _answers(function: Callable[[str], object], text: str) -> bool:
    """Whether ``function`` answers ``text`` with a string, ``None`` or a CollectError;
    any other exception escapes to the test."""
    try:
        result = function(text)
    except CollectError:
        return True
    return result is None or isinstance(result, str)


@PROPERTY
@given(any_text)
def test_no_input_raises_anything_but_collect_error(text: str) -> None:
    assert _answers(lambda t: find_define(t, "VERSION"), text)
    assert _answers(lambda t: find_define("<?php " + t, "VERSION"), text)
    assert _answers(composer_version, text)
    assert _answers(domain_from_config_php, text)
    assert _answers(domain_from_config_php, "<?php define('HTTP_SERVER', '" + text)
    assert _answers(normalize_domain, text)
    assert _answers(lambda t: plausible_version(t, "v"), text)


@contextmanager
def every_token_seen() -> Iterator[None]:
    """The finder without its bulk skipping: the reference the fast path must match."""
    fast, to_semicolon = _phpsrc._FAST_TOKEN, _phpsrc._FAST_TOKEN_TO_SEMICOLON
    braces = _phpsrc._BRACES_ONLY.pattern
    _phpsrc._FAST_TOKEN = _phpsrc._FAST_TOKEN_TO_SEMICOLON = _phpsrc._TOKEN
    _phpsrc._BRACES_ONLY.pattern = _phpsrc._TOKEN
    try:
        yield
    finally:
        _phpsrc._FAST_TOKEN, _phpsrc._FAST_TOKEN_TO_SEMICOLON = fast, to_semicolon
        _phpsrc._BRACES_ONLY.pattern = braces


def _outcome(text: str) -> str | None:
    try:
        return find_define(text, "VERSION")
    except CollectError as exc:
        return f"error: {exc}"


@PROPERTY
@given(st.one_of(php_soup, define_cases().map(lambda c: c.source.replace(c.name, "VERSION"))))
def test_skipping_in_bulk_changes_nothing(text: str) -> None:
    fast = _outcome(text)
    with every_token_seen():
        assert _outcome(text) == fast


# --- PHP itself -----------------------------------------------------------------------

# Each source is included inside a function, so its variables cannot touch the
# driver's; a fatal error (which no catch sees) still reports the case it ended.
PHP_DRIVER = r"""
function __pulsed_report($name) {
    echo $name, "\t", defined($name) ? "=" . bin2hex((string) constant($name)) : "-", "\n";
}
function __pulsed_include($path) {
    ob_start();
    try { include $path; } catch (\Throwable $e) {}
    while (ob_get_level()) { ob_end_clean(); }
}
$__pulsed_current = null;
register_shutdown_function(function () use (&$__pulsed_current) {
    if ($__pulsed_current !== null) {
        while (ob_get_level()) { ob_end_clean(); }
        __pulsed_report($__pulsed_current);
    }
});
foreach (file($argv[1], FILE_IGNORE_NEW_LINES) as $__pulsed_line) {
    [$__pulsed_path, $__pulsed_current] = explode("\t", $__pulsed_line);
    __pulsed_include($__pulsed_path);
    __pulsed_report($__pulsed_current);
    $__pulsed_current = null;
}
"""


def php_defines(tmp_path: Path, cases: list[tuple[str, str]]) -> list[str | None]:
    """What PHP defines as each (source, name): every source in its own include."""
    assert PHP is not None
    manifest = []
    for i, (source, name) in enumerate(cases):
        path = tmp_path / f"case{i}.php"
        path.write_bytes(source.encode("utf-8", "surrogatepass"))
        manifest.append(f"{path}\t{name}")
    (tmp_path / "manifest").write_text("\n".join(manifest) + "\n")
    done = subprocess.run(
        [
            PHP,
            "-n",
            "-d",
            "short_open_tag=1",
            "-d",
            "display_errors=0",
            "-r",
            PHP_DRIVER,
            str(tmp_path / "manifest"),
        ],
        capture_output=True,
        check=False,
        timeout=60,
        text=True,
    )
    results: list[str | None] = []
    for line in done.stdout.splitlines():
        _, outcome = line.split("\t")
        value = bytes.fromhex(outcome[1:]).decode("utf-8", "replace") if outcome != "-" else None
        results.append(value)
    assert len(results) == len(cases), done.stderr
    return results


# A parse error in PHP that this reader reads all the same: a file cut at the limit
# ends like this.
NOT_FOR_PHP = {"<?php define('VERSION', 'yes')"}


@needs_php
def test_php_agrees_with_the_tables(tmp_path: Path) -> None:
    sources: list[tuple[str, str | None]] = [(s, e) for s, e in FORMS if s not in NOT_FOR_PHP]
    sources += [(s, None) for s in ABSENT if s not in NOT_FOR_PHP]

    def one(i: int) -> str | None:
        # A PHP of its own for each: the tables all define VERSION.
        folder = tmp_path / str(i)
        folder.mkdir()
        return php_defines(folder, [(sources[i][0], V)])[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(one, range(len(sources))))
    wrong = [(s, e, g) for (s, e), g in zip(sources, got, strict=True) if e != g]
    assert not wrong


@needs_php
@settings(PROPERTY, max_examples=max(3, EXAMPLES // 50))
@given(st.lists(define_cases(), min_size=1, max_size=25, unique_by=lambda c: c.name.lower()))
def test_php_agrees_on_generated_defines(
    tmp_path_factory: pytest.TempPathFactory, cases: list[Case]
) -> None:
    tmp_path = tmp_path_factory.mktemp("php")
    php = php_defines(tmp_path, [(c.source, c.name) for c in cases])
    for case, value in zip(cases, php, strict=True):
        assert value == case.value, case.source
        assert find_define(case.source, case.name) == value


PHP_TOKENIZER = r"""
if (!function_exists('token_get_all')) { exit(3); }
$out = [];
foreach (json_decode(file_get_contents($argv[1]), true) as $source) {
    $tokens = [];
    foreach (token_get_all($source) as $t) {
        $tokens[] = is_array($t) ? [token_name($t[0]), $t[1]] : [null, $t];
    }
    $out[] = $tokens;
}
echo json_encode($out);
"""
PHP_LABEL = re.compile(r"(?:namespace)?\\?[A-Za-z_][A-Za-z0-9_]*(?:\\[A-Za-z_][A-Za-z0-9_]*)*")
NOT_CODE = {"T_INLINE_HTML", "T_COMMENT", "T_DOC_COMMENT", "T_ENCAPSED_AND_WHITESPACE"}


def php_top_level(tokens: list[tuple[str | None, str]]) -> list[tuple[int, str]]:
    """PHP's tokens as (offset, kind) of what _phpsrc's tokenizer yields at top level."""
    out: list[tuple[int, str]] = []
    stack: list[str] = []  # open strings (their closing token) and interpolated code
    pos = 0
    for name, text in tokens:
        start, pos = pos, pos + len(text)
        key = text if name is None else name
        if stack and stack[-1] != "code":
            if key == stack[-1]:
                stack.pop()
            elif name in ("T_CURLY_OPEN", "T_DOLLAR_OPEN_CURLY_BRACES"):
                stack.append("code")
            continue
        closer = {'"': '"', "`": "`", "T_START_HEREDOC": "T_END_HEREDOC"}.get(key)
        if stack:  # code inside a string
            if closer is not None:
                stack.append(closer)
            elif key in ("{", "T_CURLY_OPEN", "T_DOLLAR_OPEN_CURLY_BRACES"):
                stack.append("code")
            elif key == "}":
                stack.pop()
            continue
        if closer is not None:
            stack.append(closer)
            out.append((start, "str"))
        elif name == "T_CONSTANT_ENCAPSED_STRING":
            out.append((start, "str"))
        elif name == "T_VARIABLE":
            out.append((start, "var"))
        elif name == "T_CLOSE_TAG":
            out.append((start, ";"))
        elif name is not None and name not in NOT_CODE and PHP_LABEL.fullmatch(text):
            out.append((start, "name"))
        elif name is None and text in ("{", "}", ";"):
            out.append((start, text))
    return out


def our_top_level(source: str) -> list[tuple[int, str]]:
    """The same from _phpsrc's tokenizer, every token seen, up to where it gives up."""
    out: list[tuple[int, str]] = []
    lexer = _phpsrc._Lexer(source)
    try:
        for kind, text, start, _end, _lit in lexer.tokens(
            0, 0, _phpsrc._Mode(_phpsrc._TOKEN), html=True
        ):
            if kind in ("str", "var", "name"):
                out.append((start, kind))
            elif kind == "op" and text in ("{", "}", ";"):
                out.append((start, text))
    except _phpsrc._LexError:
        out.append((-1, "gave up"))
    return out


ASCII_FRAGMENTS = [f for f in FRAGMENTS if f.isascii() and f != "__halt_compiler"]
ascii_soup = st.lists(
    st.one_of(
        st.sampled_from(ASCII_FRAGMENTS), st.text(st.characters(max_codepoint=127), max_size=3)
    ),
    max_size=40,
).map("".join)


@needs_php
@settings(PROPERTY, max_examples=max(3, EXAMPLES // 50))
@given(st.lists(ascii_soup, min_size=50, max_size=50))
def test_the_tokenizer_agrees_with_php(
    tmp_path_factory: pytest.TempPathFactory, sources: list[str]
) -> None:
    assert PHP is not None
    path = tmp_path_factory.mktemp("tokens") / "sources.json"
    path.write_text(json.dumps(sources))
    # Without -n: the tokenizer is a module that php.ini loads.
    done = subprocess.run(
        [PHP, "-d", "short_open_tag=1", "-d", "display_errors=0", "-r", PHP_TOKENIZER, str(path)],
        capture_output=True,
        check=False,
        timeout=60,
        text=True,
    )
    if done.returncode == 3:
        pytest.skip("php has no tokenizer module")
    assert done.returncode == 0, done.stderr
    for source, tokens in zip(sources, json.loads(done.stdout), strict=True):
        ours = our_top_level(source)
        theirs = php_top_level([(name, text) for name, text in tokens])
        if ours and ours[-1] == (-1, "gave up"):
            # PHP reads on past an unterminated string; up to it, both must agree.
            ours.pop()
            theirs = theirs[: len(ours)]
        assert ours == theirs, source
