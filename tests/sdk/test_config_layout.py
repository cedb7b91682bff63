"""The config package's layout: no import cycles between its modules, and the loader in small parts.

A cycle here is one that runs: imports inside ``if TYPE_CHECKING:`` only serve annotations.
"""

from __future__ import annotations

import ast
from pathlib import Path

import drivetrain.config

PACKAGE = Path(drivetrain.config.__file__).resolve().parent
#: The modules the loader was split into, each well under the split-before size.
LOADER_PARTS = ("loader", "problems", "jsondoc", "schema_check", "checks")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks (annotations only, never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        out.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return out


def config_imports(path: Path, *, typing: bool = False) -> set[str]:
    """The drivetrain.config modules ``path`` imports when it runs: at the top and in functions
    (``typing``: also those imported for type annotations only)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if typing else _runtime_nodes(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = node.module
                names = [node.module] if node.module else [alias.name for alias in node.names]
                found.update(n for n in names if n)
                if base is None:
                    continue
            elif node.module and node.module.startswith("drivetrain.config."):
                found.add(node.module.split(".")[2])
            elif node.module == "drivetrain.config":
                found.update(alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("drivetrain.config."))
    return {name for name in found if (PACKAGE / f"{name}.py").exists()}


def graph(*, typing: bool = False) -> dict[str, set[str]]:
    return {path.stem: config_imports(path, typing=typing) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}


def cycle_from(start: str, edges: dict[str, set[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in edges.get(node, ()):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path:
                stack.append((nxt, [*path, nxt]))
    return None


class TestConfigLayout:
    def test_no_module_of_the_config_package_imports_itself_back(self) -> None:
        edges = graph()
        cycles = [c for name in sorted(edges) if (c := cycle_from(name, edges))]
        assert cycles == [], " / ".join(" -> ".join(c) for c in cycles)

    def test_the_import_graph_sees_lazy_imports_and_typing_ones_when_asked(self) -> None:
        assert "roles" in graph()["checks"]  # imported inside a function
        assert "problems" not in graph()["roles"] and "problems" in graph(typing=True)["roles"]  # for annotations only

    def test_the_loader_is_imported_by_no_part_of_the_package_not_even_for_typing(self) -> None:
        importers = sorted(name for name, imports in graph(typing=True).items() if "loader" in imports)
        assert importers == []

    def test_the_loader_s_parts_are_small_modules(self) -> None:
        sizes = {name: len((PACKAGE / f"{name}.py").read_text().splitlines()) for name in LOADER_PARTS}
        assert all(size < 300 for size in sizes.values()), sizes

    def test_the_loader_s_public_names_still_import_from_it(self) -> None:
        from drivetrain.config import load_config, schema
        from drivetrain.config.loader import (
            JsonPath,
            Problems,
            read_json,
            schema_problems,
            validate_document,
            zone_problem,
        )
        from drivetrain.config.loader import load_config as loader_load

        assert loader_load is load_config and callable(schema)
        assert all(callable(f) for f in (Problems, read_json, schema_problems, validate_document, zone_problem))
        assert JsonPath is not None
