"""Stage-to-target inside one DuckDB file: rows never leave the database.

Replace: one transaction deletes the target's window and inserts the stage's window through
the projection (deduplicated with QUALIFY when keys are set). Merge: one MERGE that names its
columns (``UPDATE SET *`` is far slower on DuckDB) and never replaces a newer version of a
record (a re-run of an old window after later ones); the selected records all end up in the
target, at their version or a newer one, so that is what ``rows_written`` counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from drivetrain.warehouse import LINEAGE_COLUMNS, Fence, PushDown, PushDownStats, TableRef

from .connection import duckdb_errors, transaction
from .warehouse import qualified, quote

if TYPE_CHECKING:
    from drivetrain.window import Window

    from .warehouse import DuckDBWarehouse


def _select_sql(wh: DuckDBWarehouse, spec: PushDown) -> str:
    stage = spec.stage
    exprs = [f"{expr} AS {quote(name)}" for name, expr in spec.columns]
    exprs += [f"? AS {quote(col)}" for col in LINEAGE_COLUMNS]
    sql = f"SELECT {', '.join(exprs)} FROM {qualified(stage)} WHERE {wh._window_sql(stage)}"
    key_columns = spec.dedup_keys or spec.merge_keys  # a MERGE needs one source row per key
    if key_columns:
        order_by = [spec.version_column, *spec.order_by] if spec.version_column else list(spec.order_by)
        order = ", ".join(f"{quote(c)} DESC" for c in order_by) or f"{quote(stage.query_field or '')} DESC"
        keys = ", ".join(quote(k) for k in key_columns)
        sql += f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {order}) = 1"
    return sql


def merged_count_sql(wh: DuckDBWarehouse, stage: TableRef, target: TableRef, keys: Sequence[tuple[str, str]],
                     version: tuple[str, str]) -> str:
    """``(held, newer)`` of :meth:`Warehouse.count_merged`, over the stage window's rows."""
    exprs = ", ".join(f"{expr} AS _k{i}" for i, (_, expr) in enumerate(keys))
    on = " AND ".join(f"t.{quote(name)} = s._k{i}" for i, (name, _) in enumerate(keys)) + wh.scope(target, "t.")
    tv = f"t.{quote(version[0])}"
    return (f"SELECT count({tv}), count(CASE WHEN {tv} > s._v THEN 1 END) FROM (SELECT {exprs}, {version[1]} AS _v "
            f"FROM {qualified(stage)} WHERE {wh._window_sql(stage)}) AS s "
            f"LEFT JOIN {qualified(target)} AS t ON {on} AND {tv} >= s._v")


def run_push_down(
    wh: DuckDBWarehouse, spec: PushDown, window: Window, lineage: Mapping[str, Any], fence: Fence | None
) -> PushDownStats:
    stage, target = spec.stage, spec.target
    params = [lineage[c] for c in LINEAGE_COLUMNS] + [window.start, window.end]
    select = _select_sql(wh, spec)
    where = wh._window_sql(stage)
    wh.claim_table(target)  # before any row changes: another pipeline's table is refused
    with wh.connect() as conn, duckdb_errors(f"{wh.describe()}: {stage} -> {target}"):
        if not wh.table_exists(stage):
            return PushDownStats(rows_read=0, rows_written=0, rows_dropped=0)
        wh.ensure_schema(conn, target.schema)
        if not wh.table_exists(target):
            conn.execute(f"CREATE TABLE {qualified(target)} AS {select} LIMIT 0", params)
        with transaction(conn):
            rows_read = int(conn.execute(f"SELECT count(*) FROM {qualified(stage)} WHERE {where}", [window.start, window.end]).fetchone()[0])
            tq = quote(spec.version)  # the query field, or the declared version column
            superseded = removed = 0
            if spec.merge_keys:
                cols = [name for name, _ in spec.columns] + list(LINEAGE_COLUMNS)
                on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in spec.merge_keys) + wh.scope(target, "t.")
                sets = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in cols if c not in spec.merge_keys)
                names = ", ".join(quote(c) for c in cols)
                values = ", ".join(f"s.{quote(c)}" for c in cols)
                superseded = int(conn.execute(
                    f"SELECT count(t.{tq}) FROM ({select}) AS s LEFT JOIN {qualified(target)} AS t ON {on} AND t.{tq} > s.{tq}", params,
                ).fetchone()[0])
                conn.execute(
                    f"MERGE INTO {qualified(target)} AS t USING ({select}) AS s ON {on} "
                    f"WHEN MATCHED AND s.{tq} >= t.{tq} THEN UPDATE SET {sets} "  # never over a newer version
                    f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})",
                    params,
                )
                if spec.delete_missing:  # records gone from the source's window leave the target too
                    removed = int(conn.execute(
                        f"DELETE FROM {qualified(target)} AS t WHERE {wh._window_sql(target)} AND NOT EXISTS "
                        f"(SELECT 1 FROM ({select}) AS s WHERE {on})", [window.start, window.end, *params],
                    ).fetchone()[0])
                # every selected record is now in the target at its version or a newer one
                written = int(conn.execute(f"SELECT count(*) FROM ({select}) AS s", params).fetchone()[0])
            else:
                conn.execute(f"DELETE FROM {qualified(target)} WHERE {wh._window_sql(target)}", [window.start, window.end])
                names = ", ".join(quote(name) for name, _ in spec.columns) + ", " + ", ".join(quote(c) for c in LINEAGE_COLUMNS)
                written = int(conn.execute(f"INSERT INTO {qualified(target)} ({names}) {select}", params).fetchone()[0])
            if fence is not None:
                fence()
    dropped = rows_read - written if (spec.dedup_keys or spec.merge_keys) else 0
    return PushDownStats(rows_read=rows_read, rows_written=written, rows_dropped=max(dropped, 0), rows_superseded=superseded, rows_removed=removed)
