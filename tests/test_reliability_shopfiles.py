"""Hostile shop files through the daemon (contract §1, §2), and the composer parser under
hypothesis.

``index.php``, ``config.php`` and the module's ``composer.json`` are each made missing,
unreadable (mode 000, for a process without CAP_DAC_OVERRIDE), empty, binary, 100 MB
(sparse, the real text at its top), a symlink loop, or a FIFO, and ``pulsed once``
runs against the shop:

- ``index.php`` / ``composer.json``: the heartbeat is still sent, the field is
  ``null`` (or, for the huge file, read from its first MiB) with one
  ``collect.unavailable`` warning naming it, and no ``X-MEGAPAY-VERSION`` header when
  the module version is ``null``;
- ``config.php``: without a domain the start is refused with exit 78 and one
  ``config.invalid`` line naming ``shop.domain`` — unless ``shop.domain`` is set.

The define() parser's properties live in ``tests/test_phpdefine.py``; the composer
parser's are here. Both read ``PULSED_HYPOTHESIS_EXAMPLES`` (``make soak``: 10000).
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulsed._errors import CollectError
from pulsed._shop import composer_version, plausible_version
from tests.test_reliability_harness import Lab

EXAMPLES = int(os.environ.get("PULSED_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HUGE = 100 * 2**20
# Without these two capabilities root obeys file modes like anyone else.
NO_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with Lab(tmp_path) as the_lab:
        yield the_lab


# --- making a file hostile ----------------------------------------------------------------


def _missing(path: Path) -> None:
    path.unlink()


def _unreadable(path: Path) -> None:
    path.chmod(0)


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _binary(path: Path) -> None:
    rng = random.Random(path.name)
    path.write_bytes(bytes(rng.randrange(256) for _ in range(4096)) + b"\0\xff\xfe")


def _huge(path: Path) -> None:
    with path.open("r+b") as fh:  # the real text first, then a 100 MB hole
        fh.truncate(HUGE)


def _symlink_loop(path: Path) -> None:
    path.unlink()
    loop = path.with_name(path.name + ".loop")
    path.symlink_to(loop.name)
    loop.symlink_to(path.name)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


KINDS: dict[str, Callable[[Path], None]] = {
    "missing": _missing,
    "unreadable": _unreadable,
    "empty": _empty,
    "binary": _binary,
    "100MB": _huge,
    "symlink-loop": _symlink_loop,
    "fifo": _fifo,
}


@functools.cache
def _can_drop_dac() -> bool:
    if shutil.which("setpriv") is None:
        return False
    tried = subprocess.run([*NO_DAC, "true"], capture_output=True, check=False)
    return tried.returncode == 0


def _prefix(kind: str) -> tuple[str, ...]:
    if kind == "unreadable" and os.geteuid() == 0:
        if not _can_drop_dac():
            pytest.skip("root reads a mode-000 file, and setpriv cannot drop that here")
        return NO_DAC
    return ()


def check_versions_file(lab: Lab, kind: str) -> dict[str, Any]:
    """``index.php`` and composer.json both hostile: nulls and warnings, the heartbeat goes."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"files-{kind}")
    rig.seed()
    for path in (rig.root / "index.php", rig.composer):
        KINDS[kind](path)
    result = rig.run("once", prefix=_prefix(kind))
    assert result.code == 0, result.err
    assert result.elapsed < 15, "a hostile file must not stall the heartbeat"
    (beat,) = receiver.unique_accepted
    (request,) = receiver.server.requests
    warned = {w["field"]: w["reason"] for w in result.named("collect.unavailable")}
    assert len(warned) == len(result.named("collect.unavailable")), "one warning per field"
    if kind == "100MB":  # read up to the cap: the defines sit at the top
        assert (beat["ecommerce_version"], beat["ecommerce_core_version"]) == (
            "3.0.3.8",
            "ocStore 3.0.3.8",
        )
        assert "ecommerce_version" not in warned
    else:
        assert beat["ecommerce_version"] is None and beat["ecommerce_core_version"] is None
        assert "ecommerce_version" in warned
    # JSON followed by a hole of NUL bytes is not JSON any more.
    assert beat["module_version"] is None and "module_version" in warned
    assert "x-megapay-version" not in request.headers
    assert beat["php_version"] == "8.2.7" and beat["domain"] == "demo-shop.example"
    return {"elapsed_s": round(result.elapsed, 2), "warnings": len(warned)}


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "empty"])  # soak: all
def test_hostile_index_php_and_composer_json_are_nulls_with_warnings(lab: Lab, kind: str) -> None:
    check_versions_file(lab, kind)


def check_config_php(lab: Lab, kind: str) -> dict[str, Any]:
    """``config.php`` hostile: no domain, exit 78 in one line — or fine with shop.domain."""
    receiver = lab.receiver()
    rig = lab.rig(receiver.url, f"config-php-{kind}")
    rig.seed()
    KINDS[kind](rig.root / "config.php")
    result = rig.run("once", prefix=_prefix(kind))
    if kind == "100MB":
        assert result.code == 0, result.err
        assert receiver.unique_accepted[0]["domain"] == "demo-shop.example"
        return {"elapsed_s": round(result.elapsed, 2)}
    assert result.code == 78, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    (invalid,) = result.events
    assert invalid["event"] == "config.invalid" and invalid["setting"] == "shop.domain"
    assert "config.php" in invalid["message"]
    assert receiver.server.requests == []
    if kind != "missing":
        return {"elapsed_s": round(result.elapsed, 2)}
    # With the domain set, config.php is not needed at all.
    result = rig.run("once", env={"PULSED_DOMAIN": "Shop.Example:8443"}, prefix=_prefix(kind))
    assert result.code == 0, result.err
    assert receiver.unique_accepted[0]["domain"] == "shop.example:8443"
    return {"elapsed_s": round(result.elapsed, 2)}


# config.php goes through the same reader as the others; `make soak` runs every kind.
FAST_CONFIG_PHP = ["missing", "unreadable"]


@pytest.mark.parametrize("kind", FAST_CONFIG_PHP)
def test_hostile_config_php_refuses_the_start_in_one_line(lab: Lab, kind: str) -> None:
    check_config_php(lab, kind)


# --- the composer parser, property-based --------------------------------------------------

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


def _only_collect_errors(text: str) -> None:
    try:
        version = composer_version(text)
    except CollectError:
        return
    assert isinstance(version, str) and version
    try:
        plausible_version(version, "module_version")
    except CollectError:
        return


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
    _only_collect_errors(text)


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
    _only_collect_errors(text)


def test_deep_nesting_and_huge_numbers_are_collect_errors() -> None:
    for text in ("[" * 100_000, '{"version": ' + "9" * 100_000 + "}", '{"version": 1e999}'):
        with pytest.raises(CollectError):
            composer_version(text)
