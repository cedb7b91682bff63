"""Test servers and emulators are started in one place: tests/conftest.py.

Every folder asks for them by name (``mariadb``, ``fakesnow_server``, ``moto_server``/``s3``,
``es_server``/``es``, ``sn_server``/``sn``); no module defines a fixture of its own under those
names, which would start a second copy beside the shared one.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HOME = TESTS / "conftest.py"
SHARED = {"mariadb", "fakesnow_server", "moto_server", "s3_proxy", "s3", "es_server", "es", "sn_server", "sn"}
#: Modules that still run a MariaDB of their own, with a large dataset loaded before any test.
OWN_MARIADB = {"connectors/test_mysql.py", "connectors/test_mysql_fast.py"}


def fixture_names(path: Path) -> set[str]:
    """Names of the pytest fixtures ``path`` defines (``name=`` wins over the function's name)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if isinstance(target, ast.Attribute) and target.attr == "fixture":
                named = [k.value.value for k in (call.keywords if call else []) if k.arg == "name" and isinstance(k.value, ast.Constant)]
                found.add(str(named[0]) if named else node.name)
    return found


class TestOneHome:
    def test_the_shared_servers_are_all_defined_in_the_root_conftest(self) -> None:
        assert fixture_names(HOME) >= SHARED

    def test_no_other_module_defines_a_server_fixture_of_its_own(self) -> None:
        others = {}
        for path in sorted(TESTS.rglob("*.py")):
            if path == HOME:
                continue
            clash = fixture_names(path) & SHARED
            if path.relative_to(TESTS).as_posix() in OWN_MARIADB:
                clash -= {"mariadb"}
            if clash:
                others[path.relative_to(TESTS).as_posix()] = sorted(clash)
        assert others == {}
