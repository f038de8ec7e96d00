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
