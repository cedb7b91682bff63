"""Small, hand-rolled mutation testing for the functions that keep the pipeline's promise.

A mutant is one small change to one function (``<`` for ``<=``, ``and`` for ``or``, a dropped
``not``, ``+`` for ``-``, ``True`` for ``False``), found by walking the function's AST, so it is
named by function and code, not by line. A mutant is *killed* when the focused tests for that
function fail with it in place; one that survives is a behaviour no test pins down.

Each mutant runs in a child process (``python -m tests.mutation.mutants MODULE INDEX -- PYTEST
ARGS``) whose import system serves the mutated module instead of the file, so the working tree
is never written to.
"""

from __future__ import annotations

import ast
import copy
import importlib.abc
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import attrs

ROOT = Path(__file__).resolve().parents[2]

_SWAPS: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.And: ast.Or, ast.Or: ast.And,
    ast.Add: ast.Sub, ast.Sub: ast.Add,
}


@attrs.frozen
class Mutant:
    module: str
    function: str
    index: int
    """Position among the mutants of the module's chosen functions."""
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.module}:{self.function}: {self.before}  ->  {self.after}"


def source_path(module: str) -> Path:
    """``drivetrain.phases.audit`` -> ``sdk/phases/audit.py`` (the repository layout)."""
    parts = module.split(".")
    assert parts[0] == "drivetrain", module
    return ROOT.joinpath("sdk", *parts[1:]).with_suffix(".py")


def _functions(tree: ast.Module, names: Sequence[str]) -> Iterator[tuple[str, ast.AST]]:
    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef):
                qualname = f"{prefix}{child.name}"
                if qualname in names:
                    yield qualname, child

    found = list(walk(tree, ""))
    missing = set(names) - {name for name, _ in found}
    assert not missing, f"no such function(s) to mutate: {sorted(missing)}"
    return iter(found)


def _points(function: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Each place a mutation applies, with the kind of change."""
    for node in ast.walk(function):
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _SWAPS:
                    yield node, f"compare:{i}"
        elif isinstance(node, ast.BoolOp) or (isinstance(node, ast.BinOp) and type(node.op) in _SWAPS):
            yield node, "op"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop-not"
        elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
            yield node, "flip-bool"


def _mutated(node: ast.AST, kind: str) -> ast.AST:
    new = copy.deepcopy(node)
    if kind.startswith("compare:"):
        assert isinstance(new, ast.Compare)
        i = int(kind.partition(":")[2])
        new.ops[i] = _SWAPS[type(new.ops[i])]()
    elif kind == "op":
        assert isinstance(new, (ast.BoolOp, ast.BinOp))
        new.op = _SWAPS[type(new.op)]()
    elif kind == "drop-not":
        assert isinstance(new, ast.UnaryOp)
        return new.operand
    else:
        assert isinstance(new, ast.Constant)
        new.value = not new.value
    return new


def mutants(module: str, functions: Sequence[str]) -> list[Mutant]:
    """Every mutant of the named functions (``Class.method`` or ``function``), in a stable order."""
    tree = ast.parse(source_path(module).read_text())
    out = []
    for qualname, function in _functions(tree, functions):
        keywords = {id(k.value): k.arg for k in ast.walk(function) if isinstance(k, ast.keyword)}
        for node, kind in _points(function):
            before, after = ast.unparse(node), ast.unparse(_mutated(node, kind))
            if id(node) in keywords:  # name a flipped flag by its argument: skip_dag_run=True
                before, after = f"{keywords[id(node)]}={before}", f"{keywords[id(node)]}={after}"
            out.append(Mutant(module, qualname, len(out), before, after))
    return out


def mutated_source(module: str, functions: Sequence[str], index: int) -> str:
    """The module's source with mutant ``index`` applied."""
    tree = ast.parse(source_path(module).read_text())
    points = [point for _, function in _functions(tree, functions) for point in _points(function)]
    target, kind = points[index]
    replacement = _mutated(target, kind)

    class Swap(ast.NodeTransformer):
        def visit(self, node: ast.AST) -> ast.AST:
            if node is target:
                return ast.copy_location(replacement, node)
            return super().visit(node)

    return ast.unparse(ast.fix_missing_locations(Swap().visit(tree)))


class _MutatedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module from mutated source; every other import is left alone."""

    def __init__(self, module: str, source: str) -> None:
        self.module = module
        self.code = compile(source, str(source_path(module)), "exec")

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.module:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=str(source_path(fullname)))

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(source_path(self.module))
        exec(self.code, module.__dict__)  # noqa: S102 - the mutant under test


def main(argv: Sequence[str]) -> int:
    """``MODULE FUNCTIONS INDEX -- PYTEST ARGS``; FUNCTIONS comma-separated, INDEX a number or
    ``none``. Exits as pytest does."""
    module, functions, index, sep, *pytest_args = argv
    assert sep == "--", argv
    assert module not in sys.modules, f"{module} was imported before it could be mutated"
    if index != "none":  # "none": the unmutated module through the same machinery, as a baseline
        sys.meta_path.insert(0, _MutatedModule(module, mutated_source(module, functions.split(","), int(index))))
    import pytest

    return int(pytest.main(list(pytest_args)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
