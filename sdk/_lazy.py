"""Names and modules resolved on first use, so importing a module that may need them stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing ``exports[name]`` (a module path) when ``name`` is first
    used and keeping the value in the package's ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


class _LazyModule:
    """Stands for a module until an attribute is first read, then imports it (see :func:`lazy_module`)."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when one of its attributes is first read.

    For heavy libraries a module uses in only some of its paths (pyarrow, duckdb)::

        if TYPE_CHECKING:
            import pyarrow as pa
        else:
            pa = lazy_module("pyarrow")

    Until then the module is not imported (nor in ``sys.modules``), so a path that never touches
    it does not pay for it; an import error shows at the first use.
    """
    return _LazyModule(name)
