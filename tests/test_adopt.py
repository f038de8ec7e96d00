"""``pulsed adopt``: a shop's state moved on purpose, checked to be that shop's (§8).

On real folders and real ``pulsed`` processes; the attacker's planted link is made as
root and given to ``nobody``, as a tenant would own it.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from pulsed import _state as st
from tests.support.lab import CLOSED_PORT_URL, Lab, Rig
from tests.support.process import Result

AS_ROOT = os.geteuid() == 0
DOMAIN = "demo-shop.example"  # the example shop's config.php
WHEN = 1_800_000_000.0


def single_unit_state(rig: Rig, domain: str | None = DOMAIN) -> Path:
    """The state pulsed.service left: its folder, with a recorded domain (or none)."""
    folder = rig.home / "single"
    st.StateStore(folder).save(st.State(last_success=WHEN, next_due=WHEN + 3600, domain=domain))
    return folder


def adopt(rig: Rig, source: Path, target: Path, *extra: str) -> Result:
    return rig.run("adopt", str(source), *extra, env={"PULSED_STATE_DIR": str(target)})


def refused(result: Result, said: str) -> None:
    assert result.code == 78, result.err
    (line,) = [json.loads(x) for x in result.err.splitlines()]
    assert line["event"] == "config.invalid" and said in line["message"], line


def test_the_shops_own_state_is_moved_with_its_schedule(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL, "moves")
    source, target = single_unit_state(rig), rig.home / "instance"
    result = adopt(rig, source, target)
    assert result.code == 0, result.err
    assert not (source / "state.json").exists()
    moved = st.StateStore(target).read()
    assert moved is not None
    assert (moved.last_success, moved.next_due, moved.domain) == (WHEN, WHEN + 3600, DOMAIN)
    assert stat.S_IMODE((target / "state.json").stat().st_mode) == 0o600
    (line,) = [json.loads(x) for x in result.err.splitlines() if "state.adopted" in x]
    assert line["level"] == "info"


def test_another_shops_state_is_never_handed_over(lab: Lab) -> None:
    """Issue 16, row 2: pulsed@shop2 took shop1's state when it started."""
    rig = lab.rig(CLOSED_PORT_URL, "other-shop")
    source, target = single_unit_state(rig, "shop1.example"), rig.home / "instance"
    before = (source / "state.json").read_bytes()
    refused(adopt(rig, source, target), f"is the state of shop1.example, not of {DOMAIN}")
    assert (source / "state.json").read_bytes() == before
    assert not (target / "state.json").exists()


def test_a_state_that_records_no_domain_needs_the_operators_word(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL, "unrecorded")
    source, target = single_unit_state(rig, None), rig.home / "instance"
    refused(adopt(rig, source, target), "records no domain")
    assert (source / "state.json").exists()
    result = adopt(rig, source, target, "--unrecorded-domain")
    assert result.code == 0, result.err
    moved = st.StateStore(target).read()
    assert moved is not None and moved.domain == DOMAIN


def test_a_state_the_target_already_has_is_never_replaced(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL, "occupied")
    source, target = single_unit_state(rig), rig.home / "instance"
    st.StateStore(target).save(st.State(last_success=WHEN + 7200, domain=DOMAIN))
    before = (target / "state.json").read_bytes()
    refused(adopt(rig, source, target), "already has a state.json")
    assert (target / "state.json").read_bytes() == before
    assert (source / "state.json").exists()


def test_a_state_json_planted_as_a_link_to_a_root_file_is_not_followed(lab: Lab) -> None:
    """Issue 16, row 1: the root helper's mv/chown/chmod followed a planted link and
    changed a root file's owner; adopt opens nothing through a link."""
    rig = lab.rig(CLOSED_PORT_URL, "planted-link")
    victim = rig.home / "victim"
    victim.write_text("root's own file\n")
    victim.chmod(0o640)
    before = victim.stat()
    source = rig.home / "single"
    source.mkdir(mode=0o700)
    (source / "state.json").symlink_to(victim)
    if AS_ROOT:
        nobody = pwd.getpwnam("nobody")
        os.lchown(source / "state.json", nobody.pw_uid, nobody.pw_gid)
    target = rig.home / "instance"
    refused(adopt(rig, source, target), "is a symlink; not followed")
    after = victim.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )
    assert victim.read_text() == "root's own file\n"
    assert not (target / "state.json").exists()


def test_a_source_folder_that_is_a_link_is_not_followed(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL, "linked-folder")
    real = single_unit_state(rig)
    link = rig.home / "link"
    link.symlink_to(real)
    refused(adopt(rig, link, rig.home / "instance"), "is a symlink")
    assert (real / "state.json").exists()


def test_a_state_held_by_a_running_daemon_is_not_moved(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL, "held")
    source, target = single_unit_state(rig), rig.home / "instance"
    daemon = rig.start("run", env={"PULSED_STATE_DIR": str(source)})
    daemon.wait_for("daemon.started")
    result = adopt(rig, source, target)
    assert result.code == 75, result.err
    assert (source / "state.json").exists() and not (target / "state.json").exists()


def test_the_receiving_units_own_folder_takes_the_state_owned_by_that_user(lab: Lab) -> None:
    if not AS_ROOT:
        pytest.skip("only root can give a folder to the receiving unit's user")
    rig = lab.rig(CLOSED_PORT_URL, "unit-owned")
    source, target = single_unit_state(rig), rig.home / "instance"
    target.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(target, nobody.pw_uid, nobody.pw_gid)
    result = adopt(rig, source, target)
    assert result.code == 0, result.err
    info = (target / "state.json").stat()
    assert (info.st_uid, info.st_gid) == (nobody.pw_uid, nobody.pw_gid)


def test_a_target_folder_others_may_write_is_refused(lab: Lab) -> None:
    rig = lab.rig(CLOSED_PORT_URL, "open-target")
    source, target = single_unit_state(rig), rig.home / "instance"
    target.mkdir()
    target.chmod(0o777)
    refused(adopt(rig, source, target), "is writable by others")
    assert (source / "state.json").exists() and not (target / "state.json").exists()
