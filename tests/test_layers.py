"""The package's modules import downward only: no cycle, and the floors stay low."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pulsed"
# What the lowest modules may import of pulsed, at their top level. Declarations and
# pure helpers sit here so that anything may use them without pulling in an edge.
FLOORS = {
    "_errors": set(),
    "_timefmt": set(),
    "_redact": set(),
    "_toml": set(),
    "_hostname": {"_errors"},
    "_events": {"_errors"},
    "_settings": {"_errors", "_hostname"},
    "_files": {"_errors"},
    "_proc": {"_errors"},
}


def imports() -> dict[str, set[str]]:
    """Each module of the package and the package's modules it imports at its top level."""
    names = {path.stem for path in PACKAGE.glob("*.py")}
    found: dict[str, set[str]] = {}
    for name in names:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        used: set[str] = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == "pulsed":
                used |= {alias.name for alias in node.names if alias.name in names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pulsed."):
                used.add(str(node.module).split(".")[1])
            elif isinstance(node, ast.Import):
                used |= {a.name.split(".")[1] for a in node.names if a.name.startswith("pulsed.")}
        found[name] = used - {name}
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = imports()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, (*path, name))
            done.add(name)

    for name in sorted(graph):
        visit(name, ())
    assert done == set(graph)


def test_the_lowest_modules_import_only_what_is_below_them() -> None:
    graph = imports()
    assert {name: graph[name] - allowed for name, allowed in FLOORS.items()} == {
        name: set() for name in FLOORS
    }
