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
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import date
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.base import Connector
from drivetrain.errors import PermanentError
from drivetrain.ownership import Claim, judge

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.drive import DriveStore
    from drivetrain.window import Window

#: Called just before a commit; raises LeaseError when this run no longer holds its window.
Fence = Callable[[], None]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")

#: Columns every loaded row carries, so each row can be traced to the run that wrote it.
LINEAGE_COLUMNS = (
    "_drivetrain_pipeline_id",
    "_drivetrain_window_start",
    "_drivetrain_window_end",
    "_drivetrain_target_date",
    "_drivetrain_loaded_at",
)


def check_identifier(name: str, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise PermanentError.

    Identifiers from config are validated before they are quoted, so a table name can never
    carry SQL.
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise PermanentError(
            f"{what} {name!r} is not a valid identifier: use letters, digits and underscores, "
            "starting with a letter or underscore"
        )
    return name


def quote_name(name: str) -> str:
    """A column name in double quotes, safe for any text (``@timestamp``, ``a.b``, ``x"y``).

    Table and schema names from config are checked strictly by :func:`check_identifier`;
    column names come from data, so they are quoted rather than restricted.
    """
    if not isinstance(name, str) or not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise PermanentError(f"column name {name!r} cannot be used: it is empty, too long or holds control characters")
    return '"' + name.replace('"', '""') + '"'


quote_expr = quote_name


@attrs.frozen
class TableRef:
    """A table in a warehouse: optional schema (and database), name, and its window column."""

    name: str = attrs.field(validator=lambda _i, _a, v: check_identifier(v, "table name"))
    schema: str | None = None
    database: str | None = None
    query_field: str | None = None
    """The timestamp column that places a row in a window."""
    owner: str | None = attrs.field(default=None, eq=False)
    """The pipeline reading and writing the table through this ref; it claims the table on its
    first write (see :mod:`drivetrain.ownership`). None: nobody claims it (the drive table)."""
    shared: bool = attrs.field(default=False, eq=False)
    """Declared shared by ``shared: true``: only the owner's rows are seen, replaced and cleaned."""
    section: str | None = attrs.field(default=None, eq=False)
    """The config section naming the table, for messages (``target_system``)."""
    owner_column: str = attrs.field(default="_drivetrain_pipeline_id", eq=False)
    """The column holding the run id of the run that wrote each row."""

    def parts(self) -> list[str]:
        return [p for p in (self.database, self.schema, self.name) if p]

    def sibling(self, suffix: str, query_field: str | None = None) -> TableRef:
        """A table next to this one, e.g. ``<stage>__rejects``."""
        return attrs.evolve(self, name=f"{self.name}{suffix}", query_field=query_field)

    def __str__(self) -> str:
        return ".".join(self.parts())


@attrs.frozen
class PushDown:
    """Stage-to-target as one SQL statement inside the warehouse.

    The target's rows for the window are replaced by ``SELECT <columns> FROM stage`` over the
    window, optionally keeping one row per ``dedup_keys`` (the latest by ``order_by``).
    With ``merge_keys`` the rows are upserted instead of the window being replaced.
    """

    stage: TableRef
    target: TableRef
    columns: Sequence[tuple[str, str]]
    """(target column, SQL expression over stage columns), in target order."""
    dedup_keys: Sequence[str] = ()
    order_by: Sequence[str] = ()
    merge_keys: Sequence[str] = ()
    version_column: str | None = None
    """With merge keys: the target column that orders versions of a record; default the target's query field."""
    delete_missing: bool = False
    """With merge keys: also delete the target rows of the window whose key the stage's window
    lacks (the record was deleted at the source, or moved to a window that has not run yet)."""


    @property
    def version(self) -> str:
        """The column a merge compares to keep the newest version of a record."""
        return self.version_column or self.target.query_field or ""


@attrs.frozen
class PushDownStats:
    """What a push-down moved: rows selected from stage and rows now in target."""

    rows_read: int
    rows_written: int
    """Replace: rows inserted. Merge: records of the window the target now holds at their version
    or a newer one (every record selected after the keys)."""
    rows_dropped: int
    rows_superseded: int = 0
    """Merge: selected records the target already held in a newer version, left as they were."""
    rows_removed: int = 0
    """Merge with ``delete_missing``: target rows of the window deleted, their key gone from the stage's window."""


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

    def __enter__(self) -> WindowLoad:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.abort()


class Warehouse(Connector):
    """A SQL warehouse holding stage, target and (usually) the drive table."""

    @abc.abstractmethod
    def table_ref(self, role_options: Mapping[str, Any], query_field: str | None) -> TableRef:
        """Build the TableRef a config section names (table, schema, database keys)."""

    @abc.abstractmethod
    def table_exists(self, table: TableRef) -> bool: ...

    @abc.abstractmethod
    def table_columns(self, table: TableRef) -> dict[str, str]:
        """Column name -> SQL type, in table order; empty when the table does not exist."""

    @abc.abstractmethod
    def ensure_table(self, table: TableRef, schema: pa.Schema) -> None:
        """Create the table from an Arrow schema if it does not exist."""

    @abc.abstractmethod
    def count_window(self, table: TableRef, window: Window) -> int:
        """Rows whose query field lies in the window (0 when the table does not exist)."""

    @abc.abstractmethod
    def window_load(self, window: Window, key: str) -> WindowLoad:
        """Start loading one window; ``key`` (window + pipeline) names any temporary objects."""

    @abc.abstractmethod
    def read_window(self, table: TableRef, window: Window, batch_size: int) -> Iterator[pa.RecordBatch]:
        """Stream the window's rows."""

    @abc.abstractmethod
    def push_down(self, spec: PushDown, window: Window, lineage: Mapping[str, Any], *, fence: Fence | None = None) -> PushDownStats:
        """Run stage-to-target as SQL inside the warehouse, in one transaction."""

    def count_merged(self, stage: TableRef, target: TableRef, window: Window, keys: Sequence[tuple[str, str]],
                     version: tuple[str, str]) -> tuple[int, int] | None:
        """How the target holds the stage window's rows after a merge: ``(held, newer)``.

        ``held``: rows of the stage's window whose record (by key) the target holds at the row's
        version or a newer one; ``newer``: those of them held in a newer version (a later copy in
        the window, or an update a later window loaded). ``keys`` and ``version`` pair each target
        column with the SQL expression over stage columns that fills it. None: not supported
        here (the caller counts the target's window instead).
        """
        return None

    @abc.abstractmethod
    def group_count(self, table: TableRef, window: Window, column: str) -> dict[str, int]:
        """Count the window's rows grouped by one column (reject reasons, for the audit)."""

    @abc.abstractmethod
    def dates_before(self, table: TableRef, cutoff: date) -> list[date]:
        """Distinct ``_drivetrain_target_date`` values older than cutoff."""

    @abc.abstractmethod
    def read_date(self, table: TableRef, day: date, batch_size: int) -> Iterator[pa.RecordBatch]: ...

    @abc.abstractmethod
    def count_date(self, table: TableRef, day: date) -> int: ...

    @abc.abstractmethod
    def delete_date(self, table: TableRef, day: date, expected: int, *, fence: Fence | None = None) -> int:
        """Delete one target_date's rows; roll back unless exactly ``expected`` rows go."""

    def vacuum(self, table: TableRef) -> tuple[bool, str]:
        """Reclaim space after deletes; returns (done, note)."""
        return False, f"{self.type_name} has no vacuum"

    # -- ownership (see drivetrain.ownership) ------------------------------------------------

    def table_claims(self, table: TableRef) -> list[Claim]:
        """Every pipeline's claim on ``table``. Default: none (a warehouse without ownership)."""
        return []

    def record_claim(self, table: TableRef) -> tuple[list[Claim], bool]:
        """Record ``table.owner``'s claim unless it has one; returns every claim and whether it was new."""
        return self.table_claims(table), False

    def set_claim_shared(self, table: TableRef) -> None:
        """Store ``table.shared`` in ``table.owner``'s claim (after the claim was judged)."""

    def release_claim(self, table: TableRef) -> None:
        """Remove ``table.owner``'s claim (it lost to another one)."""

    def claims_location(self, table: TableRef) -> str:
        """Where the claims on ``table`` are kept, for messages."""
        return f"{self.describe()}"

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

    @abc.abstractmethod
    def drive_store(self, table: TableRef) -> DriveStore:
        """The drive table (and leases) kept in this warehouse."""

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
