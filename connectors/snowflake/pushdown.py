"""Stage-to-target inside one Snowflake account: rows never leave Snowflake.

Replace: one transaction deletes the target's window and inserts the stage's window through
the projection, deduplicated with ``QUALIFY ROW_NUMBER() ... = 1`` when keys are set.

Merge (``load_strategy: merge``): one transaction deletes the target rows whose merge key
appears in the (deduplicated) stage window, ``DELETE ... USING (<window>)``, then inserts the
window. That is what a ``MERGE`` updating every column does, row for row; it is written as
DELETE + INSERT because the emulator the tests run on cannot run a MERGE inside an explicit
transaction, and the commit must stay one transaction with the lease check before COMMIT.
Rows of the stage window with the same merge key are reduced to the latest one first (a MERGE
with two source rows for one key fails on Snowflake). The lineage values are bound parameters. A missing target
is created beforehand from the projection (``CREATE TABLE ... AS SELECT ... WHERE 1 = 0``,
outside the transaction, typed lineage columns), and columns the stage gained are added to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.warehouse import LINEAGE_COLUMNS, Fence, PushDown, PushDownStats

from .sql import col

if TYPE_CHECKING:
    from drivetrain.window import Window

    from .warehouse import SnowflakeWarehouse

#: Types of the lineage columns, for a target created by the push-down.
LINEAGE_TYPES = {
    "_drivetrain_pipeline_id": "VARCHAR",
    "_drivetrain_window_start": "TIMESTAMP_TZ",
    "_drivetrain_window_end": "TIMESTAMP_TZ",
    "_drivetrain_target_date": "DATE",
    "_drivetrain_loaded_at": "TIMESTAMP_TZ",
}


def _projection(spec: PushDown, lineage: str) -> str:
    exprs = [f"{expr} AS {col(name)}" for name, expr in spec.columns]
    if lineage == "bind":
        exprs += [f"? AS {col(c)}" for c in LINEAGE_COLUMNS]
    else:
        exprs += [f"NULL::{LINEAGE_TYPES[c]} AS {col(c)}" for c in LINEAGE_COLUMNS]
    return ", ".join(exprs)


def select_sql(wh: SnowflakeWarehouse, spec: PushDown) -> str:
    """The stage's window through the projection, one row per key when deduplicating."""
    stage = spec.stage
    sql = f"SELECT {_projection(spec, 'bind')} FROM {wh.qualified(stage)} WHERE {wh.window_sql(stage)}"
    keys = spec.dedup_keys or spec.merge_keys
    if keys:
        order_by = [spec.version_column, *spec.order_by] if spec.version_column else list(spec.order_by)
        order = ", ".join(f"{col(c)} DESC" for c in order_by) or f"{col(stage.query_field or '')} DESC"
        sql += f" QUALIFY ROW_NUMBER() OVER (PARTITION BY {', '.join(col(k) for k in keys)} ORDER BY {order}) = 1"
    return sql


def prepare_target(wh: SnowflakeWarehouse, spec: PushDown) -> None:
    """Create the target, or add the columns it lacks (DDL: before the transaction)."""
    target = spec.target
    session = wh.pool.session()
    existing = wh.table_columns(target)
    if not existing:
        wh.ensure_schema(target)
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {wh.qualified(target)} AS SELECT {_projection(spec, 'typed')} "
            f"FROM {wh.qualified(spec.stage)} WHERE 1 = 0",
            what=wh.where(target, "create"),
        )
        return
    stage_types = wh.table_columns(spec.stage)
    wanted = [(name, expr) for name, expr in spec.columns] + [(c, col(c)) for c in LINEAGE_COLUMNS]
    for name, expr in wanted:
        if name in existing:
            continue
        source = next((c for c in stage_types if col(c) == expr), None)
        sql_type = LINEAGE_TYPES.get(name) or (stage_types[source] if source else None)
        if sql_type is None:
            raise PermanentError(
                f"{wh.where(target, 'push down into')}: the target has no column {name!r} and its type cannot be "
                "derived from the expression; add the column to the target table"
            )
        session.execute(f"ALTER TABLE {wh.qualified(target)} ADD COLUMN {col(name)} {sql_type}", what=wh.where(target, f"add column {name!r} to"))


def run_push_down(wh: SnowflakeWarehouse, spec: PushDown, window: Window, lineage: Mapping[str, Any], fence: Fence | None) -> PushDownStats:
    stage, target = spec.stage, spec.target
    if not wh.table_exists(stage):
        return PushDownStats(rows_read=0, rows_written=0, rows_dropped=0)
    wh.claim_table(target)  # before any row changes: another pipeline's table is refused
    prepare_target(wh, spec)
    bounds = [window.start, window.end]
    params = [lineage[c] for c in LINEAGE_COLUMNS] + bounds
    select = select_sql(wh, spec)
    where = wh.where(target, f"push down {stage.name} into")
    with wh.pool.session().transaction(where) as session:
        rows_read = int(session.rows(f"SELECT COUNT(*) FROM {wh.qualified(stage)} WHERE {wh.window_sql(stage)}", bounds, what=where)[0][0])
        names = ", ".join(col(c) for c in [name for name, _ in spec.columns] + list(LINEAGE_COLUMNS))
        superseded = removed = 0
        if spec.merge_keys:
            on = " AND ".join(f"t.{col(k)} = s.{col(k)}" for k in spec.merge_keys) + wh.scope(target, "t.")
            tq = col(spec.version)  # the query field, or the declared version column
            newer = f"t.{tq} <= s.{tq}"
            superseded = int(session.rows(
                f"SELECT COUNT(t.{tq}) FROM ({select}) AS s LEFT JOIN {wh.qualified(target)} AS t ON {on} AND t.{tq} > s.{tq}",
                params, what=where,
            )[0][0])
            # a version never replaces a newer one (a resumed old window after later ones ran)
            session.execute(f"DELETE FROM {wh.qualified(target)} AS t USING ({select}) AS s WHERE {on} AND {newer}", params, what=where)
            session.execute(
                f"INSERT INTO {wh.qualified(target)} ({names}) SELECT * FROM ({select}) AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {wh.qualified(target)} AS t WHERE {on})",
                params, what=where,
            )
            if spec.delete_missing:  # records gone from the source's window leave the target too
                removed = int(session.execute(
                    f"DELETE FROM {wh.qualified(target)} AS t WHERE {wh.window_sql(target, 't.')} AND NOT EXISTS "
                    f"(SELECT 1 FROM ({select}) AS s WHERE {on})", [*bounds, *params], what=where,
                ).rowcount or 0)
            # every selected record is now in the target at its version or a newer one
            written = int(session.rows(f"SELECT COUNT(*) FROM ({select}) AS s", params, what=where)[0][0])
        else:
            session.execute(f"DELETE FROM {wh.qualified(target)} WHERE {wh.window_sql(target)}", bounds, what=where)
            cursor = session.execute(f"INSERT INTO {wh.qualified(target)} ({names}) {select}", params, what=where)
            written = int(cursor.rowcount or 0)
        if fence is not None:
            fence()
    dropped = rows_read - written if (spec.dedup_keys or spec.merge_keys) else 0
    return PushDownStats(rows_read=rows_read, rows_written=written, rows_dropped=max(dropped, 0), rows_superseded=superseded, rows_removed=removed)
