"""The one bounded read of a file pulsed does not own, on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pulsed._errors import FileError
from pulsed._files import read_regular


def test_a_file_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    got = read_regular(tmp_path / "f", 3)
    assert (got.data, got.cut) == (b"abc", False)


def test_a_longer_file_is_cut_at_the_limit_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abcd")
    got = read_regular(tmp_path / "f", 3)
    assert (got.data, got.cut) == (b"abc", True)


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileError, match="not a regular file") as caught:
        read_regular(tmp_path / "fifo", 10)
    assert caught.value.kind == "not_regular"


@pytest.mark.parametrize(("follow", "kind"), [(True, None), (False, "symlink")])
def test_a_symlink_is_followed_only_when_asked(
    tmp_path: Path, follow: bool, kind: str | None
) -> None:
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    if kind is None:
        assert read_regular(tmp_path / "link", 10, follow=follow).data == b"x"
        return
    with pytest.raises(FileError, match="a symlink") as caught:
        read_regular(tmp_path / "link", 10, follow=follow)
    assert caught.value.kind == kind


def test_a_missing_file_is_named_missing(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="not found") as caught:
        read_regular(tmp_path / "nope", 10)
    assert caught.value.kind == "missing"
    assert str(tmp_path / "nope") in str(caught.value)


def test_a_path_with_a_nul_byte_is_a_file_error(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="not a valid path"):
        read_regular(tmp_path / "a\0b", 10)
