"""The Debian package's per-release fields (devtools/debfields.py), as make deb fills them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.debfields import python_fields, release, render, systemd_prefix

REPO = Path(__file__).resolve().parents[1]
CONTROL = (REPO / "packaging" / "deb" / "control.in").read_text(encoding="utf-8")
COPYRIGHT = (REPO / "packaging" / "deb" / "copyright.in").read_text(encoding="utf-8")
PACKAGE = {"VERSION": "0.1.0+deb13", "ARCH": "amd64", "MAINTAINER": "M <m@x>", "SIZE": "1"}


def field(control: str, name: str) -> str:
    (value,) = re.findall(rf"^{name}: (.*)$", control, re.M)
    return str(value)


def test_a_package_built_on_python_3_13_depends_on_3_13_and_procps() -> None:
    control = render(CONTROL, {**PACKAGE, **python_fields((3, 13))})
    assert field(control, "Depends") == (
        "python3 (>= 3.13), python3 (<< 3.14), python3.13, libc6, procps"
    )
    assert field(control, "Version") == "0.1.0+deb13"
    assert "Python 3.13." in control


def test_a_package_built_on_python_3_11_depends_on_3_11() -> None:
    control = render(CONTROL, {**PACKAGE, **python_fields((3, 11))})
    assert field(control, "Depends").startswith("python3 (>= 3.11), python3 (<< 3.12), python3.11,")


def test_the_copyright_file_names_the_venv_of_the_python_it_was_built_on() -> None:
    text = render(COPYRIGHT, python_fields((3, 13)))
    paths = set(re.findall(r"venv/lib/([^/]+)/site-packages", text))
    assert paths == {"python3.13"}


def test_nothing_in_the_package_templates_names_a_python_version() -> None:
    for path in (REPO / "packaging" / "deb").iterdir():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"3\.1[0-9]", text), f"{path.name} names a Python version"


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match="@PYTHON_NEXT@"):
        render(CONTROL, {**PACKAGE, "PYTHON": "3.13"})


def test_make_deb_s_command_renders_for_the_python_that_runs_it() -> None:
    done = subprocess.run(
        [sys.executable, "devtools/debfields.py", "render", "packaging/deb/control.in"]
        + [f"{name}={value}" for name, value in PACKAGE.items()],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert field(done.stdout, "Depends").startswith(f"python3 (>= {running}),")


DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'  # noqa: E501
DEBIAN_13 = DEBIAN_12.replace('"12"', '"13"').replace("bookworm", "trixie")
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
SID = 'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nNAME="Debian GNU/Linux"\nVERSION_CODENAME=trixie\nID=debian\n'  # noqa: E501


@pytest.mark.parametrize(
    ("os_release", "suffix"), [(DEBIAN_12, "deb12"), (DEBIAN_13, "deb13"), (UBUNTU, "ubuntu24.04")]
)
def test_the_release_suffix(os_release: str, suffix: str) -> None:
    assert release(os_release) == suffix


def test_a_release_without_a_version_is_refused() -> None:
    with pytest.raises(ValueError, match="DEB_RELEASE="):
        release(SID)


def test_units_go_where_the_release_s_systemd_keeps_its_own() -> None:
    bookworm = "/.\n/lib/systemd/system/systemd-journald.service\n/lib/systemd/system-generators\n"
    trixie = "/.\n/usr/lib/systemd/system/sysinit.target.wants/systemd-journald.service\n" + (
        "/usr/lib/systemd/system/systemd-journald.service\n"
    )
    assert systemd_prefix(bookworm) == "/lib"
    assert systemd_prefix(trixie) == "/usr/lib"
    with pytest.raises(ValueError, match="systemd"):
        systemd_prefix("")
