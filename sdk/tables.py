"""Stage and target: a table in a warehouse, seen through one window at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.errors import PermanentError
from drivetrain.network_disk import network_disk_warnings
from drivetrain.warehouse import TableRef, Warehouse

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import PipelineConfig
    from drivetrain.warehouse import Fence, PushDown, PushDownStats, WindowLoad
    from drivetrain.window import Window


@attrs.define
class WarehouseTable:
    """A table of a warehouse with the column that places its rows in windows."""

    warehouse: Warehouse
    ref: TableRef

    def count(self, window: Window) -> int:
        """Rows of the window (0 when the table does not exist)."""
        return self.warehouse.count_window(self.ref, window)

    def read(self, window: Window, batch_size: int = 50_000) -> Iterator[pa.RecordBatch]:
        return self.warehouse.read_window(self.ref, window, batch_size)

    def exists(self) -> bool:
        return self.warehouse.table_exists(self.ref)

    def window_query(self, window: Window) -> str:
        """A query an operator can paste to see the window's rows (this owner's, when shared)."""
        d, ref = self.warehouse.dialect, self.ref
        start, end = (f"'{t.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}'" for t in (window.start, window.end))
        field = d.quote(ref.query_field or "")
        return f"SELECT * FROM {d.qualified(ref)} WHERE {field} >= {start} AND {field} < {end}{d.scope(ref)}"

    def columns(self) -> dict[str, str]:
        return self.warehouse.table_columns(self.ref)

    def ensure(self, schema: pa.Schema) -> None:
        """Create the table from an Arrow schema, or add the columns it lacks."""
        self.warehouse.ensure_table(self.ref, schema)

    def load(self, window: Window, key: str) -> WindowLoad:
        """Start replacing windows in this table's warehouse (see :class:`~drivetrain.warehouse.WindowLoad`)."""
        return self.warehouse.window_load(window, key)

    def replace_window(self, window: Window, key: str, batches: Iterator[pa.RecordBatch], *, fence: Fence | None = None) -> int:
        """Replace the window's rows with ``batches`` in one transaction (none: empty it); rows written."""
        with self.load(window, key) as load:
            for batch in batches:
                load.append(self.ref, batch)
            return load.commit([self.ref], fence=fence).get(str(self.ref), 0)

    def push_down(self, spec: PushDown, window: Window, lineage: Mapping[str, Any], *, fence: Fence | None = None) -> PushDownStats:
        """Run ``spec`` (this table as its stage or its target) as SQL in this table's warehouse."""
        if self.ref not in (spec.stage, spec.target):
            raise ValueError(f"push-down {spec.stage} -> {spec.target} does not involve {self.ref}")
        return self.warehouse.push_down(spec, window, lineage, fence=fence)

    @property
    def warehouse_type(self) -> str:
        """The warehouse's type (duckdb, snowflake, postgres...): which column changes it can make."""
        return self.warehouse.type_name

    def describe(self) -> str:
        """The warehouse this table lives in, as messages name it."""
        return self.warehouse.describe()

    def write_problem(self) -> str | None:
        """Why a write to this table would fail (tried and rolled back where the warehouse can), or None."""
        return self.warehouse.write_problem(self.ref)

    def same_warehouse(self, other: WarehouseTable) -> bool:
        """True when a push-down between the two tables is possible."""
        return self.warehouse.same_warehouse(other.warehouse)

    def check(self) -> list[str]:
        """Reachable, no other pipeline owns it, and if it exists, it has the window column."""
        columns = self.columns()
        where = f"{self.warehouse.describe()} {self.ref}"
        problem = self.warehouse.ownership_problem(self.ref)
        if problem is not None:
            raise PermanentError(f"{where}: {problem}")
        if self.ref.query_field and columns and self.ref.query_field not in columns:
            raise PermanentError(f"{where}: the table has no column {self.ref.query_field!r} to place rows in windows")
        found = f"exists with {len(columns)} columns" if columns else "reachable; the table will be created on first load"
        return [f"{where}: {found}", *network_disk_warnings(self.warehouse.local_files(), "warehouse file",
                                                            "a warehouse on a server")]

    def __str__(self) -> str:
        return str(self.ref)


@attrs.define
class Stage(WarehouseTable):
    """The stage table and its ``<table>__rejects`` sibling."""

    for_speed: bool = True
    """Whether a window's load may store its rows for write speed rather than size (see
    :meth:`~drivetrain.warehouse.WindowLoad.staging`); False with ``compress_stage: true``."""

    def load(self, window: Window, key: str) -> WindowLoad:
        """Start replacing windows of the stage (and its rejects table)."""
        load = super().load(window, key)
        if self.for_speed:
            load.staging()
        return load

    @property
    def rejects(self) -> TableRef:
        # rows there name their run in pipeline_id, not in the lineage column
        return attrs.evolve(self.ref.sibling("__rejects", query_field="window_start"), owner_column="pipeline_id")

    def claim(self) -> None:
        """Claim the stage and its rejects table for the pipeline (PermanentError when another
        pipeline owns one). Every load claims the tables it writes anyway (once a run); a
        transfer claims both first, while its source connects, instead of between its rows."""
        for table in (self.ref, self.rejects):
            self.warehouse.claim_table(table)

    def count_merged(self, target: Target, window: Window, keys: Sequence[tuple[str, str]],
                     version: tuple[str, str]) -> tuple[int, int] | None:
        """How ``target`` holds this window's rows after a merge (see Warehouse.count_merged)."""
        return self.warehouse.count_merged(self.ref, target.ref, window, keys, version)

    # -- stage cleaning: rows by their _drivetrain_target_date --------------------------------

    def dates_before(self, cutoff: date) -> list[date]:
        return self.warehouse.dates_before(self.ref, cutoff)

    def count_date(self, day: date) -> int:
        return self.warehouse.count_date(self.ref, day)

    def read_date(self, day: date, batch_size: int = 50_000) -> Iterator[pa.RecordBatch]:
        return self.warehouse.read_date(self.ref, day, batch_size)

    def delete_date(self, day: date, expected: int, *, fence: Fence | None = None) -> int:
        """Delete one day's rows; roll back unless exactly ``expected`` rows go."""
        return self.warehouse.delete_date(self.ref, day, expected, fence=fence)

    def vacuum(self) -> tuple[bool, str]:
        return self.warehouse.vacuum(self.ref)

    def gather_statistics(self) -> tuple[bool, str]:
        """Refresh the warehouse's table statistics after cleaning, where it has them."""
        return self.warehouse.gather_statistics(self.ref)


#: Suffix of the table beside a target that holds windows written but not yet published.
PENDING_SUFFIX = "__pending"


@attrs.define
class Target(WarehouseTable):
    """The target table."""

    config: PipelineConfig | None = None
    """The pipeline's config, for the notes :meth:`check` adds about its load strategy."""

    def pending(self) -> Target:
        """``<target>__pending``: same warehouse, schema, window column and owner scope.

        With ``target_system.publish: after_audit`` the stage-to-target transfer writes each
        window there; the publish phase moves it into the target once the audit passed.
        """
        return attrs.evolve(self, ref=self.ref.sibling(PENDING_SUFFIX, query_field=self.ref.query_field))

    def pending_rows(self) -> Target:
        """``<target>__pending_rows``: the numbers of the stage rows a window will publish, where
        the warehouse keeps those instead of the rows (see :mod:`drivetrain.sql.pending_rows`)."""
        from drivetrain.sql.pending_rows import PENDING_ROWS_SUFFIX

        return attrs.evolve(self, ref=self.ref.sibling(PENDING_ROWS_SUFFIX, query_field=self.ref.query_field))

    def publish_rows(self, stage: Stage, window: Window, *, fence: Fence | None = None) -> PushDownStats:
        """Replace the window with the ``stage`` rows :meth:`pending_rows` names, through the
        transfer's projection, and empty the pending window: one transaction."""
        from drivetrain.sql.pending_rows import publish_rows

        return publish_rows(self.warehouse, stage.ref, self.ref, self.pending_rows().ref, window, fence)

    def count_written_by(self, window: Window, run_id: str) -> int:
        """Rows of the window whose lineage names run ``run_id`` (0 when the table does not exist)."""
        if not self.exists():
            return 0
        wh, ref = self.warehouse, self.ref
        d = wh.dialect
        with wh.sql(wh.where(ref, "count the rows of one run in")) as s:
            rows = s.rows(f"SELECT COUNT(*) FROM {d.qualified(ref)} WHERE {d.window_sql(ref)} AND {d.quote(ref.owner_column)} = ?",
                          [window.start, window.end, run_id])
        return int(rows[0][0])

    def publish(self, window: Window, *, merge_keys: Sequence[str] = (), version_column: str | None = None,
                delete_missing: bool = False, fence: Fence | None = None) -> PushDownStats:
        """Move the window's rows from :meth:`pending` into this table in one transaction.

        Replace (no ``merge_keys``): the window's rows (this owner's, for a shared target) are
        deleted and the pending ones inserted. Merge: the pending rows are upserted, never over
        a newer version, and with ``delete_missing`` the window's rows whose key is not pending
        go. The pending window is emptied in the same transaction.
        """
        from drivetrain.sql.names import PushDown
        from drivetrain.sql.pushdown import pending_columns, run_publish

        pending = self.pending().ref
        spec = PushDown(stage=pending, target=self.ref, columns=pending_columns(self.warehouse, pending),
                        merge_keys=tuple(merge_keys), version_column=version_column, delete_missing=delete_missing)
        return run_publish(self.warehouse, spec, window, fence)

    def check(self) -> list[str]:
        lines = super().check()
        if self.config is not None:
            lines += [f"note: {note}" for note in load_strategy_notes(self.config)]
        return lines


#: Query-field names that say "last changed at": records with such a field move between windows.
_UPDATE_TIME = re.compile(r"(updated|modified|changed|last_?update|last_?change|mtime|upd_?(at|time|date|ts))", re.IGNORECASE)


def load_strategy_notes(config: PipelineConfig) -> list[str]:
    """Risky combinations of the target's keys and load strategy, explained for ``validate``."""
    target = config.target
    strategy = target.get("load_strategy")
    field = target.get("query_field") or config.source.get("query_field") or ""
    keys = list(target.get("dedup_keys") or ()) or list(target.get("merge_keys") or ())
    notes = []
    if strategy != "merge" and _UPDATE_TIME.search(field):
        suggestion = f"merge_keys {keys}" if keys else "merge_keys naming the columns that identify a record"
        notes.append(
            f"{target.json_path}.load_strategy is {strategy!r} but the query field {field!r} looks like an update time: "
            "a record updated later moves to a later window and stays in its old one too, so the target holds it "
            f"twice. If records change, set load_strategy 'merge' with {suggestion} (the newest version wins); "
            "if they never change once written, this note does not apply"
        )
    return notes  # merge-only keys without merge are refused when the config is loaded
