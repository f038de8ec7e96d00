"""The Debian package's fields that come from the release it is built on (``make deb``).

The package's venv holds extensions compiled for one Python minor version, under a
``lib/python3.X/site-packages`` that names it, so a package fits one Debian release
only. ``make deb`` is run on that release and takes from it, through this script:

- ``Depends:``, the copyright file's paths and the description: from the Python that
  runs the script, the build host's ``/usr/bin/python3`` the venv is built on;
- the version's suffix, ``+deb12`` or ``+deb13``, from ``/etc/os-release``: two
  releases' builds of one commit are two packages, and the newer release's sorts
  higher, so a host upgraded from 12 to 13 upgrades to the 13 build;
- where the units go: where that release's systemd package keeps its own
  (``/lib/systemd/system`` on Debian 12, ``/usr/lib/systemd/system`` from 13 on).

It runs on the build host's own Python, whatever it is, so it uses the standard library
only. Commands::

    debfields.py release                      deb12
    debfields.py systemd-prefix               /lib (or /usr/lib)
    debfields.py render FILE KEY=VALUE...     FILE with each @KEY@ replaced, on stdout
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PLACEHOLDER = re.compile(r"@([A-Z][A-Z_]*)@")
# A file systemd has shipped in every release, in the folder of its system units.
JOURNALD_UNIT = "/systemd/system/systemd-journald.service"


def python_fields(version: tuple[int, int]) -> dict[str, str]:
    """The fields a template takes from the Python the venv is built on."""
    major, minor = version
    return {"PYTHON": f"{major}.{minor}", "PYTHON_NEXT": f"{major}.{minor + 1}"}


def release(os_release: str) -> str:
    """The version suffix for the release ``/etc/os-release`` describes: ``deb12``.

    Debian's own spelling of a release in a version (``+deb12u1`` for its stable
    updates); another distribution is its ID and version, ``ubuntu24.04``. A release
    without a version (testing, sid) has no stable Python to build for: refused.
    """
    fields: dict[str, str] = {}
    for line in os_release.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            parsed = shlex.split(value)
            fields[name.strip()] = parsed[0] if parsed else ""
    distribution = fields.get("ID", "")
    version = fields.get("VERSION_ID", "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", distribution) or not re.fullmatch(
        r"[0-9][0-9.]*", version
    ):
        raise ValueError(
            f"no release to name the package after (ID={distribution!r},"
            f" VERSION_ID={version!r}); set DEB_RELEASE="
        )
    return ("deb" if distribution == "debian" else distribution) + version


def systemd_prefix(listing: str) -> str:
    """Where the release's systemd keeps its units (``/lib`` or ``/usr/lib``), from
    ``dpkg-query -L systemd``: the package's units belong beside them."""
    for line in listing.splitlines():
        if line.endswith(JOURNALD_UNIT):
            return line[: -len(JOURNALD_UNIT)]
    raise ValueError("systemd's own units are not where dpkg says (is systemd installed?)")


def render(template: str, fields: Mapping[str, str]) -> str:
    """``template`` with every ``@KEY@`` replaced; a key without a value is an error."""
    missing = sorted(set(PLACEHOLDER.findall(template)) - set(fields))
    if missing:
        raise ValueError(f"no value for {', '.join('@' + name + '@' for name in missing)}")
    return PLACEHOLDER.sub(lambda found: fields[found.group(1)], template)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="debfields.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("release", help="the version suffix for this release")
    commands.add_parser("systemd-prefix", help="/lib or /usr/lib: where systemd's units are")
    rendering = commands.add_parser("render", help="a template with its fields filled in")
    rendering.add_argument("template", type=Path)
    rendering.add_argument("fields", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            print(release(Path("/etc/os-release").read_text(encoding="utf-8")))
        elif args.command == "systemd-prefix":
            listing = subprocess.run(
                ["/usr/bin/dpkg-query", "-L", "systemd"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            print(systemd_prefix(listing))
        else:
            fields = python_fields((sys.version_info.major, sys.version_info.minor))
            for item in args.fields:
                name, sep, value = item.partition("=")
                if not sep:
                    parser.error(f"not KEY=VALUE: {item}")
                fields[name] = value
            sys.stdout.write(render(args.template.read_text(encoding="utf-8"), fields))
    except (OSError, ValueError) as error:
        print(f"debfields.py {args.command}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
