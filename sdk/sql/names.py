"""Names in a warehouse: identifiers and quoting, table references, the lineage columns, push-down specs.

Everything here is plain data, imported by the core and by every backend without cycles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import attrs

from drivetrain.errors import PermanentError

#: Called just before a commit; raises LeaseError when this run no longer holds its window.
Fence = Callable[[], None]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")

#: Columns every loaded row carries, so each row can be traced to the run that wrote it, with
#: their logical types (see :attr:`drivetrain.sql.dialect.SqlDialect.types`).
LINEAGE: tuple[tuple[str, str], ...] = (
    ("_drivetrain_pipeline_id", "text"),
    ("_drivetrain_window_start", "timestamp"),
    ("_drivetrain_window_end", "timestamp"),
    ("_drivetrain_target_date", "date"),
    ("_drivetrain_loaded_at", "timestamp"),
)
LINEAGE_COLUMNS = tuple(name for name, _ in LINEAGE)
#: The lineage column stage cleaning lists, reads and deletes by.
TARGET_DATE = "_drivetrain_target_date"
#: When the row became visible in the target: the publish's time for a gated window, so a reader
#: that takes the rows loaded since its last read does not skip a window published late.
LOADED_AT = "_drivetrain_loaded_at"


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
    ranked: bool = False
    """Replace with dedup keys: whether rows were ranked per key. A window in which no two rows
    share a key keeps every row, so the ranking is skipped (see :func:`drivetrain.sql.pushdown.keys_unique`)."""
