"""Finding ``define()`` in PHP source (contract §2): each rule, then hypothesis round trips.

The fixtures copy the shapes of real release files (OpenCart 1.5 to 4.1, ocStore); the
releases themselves are read by tests/test_real_shops.py when they are at hand.
PULSED_HYPOTHESIS_EXAMPLES sets the examples per property (``make soak``: 10000).
"""

from __future__ import annotations

import os
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsed import _phpdefine
from pulsed._errors import CollectError
from pulsed._phpdefine import scan, value_of

EXAMPLES = int(os.environ.get("PULSED_HYPOTHESIS_EXAMPLES", "300"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def read(source: str, name: str = "VERSION") -> str | None:
    return value_of(scan(source), name)


def refused(source: str, name: str = "VERSION") -> str:
    with pytest.raises(CollectError) as caught:
        read(source, name)
    return str(caught.value)


# --- real shapes ------------------------------------------------------------------------

OPENCART_15 = (
    "<?php\n// Version\ndefine('VERSION', '1.5.6.4');\n\n// Config\n"
    "if (file_exists('config.php')) {\n\trequire_once('config.php');\n}\n"
)
OPENCART_3 = (
    "<?php\n// Version\ndefine('VERSION', '3.0.3.8');\n\n// Configuration\n"
    "if (is_file('config.php')) {\n\trequire_once('config.php');\n}\n\n"
    "// Install\nif (!defined('DIR_APPLICATION')) {\n\theader('Location: install/index.php');\n"
    "\texit;\n}\n\nrequire_once(DIR_SYSTEM . 'startup.php');\n\nstart('catalog');\n"
)
# 4.0.1.0 opens with a long block comment holding URLs and quotes.
OPENCART_4 = (
    "<?php\n/*\n * A notice of 50 lines, with 'quotes', \"more\" and https://example.org/x?y=1\n"
    " * define('VERSION', '0.0');\n*/\n\n// Version\ndefine('VERSION', '4.0.2.3');\n"
    "if (is_file('config.php')) {\n\trequire_once('config.php');\n}\n"
)
OCSTORE_3 = (
    "<?php\n// Version\ndefine('VERSION', '3.0.3.7');\ndefine('VERSION_CORE', 'ocStore');\n"
    "define('VERSION_BUILD', '0001');\n\n"
    "if (is_file('config.php')) {\n\trequire_once('config.php');\n}\n"
)


@pytest.mark.parametrize(
    ("source", "version", "core"),
    [
        (OPENCART_15, "1.5.6.4", None),
        (OPENCART_3, "3.0.3.8", None),
        (OPENCART_4, "4.0.2.3", None),
        (OCSTORE_3, "3.0.3.7", "ocStore"),
        (OCSTORE_3.replace("\n", "\r\n"), "3.0.3.7", "ocStore"),
        (OCSTORE_3.replace("\n", "\r"), "3.0.3.7", "ocStore"),
        ("\ufeff" + OCSTORE_3, "3.0.3.7", "ocStore"),
    ],
    ids=["opencart-1.5", "opencart-3", "opencart-4", "ocstore-3", "crlf", "cr", "bom"],
)
def test_release_shapes_read_their_versions(source: str, version: str, core: str | None) -> None:
    assert (read(source), read(source, "VERSION_CORE")) == (version, core)


# --- what PHP accepts in a define --------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<?php define("VERSION", "4.0");', "4.0"),
        ("<?php DEFINE('VERSION', '4.0');", "4.0"),
        ("<?php \\define('VERSION', '4.0');", "4.0"),
        ("<?php \\DeFiNe('VERSION', '4.0');", "4.0"),
        ("<?php define /* c */ ( // c\n 'VERSION' # c\n , /** c */ '4.0' ) ;", "4.0"),
        ("<?php define\r\n(\r\n'VERSION'\r\n,\r\n'4.0'\r\n)\r\n;", "4.0"),
        ("<?php define\r(\r'VERSION'\r,\r'4.0'\r)\r;", "4.0"),
        ("<?php define('VERSION', '3.0' . '.3.8');", "3.0.3.8"),
        ("<?php define('VERSION', ('3.0' . (\".3\" . '.8')));", "3.0.3.8"),
        ("<?php define('VER' . 'SION', '4.0');", "4.0"),
        ("<?php define('VERSION', '4.0', true);", "4.0"),
        ("<?php define('VERSION', '4.0',);", "4.0"),
        ("<?php define(value: '4.0', constant_name: 'VERSION');", "4.0"),
        ("<?php define('VERSION', value: '4.0');", "4.0"),
        ("<?php define(b'VERSION', B'4.0');", "4.0"),
        ("<?php define('VERSION', '4.0') ?>", "4.0"),
        ("<html><?php define('VERSION', '4.0');", "4.0"),
        ("<?= define('VERSION', '4.0') ?>", "4.0"),
    ],
)
def test_any_spelling_php_accepts_reads_the_value(source: str, expected: str) -> None:
    assert read(source) == expected


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r"'a\'b\\c\d\n'", "a'b\\c\\d\\n"),
        (r'"\n\t\r\v\e\f\\\$\""', '\n\t\r\v\x1b\f\\$"'),
        (r'"\101\x41\X42\u{48}\u{1F600}\q"', "AABH\U0001f600\\q"),
        (r'"\xc3\xa9"', "é"),
        (r'"\400"', "\x00"),
        ('"$ {x} \\$a $1"', "$ {x} $a $1"),
        ("<<<EOT\n4.0\\x2e2\nEOT", "4.0.2"),
        ('<<<"EOT"\n  a "q"\n    b\n  EOT', 'a "q"\n  b'),
        ("<<<'EOT'\n4.0\\x2e2 $x\nEOT", "4.0\\x2e2 $x"),
        ("<<<EOT\nEOT", ""),
        ('<<<EOT\n\\"q\\"\nEOT', '\\"q\\"'),
        (r'"$\n"', "$\n"),
        (r'"\u{10FFFF}"', "\U0010ffff"),
        (r'"\u{D800}"', "\ufffd" * 3),
    ],
    ids=[
        "single",
        "double",
        "numeric",
        "utf8-bytes",
        "octal-overflow",
        "literal-dollar",
        "heredoc",
        "indented",
        "nowdoc",
        "empty",
        "heredoc-quote",
        "dollar-escape",
        "last-code-point",
        "surrogate",
    ],
)
def test_string_escapes_are_php_s(literal: str, value: str) -> None:
    assert read(f"<?php define('VERSION', {literal}\n);") == value


@pytest.mark.parametrize(
    "source",
    [
        "define('VERSION', 'html');",
        "<?php // define('VERSION', 'x');",
        "<?php # define('VERSION', 'x');",
        "<?php /* define('VERSION', 'x'); */",
        "<?php /* define('VERSION', 'x');",
        '<?php $s = \'define("VERSION", "x")\';',
        "<?php $s = \"{$a[\"k\"]} define('VERSION', 'x')\";",
        "<?php $s = <<<EOT\ndefine('VERSION', 'x');\nEOT;",
        "<?php ?>define('VERSION', 'x');",
        "<?php // ?> define('VERSION', 'x');",
        "<?php my_define('VERSION', 'x');",
        "<?php $o->define('VERSION', 'x');",
        "<?php Foo::define('VERSION', 'x');",
        "<?php function define($a, $b) {}",
        "<?php define('version', 'x');",
        "<?php define($name, 'x');",
    ],
)
def test_what_is_not_a_define_call_defines_nothing(source: str) -> None:
    assert read(source) is None


def test_an_unclosed_single_quote_runs_to_the_end_of_the_file() -> None:
    # As PHP's scanner reads it: what follows is string text, and PHP refuses the file.
    source = "<?php define('VERSION', '1'); $s = 'a\\'; define(\"CORE\", \"x\");"
    assert (read(source), read(source, "CORE")) == ("1", None)


@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_file_cut_inside_a_name_defines_nothing(quote: str) -> None:
    # The reading ends where the unclosed string opens: its text, cut, names no constant.
    assert scan(f"<?php define({quote}VERSION") == []


def test_a_line_comment_ends_at_a_closing_tag() -> None:
    source = "<?php // note ?> define('VERSION', 'html') <?php define('VERSION', '1');"
    assert read(source) == "1"


# --- defines chosen at run time ----------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "<?php\nif ($a) {\n  define('VERSION', '1');\n} else {\n  define('VERSION', '2');\n}",
        "<?php\nif ($a) {\n define('VERSION', '1');\n} elseif ($b) {\n define('VERSION', '2');\n}",
        "<?php\nif ($a)\n  define('VERSION', '1');\nelse\n  define('VERSION', '2');",
        "<?php\nif ($a):\n  define('VERSION', '1');\nelse:\n  define('VERSION', '2');\nendif;",
        "<?php\nswitch ($a) {\ncase 1: define('VERSION', '1');\ndefault: define('VERSION', '2');}",
        "<?php\ntry {\n define('VERSION', '1');\n} catch (E $e) {\n define('VERSION', '2');\n}",
        "<?php\nfunction f() {\n  define('VERSION', '1');\n}\ndefine('VERSION', '2');",
        "<?php\n$f = function () {\n  define('VERSION', '1');\n};\ndefine('VERSION', '2');",
        "<?php\ndefined('X') or define('VERSION', '1');\ndefine('VERSION', '2');",
        "<?php\nif ($a) { {\n define('VERSION', '1');\n} }\ndefine('VERSION', '2');",
        "<?php\nif ($a):\n  $x = 1;\n  define('VERSION', '1');\nendif;\ndefine('VERSION', '2');",
        "<?php\nif ($a) {\n  $x = 1;\n  define('VERSION', '1');\n}\ndefine('VERSION', '2');",
        "<?php\n$a && define('VERSION', '1');\ndefine('VERSION', '2');",
        "<?php\n$f = fn() => define('VERSION', '1');\ndefine('VERSION', '2');",
    ],
    ids=[
        "if-else",
        "elseif",
        "braceless",
        "alternative",
        "switch",
        "try",
        "function",
        "closure",
        "or",
        "nested-block",
        "alternative-after-a-statement",
        "after-a-statement",
        "and-and",
        "arrow-function",
    ],
)
def test_different_values_in_branches_are_unknown_naming_the_lines(source: str) -> None:
    message = refused(source)
    lines = [i + 1 for i, line in enumerate(source.splitlines()) if "define('VERSION'" in line]
    assert f"lines {lines[0]} and {lines[1]}" in message
    assert message.startswith("VERSION is defined differently on ")
    assert message.endswith(", chosen only at run time")


def test_a_run_time_choice_on_one_line_names_that_line() -> None:
    source = "<?php if ($a) { define('VERSION', '1'); } else { define('VERSION', '2'); }"
    assert refused(source) == "VERSION is defined differently on line 1, chosen only at run time"


def test_a_run_time_choice_among_three_names_every_line() -> None:
    source = (
        "<?php\nif ($a) {\n define('VERSION', '1');\n} elseif ($b) {\n define('VERSION', '2');"
        "\n} else {\n define('VERSION', '3');\n}"
    )
    assert "on lines 3, 5 and 7, chosen" in refused(source)


def test_the_same_value_in_every_branch_is_that_value() -> None:
    source = "<?php if ($a) { define('VERSION', '1'); } else { define('VERSION', '1'); }"
    assert read(source) == "1"


def test_the_first_of_two_top_level_defines_wins() -> None:
    assert read("<?php define('VERSION', 'first');\ndefine('VERSION', 'second');") == "first"


def test_branches_after_a_top_level_define_change_nothing() -> None:
    source = "<?php define('VERSION', '1'); if ($a) { define('VERSION', '2'); }"
    assert read(source) == "1"


def test_a_member_named_like_a_keyword_opens_no_branch() -> None:
    source = (
        "<?php echo $o->match . $o?->if . Foo::try . define('VERSION', '1');\n"
        "define('VERSION', '2');"
    )
    assert read(source) == "1"


@pytest.mark.parametrize(
    "branch",
    [
        "if ($a) $x = 1;",
        "if ($a) $x = 1 ?><?php",
        "if ($a): $x = 1; endif;",
        "if ($a) { $x = 1; }",
        "$f = fn() => 1;",
        "if ($a) { $x = 1; } else if ($b) { $x = 2; }",
        "if ($a): $x = 1; elseif ($b): $x = 2; endif;",
        "if ($a): $x = 1; else: $x = 2; endif;",
    ],
    ids=[
        "braceless",
        "closing-tag",
        "alternative",
        "braces",
        "arrow-function",
        "else-if",
        "alternative-elseif",
        "alternative-else",
    ],
)
def test_code_after_a_branch_is_top_level_again(branch: str) -> None:
    source = f"<?php {branch}\ndefine('VERSION', '1');\nif ($b) {{ define('VERSION', '2'); }}"
    assert read(source) == "1"


def test_a_plain_block_or_namespace_is_top_level() -> None:
    source = "<?php namespace Shop { { define('VERSION', '1'); } }\ndefine('VERSION', '2');"
    assert read(source) == "1"


# --- values that are not constant strings ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("$v", "uses the variable '$v'"),
        ("getenv('V')", "uses the name 'getenv'"),
        ("'1' . PHP_EOL", "uses the name 'PHP_EOL'"),
        ("'1' . " + "A" * 50, "uses the name '" + "A" * 40 + "'"),
        ("3.0", "uses the number '3.0'"),
        ("'a' + 'b'", "uses the operator '+'"),
        ("('a' 'b')", "is not one expression"),
        ('"a$b"', "interpolates a variable"),
        ('"a{$b}"', "interpolates a variable"),
        ("`uname`", "is a shell command (backticks)"),
        ("'a' .", "is empty or incomplete"),
        ('"\\u{110000}"', "has a \\u{...} escape beyond U+10FFFF"),
        (
            "<<<EOT\n  a\n X\n  EOT\n",
            "is a heredoc with a line indented less than its closing marker",
        ),
    ],
)
def test_a_value_that_is_not_a_constant_string_is_refused_with_why(value: str, why: str) -> None:
    message = refused(f"<?php\n\ndefine('VERSION', {value});")
    assert message == f"VERSION (line 3) cannot be read statically: the value {why}"


def test_a_call_cut_before_its_end_is_refused() -> None:
    assert refused("<?php define('VERSION', '4.0") == (
        "VERSION (line 1) cannot be read statically: the call is not closed"
    )


def test_line_numbers_count_from_the_first_byte() -> None:
    assert refused("\n<?php define('VERSION', $v);").startswith("VERSION (line 2) ")


def test_code_inside_an_interpolation_is_skipped_to_its_closing_brace() -> None:
    # Quotes and braces in the code of "{$...}" belong to the code, not to the string.
    source = "<?php $s = \"{$a->{'k'}['\"']} define('VERSION', 'x')\"; define('VERSION', '1');"
    assert read(source) == "1"


@pytest.mark.parametrize(("depth", "expected"), [(32, "1"), (33, None)])
def test_interpolations_nested_deeper_than_32_end_the_reading(
    depth: int, expected: str | None
) -> None:
    # Real files nest one or two; the limit keeps a hostile file from recursing without end.
    nested = '"{$a[' * depth + "1" + ']}"' * depth
    assert read(f"<?php $s = {nested}; define('VERSION', '1');") == expected


# --- properties and speed ----------------------------------------------------------------

GAPS = st.lists(
    st.sampled_from(["", " ", "\t", "\n", "\r\n", "\r", "/* c */", "# c\n", "// c\r\n"]), max_size=3
).map("".join)


# Code before the define that hides defines, braces or quotes from a careless reader.
DECOYS = (
    "// define('VERSION', 'd') ?>\n<?php ",
    "/* define('VERSION', 'd'); { */\n",
    "$s = \"define('VERSION', 'd') {$a['}']} ${b}\";\n",
    "$h = <<<EOT\n  define('VERSION', 'd'); }\n  EOT;\n",
    "if ($x) { $y = '}'; } else { $y = \"{\"; }\n",
    "function f() { return `{`; }\n",
    "?>define('VERSION', 'd') { <?php\n",
    "$o->define('VERSION', 'd'); Foo::define('VERSION', 'd');\n",
    "# define('VERSION', 'd');\r\n",
)


def single_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def double_quoted(value: str) -> str:
    escapes = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\t": "\\t"}
    return '"' + "".join(escapes.get(c, c) for c in value) + '"'


@PROPERTY
@given(st.text(st.characters(codec="utf-8"), max_size=20), st.data())
def test_any_rendering_of_a_define_reads_back(value: str, data: st.DataObject) -> None:
    gap = [data.draw(GAPS) for _ in range(5)]
    cut = data.draw(st.integers(0, len(value)))
    parts = [value[:cut], value[cut:]] if data.draw(st.booleans()) else [value]
    quote = data.draw(st.sampled_from([single_quoted, double_quoted]))
    rendered = f"{gap[4]}.{gap[4]}".join(quote(part) for part in parts)
    call = data.draw(st.sampled_from(["define", "DEFINE", "\\define"]))
    before = "".join(data.draw(st.lists(st.sampled_from(DECOYS), max_size=3)))
    source = f"<?php {before}{gap[0]}{call}{gap[1]}({gap[2]}'VERSION'{gap[3]},{rendered}){gap[0]};"
    assert read(source) == value


PHP_SOUP = st.text(
    st.sampled_from(
        list("<?php define('VERSION', \"x\") ; { } if else $a . /* */ // # \n \\ <<<E\n E `")
    ),
    max_size=60,
)


@PROPERTY
@given(st.one_of(PHP_SOUP, st.text()))
def test_no_text_raises_anything_but_collect_error(text: str) -> None:
    try:
        result = read("<?php " + text)
    except CollectError:
        return
    assert result is None or isinstance(result, str)


@pytest.mark.speed
def test_a_mebibyte_of_php_is_read_in_linear_time() -> None:
    chunk = (
        "class C {\n\tpublic function f() {\n\t\t$x = \"{$a['k']} $b\"; // c\n"
        "\t\tif ($y) { return 'z'; }\n\t}\n}\n"
    )
    source = "<?php\n" + chunk * ((1 << 20) // len(chunk)) + "define('VERSION', '1');"
    # The CPU time the reading takes: on a busy machine (two cores, the suite run on four
    # Pythons, other work beside it) the wall clock also counts the waits for a core. It is
    # about 1 s here (0.8-1.3 s over Python 3.10-3.13); what the limit guards is the shape,
    # as for the hostile files below: anything quadratic in a mebibyte takes minutes.
    started = time.process_time()
    assert read(source) == "1"
    assert time.process_time() - started < 5.0


HOSTILE = {
    "deep-blocks-then-defines": "{" * (1 << 19) + "define('X', 'y');" * (1 << 15),
    "braceless-then-semicolons": "if ($a) x {" * (1 << 16) + ";" * (1 << 19),
    "unclosed-comments": "/*" * (1 << 19),
    "nested-interpolations": '"{$a[' * (1 << 18),
    "open-calls": "define(" * (1 << 17),
    # Backtracking through the ways to split a run: exponential without possessive
    # quantifiers unless every repetition is unambiguous.
    "unclosed-quote-then-spaces": "'" + " " * (1 << 20),
    # Each quote read to the end of the file again, and again: quadratic.
    "unclosed-escaped-quotes": "'\\" * (1 << 19),
    "heredoc-of-spaces": "define('X', <<<E\n" + " " * (1 << 20) + "\nE\n);",
}


@pytest.mark.speed
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_mebibyte_is_read_in_linear_time(name: str) -> None:
    started = time.process_time()
    assert read("<?php " + HOSTILE[name]) is None
    # Each takes well under 2 s of CPU here; anything quadratic would take minutes.
    assert time.process_time() - started < 5.0


def test_a_label_is_ascii_letters_underscore_and_anything_beyond_ascii() -> None:
    """The label classes are written as the ASCII they are not (they compile in a
    fraction of the time); each code point's answer is PHP's, ASCII and beyond."""
    first, next_ = re.compile(_phpdefine._FIRST), re.compile(_phpdefine._NEXT)
    beyond = [0x80, 0xFF, 0x100, 0x7FF, 0xD7FF, 0xD800, 0xDFFF, 0xFFFF, 0x10000, 0x10FFFF]
    for code in [*range(0x80), *beyond]:
        char = chr(code)
        letter = not char.isascii() or char.isalpha() or char == "_"
        assert bool(first.fullmatch(char)) is letter, hex(code)
        assert bool(next_.fullmatch(char)) is (letter or char in "0123456789"), hex(code)
