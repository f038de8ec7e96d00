"""The one bounded read of a file pulsed does not own, and the one atomic writer, on real files."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

import pytest

from pulsed._errors import ConfigError, FileError
from pulsed._files import (
    check_owner_only,
    open_trusted_folder,
    read_regular,
    remove_leftovers,
    replace_at,
    temp_prefix,
    write_at,
    write_atomic,
    write_new,
    write_public,
)


def test_a_file_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    got = read_regular(tmp_path / "f", 3)
    assert (got.data, got.cut) == (b"abc", False)


def test_a_longer_file_is_cut_at_the_limit_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abcd")
    got = read_regular(tmp_path / "f", 3)
    assert (got.data, got.cut) == (b"abc", True)


def test_the_read_carries_the_files_stat(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert read_regular(tmp_path / "f", 3).info.st_ino == (tmp_path / "f").stat().st_ino


def test_short_reads_are_joined_up_to_one_byte_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A network file system may return fewer bytes than asked; the limit still holds.
    (tmp_path / "f").write_bytes(b"0123456789")
    real_read, returned = os.read, []

    def short_read(fd: int, n: int) -> bytes:
        returned.append(len(chunk := real_read(fd, min(n, 4))))
        return chunk

    monkeypatch.setattr(os, "read", short_read)
    got = read_regular(tmp_path / "f", 4)
    assert (got.data, got.cut, sum(returned)) == (b"0123", True, 5)


@pytest.mark.parametrize("follow", [True, False])
def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path, follow: bool) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileError) as caught:
        read_regular(tmp_path / "fifo", 10, follow=follow)
    assert (str(caught.value), caught.value.kind) == (
        f"{tmp_path / 'fifo'}: not a regular file",
        "not_regular",
    )


def test_a_symlink_is_followed_by_default(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert read_regular(tmp_path / "link", 10).data == b"x"


@pytest.mark.parametrize(("follow", "kind"), [(True, None), (False, "symlink")])
def test_a_symlink_is_followed_only_when_asked(
    tmp_path: Path, follow: bool, kind: str | None
) -> None:
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    if kind is None:
        assert read_regular(tmp_path / "link", 10, follow=follow).data == b"x"
        return
    with pytest.raises(FileError) as caught:
        read_regular(tmp_path / "link", 10, follow=follow)
    assert (caught.value.kind, caught.value.reason) == (kind, "a symlink")


def test_a_symlink_loop_followed_is_named_a_loop(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(FileError) as caught:
        read_regular(tmp_path / "loop", 10)
    assert (caught.value.kind, caught.value.reason) == ("other", "symlink loop")


def test_a_missing_file_is_named_missing(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="not found") as caught:
        read_regular(tmp_path / "nope", 10)
    assert caught.value.kind == "missing"
    assert str(tmp_path / "nope") in str(caught.value)


def test_a_path_with_a_nul_byte_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "a\0b"
    with pytest.raises(FileError) as caught:
        read_regular(path, 10)
    assert (str(caught.value), caught.value.kind) == (
        f"{str(path)!r}: not a valid path",
        "other",
    )


def test_an_error_while_reading_is_named_in_the_kernels_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f").write_bytes(b"abc")

    def failing_read(fd: int, n: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "read", failing_read)
    with pytest.raises(FileError) as caught:
        read_regular(tmp_path / "f", 10)
    assert (str(caught.value), caught.value.kind) == (
        f"{tmp_path / 'f'}: Input/output error",
        "other",
    )


def test_an_error_without_errno_is_named_by_its_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "f").write_bytes(b"abc")

    def failing_read(fd: int, n: int) -> bytes:
        raise OSError

    monkeypatch.setattr(os, "read", failing_read)
    with pytest.raises(FileError) as caught:
        read_regular(tmp_path / "f", 10)
    assert (caught.value.kind, caught.value.reason) == ("other", "OSError")


# --- the one atomic writer ------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_write_atomic_sets_the_mode_whatever_the_umask(tmp_path: Path, mode: int) -> None:
    old = os.umask(0o077)  # the units' UMask=: a 0644 status file must still be 0644
    try:
        write_atomic(tmp_path / "status.json", b"{}\n", mode)
    finally:
        os.umask(old)
    assert (tmp_path / "status.json").read_bytes() == b"{}\n"
    assert stat.S_IMODE((tmp_path / "status.json").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temp file left


def test_write_atomic_replaces_a_planted_symlink_never_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.prom").symlink_to(victim)
    (folder / f"{temp_prefix('metrics.prom')}0").symlink_to(victim)
    write_atomic(folder / "metrics.prom", b"x 1\n", 0o644)
    assert victim.read_text() == "precious"
    assert not (folder / "metrics.prom").is_symlink()
    assert (folder / "metrics.prom").read_bytes() == b"x 1\n"


def test_write_atomic_into_a_missing_folder_is_a_file_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileError) as caught:
        write_atomic(tmp_path / "absent" / "status.json", b"{}", 0o644)
    assert (str(caught.value), caught.value.kind) == (
        f"{tmp_path / 'absent' / 'status.json'}: not found",
        "missing",
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["a\0b", "a\0b/status.json"], ids=["file", "folder"])
def test_write_atomic_to_a_path_with_a_nul_byte_is_a_file_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    with pytest.raises(FileError) as caught:
        write_atomic(path, b"{}", 0o644)
    assert (str(caught.value), caught.value.kind) == (
        f"{str(path)!r}: not a valid path",
        "other",
    )


def test_write_atomic_through_a_symlink_loop_names_the_loop(tmp_path: Path) -> None:
    # The folder's path is followed (a state folder may be a link), so ELOOP there is a
    # loop, not a link refused.
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(FileError) as caught:
        write_atomic(tmp_path / "loop" / "status.json", b"{}", 0o644)
    assert (str(caught.value), caught.value.kind) == (
        f"{tmp_path / 'loop' / 'status.json'}: symlink loop",
        "other",
    )


def test_write_atomic_into_a_linked_folder_writes_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    write_atomic(tmp_path / "link" / "status.json", b"{}", 0o644)
    assert (tmp_path / "real" / "status.json").read_bytes() == b"{}"


def test_write_atomic_never_writes_through_a_symlink_at_its_temp_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "status.json"
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: "0")  # a guessed name
    (tmp_path / f"{temp_prefix(target.name)}0").symlink_to(victim)
    with pytest.raises(FileError):
        write_atomic(target, b"{}", 0o644)
    assert victim.read_text() == "precious"
    assert not target.exists()


def test_write_atomic_onto_a_folder_keeps_the_folder_and_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "status.json").mkdir()
    with pytest.raises(FileError):
        write_atomic(tmp_path / "status.json", b"{}", 0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert (tmp_path / "status.json").is_dir()


def test_temp_names_never_end_like_the_target(tmp_path: Path) -> None:
    # node_exporter reads every *.prom in its folder: a temp file must not be one.
    assert not temp_prefix("pulsed.prom").endswith(".prom")
    assert temp_prefix("pulsed.prom").startswith(".")


def test_remove_leftovers_removes_only_the_targets_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    write_atomic(target, b"{}", 0o644)
    (tmp_path / f"{temp_prefix(target.name)}dead").write_text("half")
    (tmp_path / "other.json").write_text("{}")
    remove_leftovers(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "status.json"]


def test_remove_leftovers_goes_on_past_one_it_cannot_remove(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    (tmp_path / f"{temp_prefix(target.name)}folder").mkdir()  # unlink() refuses a folder
    (tmp_path / f"{temp_prefix(target.name)}dead").write_text("half")
    remove_leftovers(target)
    assert [p.name for p in tmp_path.iterdir()] == [f"{temp_prefix(target.name)}folder"]


def test_remove_leftovers_unlinks_a_planted_symlink_never_its_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "state"
    folder.mkdir()
    (folder / f"{temp_prefix('state.json')}planted").symlink_to(victim)
    (folder / temp_prefix("state.jsonx")).write_text("another file's")
    remove_leftovers(folder / "state.json")
    assert [p.name for p in folder.iterdir()] == [temp_prefix("state.jsonx")]
    assert victim.read_text() == "precious"


def test_remove_leftovers_in_a_missing_folder_does_nothing_and_keeps_no_descriptor(
    tmp_path: Path,
) -> None:
    before = _fds()
    remove_leftovers(tmp_path / "absent" / "status.json")
    (tmp_path / f"{temp_prefix('status.json')}dead").write_text("half")
    remove_leftovers(tmp_path / "status.json")
    assert _fds() == before
    assert list(tmp_path.iterdir()) == []


# The public files' writer makes its temp name itself, so it is held to the same form.
@pytest.mark.parametrize("writer", ["write_atomic", "replace_at"])
def test_each_write_has_a_new_temp_name_that_is_a_plain_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    seen: list[object] = []
    real_replace = os.replace

    def spy(src: object, dst: object, **where: int) -> None:
        seen.append(src)
        real_replace(src, dst, **where)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        if writer == "write_atomic":
            write_atomic(tmp_path / "status.json", b"{}", 0o644)
        else:
            _replace(tmp_path, "status.json", b"{}")
    assert all(type(n) is str for n in seen) and len(set(seen)) == 3
    assert all(
        len(n) == len(temp_prefix("status.json")) + 16 and n.startswith(temp_prefix("status.json"))
        for n in seen
        if isinstance(n, str)
    )


def refusal(owner: int, mode: int, euid: int | None = 4242) -> ConfigError | None:
    """What check_owner_only says of a folder of ``owner`` and ``mode``, if it refuses."""
    info = os.stat_result((stat.S_IFDIR | mode, 1, 1, 1, owner, 0, 0, 0, 0, 0))
    try:
        check_owner_only(Path("/x"), info, "some.setting", use="use it", euid=euid)
    except ConfigError as exc:
        return exc
    return None


@pytest.mark.parametrize("owner", [0, 4242])
@pytest.mark.parametrize("mode", [0o700, 0o755, 0o644, 0o1755], ids=oct)
def test_what_only_root_or_pulsed_s_user_may_write_is_accepted(owner: int, mode: int) -> None:
    assert refusal(owner, mode) is None


@pytest.mark.parametrize("owner", [0, 4242])
@pytest.mark.parametrize("mode", [0o770, 0o620, 0o1777, 0o702, 0o666], ids=oct)
def test_what_its_group_or_others_may_write_is_refused(owner: int, mode: int) -> None:
    refused = refusal(owner, mode)
    assert refused is not None
    assert (refused.setting, refused.reason) == (
        "some.setting",
        f"/x is writable by others (mode {mode:04o}); chmod go-w /x",
    )


def test_what_another_user_owns_is_refused_saying_what_pulsed_will_not_do() -> None:
    refused = refusal(1000, 0o700)
    assert refused is not None
    assert (refused.setting, refused.reason) == (
        "some.setting",
        "/x is owned by uid 1000, not by pulsed's user or root; refusing to use it",
    )


def test_without_a_uid_the_owner_is_checked_against_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 4343)  # not root, whoever runs the tests
    assert refusal(4343, 0o700, None) is None
    assert refusal(4242, 0o700, None) is not None


# --- write_new: a file created whole, never over one -------------------------------


def _new(folder: Path, name: str, data: bytes, mode: int = 0o644) -> bool:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return write_new(fd, folder, name, data, mode)
    finally:
        os.close(fd)


def test_write_new_creates_the_file_with_its_mode_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    old = os.umask(0o077)
    try:
        assert _new(tmp_path, "anna.toml", b"[shop]\n", 0o644)
    finally:
        os.umask(old)
    assert (tmp_path / "anna.toml").read_bytes() == b"[shop]\n"
    assert stat.S_IMODE((tmp_path / "anna.toml").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anna.toml"]


def test_write_new_links_a_temp_file_named_for_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    linked: list[object] = []
    real_link = os.link

    def spy(src: object, dst: object, **where: object) -> None:
        linked.append(src)
        real_link(src, dst, **where)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", spy)
    assert _new(tmp_path, "anna.toml", b"[shop]\n")
    (name,) = linked
    assert isinstance(name, str) and name.startswith(temp_prefix("anna.toml"))


def test_write_new_never_replaces_a_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "anna.toml").write_text("kept")
    assert not _new(tmp_path, "anna.toml", b"new")
    assert (tmp_path / "anna.toml").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anna.toml"]


def test_write_new_never_writes_through_a_symlink_at_the_name(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "anna.toml").symlink_to(target)  # dangling: a plain open would create it
    assert not _new(tmp_path / "dir", "anna.toml", b"new")
    assert not target.exists()
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["anna.toml"]


def test_write_new_into_a_removed_folder_is_a_file_error_naming_the_file(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "shops.d"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        folder.rmdir()  # a folder removed under the writer: nothing can be created in it
        with pytest.raises(FileError, match=r"shops\.d/anna\.toml: not found"):
            write_new(fd, folder, "anna.toml", b"new", 0o644)
    finally:
        os.close(fd)


def _at(folder: Path, name: str, data: bytes, owner: tuple[int, int] | None = None) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_at(fd, folder, name, data, 0o600, owner)
    finally:
        os.close(fd)


def test_write_new_to_a_name_with_a_nul_byte_is_a_file_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileError) as caught:
        _new(tmp_path, "a\0b", b"new")
    path = tmp_path / "a\0b"
    assert (str(caught.value), caught.value.kind) == (
        f"{str(path)!r}: not a valid path",
        "other",
    )
    assert list(tmp_path.iterdir()) == []


# --- write_at: write_atomic through a folder's descriptor --------------------------


def test_write_at_gives_the_file_to_its_owner_before_it_appears(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root gives a file away: run as root")
    _at(tmp_path, "state.json", b"{}", (4242, 4343))
    info = (tmp_path / "state.json").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4242, 4343, 0o600)
    assert (tmp_path / "state.json").read_bytes() == b"{}"


def test_write_at_without_an_owner_keeps_the_writers(tmp_path: Path) -> None:
    _at(tmp_path, "state.json", b"{}")
    info = (tmp_path / "state.json").stat()
    assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())


def test_write_at_into_a_removed_folder_is_a_file_error_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        folder.rmdir()  # no temp file can be made, so there is none to remove either
        with pytest.raises(FileError) as caught:
            write_at(fd, folder, "state.json", b"{}", 0o600)
    finally:
        os.close(fd)
    assert (str(caught.value), caught.value.kind) == (
        f"{folder / 'state.json'}: not found",
        "missing",
    )


# --- open_trusted_folder and write_public: the status and metrics files' folders ----


def _fds() -> list[str]:
    return sorted(p.name for p in Path("/proc/self/fd").iterdir())


def test_a_trusted_folder_is_opened_as_itself(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    fd = open_trusted_folder(folder, "daemon.status_file")
    try:
        assert os.fstat(fd).st_ino == folder.stat().st_ino
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)


def trusted_refusal(folder: Path, euid: int | None = None) -> tuple[str, str]:
    """What open_trusted_folder says of ``folder``; it must refuse, and keep no descriptor."""
    before = _fds()
    with pytest.raises(ConfigError) as caught:
        os.close(open_trusted_folder(folder, "daemon.status_file", euid=euid))
    assert _fds() == before
    return (caught.value.setting, caught.value.reason)


def test_a_symlinked_folder_is_refused_naming_the_folder_to_give(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert trusted_refusal(tmp_path / "link") == (
        "daemon.status_file",
        f"{tmp_path / 'link'}: is a symlink; name the folder itself",
    )


def test_a_symlink_to_a_file_where_the_folder_should_be_is_refused_as_a_symlink(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    assert trusted_refusal(tmp_path / "link")[1] == (
        f"{tmp_path / 'link'}: is a symlink; name the folder itself"
    )


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (None, "No such file or directory"),
        ("file", "Not a directory"),
    ],
)
def test_a_folder_that_cannot_be_opened_is_refused_in_the_kernels_words(
    tmp_path: Path, make: str | None, why: str
) -> None:
    folder = tmp_path / "run"
    if make == "file":
        folder.write_text("")
    assert trusted_refusal(folder) == ("daemon.status_file", f"{folder}: {why}")


def test_a_folder_with_a_nul_byte_is_refused_as_not_a_valid_path(tmp_path: Path) -> None:
    folder = tmp_path / "a\0b"
    assert trusted_refusal(folder) == (
        "daemon.status_file",
        f"{str(folder)!r}: not a valid path",
    )


def test_a_folder_others_may_write_is_refused_and_its_descriptor_closed(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o777)
    assert trusted_refusal(folder) == (
        "daemon.status_file",
        f"{folder} is writable by others (mode 0777); chmod go-w {folder}",
    )


def test_a_folder_is_trusted_for_the_user_pulsed_runs_as(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    owner = os.geteuid()
    if owner == 0:
        owner = 4242  # root's folder is trusted by anyone: make it a user's
        os.chown(folder, owner, -1)
    os.close(open_trusted_folder(folder, "daemon.status_file", euid=owner))
    assert trusted_refusal(folder, euid=4343) == (
        "daemon.status_file",
        f"{folder} is owned by uid {owner}, not by pulsed's user or root; refusing to write there",
    )


def test_write_public_writes_the_file_with_its_mode_and_no_temp_file(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    (folder / "status.json").write_text("old")
    before = _fds()
    old = os.umask(0o077)
    try:
        write_public(folder / "status.json", b"{}\n", 0o644, "daemon.status_file")
    finally:
        os.umask(old)
    assert _fds() == before
    assert (folder / "status.json").read_bytes() == b"{}\n"
    assert stat.S_IMODE((folder / "status.json").stat().st_mode) == 0o644
    assert [p.name for p in folder.iterdir()] == ["status.json"]


def test_write_public_into_a_folder_others_may_write_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(FileError) as caught:
        write_public(folder / "status.json", b"{}", 0o644, "daemon.status_file")
    assert (str(caught.value), caught.value.kind) == (
        f"daemon.status_file {folder / 'status.json'}: {folder} is writable by others"
        " (mode 0777); "
        f"chmod go-w {folder}",
        "denied",
    )
    assert list(folder.iterdir()) == []


def test_write_public_that_fails_keeps_no_descriptor(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    (folder / "status.json").mkdir()  # a folder where the file goes: the rename fails
    before = _fds()
    with pytest.raises(FileError) as caught:
        write_public(folder / "status.json", b"{}", 0o644, "daemon.metrics_file")
    assert _fds() == before
    # The write's own failure names the setting too, and keeps its kind.
    reason = caught.value.reason
    assert str(caught.value) == f"daemon.metrics_file {folder / 'status.json'}: {reason}"
    assert "directory" in reason.lower() and caught.value.kind == "other", reason


# --- replace_at: the public files' write, renamed into place without fsync ---------


def _replace(folder: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        replace_at(fd, folder, name, data, mode)
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_replace_at_renames_the_whole_file_in_with_its_mode_and_never_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    (tmp_path / "status.json").write_text("old")
    before = _fds()
    old = os.umask(0o077)
    try:
        _replace(tmp_path, "status.json", b"{}\n", mode)
    finally:
        os.umask(old)
    assert synced == []
    assert _fds() == before
    assert (tmp_path / "status.json").read_bytes() == b"{}\n"
    assert stat.S_IMODE((tmp_path / "status.json").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_replace_at_writes_on_after_a_short_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    _replace(tmp_path, "pulsed.prom", b"x 1\ny 2\n")
    assert (tmp_path / "pulsed.prom").read_bytes() == b"x 1\ny 2\n"


def test_replace_at_never_writes_through_a_symlink_at_its_temp_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "run").mkdir()
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: "0")  # a guessed name
    (tmp_path / "run" / f"{temp_prefix('status.json')}0").symlink_to(victim)
    with pytest.raises(FileError):
        _replace(tmp_path / "run", "status.json", b"{}")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "run" / "status.json").exists()


def test_replace_at_that_cannot_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    (tmp_path / "status.json").write_text("old")
    monkeypatch.setattr(os, "write", full)
    before = _fds()
    with pytest.raises(FileError) as caught:
        _replace(tmp_path, "status.json", b"{}")
    assert _fds() == before
    assert (str(caught.value), caught.value.kind) == (
        f"{tmp_path / 'status.json'}: No space left on device",
        "other",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert (tmp_path / "status.json").read_text() == "old"


def test_replace_at_onto_a_folder_keeps_the_folder_and_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "status.json").mkdir()
    with pytest.raises(FileError) as caught:
        _replace(tmp_path, "status.json", b"{}")
    assert str(caught.value).startswith(f"{tmp_path / 'status.json'}: ")
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    assert (tmp_path / "status.json").is_dir()


def test_replace_at_to_a_name_with_a_nul_byte_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "a\0b"
    with pytest.raises(FileError) as caught:
        _replace(tmp_path, path.name, b"{}")
    assert (str(caught.value), caught.value.kind) == (
        f"{str(path)!r}: not a valid path",
        "other",
    )
    assert list(tmp_path.iterdir()) == []


def test_replace_at_into_a_removed_folder_is_a_file_error_naming_the_file(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        folder.rmdir()  # no temp file can be made, so there is none to remove either
        with pytest.raises(FileError) as caught:
            replace_at(fd, folder, "status.json", b"{}", 0o644)
    finally:
        os.close(fd)
    assert (str(caught.value), caught.value.kind) == (
        f"{folder / 'status.json'}: not found",
        "missing",
    )
