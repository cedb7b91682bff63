"""The shape of the SQL layer: narrow backend interfaces and no import cycles.

Imports are read with ``ast`` from the source folders (``sdk/`` is ``drivetrain``, ``connectors/``
is ``drivetrain.connectors``), including imports inside functions. Those under ``if
TYPE_CHECKING:`` never run: the whole graph is checked without them, and the connectors' graph
with them too, since a type named there ties two modules as much as an import that runs (a
backend's drive store and window load name what they use of their warehouse as a protocol
below it, ``DuckDBHome``..., instead of importing the warehouse class that builds them).
"""

from __future__ import annotations

import ast
import graphlib
import inspect
from pathlib import Path

from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.connectors.duckdb.drive import DuckDBDriveStore
from drivetrain.connectors.postgres import PostgresWarehouse
from drivetrain.connectors.postgres.drive import PostgresDriveStore
from drivetrain.connectors.snowflake import SnowflakeWarehouse
from drivetrain.connectors.snowflake.drive import SnowflakeDriveStore
from drivetrain.connectors.sqlite import SqliteWarehouse
from drivetrain.connectors.sqlite.drive import SqliteDriveStore
from drivetrain.sql.drive import SqlDriveStore
from drivetrain.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[3]
FOLDERS = {"sdk": "drivetrain", "connectors": "drivetrain.connectors"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    # connectors/ lives inside drivetrain: sdk/connectors (if any) must not shadow it
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path], *, typing: bool = False) -> set[str]:
    """The modules ``name`` imports; with ``typing``, those under ``if TYPE_CHECKING:`` too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not typing:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in UNSCANNED:  # a package of ours outside sdk/ and connectors/, not the name of one
                    continue
                out.add(sub if sub in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in out if m in modules and m != name}


#: Module prefixes the cycle check leaves out (none: the config package is checked too).
ELSEWHERE: tuple[str, ...] = ()
#: drivetrain's packages that live outside the scanned folders (contrib pipelines, Airflow).
UNSCANNED = frozenset({"drivetrain.contrib", "drivetrain.airflow"})


def import_graph(*, typing: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules, typing=typing) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (first module repeated at the end), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


class TestLayering:
    def test_no_import_cycles_in_sdk_or_connectors(self) -> None:
        graph = {m: {t for t in ts if not t.startswith(ELSEWHERE)} for m, ts in import_graph().items() if not m.startswith(ELSEWHERE)}
        cycle = find_cycle(graph)
        assert cycle is None, "import cycle: " + " -> ".join(cycle or [])

    def test_no_cycles_among_the_connectors_even_through_type_only_imports(self) -> None:
        connectors = "drivetrain.connectors"
        graph = {m: {t for t in ts if t.startswith(connectors)} for m, ts in import_graph(typing=True).items()
                 if m.startswith(connectors)}
        cycle = find_cycle(graph)
        assert cycle is None, "import cycle (type-only imports included): " + " -> ".join(cycle or [])

    def test_the_cycles_named_in_issue_16_are_gone(self) -> None:
        graph = import_graph()
        for group in (["drivetrain.connectors.duckdb.drive", "drivetrain.connectors.duckdb.warehouse"],
                      ["drivetrain.connectors.snowflake.drive", "drivetrain.connectors.snowflake.lease",
                       "drivetrain.connectors.snowflake.warehouse", "drivetrain.connectors.snowflake.load"],
                      ["drivetrain.phases.arrow_path", "drivetrain.phases.transfers"]):
            assert find_cycle({m: graph[m] & set(group) for m in group}) is None, group

    def test_the_checker_finds_a_cycle(self) -> None:
        assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) is not None
        assert find_cycle({"a": {"b"}, "b": set()}) is None

    def test_the_checker_sees_a_cycle_through_a_function_level_import(self, tmp_path: Path) -> None:
        a = tmp_path / "a.py"
        a.write_text("def f():\n    from drivetrain import b\n")
        b = tmp_path / "b.py"
        b.write_text("import drivetrain.a\nif TYPE_CHECKING:\n    import drivetrain.c\n")
        modules = {"drivetrain.a": a, "drivetrain.b": b, "drivetrain.c": b}
        assert _imports("drivetrain.a", a, modules) == {"drivetrain.b"}
        assert _imports("drivetrain.b", b, modules) == {"drivetrain.a"}
        assert _imports("drivetrain.b", b, modules, typing=True) == {"drivetrain.a", "drivetrain.c"}

    def test_a_backend_implements_at_most_twelve_abstract_methods(self) -> None:
        abstract = set(Warehouse.__abstractmethods__) | set(SqlDriveStore.__abstractmethods__)
        assert len(abstract) <= 12, sorted(abstract)

    def test_each_backend_implements_exactly_that_interface(self) -> None:
        for warehouse, store in ((DuckDBWarehouse, DuckDBDriveStore), (SnowflakeWarehouse, SnowflakeDriveStore),
                                 (PostgresWarehouse, PostgresDriveStore), (SqliteWarehouse, SqliteDriveStore)):
            assert not inspect.isabstract(warehouse) and not inspect.isabstract(store)
            for name in Warehouse.__abstractmethods__:
                assert name in vars(warehouse), f"{warehouse.__name__} lacks {name}"
            for name in SqlDriveStore.__abstractmethods__:
                assert any(name in vars(c) for c in store.__mro__[: store.__mro__.index(SqlDriveStore)]), f"{store.__name__} lacks {name}"

    def test_the_backends_share_no_sql_drive_or_push_down_code(self) -> None:
        for folder in ("duckdb", "snowflake", "postgres", "sqlite"):
            names = {p.name for p in (ROOT / "connectors" / folder).glob("*.py")}
            assert "pushdown.py" not in names, f"connectors/{folder} writes its own push-down"
            text = (ROOT / "connectors" / folder / "drive.py").read_text()
            for shared in ("def _select(", "def history(", "def attempts(", "def _migrate(", "def _now("):
                assert shared not in text, f"connectors/{folder}/drive.py repeats {shared}"

    def test_phases_use_stage_and_target_instead_of_reaching_through_to_the_warehouse(self) -> None:
        reaching = []
        for path in sorted((ROOT / "sdk" / "phases").glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "warehouse":
                    reaching.append(f"{path.name}:{node.lineno} .warehouse.{node.attr}")
        assert not reaching, reaching
