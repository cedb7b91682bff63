"""Stage and target: a table in a warehouse, seen through one window at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from drivetrain.errors import PermanentError
from drivetrain.warehouse import TableRef, Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.window import Window


@attrs.define
class WarehouseTable:
    """A table of a warehouse with the column that places its rows in windows."""

    warehouse: Warehouse
    ref: TableRef

    def count(self, window: Window) -> int:
        return self.warehouse.count_window(self.ref, window)

    def read(self, window: Window, batch_size: int = 50_000) -> Iterator[pa.RecordBatch]:
        return self.warehouse.read_window(self.ref, window, batch_size)

    def exists(self) -> bool:
        return self.warehouse.table_exists(self.ref)

    def columns(self) -> dict[str, str]:
        return self.warehouse.table_columns(self.ref)

    def check(self) -> list[str]:
        """Reachable, no other pipeline owns it, and if it exists, it has the window column."""
        columns = self.columns()
        where = f"{self.warehouse.describe()} {self.ref}"
        problem = self.warehouse.ownership_problem(self.ref)
        if problem is not None:
            raise PermanentError(f"{where}: {problem}")
        if not columns:
            return [f"{where}: reachable; the table will be created on first load"]
        if self.ref.query_field and self.ref.query_field not in columns:
            raise PermanentError(f"{where}: the table has no column {self.ref.query_field!r} to place rows in windows")
        return [f"{where}: exists with {len(columns)} columns"]

    def __str__(self) -> str:
        return str(self.ref)


@attrs.define
class Stage(WarehouseTable):
    """The stage table and its ``<table>__rejects`` sibling."""

    @property
    def rejects(self) -> TableRef:
        # rows there name their run in pipeline_id, not in the lineage column
        return attrs.evolve(self.ref.sibling("__rejects", query_field="window_start"), owner_column="pipeline_id")


@attrs.define
class Target(WarehouseTable):
    """The target table."""
