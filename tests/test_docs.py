"""The README and docs stand on their own: every link stays inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pulsed._settings import SETTINGS

REPO = Path(__file__).resolve().parent.parent
PAGES = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "systemd").rglob("*.md")),
]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_stay_in_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "../" not in text, "a clone must be self-contained: no path above the repository"
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a URL, not a file of the repository
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_points_at_the_contract_in_the_repository() -> None:
    assert "[docs/contract.md](docs/contract.md)" in (REPO / "README.md").read_text()
    title = (REPO / "docs" / "contract.md").read_text(encoding="utf-8").splitlines()[0]
    assert title == "# The heartbeat contract pulsed keeps"


def test_contract_settings_table_matches_the_declarations() -> None:
    text = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    table = text.split("| setting | variable | systemd credential | default | notes |\n", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[1:]
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    assert [(key, env, cred) for key, env, cred, *_ in cells] == [
        (f"`{s.key}`", f"`{s.env}`", f"`{s.credential}`" if s.credential else "") for s in SETTINGS
    ]


# --- the paths the pages name -------------------------------------------------------

SYSTEMD = REPO / "systemd"
# Every page an operator reads for paths: the docs, the README, the units' headers, the
# example config and the credentials layout.
NAMING = [*PAGES, *sorted(SYSTEMD.glob("*.service")), SYSTEMD / "pulsed.toml.example"]
PULSED_PATH = re.compile(
    r"(?<![\w./-])/(?:etc/pulsed|etc/default/pulsed|var/lib/(?:private/)?pulsed|run/pulsed)"
    r"[^\s`'\"()\[\],;|*]*"
)
# The instance and shop names the pages use as examples, and their placeholders.
SHOP = re.compile(r"%i|<shop>|<name>|\bshop[0-9]\b|\banna\b")
# The layout instances had before /var/lib/pulsed-instances: named only where the page
# moves a state out of it (docs/systemd.md, "old-instance-layout").
OLD_LAYOUT = {"/var/lib/pulsed/<shop>", "/var/lib/private/pulsed/<shop>"}


def _unit_lines(name: str) -> list[tuple[str, str]]:
    lines = (SYSTEMD / name).read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("=", 1)) for line in lines if re.match(r"[A-Za-z]+=", line)]  # type: ignore[misc]


def produced() -> set[str]:
    """Every pulsed path the units, the credentials generator and pulsed itself make or
    read, with ``<shop>`` for a shop's or instance's name."""
    paths = {
        "/etc/pulsed",
        "/etc/pulsed/pulsed.toml",
        "/etc/pulsed/pulsed.toml.example",
        "/etc/pulsed/shops.d",
        "/etc/pulsed/shops.d/<shop>.toml",
        "/etc/pulsed/credentials",
    }
    generator = (SYSTEMD / "pulsed-credentials-generator").read_text(encoding="utf-8")
    for credential in re.findall(r'"\$dir"/(\w+)\.\*', generator):
        paths.add(f"/etc/pulsed/credentials/{credential}.<shop>")
    for unit in ("pulsed.service", "pulsed@.service"):
        for key, value in _unit_lines(unit):
            value = SHOP.sub("<shop>", value).lstrip("-")
            if key == "StateDirectory":
                for top in (f"/var/lib/{value}", f"/var/lib/private/{value}"):
                    paths |= {top, f"{top}/state.json", f"{top}/shops"}
                    paths |= {f"{top}/shops/<shop>", f"{top}/shops/<shop>/state.json"}
                paths.add("/var/lib/" + value.split("/")[0])  # the instances' root
            elif key == "RuntimeDirectory":
                paths.add(f"/run/{value}")
            elif key == "LoadCredential":
                path = value.split(":", 1)[1]
                paths |= {path, path.rsplit("/", 1)[0]}
            elif key == "EnvironmentFile":
                paths.add(value)
            elif key == "Environment" and value.startswith("PULSED_"):
                paths.add(value.split("=", 1)[1])
    # What the package's own scripts make (what was there before its first configure).
    postinst = (REPO / "packaging" / "deb" / "postinst").read_text(encoding="utf-8")
    paths |= set(PULSED_PATH.findall(postinst))
    # pulsed-node-exporter: the folder its tmpfiles.d line makes, the file its drop-in names.
    node_exporter = REPO / "packaging" / "node-exporter"
    for line in (node_exporter / "tmpfiles.conf").read_text(encoding="utf-8").splitlines():
        if line.startswith("d "):
            paths.add(line.split()[1])
    for line in (node_exporter / "pulsed.service.conf").read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment=PULSED_"):
            paths.add(line.split("=", 2)[2])
    return paths


def named(page: Path) -> set[str]:
    found = PULSED_PATH.findall(page.read_text(encoding="utf-8"))
    return {SHOP.sub("<shop>", p).rstrip(".:…").rstrip("/") for p in found}


@pytest.mark.parametrize("page", NAMING, ids=lambda p: str(p.relative_to(REPO)))
def test_every_pulsed_path_a_page_names_is_one_that_is_made(page: Path) -> None:
    allowed = produced() | (OLD_LAYOUT if page.name == "systemd.md" else set())
    assert sorted(named(page) - allowed) == []


def test_the_old_instance_layout_is_named_only_where_a_state_moves_out_of_it() -> None:
    text = (REPO / "docs" / "systemd.md").read_text(encoding="utf-8")
    block = text.split("<!-- old-instance-layout -->", 1)[1].split("```\n\n", 1)[0]
    assert "/var/lib/private/pulsed/shop1" in block
    assert not OLD_LAYOUT & produced()
