"""The warehouse interface: the SQL engine behind stage, target and the drive table.

A :class:`Warehouse` knows its dialect, its transactions and how to bulk-load Arrow. Stage and
target are tables in a warehouse, addressed by :class:`TableRef`. Everything that changes a
window's rows goes through a :class:`WindowLoad`, which replaces the window in each table
atomically with bounded memory. How is the warehouse's business: Snowflake appends to a load
table and swaps it in with one short transaction; DuckDB streams the batches into the real
tables inside one transaction. Either way a crash before the commit leaves the real tables
as they were, and the next load of the window starts clean.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from drivetrain.base import Connector
from drivetrain.errors import PermanentError
from drivetrain.ownership import judge
from drivetrain.sql.dialect import SqlDialect
from drivetrain.sql.names import (
    LINEAGE,
    LINEAGE_COLUMNS,
    TARGET_DATE,
    Fence,
    PushDown,
    PushDownStats,
    TableRef,
    check_identifier,
    quote_expr,
    quote_name,
)
from drivetrain.sql.windows import SqlWarehouseOps

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from drivetrain.drive import DriveStore
    from drivetrain.sql.session import SqlSession
    from drivetrain.window import Window

#: Re-exported: the names moved to drivetrain.sql.names and are imported from here by users.
__all__ = [
    "LINEAGE", "LINEAGE_COLUMNS", "TARGET_DATE", "Fence", "PushDown", "PushDownStats", "TableRef", "Warehouse",
    "WindowLoad", "check_identifier", "quote_expr", "quote_name",
]


class WindowLoad(abc.ABC):
    """Takes batches for one window, then replaces the window in each table atomically."""

    @abc.abstractmethod
    def append(self, table: TableRef, batch: pa.RecordBatch) -> None:
        """Add rows for ``table``; they become visible only at :meth:`commit`."""

    @abc.abstractmethod
    def commit(self, tables: Sequence[TableRef], *, fence: Fence | None = None) -> dict[str, int]:
        """Replace the window in each table with what was appended, in one transaction.

        A table with nothing appended has its window emptied. With ``fence``, the transaction
        calls it before committing and rolls back if it raises. Returns rows per table.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Give up: nothing appended becomes visible (best effort clean-up)."""

    def expect(self, rows: int) -> None:
        """A hint before the first :meth:`append`: about how many rows the window brings (its
        source count). A load may size its work by it (DuckDB gives a large window's insert more
        threads when its memory allows); the default ignores it. Never a limit: any number of
        rows may follow."""
        del rows

    def staging(self) -> None:
        """A hint before the first :meth:`append`: the rows go to a stage, which the push-down
        reads once and stage cleaning archives and deletes. A load may store them for write speed
        rather than size (DuckDB writes their text uncompressed); the default ignores it."""
        return

    def __enter__(self) -> WindowLoad:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.abort()


class Warehouse(SqlWarehouseOps, Connector):
    """A SQL warehouse holding stage, target and (usually) the drive table.

    A backend implements five methods: :meth:`sql` (a session), :meth:`table_columns` and
    :meth:`ensure_table` (its DDL), :meth:`window_load` (its bulk load) and :meth:`drive_store`
    (its lease strategy), and sets :attr:`dialect`. Window counts, reads, push-down, stage
    cleaning and table ownership are written once in :mod:`drivetrain.sql` on top of those.
    """

    #: How this warehouse spells its SQL (see :class:`drivetrain.sql.dialect.SqlDialect`).
    dialect: SqlDialect = SqlDialect()

    @abc.abstractmethod
    def sql(self, what: str, *, retry: bool = False) -> AbstractContextManager[SqlSession]:
        """A session for a few statements; errors name ``what``. With ``retry`` each statement is
        retried on a transient error (only for idempotent statements outside a transaction)."""

    @abc.abstractmethod
    def table_columns(self, table: TableRef) -> dict[str, str]:
        """Column name -> SQL type, in table order; empty when the table does not exist."""

    @abc.abstractmethod
    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        """Create the table from an Arrow schema if it does not exist; add columns it lacks."""

    @abc.abstractmethod
    def window_load(self, window: Window, key: str) -> WindowLoad:
        """Start loading one window; ``key`` (window + pipeline) names any temporary objects."""

    @abc.abstractmethod
    def drive_store(self, table: TableRef) -> DriveStore:
        """The drive table (and leases) kept in this warehouse."""

    def table_ref(self, role_options: Mapping[str, Any], query_field: str | None) -> TableRef:
        """Build the TableRef a config section names (table, schema, database keys)."""
        return TableRef(
            name=role_options["table"],
            schema=role_options.get("schema") or self.dialect.default_schema,
            database=role_options.get("database") or self.dialect.default_database,
            query_field=query_field,
        )

    def vacuum(self, table: TableRef) -> tuple[bool, str]:
        """Reclaim space after deletes; returns (done, note)."""
        return False, f"{self.type_name} has no vacuum"

    # -- ownership (see drivetrain.ownership; claims are kept by SqlWarehouseOps) -----------

    def ownership_problem(self, table: TableRef) -> str | None:
        """Why ``table.owner`` may not write ``table`` (read only, for ``validate``), or None."""
        if table.owner is None:
            return None
        claims = self.table_claims(table)
        new = not any(c.pipeline == table.owner for c in claims)
        return judge(table, claims, self.claims_location(table), new=new)

    def claim_table(self, table: TableRef) -> None:
        """Claim ``table`` for ``table.owner`` before writing it; PermanentError if another owns it.

        Called by every load, push-down and window replace before it changes a row; cached, so
        a run claims each table once.
        """
        if table.owner is None:
            return
        claimed: set[tuple[TableRef, str, bool]] = self.__dict__.setdefault("_drivetrain_claimed", set())
        if (table, table.owner, table.shared) in claimed:
            return
        claims, new = self.record_claim(table)
        problem = judge(table, claims, self.claims_location(table), new=new)
        if problem is not None:
            if new:
                self.release_claim(table)
            raise PermanentError(problem)
        if any(c.pipeline == table.owner and c.shared != table.shared for c in claims):
            self.set_claim_shared(table)
        claimed.add((table, table.owner, table.shared))

    def session(self) -> AbstractContextManager[object]:
        """Keep the connection open for a block of work (a phase); nested uses share it.

        Embedded engines that open a file per operation override this; the default does nothing.
        """
        return nullcontext()

    def keep_open(self) -> AbstractContextManager[object]:
        """Keep the connection between blocks of work for a whole run, as long as no other
        process needs it. Embedded engines override this; the default does nothing."""
        return nullcontext()

    def same_warehouse(self, other: Warehouse) -> bool:
        """True when a push-down between the two is possible."""
        return False

    def local_files(self) -> list[Path]:
        """The files on this machine's disk that the warehouse keeps its tables in (none for a
        server); ``validate`` warns when one is on a network file system."""
        return []

    # -- checks and upkeep the phases ask for (pre-validation, stage cleaning) ---------------

    def write_problem(self, table: TableRef) -> str | None:
        """Why rows could not be written to ``table`` now, or None when they can.

        Found by trying a write that is rolled back, so nothing changes. A warehouse that
        cannot try one answers a text starting ``not checked``. Default: not checked.
        """
        return f"not checked: {self.type_name} cannot try a write without changing data"

    def gather_statistics(self, table: TableRef) -> tuple[bool, str]:
        """Refresh the optimizer's statistics of ``table``; returns (done, note). Never raises."""
        return False, f"not gathered: {self.type_name} keeps its statistics itself"
