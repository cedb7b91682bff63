"""The phase summary: one narrow row per phase a run executed, its figures as plain columns.

The report's per-phase metrics (failure rate, duration against expected, in-phase retries) ask
about phases, not runs: every phase of every run in the period, its status, its expected
duration, its retries and how long it took. Answering them from the drive table parses ten
phase documents per run and computes seconds between text timestamps (a week of a 500-pipeline
fleet: about 950k phase documents, 9 s on SQLite). This table keeps, per run and phase that did
something (COMPLETED or FAILED, or retried), those figures as columns -- the duration as whole
microseconds -- so the report groups narrow rows read through an index.

Like the window summary (:mod:`drivetrain.sql.drive_windows`) it is derived from the drive
table and written in the drive row's own transaction: on SQLite by triggers (a row changed by
hand is followed), on the other engines by the store after each insert, update and bulk insert.
Layout version 4 added it; an older drive table gets it built from its rows on first use
(:func:`rebuild`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from drivetrain.phase_names import PHASE_NAMES, VARIANT_COLUMN
from drivetrain.sql.names import TableRef

if TYPE_CHECKING:
    from drivetrain.sql.dialect import SqlDialect
    from drivetrain.sql.session import SqlSession

#: The summary's columns: (column, logical type, NOT NULL).
PHASE_COLUMNS: list[tuple[str, str, bool]] = [
    ("pipeline_name", "text", True),
    ("pipeline_start", "timestamp", True),  # the run's pipeline_start_timestamp (the report's period)
    ("pipeline_id", "text", True),
    ("phase", "text", True),
    ("status", "text", False),              # the phase's status (COMPLETED, FAILED; another if retried)
    ("expected", "text", False),            # its expected_run_duration, as written ("5m")
    ("retries", "integer", False),          # its retry_number (in-phase retries of transient errors)
    ("micros", "bigint", False),            # how long it ran, in microseconds, when it ran with both ends recorded
]
#: What a phase must have done to get a row: the report counts nothing of the others.
KEPT = "status IN ('COMPLETED', 'FAILED') OR retries > 0"
#: What the report reads of a phase document: (alias, path, as a number); the monitoring
#: queries read the drive table's phase documents with these too.
FIELDS = (("status", ("status",), False), ("started", ("start_timestamp",), False),
          ("ended", ("end_timestamp",), False), ("expected", ("expected_run_duration",), False),
          ("retries", ("retry_number",), True))
#: A phase execution with both ends recorded (drivetrain.monitoring.queries.Queries.TIMED).
TIMED = "status IN ('COMPLETED', 'FAILED') AND started IS NOT NULL AND ended IS NOT NULL"
_RUN = ("pipeline_name", "pipeline_start_timestamp", "pipeline_id")


def summary_ref(table: TableRef) -> TableRef:
    """The phase summary of drive table ``table``: ``<table>__phases`` beside it."""
    return TableRef(name=f"{table.name}__phases", schema=table.schema, database=table.database)


def create_sql(dialect: SqlDialect, summary: TableRef) -> str:
    columns = ", ".join(dialect.column_sql(*c) for c in PHASE_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {dialect.qualified(summary)} ({columns})"


def _fill_sql(dialect: SqlDialect, summary: str, runs: str) -> str:
    """``INSERT`` the summary rows of the runs ``runs`` selects (a query with the columns
    pipeline_name, pipeline_start_timestamp, pipeline_id and the phase columns).

    Each run is crossed with the phase names and its phase document picked by name, so the
    drive rows are read once; a dialect that reads several fields from one parse
    (``json_fields``: SQLite, DuckDB) parses each document once."""
    fence = getattr(dialect, "json_fields_fence", "")
    pick = " ".join(f"WHEN '{name}' THEN r.{VARIANT_COLUMN[name]}" for name in PHASE_NAMES)
    listed = " UNION ALL ".join(f"SELECT '{name}' AS phase" for name in PHASE_NAMES)
    keep = ", ".join(_RUN)
    docs = (f"SELECT {', '.join(f'r.{c}' for c in _RUN)}, n.phase, CASE n.phase {pick} END AS doc "
            f"FROM ({runs}) r CROSS JOIN ({listed}) n{fence}")
    many = getattr(dialect, "json_fields", None)
    if many is None:
        reads = ", ".join(f"{(dialect.json_number if number else dialect.json_text)('doc', *path)} AS {alias}"
                          for alias, path, number in FIELDS)
        fields = f"SELECT {keep}, phase, {reads} FROM ({docs}) docs"
    else:
        item = dialect.json_item  # type: ignore[attr-defined]
        reads = ", ".join(f"{item('doc_fields', i, number=number)} AS {alias}" for i, (alias, _, number) in enumerate(FIELDS))
        parsed = f"SELECT {keep}, phase, {many('doc', [path for _, path, _ in FIELDS])} AS doc_fields FROM ({docs}) docs{fence}"
        fields = f"SELECT {keep}, phase, {reads} FROM ({parsed}) parsed"
    seconds = dialect.seconds_between("CAST(started AS TIMESTAMP)", "CAST(ended AS TIMESTAMP)")
    micros = f"CASE WHEN {TIMED} THEN CAST(ROUND({seconds} * 1000000) AS {dialect.types['bigint']}) END"
    names = ", ".join(name for name, _, _ in PHASE_COLUMNS)
    return (f"INSERT INTO {summary} ({names}) SELECT pipeline_name, pipeline_start_timestamp, pipeline_id, phase, status, "
            f"expected, CAST(retries AS {dialect.types['integer']}), {micros} FROM ({fields}{fence}) phase_fields WHERE {KEPT}")


def _runs(dialect: SqlDialect, drive: TableRef, where: str) -> str:
    columns = ", ".join([*_RUN, *(VARIANT_COLUMN[name] for name in PHASE_NAMES)])
    return f"SELECT {columns} FROM {dialect.qualified(drive)} WHERE {where}"


def refresh(s: SqlSession, dialect: SqlDialect, drive: TableRef, name: str, pipeline_id: str) -> None:
    """One run's summary rows again from its drive row(s) (inside the caller's transaction)."""
    summary = dialect.qualified(summary_ref(drive))
    key = [name, pipeline_id]
    s.execute(f"DELETE FROM {summary} WHERE pipeline_name = ? AND pipeline_id = ?", key)
    s.execute(_fill_sql(dialect, summary, _runs(dialect, drive, "pipeline_name = ? AND pipeline_id = ?")), key)


def refresh_spans(s: SqlSession, dialect: SqlDialect, drive: TableRef, spans: dict[str, tuple[datetime, datetime]]) -> None:
    """The summary rows of every run of each pipeline of ``spans`` that started in ``[first,
    last]`` again (a bulk insert's runs)."""
    summary = dialect.qualified(summary_ref(drive))
    where = "pipeline_name = ? AND pipeline_start_timestamp >= ? AND pipeline_start_timestamp <= ?"
    for name, (first, last) in spans.items():
        key = [name, first, last]
        s.execute(f"DELETE FROM {summary} WHERE pipeline_name = ? AND pipeline_start >= ? AND pipeline_start <= ?", key)
        s.execute(_fill_sql(dialect, summary, _runs(dialect, drive, where)), key)


def rebuild(s: SqlSession, dialect: SqlDialect, drive: TableRef) -> None:
    """The whole phase summary again from the drive table (a migration, or rows moved in)."""
    summary = dialect.qualified(summary_ref(drive))
    s.execute(f"DELETE FROM {summary}")
    s.execute(_fill_sql(dialect, summary, _runs(dialect, drive, "1 = 1")))


#: The meta row a bulk insert holds inside its own transaction: it writes the phase rows of
#: its runs itself (:func:`rows_of`, no JSON to parse), so the insert trigger stands aside.
BULK_KEY = "bulk_insert"


def trigger_sql(dialect: SqlDialect, drive: TableRef, meta: str, meta_key: str) -> list[str]:
    """Triggers keeping the phase summary for every write to the drive table, one by hand
    included (SQLite). An update that changes no phase (a heartbeat) does not fire them; an
    insert inside a bulk insert's transaction (``meta`` holding :data:`BULK_KEY`) neither."""
    summary, table = dialect.qualified(summary_ref(drive)), dialect.qualified(drive)

    def delete(row: str) -> str:
        return (f"DELETE FROM {summary} WHERE pipeline_name = {row}.pipeline_name "
                f"AND pipeline_start = {row}.pipeline_start_timestamp AND pipeline_id = {row}.pipeline_id;")

    columns = [*_RUN, *(VARIANT_COLUMN[name] for name in PHASE_NAMES)]
    fill = f"{_fill_sql(dialect, summary, 'SELECT ' + ', '.join(f'NEW.{c} AS {c}' for c in columns))};"
    name = drive.name + "__phases"
    return [
        f"CREATE TRIGGER IF NOT EXISTS {dialect.owned(name + '_insert')} AFTER INSERT ON {table} "
        f"WHEN NOT EXISTS (SELECT 1 FROM {meta} WHERE {meta_key} = '{BULK_KEY}') BEGIN {fill} END",
        f"CREATE TRIGGER IF NOT EXISTS {dialect.owned(name + '_update')} AFTER UPDATE OF {', '.join(columns)} "
        f"ON {table} BEGIN {delete('OLD')} {fill} END",
        f"CREATE TRIGGER IF NOT EXISTS {dialect.owned(name + '_delete')} AFTER DELETE ON {table} BEGIN {delete('OLD')} END",
    ]


def spans_of(records: Sequence[Any]) -> dict[str, tuple[datetime, datetime]]:
    """Per pipeline, the first and last run start among ``records`` (RunRecords)."""
    out: dict[str, tuple[datetime, datetime]] = {}
    for r in records:
        start = r.pipeline_start_timestamp
        first, last = out.get(r.pipeline_name, (start, start))
        out[r.pipeline_name] = (min(first, start), max(last, start))
    return out


def expected(records: Sequence[Any]) -> list[tuple[Any, ...]]:
    """What the phase summary should hold for ``records`` (RunRecords), computed in Python:
    the definition the tests compare the table with (sorted)."""
    return sorted(rows_of(records), key=repr)


def rows_of(records: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The phase summary's rows of ``records`` (RunRecords), in :data:`PHASE_COLUMNS`' order,
    computed in Python as the SQL computes them from the stored documents (a bulk insert's)."""
    out = []
    for r in records:
        for name in PHASE_NAMES:
            p = r.phases.get(name)
            if p is None:
                continue
            status = p.status.value if p.status is not None else None
            retries = p.retry_number
            if status not in ("COMPLETED", "FAILED") and not (retries or 0) > 0:
                continue
            timed = status in ("COMPLETED", "FAILED") and p.start_timestamp is not None and p.end_timestamp is not None
            micros = round((p.end_timestamp - p.start_timestamp).total_seconds() * 1_000_000) if timed else None
            out.append((r.pipeline_name, r.pipeline_start_timestamp, r.pipeline_id, name, status,
                        p.expected_run_duration, retries, micros))
    return out
