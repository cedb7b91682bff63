"""The measured paths. Each runs in a child process of its own (see :mod:`benchmarks.child`).

A path is a function ``(job) -> {"rows": n, ...}`` that does one thing to one window and
returns how many rows it moved. The child times the call and reports its peak RSS; imports
and interpreter start-up are outside the timed region, the connection to the server inside it.

``job`` is a dict: ``source`` (connection settings of the data set, see
:meth:`benchmarks.dataset.DataSet.to_json`), ``start`` / ``end`` (ISO bounds), ``work``
(a folder kept between the repetitions of one window size) and ``scratch`` (a fresh folder
for this run only).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Job = dict[str, Any]
PATHS: dict[str, Callable[[Job], dict[str, Any]]] = {}
#: The narrow data set's columns (a job names its own: ``job["source"]["columns"]``).
COLUMNS = ("id", "created_at", "patient_code", "status", "score", "notes", "attrs")


def path(name: str) -> Callable[[Callable[[Job], dict[str, Any]]], Callable[[Job], dict[str, Any]]]:
    """Register a measured path under ``name``."""

    def register(func: Callable[[Job], dict[str, Any]]) -> Callable[[Job], dict[str, Any]]:
        PATHS[name] = func
        return func

    return register


def bounds(job: Job) -> tuple[datetime, datetime]:
    """The job's window as aware datetimes."""
    return datetime.fromisoformat(job["start"]), datetime.fromisoformat(job["end"])


def select_sql(job: Job, *, ordered: bool = True) -> str:
    """The window's extract: with ``ordered``, as drivetrain's pymysql reader sends it (same
    columns, predicate and order); without, the cheapest statement the server can run for the
    window (no order, so it may scan the table instead of walking the query field's index)."""
    src = job["source"]
    start, end = (b.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for b in bounds(job))
    columns = ", ".join(f"`{c}`" for c in src.get("columns") or COLUMNS)
    order = " ORDER BY `created_at`, `id`" if ordered else ""
    return (
        f"SELECT {columns} FROM `{src['database']}`.`{src['table']}` WHERE `created_at` >= "
        f"'{start}' AND `created_at` < '{end}'{order}"
    )


def mysql_url(job: Job, scheme: str = "mysql") -> str:
    src = job["source"]
    return f"{scheme}://{src['user']}:{src['password']}@{src['host']}:{src['port']}/{src['database']}"


# -- the limit, and raw readers ------------------------------------------------------------


def limit_command(job: Job) -> tuple[list[str], dict[str, str]]:
    """``mariadb --batch --quick`` printing the window to stdout (the parent sends it to
    /dev/null), unordered; the password travels in the environment, not on the command line."""
    src = job["source"]
    args = [
        "mariadb",
        "--no-defaults",
        "--batch",
        "--quick",
        "--skip-ssl",
        f"--host={src['host']}",
        f"--port={src['port']}",
        f"--user={src['user']}",
        src["database"],
        "-e",
        select_sql(job, ordered=False),
    ]
    return args, {**os.environ, "MYSQL_PWD": src["password"]}


@path("connectorx_fetch")
def connectorx_fetch(job: Job) -> dict[str, Any]:
    """connectorx ``arrow_stream``, one unordered statement: batches read and dropped (no load)."""
    import connectorx as cx

    rows = 0
    for batch in cx.read_sql(
        mysql_url(job), select_sql(job, ordered=False), return_type="arrow_stream", batch_size=10_000
    ):
        rows += batch.num_rows
    return {"rows": rows}


@path("pymysql_fetch")
def pymysql_fetch(job: Job) -> dict[str, Any]:
    """pymysql streaming cursor, values left as text, rows dropped: pymysql's own ceiling."""
    import pymysql
    import pymysql.cursors

    src = job["source"]
    conv = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}
    conn = pymysql.connect(
        host=src["host"], port=src["port"], user=src["user"], password=src["password"],
        database=src["database"], charset="utf8mb4", conv=conv,
    )
    rows = 0
    try:
        with conn.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(select_sql(job))
            while chunk := cursor.fetchmany(10_000):
                rows += len(chunk)
    finally:
        conn.close()
    return {"rows": rows}


@path("connectorx_duckdb_load")
def connectorx_duckdb_load(job: Job) -> dict[str, Any]:
    """The extract+load limit: connectorx ``arrow_stream`` (one unordered statement) inserted
    into a DuckDB table of a fresh file as it arrives; no validation, lineage or dedup."""
    import connectorx as cx
    import duckdb

    scratch = Path(job["scratch"])
    scratch.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(str(scratch / "load.duckdb"))
    try:
        for key, value in (job.get("duckdb") or {}).items():
            conn.execute(f"SET {key} = ?", [value])
        conn.execute("SET preserve_insertion_order = false")
        reader = cx.read_sql(mysql_url(job), select_sql(job, ordered=False), return_type="arrow_stream",
                             batch_size=int(job.get("batch_size") or 50_000))
        conn.register("incoming", reader)
        conn.execute("CREATE TABLE loaded AS SELECT * FROM incoming")
        (rows,) = conn.execute("SELECT count(*) FROM loaded").fetchone() or (0,)
    finally:
        conn.close()
    return {"rows": rows}


# -- drivetrain ----------------------------------------------------------------------------


def pipeline_config(job: Job, *, reader: str, warehouse: Path) -> dict[str, Any]:
    """A drivetrain config: the data set's table -> DuckDB stage -> DuckDB target."""
    start, end = bounds(job)
    hours = int((end - start).total_seconds() // 3600)
    duckdb_settings = dict(job.get("duckdb") or {})
    return {
        "pipeline_metadata": {
            "pipeline_name": "bench",
            "owner_name": "Benchmark",
            "owner_email": "bench@example.com",
        },
        "dag_schedule": {"frequency": "daily", "timezone": "UTC", "start_date": "2025-01-01"},
        "query_window": {"type": "custom", "duration": f"{hours}h"},
        "source_system": {
            "type": "mysql",
            "host": job["source"]["host"],
            "port": job["source"]["port"],
            "database": job["source"]["database"],
            "table": job["source"]["table"],
            "query_field": "created_at",
            "batch_size": int(job.get("batch_size") or 50_000),
            "reader": reader,
            "credentials_ref": "bench_mysql",
        },
        "stage_system": {"type": "duckdb", "path": str(warehouse), "table": "stg_events",
                         **duckdb_settings},
        "target_system": {
            "type": "duckdb",
            "path": str(warehouse),
            "table": "events",
            "dedup_keys": ["id"],
            **duckdb_settings,
        },
        "phases": {
            # nothing in the data set is old enough: the phase runs, finds no day to archive
            "stage_cleaning": {"archive_location": str(warehouse.parent / "archive"),
                               "delete_after_days": 36_500},
        },
    }


def load_pipeline(job: Job, *, reader: str, folder: Path, target: dict[str, Any] | None = None) -> Any:
    """Write the config to ``folder`` and load it as a drivetrain Pipeline (``target``: keys to
    set in its target_system)."""
    from drivetrain import Pipeline

    folder.mkdir(parents=True, exist_ok=True)
    config = pipeline_config(job, reader=reader, warehouse=folder / "warehouse.duckdb")
    config["target_system"].update(target or {})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    os.environ["BENCH_MYSQL_USER"] = job["source"]["user"]
    os.environ["BENCH_MYSQL_PASSWORD"] = job["source"]["password"]
    return Pipeline.load(folder)


def warm_up(job: Job) -> None:
    """Pay drivetrain's once-per-process costs before the clock starts, as imports are: plugin
    discovery, the config schema's first validation, building connector and phase objects
    (about 50 ms). A runner process pays them once for all the phases of all its windows."""
    pipeline = load_pipeline(job, reader="pymysql", folder=Path(job["scratch"]) / "warm-up")
    with pipeline:  # nothing connects: connectors open their connections on first use
        for name in ("source_to_stage_transfer", "stage_to_target_transfer", "source_count"):
            pipeline.phase(name)
        pipeline.source(), pipeline.stage(), pipeline.target(), pipeline.drive_store()


def phase_context(pipeline: Any, job: Job) -> Any:
    """A context to run single phases without the runner (no drive table, no lease)."""
    from drivetrain.phases.base import PhaseContext
    from drivetrain.record import RunRecord
    from drivetrain.window import Window

    start, end = bounds(job)
    window = Window(start, end)
    record = RunRecord(
        pipeline_id=f"bench_{window.key}",
        pipeline_name=pipeline.name,
        pipeline_start_timestamp=datetime.now(UTC),
        query_window_start_timestamp=start,
        query_window_end_timestamp=end,
        target_date=window.target_date,
        query_window_duration=f"{int((end - start).total_seconds() // 3600)}h",
    )
    log = logging.LoggerAdapter(logging.getLogger("bench"), {})
    return PhaseContext(pipeline=pipeline, record=record, window=window, log=log,
                        fence=lambda: None)


def _phase(job: Job, name: str, *, reader: str = "connectorx", folder: str = "dt") -> Any:
    pipeline = load_pipeline(job, reader=reader, folder=Path(job["work"]) / folder)
    with pipeline, pipeline.session():  # as the runner runs a phase: one connection for all of it
        return pipeline.phase(name).run(phase_context(pipeline, job))


@path("drivetrain_s2s_fast")
def drivetrain_s2s_fast(job: Job) -> dict[str, Any]:
    """SourceToStageTransfer with the connectorx reader: extract, validate, load, swap in."""
    result = _phase(job, "source_to_stage_transfer", reader="connectorx")
    return {"rows": result.rows_written, "rejected": result.rows_rejected}


@path("drivetrain_s2s_pymysql")
def drivetrain_s2s_pymysql(job: Job) -> dict[str, Any]:
    """SourceToStageTransfer with the pymysql reader, into a DuckDB file of its own."""
    result = _phase(job, "source_to_stage_transfer", reader="pymysql", folder="dt_pymysql")
    return {"rows": result.rows_written, "rejected": result.rows_rejected}


@path("drivetrain_push_down")
def drivetrain_push_down(job: Job) -> dict[str, Any]:
    """StageToTargetTransfer: delete the window + INSERT ... SELECT ... QUALIFY, one transaction."""
    result = _phase(job, "stage_to_target_transfer")
    return {"rows": result.rows_written}


@path("drivetrain_counts")
def drivetrain_counts(job: Job) -> dict[str, Any]:
    """The three count phases: source (MySQL COUNT), stage and target (DuckDB count)."""
    pipeline = load_pipeline(job, reader="connectorx", folder=Path(job["work"]) / "dt")
    with pipeline:
        ctx = phase_context(pipeline, job)
        counts = []
        for name in ("source_count", "stage_count", "target_count"):
            with pipeline.session():
                counts.append(pipeline.phase(name).run(ctx).count)
    return {"rows": counts[0], "counts": counts}


@path("drivetrain_pipeline")
def drivetrain_pipeline(job: Job) -> dict[str, Any]:
    """A whole run: every phase, drive-table rows, lease, heartbeat, counts, audit, publish, cleaning."""
    return _whole_run(job, "dt_pipeline")


@path("drivetrain_pipeline_direct")
def drivetrain_pipeline_direct(job: Job) -> dict[str, Any]:
    """The same whole run without the publish gate (``target_system.publish: direct``)."""
    return _whole_run(job, "dt_pipeline_direct", {"publish": "direct"})


@path("drivetrain_pipeline_rows_pending")
def drivetrain_pipeline_rows_pending(job: Job) -> dict[str, Any]:
    """The whole run with the gate as before pending row numbers: the transfer copies the kept
    rows into ``<target>__pending`` and publish copies them a second time, into the target."""
    from drivetrain.connectors.duckdb.sql import DuckDBDialect

    DuckDBDialect.pending_row_numbers = False  # this child process only
    return _whole_run(job, "dt_pipeline_rows_pending")


@path("drivetrain_pipeline_1gb")
def drivetrain_pipeline_1gb(job: Job) -> dict[str, Any]:
    """The whole run given ``memory_limit: 1GB`` in its DuckDB sections, as a user with the memory
    would: a large window's insert then runs on every thread (the cost of the bounded default)."""
    return _whole_run({**job, "duckdb": {**(job.get("duckdb") or {}), "memory_limit": "1GB"}}, "dt_pipeline_1gb")


@path("drivetrain_pipeline_pymysql")
def drivetrain_pipeline_pymysql(job: Job) -> dict[str, Any]:
    """The whole run with the pymysql reader (issue 22: at most 0.9x pymysql's bare fetch)."""
    return _whole_run(job, "dt_pipeline_pymysql", reader="pymysql")


def _whole_run(job: Job, folder: str, target: dict[str, Any] | None = None, *,
               reader: str = "connectorx") -> dict[str, Any]:
    from drivetrain.window import Window

    pipeline = load_pipeline(job, reader=reader, folder=Path(job["work"]) / folder, target=target)
    with pipeline:
        record = pipeline.runner().run(Window(*bounds(job)))
    if record.phase_failed:
        raise RuntimeError(f"pipeline run failed in {record.phase_failed}")
    details = record.phases["stage_to_target_transfer"].phase_specific_details
    phase_seconds = {
        name: state.actual_run_duration for name, state in record.phases.items()
    }
    return {"rows": details.get("rows_written", 0), "status": record.pipeline_status.value,
            "phase_durations": phase_seconds}


# -- hand-written DuckDB SQL on the same stage data ---------------------------------------


def _duckdb_sql(job: Job, statements: Callable[[str], list[str]], *, bounded: bool = False) -> dict[str, Any]:
    """Run ``statements`` in one transaction on the stage drivetrain_s2s_fast loaded, with the
    job's DuckDB settings (none: DuckDB's own defaults), or with ``bounded`` drivetrain's."""
    import duckdb

    start, end = bounds(job)
    window = "created_at >= $start AND created_at < $end"
    path = Path(job["work"]) / "dt" / "warehouse.duckdb"
    settings = dict(job.get("duckdb") or {})
    if bounded and not settings:
        from drivetrain.connectors.duckdb.connection import default_settings

        settings = default_settings(path)
    conn = duckdb.connect(str(path))
    try:
        conn.execute("SET TimeZone = 'UTC'")
        for key, value in settings.items():  # drivetrain's settings
            conn.execute(f"SET {key} = ?", [value])
        conn.execute("CREATE TABLE IF NOT EXISTS hand_target AS SELECT * FROM stg_events LIMIT 0")
        rows = 0
        conn.execute("BEGIN TRANSACTION")
        for sql in statements(window):
            result = conn.execute(sql, {"start": start, "end": end}).fetchone()
            rows = int(result[0]) if result else rows
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {"rows": rows}


@path("duckdb_delete_insert_qualify")
def duckdb_delete_insert_qualify(job: Job) -> dict[str, Any]:
    """Hand-written: delete the window, INSERT ... SELECT with QUALIFY dedup, one transaction."""
    return _duckdb_sql(job, lambda window: [
        f"DELETE FROM hand_target WHERE {window}",
        f"INSERT INTO hand_target SELECT * FROM stg_events WHERE {window} QUALIFY "
        "row_number() OVER (PARTITION BY id ORDER BY created_at DESC, _drivetrain_row DESC) = 1",
    ])


_QUALIFY = "QUALIFY row_number() OVER (PARTITION BY id ORDER BY created_at DESC, _drivetrain_row DESC) = 1"


@path("duckdb_delete_insert_qualify_bounded")
def duckdb_delete_insert_qualify_bounded(job: Job) -> dict[str, Any]:
    """The same, under drivetrain's default memory_limit and temp_directory."""
    return _duckdb_sql(job, lambda window: [
        f"DELETE FROM hand_target WHERE {window}",
        f"INSERT INTO hand_target SELECT * FROM stg_events WHERE {window} {_QUALIFY}",
    ], bounded=True)


@path("duckdb_keys_first_bounded")
def duckdb_keys_first_bounded(job: Job) -> dict[str, Any]:
    """Dedup that sorts only the keys: pick the kept rows' _drivetrain_row from (id, created_at,
    _drivetrain_row), then insert the stage rows that carry one; drivetrain's memory settings."""
    return _duckdb_sql(job, lambda window: [
        f"DELETE FROM hand_target WHERE {window}",
        f"INSERT INTO hand_target SELECT * FROM stg_events WHERE {window} AND _drivetrain_row IN "
        f"(SELECT _drivetrain_row FROM stg_events WHERE {window} {_QUALIFY})",
    ], bounded=True)


def _merge(job: Job, update: str) -> dict[str, Any]:
    import duckdb

    conn = duckdb.connect(str(Path(job["work"]) / "dt" / "warehouse.duckdb"))
    try:
        names = [r[0] for r in conn.execute("DESCRIBE stg_events").fetchall()]
        conn.execute("CREATE TABLE IF NOT EXISTS merge_target AS SELECT * FROM stg_events LIMIT 0")
    finally:
        conn.close()
    sets = "*" if update == "star" else ", ".join(f'"{n}" = s."{n}"' for n in names if n != "id")
    return _duckdb_sql(job, lambda window: [
        f"MERGE INTO merge_target AS t USING (SELECT * FROM stg_events WHERE {window}) AS s "
        f"ON t.id = s.id WHEN MATCHED THEN UPDATE SET {sets} WHEN NOT MATCHED THEN INSERT *",
        f"SELECT count(*) FROM merge_target WHERE {window}",
    ])


@path("duckdb_merge_named")
def duckdb_merge_named(job: Job) -> dict[str, Any]:
    """Hand-written MERGE that names the columns it sets."""
    return _merge(job, "named")


@path("duckdb_merge_star")
def duckdb_merge_star(job: Job) -> dict[str, Any]:
    """Hand-written MERGE ... UPDATE SET * (the slow form)."""
    return _merge(job, "star")


# -- dlt -----------------------------------------------------------------------------------


def _dlt(job: Job, backend: str, *, merge: bool = False) -> dict[str, Any]:
    import dlt
    from dlt.sources.sql_database import sql_table

    scratch = Path(job["scratch"])
    os.environ["DLT_DATA_DIR"] = str(scratch / "dlt_data")
    start, end = bounds(job)
    naive = [b.astimezone(UTC).replace(tzinfo=None) for b in (start, end)]
    kwargs: dict[str, Any] = {}
    if backend == "connectorx":  # connectorx takes its own URL, without SQLAlchemy's driver
        kwargs["backend_kwargs"] = {"conn": mysql_url(job, "mysql")}
    table = sql_table(
        credentials=mysql_url(job, "mysql+pymysql"),
        table=job["source"]["table"],
        backend=backend,
        chunk_size=int(job.get("batch_size") or 50_000),
        incremental=dlt.sources.incremental(
            "created_at", initial_value=naive[0], end_value=naive[1]
        ),
        **kwargs,
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(scratch / "pipelines"),
        destination=dlt.destinations.duckdb(str(scratch / "dlt.duckdb")),
        dataset_name="bench",
    )
    if merge:  # drivetrain's semantics: one row per key, the newest wins
        table.apply_hints(write_disposition="merge", primary_key="id")
    info = pipeline.run(table)
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(job["source"]["table"], 0)
    info.raise_on_failed_jobs()
    return {"rows": rows}


@path("dlt_connectorx")
def dlt_connectorx(job: Job) -> dict[str, Any]:
    """dlt sql_database, connectorx backend, into DuckDB."""
    return _dlt(job, "connectorx")


@path("dlt_connectorx_merge")
def dlt_connectorx_merge(job: Job) -> dict[str, Any]:
    """dlt sql_database, connectorx backend, merge on the key (drivetrain's semantics)."""
    return _dlt(job, "connectorx", merge=True)


@path("dlt_pyarrow")
def dlt_pyarrow(job: Job) -> dict[str, Any]:
    """dlt sql_database, pyarrow backend (pymysql under SQLAlchemy), into DuckDB."""
    return _dlt(job, "pyarrow")


@path("dlt_pyarrow_merge")
def dlt_pyarrow_merge(job: Job) -> dict[str, Any]:
    """dlt sql_database, pyarrow backend, merge on the key: issue 22's own same-semantics peer."""
    return _dlt(job, "pyarrow", merge=True)


@path("dlt_default")
def dlt_default(job: Job) -> dict[str, Any]:
    """dlt sql_database, default backend (SQLAlchemy rows as Python dicts), into DuckDB."""
    return _dlt(job, "sqlalchemy")


def run_limit(job: Job) -> subprocess.Popen[bytes]:
    """Start the limit's process with stdout to /dev/null (the parent waits for it)."""
    args, env = limit_command(job)
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
