"""Hostile shop files through the daemon (contract §1, §2), the fast suite's share of
:mod:`tests.support.scenarios.shopfiles`, and the composer parser under hypothesis.

The define() parser's properties live in ``tests/test_phpdefine.py``; the composer
parser's are here. Both read ``PULSED_HYPOTHESIS_EXAMPLES`` (``make soak``: 10000).
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsed._errors import CollectError
from pulsed._shop import composer_version, plausible_version
from tests.support.lab import Lab
from tests.support.scenarios.shopfiles import KINDS, check_config_php, check_versions_file

EXAMPLES = int(os.environ.get("PULSED_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "empty"])  # soak: all
def test_hostile_index_php_and_composer_json_are_nulls_with_warnings(lab: Lab, kind: str) -> None:
    figures = check_versions_file(lab, kind)
    assert figures["code"] == 0  # the heartbeat went
    assert figures["module_version"] is None and "module_version" in figures["warned_fields"]


# config.php goes through the same reader as the others; `make soak` runs every kind.
FAST_CONFIG_PHP = ["missing", "unreadable"]


@pytest.mark.parametrize("kind", FAST_CONFIG_PHP)
def test_hostile_config_php_refuses_the_start_in_one_line(lab: Lab, kind: str) -> None:
    figures = check_config_php(lab, kind)
    assert (figures["code"], figures["stderr_lines"]) == (78, 1)
    assert figures["setting"] == "shop.domain"


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)


other_keys = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k != "version"), json_value, max_size=3
)


@st.composite
def composer_documents(draw: st.DrawFn) -> tuple[str, str]:
    """A composer.json as any tool may write it, and the version it holds."""
    version = draw(st.text(min_size=1, max_size=80))
    doc = draw(other_keys)
    keys = list(doc)
    at = draw(st.integers(0, len(keys)))
    ordered = dict(
        [(k, doc[k]) for k in keys[:at]] + [("version", version)] + [(k, doc[k]) for k in keys[at:]]
    )
    text = json.dumps(
        ordered,
        indent=draw(st.sampled_from([None, 0, 2, 4, "\t"])),
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([None, (",", ":"), (" , ", " : ")])),
    )
    if draw(st.booleans()):
        text = (
            draw(st.sampled_from(["", "\ufeff"]))
            + text
            + draw(st.sampled_from(["", "\n", "\r\n \t"]))
        )
    return text, version


@PROPERTY
@given(composer_documents())
def test_composer_version_reads_back_whatever_a_tool_wrote(case: tuple[str, str]) -> None:
    text, version = case
    assert composer_version(text) == version
    # README: 1–64 printable ASCII characters, since it goes into a header.
    printable = 1 <= len(version) <= 64 and all(" " <= c <= "~" for c in version)
    if printable and version == version.strip(" "):
        assert plausible_version(version, "module_version") == version
    else:
        with pytest.raises(CollectError):
            plausible_version(version, "module_version")


def _read_or_refuse(text: str) -> str | None:
    """The version ``text`` holds, or ``None`` when the parser refused it with a
    CollectError; any other exception escapes to the test. A version is also put
    through the header check, which may refuse it with a CollectError only."""
    try:
        version = composer_version(text)
    except CollectError:
        return None
    with contextlib.suppress(CollectError):
        plausible_version(version, "module_version")
    return version


fragments = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        '"version"',
        ":",
        ",",
        '"1.4.0"',
        '"',
        "\\",
        "\\u",
        "\\ud800",
        "1e999",
        "9" * 5000,
        "null",
        "true",
        "\ufeff",
        "\0",
        " ",
        "\n",
        "/*",
        "//",
        "'",
        "NaN",
        "-Infinity",
    ]
)


json_soup = st.lists(st.one_of(fragments, st.text(max_size=3)), max_size=40).map("".join)


@PROPERTY
@given(st.one_of(json_soup, st.text(), st.binary().map(lambda b: b.decode("utf-8", "replace"))))
def test_composer_version_of_any_text_is_a_version_or_a_collect_error(text: str) -> None:
    version = _read_or_refuse(text)
    assert version is None or (isinstance(version, str) and version != "")


@st.composite
def mangled_documents(draw: st.DrawFn) -> str:
    """A real composer.json, cut, spliced and patched at random."""
    text, _ = draw(composer_documents())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        end = draw(st.integers(at, min(len(text), at + 8)))
        text = text[:at] + draw(st.one_of(fragments, st.just(""))) + text[end:]
    return text


@PROPERTY
@given(mangled_documents())
def test_composer_version_of_a_mangled_document_never_raises_anything_else(text: str) -> None:
    version = _read_or_refuse(text)
    assert version is None or (isinstance(version, str) and version != "")


def test_deep_nesting_and_huge_numbers_are_collect_errors() -> None:
    for text in ("[" * 100_000, '{"version": ' + "9" * 100_000 + "}", '{"version": 1e999}'):
        with pytest.raises(CollectError):
            composer_version(text)
