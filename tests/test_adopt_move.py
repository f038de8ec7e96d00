"""``pulsed adopt`` in the test's process: what :func:`_adopt.move` moves and what it refuses.

test_adopt.py runs ``pulsed adopt`` as a process, as an operator does; here the same
module is called directly on real folders, links and files, so each refusal is held by
its exact words and mutmut sees which tests reach the code (it records only the test's
own process).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from pulsed import _adopt
from pulsed import _state as st
from pulsed._errors import ConfigError, LockHeldError
from tests.support.process import Shop

AS_ROOT = os.geteuid() == 0
DOMAIN = "demo-shop.example"  # the example shop's config.php
WHEN = 1_800_000_000.0
STATE = st.State(last_success=WHEN, next_due=WHEN + 3600, consecutive_failures=2, domain=DOMAIN)


def saved(folder: Path, state: st.State = STATE) -> Path:
    """``folder/state.json`` as pulsed writes it."""
    st.StateStore(folder).save(state)
    return folder / "state.json"


def as_saved(state: st.State, scratch: Path) -> bytes:
    """The bytes of every state write (compact, sorted keys, one newline), for ``state``."""
    return saved(scratch, state).read_bytes()


def refusal(
    source: Path, target: Path, domain: str = DOMAIN, setting: str = "adopt", **kw: bool
) -> str:
    with pytest.raises(ConfigError) as refused:
        _adopt.move(source, target, domain, **kw)
    assert refused.value.setting == setting
    return refused.value.reason


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "single"
    saved(folder)
    return folder


# --- what is moved ----------------------------------------------------------------------


def test_the_state_is_written_as_every_state_write_and_only_then_left_behind(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "shops" / "instance"  # neither folder exists yet
    moved = _adopt.move(source, target, DOMAIN)
    assert moved == STATE
    assert not (source / "state.json").exists() and source.is_dir()
    written = target / "state.json"
    assert written.read_bytes() == as_saved(STATE, tmp_path / "scratch")
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert [p.name for p in target.iterdir()] == ["state.json"]  # no temp file left
    assert st.StateStore(target).read() == STATE


def test_a_state_that_records_no_domain_is_taken_on_the_operators_word(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "single", tmp_path / "instance"
    old = st.State(last_success=WHEN, next_due=WHEN + 60)
    saved(source, old)
    said = refusal(source, target)
    assert said == (
        f"{source}/state.json records no domain (written before states did); if it is "
        f"{DOMAIN}'s, say so with --unrecorded-domain"
    )
    assert (source / "state.json").exists() and not (target / "state.json").exists()
    moved = _adopt.move(source, target, DOMAIN, unrecorded=True)
    assert moved == st.State(last_success=WHEN, next_due=WHEN + 60, domain=DOMAIN)
    # From now on the state says whose it is.
    assert json.loads((target / "state.json").read_text())["domain"] == DOMAIN


def test_the_word_for_an_unrecorded_domain_does_not_take_another_shops_state(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "single", tmp_path / "instance"
    before = saved(source, st.State(last_success=WHEN, domain="shop1.example")).read_bytes()
    for unrecorded in (False, True):
        said = refusal(source, target, unrecorded=unrecorded)
        assert said == f"{source}/state.json is the state of shop1.example, not of {DOMAIN}"
    assert (source / "state.json").read_bytes() == before
    assert not (target / "state.json").exists()


@pytest.mark.skipif(not AS_ROOT, reason="only root can give a folder to another user")
def test_the_receiving_units_folder_gets_the_state_owned_by_its_owner(
    source: Path, tmp_path: Path
) -> None:
    target = tmp_path / "instance"
    target.mkdir(mode=0o700)
    os.chown(target, 4321, 8765)  # a dynamic user's uid and gid, not root's
    _adopt.move(source, target, DOMAIN)
    info = (target / "state.json").stat()
    assert (info.st_uid, info.st_gid) == (4321, 8765)
    assert stat.S_IMODE(info.st_mode) == 0o600


def test_a_state_of_exactly_the_largest_size_is_moved(tmp_path: Path) -> None:
    source, target = tmp_path / "single", tmp_path / "instance"
    source.mkdir()
    text = json.dumps(st.to_json(STATE))
    (source / "state.json").write_text(text + " " * (st.MAX_STATE_BYTES - len(text)))
    assert (source / "state.json").stat().st_size == st.MAX_STATE_BYTES
    assert _adopt.move(source, target, DOMAIN) == STATE


# --- the state refused ------------------------------------------------------------------


def test_a_state_over_the_largest_size_is_not_a_state(tmp_path: Path) -> None:
    source, target = tmp_path / "single", tmp_path / "instance"
    source.mkdir()
    text = json.dumps(st.to_json(STATE))
    (source / "state.json").write_text(text + " " * (st.MAX_STATE_BYTES + 1 - len(text)))
    said = refusal(source, target)
    assert said == f"{source}/state.json: over {st.MAX_STATE_BYTES} bytes, not a state"
    assert not (target / "state.json").exists()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "Expecting property name enclosed in double quotes"),
        ("[]", "not a JSON object"),
        ('{"version": 99}', "unknown version 99"),
        ("[" * 100_000 + "]" * 100_000, "maximum recursion depth exceeded"),
    ],
    ids=["unparsable", "array", "version", "deep"],
)
def test_a_file_that_does_not_parse_as_a_state_is_refused(
    tmp_path: Path, text: str, why: str
) -> None:
    source, target = tmp_path / "single", tmp_path / "instance"
    source.mkdir()
    (source / "state.json").write_text(text)
    said = refusal(source, target)
    assert said.startswith(f"{source}/state.json is not a state ("), said
    assert why in said
    assert (source / "state.json").read_text() == text
    assert not (target / "state.json").exists()


def test_a_state_json_planted_as_a_link_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    saved(tmp_path / "elsewhere", STATE).rename(victim)
    before = victim.read_bytes()
    source, target = tmp_path / "single", tmp_path / "instance"
    source.mkdir()
    (source / "state.json").symlink_to(victim)
    assert refusal(source, target) == f"{source}/state.json: is a symlink; not followed"
    assert victim.read_bytes() == before
    assert (source / "state.json").is_symlink()
    assert not (target / "state.json").exists()


def test_a_missing_state_is_named_as_missing(tmp_path: Path) -> None:
    source, target = tmp_path / "single", tmp_path / "instance"
    source.mkdir()
    assert refusal(source, target) == f"{source}/state.json: No such file or directory"
    assert not target.exists()


@pytest.fixture
def no_hang() -> Iterator[None]:
    """A test that could block on a FIFO fails after 10 s instead of hanging the run."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("blocked opening the state")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(10)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.usefixtures("no_hang")
@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_state_json_that_is_not_a_regular_file_is_refused_without_waiting(
    tmp_path: Path, kind: str
) -> None:
    # A FIFO with no writer would block a plain open for ever: the root command must not.
    source, target = tmp_path / "single", tmp_path / "instance"
    source.mkdir()
    if kind == "folder":
        (source / "state.json").mkdir()
    else:
        os.mkfifo(source / "state.json")
    assert refusal(source, target) == f"{source}/state.json: not a regular file"
    assert not (target / "state.json").exists()


# --- the folders refused ----------------------------------------------------------------


def test_a_source_folder_that_is_a_link_is_not_followed(source: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(source)
    target = tmp_path / "instance"
    assert refusal(link, target) == f"{link}: is a symlink; not followed"
    assert (source / "state.json").exists() and not target.exists()


def test_a_source_that_is_not_a_folder_is_named_so(tmp_path: Path) -> None:
    source = saved(tmp_path / "single")  # the file, not its folder
    assert refusal(source, tmp_path / "instance") == f"{source}: Not a directory"
    assert refusal(tmp_path / "none", tmp_path / "instance") == (
        f"{tmp_path / 'none'}: No such file or directory"
    )


def test_a_target_folder_that_is_a_link_is_not_followed(source: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    target = tmp_path / "instance"
    target.symlink_to(real)
    assert refusal(source, target) == f"{target}: is a symlink; not followed"
    assert (source / "state.json").exists()
    assert list(real.iterdir()) == []


def test_a_target_folder_others_may_write_is_refused(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "instance"
    target.mkdir()
    target.chmod(0o777)
    # The refusal of any state folder open to others, as the daemon's own is refused.
    assert refusal(source, target, setting="daemon.state_dir") == (
        f"{target} is writable by others (mode 0777); chmod go-w {target}"
    )
    assert (source / "state.json").exists() and list(target.iterdir()) == []


@pytest.mark.parametrize("kind", ["state", "dangling link"])
def test_a_state_the_target_already_has_is_never_replaced(
    source: Path, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "instance"
    if kind == "state":
        saved(target, st.State(last_success=WHEN + 7200, domain=DOMAIN))
    else:
        target.mkdir(mode=0o700)
        (target / "state.json").symlink_to(tmp_path / "nowhere")
    before = (target / "state.json").readlink() if kind != "state" else None
    said = refusal(source, target)
    assert said == f"{target} already has a state.json; refusing to replace it"
    assert (source / "state.json").exists()
    if before is not None:
        assert (target / "state.json").readlink() == before
    else:
        assert st.StateStore(target).read() == st.State(last_success=WHEN + 7200, domain=DOMAIN)


def test_a_target_that_cannot_be_made_a_folder_is_named(source: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "instance"
    assert refusal(source, target) == "cannot move the state: Not a directory"
    assert (source / "state.json").exists()


# --- the folders held by a running pulsed ------------------------------------------------


@pytest.mark.parametrize("held", ["source", "target"])
def test_a_folder_a_running_pulsed_holds_is_left_alone(
    source: Path, tmp_path: Path, held: str
) -> None:
    target = tmp_path / "instance"
    target.mkdir(mode=0o700)
    folder = source if held == "source" else target
    lock = st.StateLock(folder)  # as the daemon of that folder holds it
    lock.acquire()
    try:
        with pytest.raises(LockHeldError) as refused:
            _adopt.move(source, target, DOMAIN)
    finally:
        lock.release()
    assert (refused.value.lock_path, refused.value.holder) == (str(folder), "a running pulsed")
    assert (source / "state.json").exists() and not (target / "state.json").exists()
    # Neither folder is left locked by the refused move.
    for each in (source, target):
        fd = os.open(each, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


# --- the command ------------------------------------------------------------------------


def setenv(monkeypatch: pytest.MonkeyPatch, shop: Shop, **more: str) -> None:
    """The one-shop configuration of ``shop`` from the environment, and nothing else."""
    monkeypatch.delenv("PULSED_CONFIG", raising=False)
    for key, value in {**shop.env, **more}.items():
        monkeypatch.setenv(key, value)


def test_the_command_moves_the_state_into_the_shops_folder_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shop = Shop.create(tmp_path, "http://127.0.0.1:9")
    setenv(monkeypatch, shop)
    source = tmp_path / "single"
    saved(source)
    caplog.set_level(logging.INFO, logger="pulsed")
    assert _adopt.adopt({}, [], source, unrecorded=False) == 0
    assert st.StateStore(shop.state).read() == STATE
    (record,) = [r for r in caplog.records if getattr(r, "event", None) == "state.adopted"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"state of {DOMAIN} moved from {source} to {shop.state}"
    assert (record.__dict__["source"], record.__dict__["state_dir"]) == (
        str(source),
        str(shop.state),
    )


def test_the_command_takes_an_unrecorded_domain_only_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop.create(tmp_path, "http://127.0.0.1:9")
    setenv(monkeypatch, shop)
    source = tmp_path / "single"
    saved(source, st.State(last_success=WHEN))
    with pytest.raises(ConfigError, match="records no domain"):
        _adopt.adopt({}, [], source, unrecorded=False)
    assert _adopt.adopt({}, [], source, unrecorded=True) == 0
    assert st.StateStore(shop.state).read() == st.State(last_success=WHEN, domain=DOMAIN)


def test_with_several_shops_the_command_needs_the_one_whose_state_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop.create(tmp_path, "http://127.0.0.1:9")
    conf = tmp_path / "pulsed.toml"
    conf.write_text(f'[shops.alpha]\nroot = "{shop.root}"\n[shops.beta]\nroot = "{shop.root}"\n')
    conf.chmod(0o600)
    setenv(monkeypatch, shop, PULSED_CONFIG=str(conf))
    monkeypatch.delenv("OPENCART_ROOT")
    source = tmp_path / "single"
    saved(source)
    with pytest.raises(ConfigError) as refused:
        _adopt.adopt({}, [], source, unrecorded=False)
    assert refused.value.setting == "adopt"
    assert refused.value.reason == "name the one shop whose state this is (--shop NAME)"
    assert (source / "state.json").exists()
    assert _adopt.adopt({}, ["beta"], source, unrecorded=False) == 0
    assert st.StateStore(st.shop_state_dir(shop.state, "beta")).read() == STATE
