"""Stage-to-target inside one warehouse, for every load strategy: rows never leave the engine.

Replace: one transaction deletes the target's window and inserts the stage's window through the
projection, one row per key (the latest by the version column and ``order_by``) when
deduplicating. Merge: the same selection, one row per merge key (a merge with two source rows
for one key fails), upserted by the dialect's merge statements, which never replace a newer
version of a record (a re-run of an old window after later ones); with ``delete_missing`` the
target rows of the window whose key the stage window lacks go too. Every selected record ends up
in the target at its version or a newer one, which is what ``rows_written`` counts for a merge.

A missing target is created beforehand from the projection with typed lineage columns, and
columns the stage gained are added (DDL stays outside the transaction: some engines commit
before DDL). The lease check (``fence``) runs inside the transaction, just before COMMIT.

Publish (:func:`run_publish`) is the same statement with a pending table as its stage: the
window's audited rows, already projected and deduplicated, move from ``<target>__pending`` into
the target (replaced or merged as above, their lineage kept) and leave the pending table, all in
one transaction, so a reader sees the window before or after, never half of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.errors import PermanentError
from drivetrain.sql.names import (
    LINEAGE,
    LINEAGE_COLUMNS,
    LOADED_AT,
    PushDown,
    PushDownStats,
    TableRef,
)
from drivetrain.sql.session import utc_now

if TYPE_CHECKING:
    from drivetrain.sql.names import Fence
    from drivetrain.sql.session import SqlSession
    from drivetrain.warehouse import Warehouse
    from drivetrain.window import Window


def _projection(wh: Warehouse, spec: PushDown, *, typed: bool, keep_lineage: bool = False) -> str:
    d = wh.dialect
    exprs = [f"{expr} AS {d.quote(name)}" for name, expr in spec.columns]
    if keep_lineage:  # publish: the rows keep the run that wrote them; the publish's time is bound
        exprs += [f"{'?' if c == LOADED_AT else d.quote(c)} AS {d.quote(c)}" for c in LINEAGE_COLUMNS]
    else:
        exprs += [f"{d.typed_null(kind) if typed else '?'} AS {d.quote(c)}" for c, kind in LINEAGE]
    return ", ".join(exprs)


def select_sql(wh: Warehouse, spec: PushDown, window: Window, *, publish: bool = False) -> str:
    """The stage's ``window`` through the projection (binds the lineage, or for ``publish`` the
    load time, then the window bounds).

    With keys, one row per key (see :meth:`~drivetrain.sql.dialect.SqlDialect.one_row_per_key`),
    except for ``publish``: the pending rows keep their lineage and are already one per key.
    """
    return f"SELECT {_projection(wh, spec, typed=False, keep_lineage=publish)} {window_rows_sql(wh, spec, window, publish=publish)}"


def window_rows_sql(wh: Warehouse, spec: PushDown, window: Window, *, publish: bool = False) -> str:
    """``FROM <stage> WHERE <window> [one row per key]``: the rows :func:`select_sql` reads (binds the bounds)."""
    d, stage = wh.dialect, spec.stage
    sql = f"FROM {d.qualified(stage)} WHERE {d.window_sql(stage)}"
    keys = spec.dedup_keys or spec.merge_keys
    if keys and not publish:
        order_by = [spec.version_column, *spec.order_by] if spec.version_column else list(spec.order_by)
        order = [f"{d.quote(c)} DESC" for c in order_by] or [f"{d.quote(stage.query_field or '')} DESC"]
        identity = d.row_identity
        hidden = identity is not None and identity.lower() in {c.lower() for c in wh.table_columns(stage)}
        sql += d.one_row_per_key(keys, order, stage, window, keys_first=not hidden)
    return sql


def keys_unique(s: SqlSession, wh: Warehouse, spec: PushDown, window: Window) -> bool:
    """Whether no two rows of the stage's ``window`` share a dedup key (NULLs equal to each
    other, as in the ranking's partitions): the ranking would then keep every row.

    Counting the keys is a hash aggregate over the key columns alone; the ranking sorts the keys
    with the order columns and then joins the kept row identities back (2 million rows on
    DuckDB: about 0.3 s of CPU against 0.8 s). A window with a duplicate pays for both.
    """
    d, stage = wh.dialect, spec.stage
    keys = ", ".join(d.quote(k) for k in spec.dedup_keys)
    shared = s.rows(f"SELECT 1 FROM {d.qualified(stage)} WHERE {d.window_sql(stage)} GROUP BY {keys} "
                    "HAVING COUNT(*) > 1 LIMIT 1", [window.start, window.end])
    return not shared


def without_ranking(s: SqlSession, wh: Warehouse, spec: PushDown, window: Window) -> PushDown:
    """``spec`` without its dedup keys when the window's keys are unique (:func:`keys_unique`):
    the same rows, selected without ranking them. A merge keeps its keys (they are its join).

    Only where the warehouse ranks keys first (a :attr:`~drivetrain.sql.dialect.SqlDialect.row_identity`,
    DuckDB and PostgreSQL): there the ranking is a sort and a join of its own. Snowflake ranks
    the rows inside the insert's own statement, where the check would be one more round trip."""
    if not spec.dedup_keys or spec.merge_keys or wh.dialect.row_identity is None or not keys_unique(s, wh, spec, window):
        return spec
    return attrs.evolve(spec, dedup_keys=())


@contextmanager
def unordered_inserts(wh: Warehouse) -> Iterator[None]:
    """Inside: the warehouse's inserts need not keep the select's order (see
    :attr:`~drivetrain.sql.dialect.SqlDialect.unordered_inserts`); the setting is reset after."""
    statements = wh.dialect.unordered_inserts
    if statements is None:
        yield
        return
    with wh.sql("set up an unordered insert") as s:
        s.execute(statements[0])
        try:
            yield
        finally:
            s.execute(statements[1])


def prepare_target(wh: Warehouse, spec: PushDown) -> None:
    """Create the target, or add the columns it lacks."""
    d, target = wh.dialect, spec.target
    existing = wh.table_columns(target)
    if not existing:
        wh.ensure_schema(target)
        with wh.sql(wh.where(target, "create")) as s:
            s.execute(f"CREATE TABLE IF NOT EXISTS {d.qualified(target)} AS SELECT {_projection(wh, spec, typed=True)} "
                      f"FROM {d.qualified(spec.stage)} WHERE 1 = 0")
        return
    stage_types = wh.table_columns(spec.stage)
    lineage_types = {c: d.types[kind] for c, kind in LINEAGE}
    for name, expr in [*spec.columns, *[(c, d.quote(c)) for c in LINEAGE_COLUMNS]]:
        if name in existing:
            continue
        source = next((c for c in stage_types if d.quote(c) == expr), None)
        sql_type = lineage_types.get(name) or (stage_types[source] if source else None)
        if sql_type is None:
            raise PermanentError(
                f"{wh.where(target, 'push down into')}: the target has no column {name!r} and its type cannot be "
                "derived from the expression; add the column to the target table"
            )
        with wh.sql(wh.where(target, f"add column {name!r} to")) as s:
            s.execute(f"ALTER TABLE {d.qualified(target)} ADD COLUMN {d.quote(name)} {sql_type}")
    # a stage column widened by the schema contract widens the target's (pending's) column too
    copied = {name: next((t for c, t in stage_types.items() if d.quote(c) == expr), None) for name, expr in spec.columns}
    # imported here: pyarrow is not loaded by commands that only read
    from drivetrain.schema_types import widen_columns

    widen_columns(wh, target, existing, {name: t for name, t in copied.items() if t is not None and name in existing})


def run_push_down(wh: Warehouse, spec: PushDown, window: Window, lineage: Mapping[str, Any], fence: Fence | None) -> PushDownStats:
    wh.claim_table(spec.target)  # before any row changes: another pipeline's table is refused
    if not wh.table_exists(spec.stage):
        return PushDownStats(rows_read=0, rows_written=0, rows_dropped=0)
    prepare_target(wh, spec)
    return _apply(wh, spec, window, [lineage[c] for c in LINEAGE_COLUMNS], fence, publish=False)


def pending_columns(wh: Warehouse, pending: TableRef) -> list[tuple[str, str]]:
    """(column, expression) of a pending table's data columns, for :func:`run_publish`."""
    d = wh.dialect
    lineage = {c.lower() for c in LINEAGE_COLUMNS}
    return [(name, d.quote(name)) for name in wh.table_columns(pending) if name.lower() not in lineage]


def run_publish(wh: Warehouse, spec: PushDown, window: Window, fence: Fence | None) -> PushDownStats:
    """Move the window's rows from ``spec.stage`` (a pending table) into ``spec.target`` in one
    transaction: replaced or merged as :func:`run_push_down` does, lineage kept (the load time
    is the publish's), pending emptied.

    ``spec.columns`` are the pending table's data columns (see :func:`pending_columns`); the
    pending rows are already one per key, so ``spec.dedup_keys`` should be empty.
    """
    wh.claim_table(spec.target)
    if wh.table_exists(spec.stage):
        prepare_target(wh, spec)
    elif not wh.table_exists(spec.target):
        return PushDownStats(rows_read=0, rows_written=0, rows_dropped=0)  # nothing pending, nothing to replace
    return _apply(wh, spec, window, [utc_now()], fence, publish=True)


def _apply(wh: Warehouse, spec: PushDown, window: Window, lineage: list[Any], fence: Fence | None, *,
           publish: bool) -> PushDownStats:
    d, stage, target = wh.dialect, spec.stage, spec.target
    bounds = [window.start, window.end]
    params = lineage + bounds
    has_stage = wh.table_exists(stage)
    tq_name = d.qualified(target)
    superseded = removed = rows_read = 0
    ranked = False
    with (unordered_inserts(wh), wh.sql(wh.where(target, f"{'publish' if publish else 'push down'} {stage} into")) as s,
          s.transaction()):
        select = None
        if has_stage:
            rows_read = int(s.rows(f"SELECT COUNT(*) FROM {d.qualified(stage)} WHERE {d.window_sql(stage)}", bounds)[0][0])
            selected = spec if publish or not rows_read else without_ranking(s, wh, spec, window)
            ranked = bool(selected.dedup_keys and rows_read) and not publish
            select = select_sql(wh, selected, window, publish=publish)
        columns = [name for name, _ in spec.columns] + list(LINEAGE_COLUMNS)
        if select is None:  # publish with no pending table: the window is empty at the source
            written = 0
            if not spec.merge_keys or spec.delete_missing:
                removed = max(s.execute(f"DELETE FROM {tq_name} WHERE {d.window_sql(target)}", bounds), 0)
        elif spec.merge_keys:
            on = " AND ".join(f"t.{d.quote(k)} = s.{d.quote(k)}" for k in spec.merge_keys) + d.scope(target, "t.")
            version = d.quote(spec.version)  # the query field, or the declared version column
            superseded = int(s.rows(
                f"SELECT COUNT(t.{version}) FROM ({select}) AS s LEFT JOIN {tq_name} AS t ON {on} AND t.{version} > s.{version}", params,
            )[0][0])
            for statement in d.merge_sql(tq_name, select, on, version, columns, spec.merge_keys):
                s.execute(statement, params)
            if spec.delete_missing:  # records gone from the source's window leave the target too
                removed = max(s.execute(
                    f"DELETE FROM {tq_name} AS t WHERE {d.window_sql(target, 't.')} AND NOT EXISTS "
                    f"(SELECT 1 FROM ({select}) AS s WHERE {on})", [*bounds, *params],
                ), 0)
            written = int(s.rows(f"SELECT COUNT(*) FROM ({select}) AS s", params)[0][0])
        else:
            s.execute(f"DELETE FROM {tq_name} WHERE {d.window_sql(target)}", bounds)
            names = ", ".join(d.quote(c) for c in columns)
            written = max(s.execute(f"INSERT INTO {tq_name} ({names}) {select}", params), 0)
        if publish and has_stage:
            s.execute(f"DELETE FROM {d.qualified(stage)} WHERE {d.window_sql(stage)}", bounds)
        if fence is not None:
            fence()
    dropped = rows_read - written if (spec.dedup_keys or spec.merge_keys) else 0
    return PushDownStats(rows_read=rows_read, rows_written=written, rows_dropped=max(dropped, 0),
                         rows_superseded=superseded, rows_removed=removed, ranked=ranked)
