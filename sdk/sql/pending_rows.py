"""The publish gate without a second copy of the window: pending *row numbers* instead of rows.

With the gate, a ``replace_window`` push-down used to copy the window twice: stage -> pending
(through the projection and the keys), then pending -> target at publish. Where the warehouse
allows it (:attr:`~drivetrain.sql.dialect.SqlDialect.pending_row_numbers`), the transfer writes
to ``<target>__pending_rows`` only what identifies the kept rows: the target's query field (so
the table has windows like any other), the stage row's ``_drivetrain_row``, the run that loaded
the stage window (``_drivetrain_stage_run``) and the lineage the target rows will carry. One row
per row publish will write, so target_count and the audit count exactly what publish writes.

Publish then copies those stage rows, through the same projection, into the target in one
transaction: the window's old rows out, the kept stage rows in, the pending window emptied. The
stage still holds the window (stage cleaning runs after publish). When it does not hold the
same rows any more -- the stage window was loaded again by another run, or cleaned before a
failed publish was resumed -- :func:`rows_problem` says so: the transfer is then not carried
(it runs again and writes new numbers) and publish refuses, with the target unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.sql.names import LINEAGE, LINEAGE_COLUMNS, LOADED_AT, PushDownStats, TableRef
from drivetrain.sql.session import utc_now

if TYPE_CHECKING:
    from drivetrain.sql.names import Fence, PushDown
    from drivetrain.warehouse import Warehouse
    from drivetrain.window import Window

#: Suffix of the table of pending row numbers beside a target.
PENDING_ROWS_SUFFIX = "__pending_rows"
#: The stage row's number in its extract (unique in a stage window loaded by one run).
STAGE_ROW = "_drivetrain_row"
#: The run that loaded the stage window the numbers point into.
STAGE_RUN = "_drivetrain_stage_run"
#: The transfer's projection (JSON ``[[column, expression], ...]``): what publish copies. It is
#: written on one row of the window (the lowest stage row), NULL on the others: repeated on every
#: row it was a text of 30 bytes or so per column written for each row (for 2 million rows of
#: ten columns, half a second of CPU; tables written by earlier versions repeat it, read alike).
PROJECTION = "_drivetrain_projection"


def usable(wh: Warehouse, stage: TableRef, merge: bool) -> bool:
    """Whether a gated transfer from ``stage`` can write row numbers instead of rows."""
    if merge or not wh.dialect.pending_row_numbers:
        return False
    columns = {c.lower() for c in wh.table_columns(stage)}
    return STAGE_ROW in columns and all(c.lower() in columns for c in LINEAGE_COLUMNS)


def _query_field(spec: PushDown, target: TableRef) -> str:
    expr = dict(spec.columns).get(target.query_field or "")
    if expr is None:
        raise PermanentError(f"{target}: the projection has no column {target.query_field!r} to place rows in windows")
    return expr


def write_row_numbers(wh: Warehouse, spec: PushDown, window: Window, lineage: Mapping[str, Any], rows: TableRef,
                      fence: Fence | None) -> PushDownStats:
    """Replace the window of ``rows`` with the numbers of the stage rows the push-down ``spec``
    keeps (one per key with ``spec.dedup_keys``), in one transaction."""
    from drivetrain.sql.pushdown import unordered_inserts, window_rows_sql, without_ranking

    d, stage = wh.dialect, spec.stage
    wh.claim_table(rows)
    field = d.quote(rows.query_field or "")
    picked = f"{_query_field(spec, spec.target)} AS {field}, {d.quote(STAGE_ROW)}, {d.quote(LINEAGE_COLUMNS[0])} AS {d.quote(STAGE_RUN)}"
    if not wh.table_exists(rows):
        wh.ensure_schema(rows)
        nulls = ", ".join(f"{d.typed_null(kind)} AS {d.quote(c)}" for c, kind in (*LINEAGE, (PROJECTION, "text")))
        with wh.sql(wh.where(rows, "create")) as s:
            s.execute(f"CREATE TABLE IF NOT EXISTS {d.qualified(rows)} AS SELECT {picked}, {nulls} "
                      f"FROM {d.qualified(stage)} WHERE 1 = 0")
    bounds = [window.start, window.end]
    params = [lineage[c] for c in LINEAGE_COLUMNS]
    names = ", ".join(d.quote(c) for c in (rows.query_field or "", STAGE_ROW, STAGE_RUN, *LINEAGE_COLUMNS))
    with (unordered_inserts(wh), wh.sql(wh.where(rows, "write the kept stage rows' numbers to")) as s,
          s.transaction()):
        rows_read = int(s.rows(f"SELECT COUNT(*) FROM {d.qualified(stage)} WHERE {d.window_sql(stage)}", bounds)[0][0])
        selected = without_ranking(s, wh, spec, window) if rows_read else spec
        kept = window_rows_sql(wh, selected, window)  # the push-down's keys-first selection, reading only what names a row
        s.execute(f"DELETE FROM {d.qualified(rows)} WHERE {d.window_sql(rows)}", bounds)
        written = max(s.execute(f"INSERT INTO {d.qualified(rows)} ({names}) SELECT {picked}, "
                                f"{', '.join('?' for _ in params)} {kept}", [*params, *bounds]), 0)
        if written:  # the projection once per window, on its first row: see projection()
            s.execute(f"UPDATE {d.qualified(rows)} SET {d.quote(PROJECTION)} = ? WHERE {d.window_sql(rows)} AND "
                      f"{d.quote(STAGE_ROW)} = (SELECT MIN({d.quote(STAGE_ROW)}) FROM {d.qualified(rows)} WHERE {d.window_sql(rows)})",
                      [json.dumps([list(c) for c in spec.columns]), *bounds, *bounds])
        if fence is not None:
            fence()
    dropped = rows_read - written if spec.dedup_keys else 0
    return PushDownStats(rows_read=rows_read, rows_written=written, rows_dropped=max(dropped, 0),
                         ranked=bool(selected.dedup_keys and rows_read))


def window_query(wh: Warehouse, stage: TableRef, rows: TableRef, columns: Sequence[tuple[str, str]], window: Window) -> str:
    """A query an operator can paste to see the rows a window will publish, as the target will hold them."""
    d = wh.dialect
    exprs = ", ".join([*(f"{e} AS {d.quote(n)}" for n, e in columns), *(f"s.{d.quote(c)}" for c in (STAGE_ROW,))])
    return (f"SELECT * FROM (SELECT {exprs} FROM {d.qualified(stage)} AS s WHERE {d.window_literal_sql(stage, window)} "
            f"AND EXISTS (SELECT 1 FROM {d.qualified(rows)} AS p WHERE {d.window_literal_sql(rows, window)} AND "
            f"p.{d.quote(STAGE_ROW)} = s.{d.quote(STAGE_ROW)} AND p.{d.quote(STAGE_RUN)} = s.{d.quote(LINEAGE_COLUMNS[0])})) AS pending")


def forget(wh: Warehouse, table: TableRef, window: Window) -> None:
    """Empty ``table``'s window if the table exists: the pending table the transfer does not use
    this time holds nothing that publish or target_count could take for this window's."""
    if wh.table_exists(table):
        with wh.sql(wh.where(table, "empty a window of")) as s:
            s.execute(f"DELETE FROM {wh.dialect.qualified(table)} WHERE {wh.dialect.window_sql(table)}", [window.start, window.end])


def rows_problem(wh: Warehouse, stage: TableRef, rows: TableRef, window: Window, expected: int | None = None) -> str | None:
    """Why the pending numbers of ``window`` no longer name the stage rows they were written
    for (the stage window was loaded again or cleaned), or None when they still do."""
    d = wh.dialect
    bounds = [window.start, window.end]
    if not wh.table_exists(rows):
        return None if not expected else f"{rows} does not exist"
    with wh.sql(wh.where(rows, "check the pending row numbers of")) as s:
        held, runs = s.rows(f"SELECT COUNT(*), COUNT(DISTINCT {d.quote(STAGE_RUN)}) FROM {d.qualified(rows)} "
                            f"WHERE {d.window_sql(rows)}", bounds)[0]
        if expected is not None and int(held) != expected:
            return f"{rows} holds {held} rows for the window, not the {expected} the audited transfer wrote"
        if not held:
            return None
        if not wh.table_exists(stage):
            return f"the stage {stage} the pending rows point into is gone"
        found = s.rows(
            f"SELECT COUNT(*) FROM {d.qualified(stage)} AS s WHERE {d.window_sql(stage, 's.')} AND EXISTS "
            f"(SELECT 1 FROM {d.qualified(rows)} AS p WHERE {d.window_sql(rows, 'p.')} "
            f"AND p.{d.quote(STAGE_ROW)} = s.{d.quote(STAGE_ROW)} AND p.{d.quote(STAGE_RUN)} = s.{d.quote(LINEAGE_COLUMNS[0])})",
            [*bounds, *bounds])[0][0]
    if int(runs) != 1 or int(found) != int(held):
        return (f"the stage window no longer holds the {held} rows {rows} names ({found} found): it was loaded "
                "again or cleaned since the transfer")
    return None


def projection(wh: Warehouse, rows: TableRef, window: Window) -> list[tuple[str, str]] | None:
    """The projection the window's numbers were written with (None: no numbers pending)."""
    d = wh.dialect
    if not wh.table_exists(rows):
        return None
    with wh.sql(wh.where(rows, "read the projection of")) as s:
        found = s.rows(f"SELECT DISTINCT {d.quote(PROJECTION)} FROM {d.qualified(rows)} WHERE {d.window_sql(rows)} "
                       f"AND {d.quote(PROJECTION)} IS NOT NULL",
                       [window.start, window.end])
    if len(found) > 1:
        raise PermanentError(f"publish: {rows} holds the window from {len(found)} transfers; run the window again")
    return [(str(n), str(e)) for n, e in json.loads(found[0][0])] if found else None


def publish_rows(wh: Warehouse, stage: TableRef, target: TableRef, rows: TableRef, window: Window,
                 fence: Fence | None) -> PushDownStats:
    """Replace the target's window with the stage rows ``rows`` names, through the transfer's
    projection, their lineage from ``rows`` (the load time the publish's); empty the pending
    window. One transaction."""
    from drivetrain.sql.names import PushDown
    from drivetrain.sql.pushdown import prepare_target, unordered_inserts

    d = wh.dialect
    wh.claim_table(target)
    bounds = [window.start, window.end]
    columns = projection(wh, rows, window) if wh.table_exists(stage) else None
    if columns is None:
        return _publish_nothing(wh, target, window, fence)
    prepare_target(wh, PushDown(stage=stage, target=target, columns=list(columns)))  # columns the stage gained
    names = ", ".join(d.quote(c) for c in [*(n for n, _ in columns), *LINEAGE_COLUMNS])
    exprs = ", ".join([*(f"{e} AS {d.quote(n)}" for n, e in columns), *(f"? AS {d.quote(c)}" for c in LINEAGE_COLUMNS)])
    with unordered_inserts(wh), wh.sql(wh.where(target, f"publish {stage} rows named in {rows} into")) as s, s.transaction():
        lineages = s.rows(f"SELECT DISTINCT {', '.join(d.quote(c) for c in LINEAGE_COLUMNS)} FROM {d.qualified(rows)} "
                          f"WHERE {d.window_sql(rows)}", bounds)
        held = int(s.rows(f"SELECT COUNT(*) FROM {d.qualified(rows)} WHERE {d.window_sql(rows)}", bounds)[0][0])
        if len(lineages) > 1:
            raise PermanentError(f"publish: {rows} holds the window from {len(lineages)} transfers; run the window again")
        s.execute(f"DELETE FROM {d.qualified(target)} WHERE {d.window_sql(target)}", bounds)
        written = 0
        if lineages:
            run = s.rows(f"SELECT MIN({d.quote(STAGE_RUN)}) FROM {d.qualified(rows)} WHERE {d.window_sql(rows)}", bounds)[0][0]
            loaded = f"{d.window_sql(stage)} AND {d.quote(LINEAGE_COLUMNS[0])} = ?"
            named, named_params = _named_rows(s, wh, stage, rows, loaded, [*bounds, run], held, bounds)
            written = max(s.execute(
                f"INSERT INTO {d.qualified(target)} ({names}) SELECT {exprs} FROM {d.qualified(stage)} WHERE {loaded}{named}",
                [*published(lineages[0]), *bounds, run, *named_params]), 0)
        if written != held:  # raising rolls the whole publish back: the target is unchanged
            raise PermanentError(
                f"publish: the stage window holds {written} of the {held} rows {rows} names (it was loaded again or "
                f"cleaned since the transfer); nothing was published and {target} is unchanged. Run the window again")
        s.execute(f"DELETE FROM {d.qualified(rows)} WHERE {d.window_sql(rows)}", bounds)
        if fence is not None:
            fence()
    return PushDownStats(rows_read=held, rows_written=written, rows_dropped=0)


def published(lineage: Sequence[Any]) -> list[Any]:
    """A pending window's lineage values as its rows enter the target: loaded now."""
    return [utc_now() if name == LOADED_AT else value for name, value in zip(LINEAGE_COLUMNS, lineage, strict=True)]


def _named_rows(s: Any, wh: Warehouse, stage: TableRef, rows: TableRef, loaded: str, loaded_params: list[Any],
                held: int, bounds: list[Any]) -> tuple[str, list[Any]]:
    """The condition (and its parameters) that keeps the stage rows the numbers name, after ``loaded``.

    Usually the numbers name every row the loading run put in the stage window (no key was
    shared): then the stage rows of that run are the rows named, and the join with the numbers
    is left out (2 million wide rows: 4.3 s of CPU instead of 6.1). The numbers are distinct
    stage rows of that one load (written by one statement from it), so as many of them as the
    load has rows are all of its rows. Otherwise, or when the stage changed since (then the
    counts differ), the join decides, and a count that does not match fails the publish."""
    d = wh.dialect
    in_stage = int(s.rows(f"SELECT COUNT(*) FROM {d.qualified(stage)} WHERE {loaded}", loaded_params)[0][0])
    if in_stage == held:
        return "", []
    return (f" AND {d.quote(STAGE_ROW)} IN (SELECT {d.quote(STAGE_ROW)} FROM {d.qualified(rows)} WHERE {d.window_sql(rows)})",
            list(bounds))


def _publish_nothing(wh: Warehouse, target: TableRef, window: Window, fence: Fence | None) -> PushDownStats:
    """Nothing pending: the window is empty at the source, so the target's window is emptied."""
    d = wh.dialect
    if not wh.table_exists(target):
        return PushDownStats(rows_read=0, rows_written=0, rows_dropped=0)
    with wh.sql(wh.where(target, "publish an empty window into")) as s, s.transaction():
        removed = max(s.execute(f"DELETE FROM {d.qualified(target)} WHERE {d.window_sql(target)}",
                                [window.start, window.end]), 0)
        if fence is not None:
            fence()
    return PushDownStats(rows_read=0, rows_written=0, rows_dropped=0, rows_removed=removed)
