"""PostgreSQL -> DuckDB and files -> PostgreSQL, next to ``psql \\copy`` as the limit of each.

Usage (from the repository root)::

    python -m benchmarks.postgres                    # 2M narrow rows over 10 days; 1- and 10-day windows
    python -m benchmarks.postgres --smoke            # seconds: checks it all runs
    python -m benchmarks.run --postgres [ARGS...]    # the same, through the main runner
    python -m benchmarks.postgres window-delete      # count and DELETE of one window of 30, index or not
    python -m benchmarks.postgres drive-writes       # one run's drive-table statements in a fleet's table, indexes or not

A throwaway PostgreSQL server (:mod:`tests.servers.postgres`) holds one narrow table, ``rows``
rows spread evenly over ``days`` days, each value a function of the row number::

    id bigint PRIMARY KEY, created_at timestamptz NOT NULL (indexed), status text,
    score double precision (NULL on every 11th row), amount numeric(12, 2)

Each path reads one window ``[start, end)`` in a child process of its own (this module,
``child`` sub-command), repetitions interleaved as in :mod:`benchmarks.run`:

- ``limit``: ``psql -c "\\copy (SELECT ... window ...) to '/dev/null'"``, the server's text COPY
  with nothing done to it: no client can move the window faster.
- ``adbc_fetch``: ADBC's binary COPY into Arrow batches, dropped: the reader's own ceiling (the
  statement and driver options the source uses: ``numeric`` as the server's text, the driver's
  built-in type table, see
  :mod:`drivetrain.connectors.postgres.readers`; other ways of reading are compared in
  :mod:`benchmarks.postgres_readers`).
- ``drivetrain_s2s_adbc`` / ``drivetrain_s2s_psycopg``: the source-to-stage phase (extract,
  validate, load into a DuckDB stage, swap in) with each reader, as the first run of a new
  pipeline runs it: the clock covers holding the warehouse for the phase (creating the DuckDB
  file and the drive file), the phase (connecting to PostgreSQL, claiming and creating the
  stage table, the stream, the commit) and letting go of the file (DuckDB's checkpoint).
  Python start-up, imports and building the pipeline's objects are before the clock.
- ``drivetrain_s2s_adbc_again``: the same phase as every later run meets it: the warehouse
  file, its tables and claims and the drive file exist (a first run loaded the window's first
  second before the clock, in another pipeline object, and let go of the file).
- ``load_limit``: ``psql -c "\\copy ... from 'window.csv' csv"`` into an empty table: the
  server's own COPY of the window's rows, the limit of loading into PostgreSQL.
- ``drivetrain_files_to_pg``: the source-to-stage phase from the window's rows in a Parquet file
  (files source) into a PostgreSQL stage (its bulk load: ADBC binary COPY in one transaction),
  starting from an empty schema; its ratio is to ``load_limit``.

The report (``postgres-latest.json`` / ``.md`` in ``benchmarks/results``) gives seconds, rows a
second and peak RSS for each, and each drivetrain path's ratio to the limit (target <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

START = datetime(2025, 1, 1, tzinfo=UTC)
TABLE = "bench_narrow"
COLUMNS = "id, created_at, status, score, amount"
PATHS = ("limit", "adbc_fetch", "drivetrain_s2s_adbc", "drivetrain_s2s_adbc_again", "drivetrain_s2s_psycopg", "load_limit",
         "drivetrain_files_to_pg")
#: The limit each path is compared with (default ``limit``).
LIMIT_OF = {"load_limit": "load_limit", "drivetrain_files_to_pg": "load_limit"}
LOAD_SCHEMA = "bench_load"
#: The issue's target: a drivetrain path takes at most this many times the limit's time.
TARGET_RATIO = 1.5


def build(server: Any, rows: int, days: int) -> None:
    step = days * 86_400_000_000 // rows  # microseconds between rows
    with server.admin() as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, created_at timestamptz NOT NULL,"
                     " status text NOT NULL, score double precision, amount numeric(12, 2))")
        conn.execute(
            f"INSERT INTO {TABLE} SELECT g, timestamptz '2025-01-01 00:00:00+00'"
            f" + make_interval(secs => (g - 1)::bigint * {step} / 1000000.0),"
            " (ARRAY['new', 'running', 'done', 'failed'])[1 + g % 4],"
            " CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000) / 7.0 END, (g % 100000) / 100.0"
            f" FROM generate_series(1, {rows}) g"
        )
        conn.execute(f"CREATE INDEX ON {TABLE} (created_at)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def _window_sql(job: dict[str, Any]) -> str:
    return (f"SELECT {COLUMNS} FROM {TABLE} WHERE created_at >= '{job['start']}'"
            f" AND created_at < '{job['end']}'")


def export(server: Any, job: dict[str, Any], folder: Path) -> None:
    """The window's rows as Parquet (the files path reads it) and CSV (psql loads it)."""
    import adbc_driver_postgresql.dbapi as adbc
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    with adbc.connect(server.url(admin=True)) as conn, conn.cursor() as cursor:
        cursor.execute(_window_sql(job))
        table = cursor.fetch_arrow_table()
    import pyarrow as pa

    amount = pa.chunked_array([c.storage for c in table.column("amount").chunks], pa.string()).cast(pa.decimal128(12, 2))
    table = table.set_column(table.schema.get_field_index("amount"), "amount", amount)  # numeric arrives as text
    pq.write_table(table, folder / "window.parquet")
    pcsv.write_csv(table, folder / "window.csv", pcsv.WriteOptions(include_header=False))
    job["parquet"], job["csv"] = str(folder / "window.parquet"), str(folder / "window.csv")


def empty_load_schema(server: Any) -> None:
    """A fresh schema for the load paths, with ``load_limit``'s table, owned by the test role."""
    with server.admin() as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {LOAD_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {LOAD_SCHEMA} AUTHORIZATION {server.user}")
        conn.execute(f"CREATE TABLE {LOAD_SCHEMA}.copied (id bigint, created_at timestamptz, status text,"
                     " score double precision, amount numeric(12, 2))")
        conn.execute(f"ALTER TABLE {LOAD_SCHEMA}.copied OWNER TO {server.user}")


def _files_config(job: dict[str, Any], folder: Path) -> dict[str, Any]:
    from benchmarks.paths import pipeline_config

    config = pipeline_config(job, reader="pymysql", warehouse=folder / "warehouse.duckdb")
    source = job["source"]
    config["source_system"] = {"type": "files", "path": job["parquet"], "query_field": "created_at"}
    for name, table in (("stage_system", "stg"), ("target_system", "events")):
        config[name] = {**{k: v for k, v in config[name].items() if k not in ("path", "type")},
                        "type": "postgres", "host": source["host"], "port": source["port"], "database": source["database"],
                        "schema": LOAD_SCHEMA, "table": table, "credentials_ref": "bench_pg"}
    return config


def _config(job: dict[str, Any], reader: str, folder: Path) -> dict[str, Any]:
    from benchmarks.paths import pipeline_config

    config = pipeline_config(job, reader="pymysql", warehouse=folder / "warehouse.duckdb")
    source = job["source"]
    config["source_system"] = {
        "type": "postgres", "host": source["host"], "port": source["port"], "database": source["database"],
        "table": TABLE, "query_field": "created_at", "reader": reader,  # batch_size: the default
        "credentials_ref": "bench_pg",
    }
    return config


def child(name: str, job_file: str) -> int:
    """Run one path in this process; print ``RESULT {json}``."""
    import importlib

    for module in ("pyarrow", "pyarrow.compute", "duckdb", "psycopg", "adbc_driver_postgresql.dbapi",
                   "drivetrain", "drivetrain.phases", "drivetrain.connectors.postgres"):
        importlib.import_module(module)
    job = json.loads(Path(job_file).read_text())
    source = job["source"]
    if name == "adbc_fetch":
        import adbc_driver_postgresql.dbapi as adbc

        from drivetrain.connectors.postgres.readers import ADBC_DATABASE_OPTIONS

        began = time.perf_counter()
        rows = 0
        with adbc.connect(source["url"], db_kwargs=dict(ADBC_DATABASE_OPTIONS)) as conn, conn.cursor() as cursor:
            cursor.execute(_window_sql(job).replace("amount", "amount::text AS amount"))
            for batch in cursor.fetch_record_batch():
                rows += batch.num_rows
        outcome: dict[str, Any] = {"rows": rows}
    else:  # a drivetrain path: the files -> PostgreSQL load, or a PostgreSQL source read with `reader`
        from benchmarks.paths import phase_context
        from drivetrain import Pipeline

        folder = Path(job["scratch"]) / name
        folder.mkdir(parents=True, exist_ok=True)
        config = (_files_config(job, folder) if name == "drivetrain_files_to_pg"
                  else _config(job, name.split("_")[2], folder))
        (folder / "config.json").write_text(json.dumps(config))
        os.environ["BENCH_PG_USER"], os.environ["BENCH_PG_PASSWORD"] = source["user"], source["password"]
        pipeline = Pipeline.load(folder)
        with pipeline:  # plugins and connector classes loaded before the clock starts, on every path
            pipeline.phase("source_to_stage_transfer"), pipeline.source(), pipeline.stage()
            type(pipeline.drive_store())  # its module: the drive file itself is made in the clock
        if name.endswith("_again"):  # a first run loaded the window's first second
            first = {**job, "end": (datetime.fromisoformat(job["start"]) + timedelta(seconds=1)).isoformat()}
            pipeline = Pipeline.load(folder)
            with pipeline, pipeline.session():
                pipeline.phase("source_to_stage_transfer").run(phase_context(pipeline, first))
        pipeline = Pipeline.load(folder)
        began = time.perf_counter()
        with pipeline, pipeline.session():
            result = pipeline.phase("source_to_stage_transfer").run(phase_context(pipeline, job))
        outcome = {"rows": result.rows_written}
    outcome["seconds"] = time.perf_counter() - began
    print("RESULT " + json.dumps(outcome), flush=True)
    return 0


def measure(name: str, job_file: Path, job: dict[str, Any], bin_dir: Path, python: str, server: Any) -> dict[str, Any]:
    if name in LIMIT_OF:
        empty_load_schema(server)
    if name in ("limit", "load_limit"):
        env = {**os.environ, "PGPASSWORD": job["source"]["password"]}
        s = job["source"]
        copy = (f"\\copy ({_window_sql(job)}) to '/dev/null'" if name == "limit"
                else f"\\copy {LOAD_SCHEMA}.copied from '{job['csv']}' csv")
        args = [str(bin_dir / "psql"), "-h", s["host"], "-p", str(s["port"]), "-U", s["user"], "-d", s["database"],
                "-v", "ON_ERROR_STOP=1", "-c", copy]
        began = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        outcome: dict[str, Any] = {"seconds": time.perf_counter() - began, "rows": job["expected_rows"]}
    else:
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen([python, "-m", "benchmarks.postgres", "child", name, str(job_file)], cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=err, text=True)
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
            outcome = json.loads(lines[-1][len("RESULT "):]) if lines else {"error": err.read()[-500:]}
    shutil.rmtree(job["scratch"], ignore_errors=True)
    outcome["rss_mb"] = usage.ru_maxrss / 1024  # the child's (or psql's) peak, in kilobytes on Linux
    if os.waitstatus_to_exitcode(status) != 0 and "error" not in outcome:
        outcome["error"] = f"exit {os.waitstatus_to_exitcode(status)}"
    if outcome.get("rows") != job["expected_rows"] and "error" not in outcome:
        outcome["error"] = f"moved {outcome.get('rows')} rows, expected {job['expected_rows']}"
    return outcome


def run(args: argparse.Namespace, say: Any = print) -> dict[str, Any]:
    from tests.servers.postgres import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="dt-bench-pg-"))
    server = PostgresServer.start()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        say(f"building {args.rows} rows over {args.days} days")
        build(server, args.rows, args.days)
        source = {"host": server.host, "port": server.port, "database": server.database, "table": TABLE,
                  "user": server.user, "password": server.password, "url": server.url()}
        jobs = {}
        for days in (int(d) for d in args.windows.split(",")):
            end = START + timedelta(days=days)
            job = {"source": source, "start": START.isoformat(), "end": end.isoformat(),
                   "work": str(root / f"work_{days}d"), "scratch": str(root / f"scratch_{days}d"),
                   "expected_rows": args.rows * days // args.days}
            (root / f"data_{days}d").mkdir()
            export(server, job, root / f"data_{days}d")
            job_file = root / f"job_{days}d.json"
            job_file.write_text(json.dumps(job))
            jobs[f"{days}d"] = (job_file, job)
            runs[f"{days}d"] = {name: [] for name in PATHS}
        for rep in range(args.repetitions + (0 if args.smoke else 1)):  # the first round warms up
            for size, (job_file, job) in jobs.items():
                for name in PATHS:
                    outcome = measure(name, job_file, job, server.bin_dir, args.python, server)
                    if rep or args.smoke:
                        runs[size][name].append(outcome)
                        state = outcome.get("error") or f"{outcome['seconds']:.2f}s"
                        say(f"  {size} {name}: {state}")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary = _summary(runs)
    document = {"meta": {"rows": args.rows, "days": args.days, "repetitions": args.repetitions,
                         "load_after": round(os.getloadavg()[0], 2), "smoke": args.smoke,
                         "finished_at": datetime.now(UTC).isoformat(timespec="seconds")},
                "summary": summary, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(_markdown(summary, document["meta"]))
    return document


def _summary(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Median seconds of each path, rows a second, peak RSS, and the ratio to the limit."""
    out: dict[str, Any] = {}
    for size, paths in runs.items():
        out[size] = {}
        for name, done in paths.items():
            ok = sorted((r for r in done if "error" not in r), key=lambda r: r["seconds"])
            if not ok:
                out[size][name] = {"errors": [r.get("error") for r in done]}
                continue
            mid = ok[len(ok) // 2]
            out[size][name] = {"seconds": round(mid["seconds"], 3), "rows": mid["rows"],
                               "rows_per_s": round(mid["rows"] / mid["seconds"]),
                               "rss_mb": round(max(r.get("rss_mb", 0) for r in ok)),
                               "errors": [r["error"] for r in done if "error" in r]}
        for name, values in out[size].items():
            limit = out[size].get(LIMIT_OF.get(name, "limit"), {}).get("seconds")
            if limit and "seconds" in values:
                values["ratio_to_limit"] = round(values["seconds"] / limit, 2)
    return out


def _markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# PostgreSQL -> DuckDB benchmark (and files -> PostgreSQL)", "",
             f"- when: {meta['finished_at']}; {meta['rows']} rows over {meta['days']} days; "
             f"median of {meta['repetitions']}; load average after: {meta['load_after']}",
             f"- target: drivetrain_s2s_adbc <= {TARGET_RATIO} x limit (psql \\copy to /dev/null); "
             f"drivetrain_files_to_pg <= {TARGET_RATIO} x load_limit (psql \\copy from a CSV file)", "",
             "| window | path | seconds | rows/s | peak RSS MB | x limit |", "|---|---|---|---|---|---|"]
    for size, paths in summary.items():
        for name, v in paths.items():
            if "seconds" not in v:
                lines.append(f"| {size} | {name} | failed: {v['errors'][:1]} | | | |")
                continue
            lines.append(f"| {size} | {name} | {v['seconds']} | {v['rows_per_s']} | {v.get('rss_mb', '')} "
                         f"| {v.get('ratio_to_limit', '')} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--windows", default="1,10", help="window sizes in days, comma-separated")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="postgres-latest")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--smoke", action="store_true", help="20,000 rows, one repetition")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.days, args.windows, args.repetitions = 20_000, 2, "1,2", 1
    return args


def window_delete(server: Any, rows: int = 400_000, windows: int = 30, repetitions: int = 5) -> dict[str, float]:
    """Median seconds to count, to DELETE and to insert (the index's cost at load) one window of
    a stage table holding ``windows`` windows, without and with the index drivetrain now gives
    the query field (each change rolled back, so every repetition changes the same rows)."""
    step = windows * 86_400_000_000 // rows
    out: dict[str, float] = {}
    with server.admin() as conn:
        conn.execute("DROP TABLE IF EXISTS bench_stage")
        conn.execute("CREATE TABLE bench_stage (id bigint, created_at timestamptz, status text, amount numeric(12, 2),"
                     " _drivetrain_pipeline_id text, _drivetrain_loaded_at timestamptz, _drivetrain_row bigint)")
        conn.execute(f"INSERT INTO bench_stage SELECT g, timestamptz '2025-01-01 00:00:00+00'"
                     f" + make_interval(secs => (g - 1)::bigint * {step} / 1000000.0), 'done', (g % 1000) / 7.0,"
                     f" 'run_' || (g * {windows} / {rows}), now(), g FROM generate_series(1, {rows}) g")
        conn.execute("VACUUM ANALYZE bench_stage")
        where = "created_at >= '2025-01-15 00:00:00+00' AND created_at < '2025-01-16 00:00:00+00'"
        conn.execute(f"CREATE TEMPORARY TABLE bench_window AS SELECT * FROM bench_stage WHERE {where}")
        for label in ("without index", "with brin", "with btree"):
            conn.execute("DROP INDEX IF EXISTS bench_stage_window")
            if label != "without index":
                conn.execute(f"CREATE INDEX bench_stage_window ON bench_stage USING {label.split()[1]} (created_at)")
                conn.execute("ANALYZE bench_stage")
            for what, sql in (("count", f"SELECT count(*) FROM bench_stage WHERE {where}"),
                              ("delete", f"DELETE FROM bench_stage WHERE {where}"),
                              ("insert", "INSERT INTO bench_stage SELECT * FROM bench_window")):
                times = []
                for _ in range(repetitions):
                    conn.execute("BEGIN")
                    began = time.perf_counter()
                    conn.execute(sql)
                    times.append(time.perf_counter() - began)
                    conn.execute("ROLLBACK")
                out[f"{what} {label}"] = sorted(times)[len(times) // 2]
        conn.execute("DROP TABLE bench_stage")
    return out


def drive_writes(server: Any, pipelines: int = 100, days: int = 30, copies: int = 0, rounds: int = 3,
                 say: Any = print) -> dict[str, float]:
    """Median seconds of one run's drive-table statements on a PostgreSQL drive table holding
    ``pipelines`` x ``days`` of hourly runs (the fleet benchmark's history) -- and ``copies``
    more of them under other pipeline names, copied by the server (a fleet's size in minutes
    where writing each run through the store would take hours) -- with the indexes
    drivetrain gives it and without them (dropped, as a drive table made before them), rounds
    interleaved. One run's statements: take, renew and check the window's lease, insert the
    run, a heartbeat, three updates (phases), its window's attempts, the pipeline's newest runs,
    give the lease back -- each fenced write with its summaries' refresh, as a run does them."""
    import uuid

    import attrs

    from benchmarks.fleet_history import fleet_history, fleet_now, name_of
    from drivetrain.config import SystemConfig
    from drivetrain.connectors.postgres import PostgresWarehouse
    from drivetrain.connectors.postgres.drive import index_name
    from drivetrain.drive import new_holder_id
    from drivetrain.record import RunStatus
    from drivetrain.sql import drive_indexes
    from drivetrain.sql.drive import DRIVE_COLUMNS
    from drivetrain.sql.drive_phases import PHASE_COLUMNS
    from drivetrain.sql.drive_windows import WINDOW_COLUMNS
    from drivetrain.warehouse import TableRef

    schema = f"bench_drive_{uuid.uuid4().hex[:8]}"
    with server.admin() as conn:
        conn.execute(f"CREATE SCHEMA {schema} AUTHORIZATION {server.user}")
    os.environ["BENCH_PG_USER"], os.environ["BENCH_PG_PASSWORD"] = server.user, server.password
    config = SystemConfig.from_section("drive_table", {
        "type": "postgres", "host": server.host, "port": server.port, "database": server.database, "schema": schema,
        "credentials_ref": "bench_pg"}, base_dir=Path("."))

    def store_of() -> tuple[Any, Any]:
        wh = PostgresWarehouse(config, config.credentials())
        store = wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None))
        return wh, store

    wh, store = store_of()
    began = time.perf_counter()
    now = fleet_now()
    written = store.insert_many(fleet_history(pipelines, days, now))
    wh.close()
    with server.admin() as conn:
        for table, columns in (("pipeline_execution_drive", [c for c, _, _ in DRIVE_COLUMNS]),
                               ("pipeline_execution_drive__windows", [c for c, _, _ in WINDOW_COLUMNS]),
                               ("pipeline_execution_drive__phases", [c for c, _, _ in PHASE_COLUMNS])):
            renamed = [f"{c} || '_c' || k" if c in ("pipeline_name", "pipeline_id") else c for c in columns]
            if copies:
                conn.execute(f"INSERT INTO {schema}.{table} ({', '.join(columns)}) SELECT {', '.join(renamed)} "
                             f"FROM {schema}.{table}, generate_series(1, {copies}) k")
            conn.execute(f"VACUUM ANALYZE {schema}.{table}")
        written *= copies + 1
        size = conn.execute(f"SELECT pg_size_pretty(pg_total_relation_size('{schema}.pipeline_execution_drive'))").fetchone()[0]
    say(f"built {written} runs of {pipelines} pipelines x {days} days in {time.perf_counter() - began:.0f} s ({size})")
    refs = drive_indexes.tables(TableRef(name="pipeline_execution_drive", schema=schema),
                                TableRef(name="drivetrain_leases", schema=schema))
    names = [index_name(drive_indexes.name_of(i, refs)) for i in (*drive_indexes.INDEXES, drive_indexes.RUN_PHASES)]
    sample = next(r for r in fleet_history(1, 2, now))

    def drop_indexes() -> None:
        with server.admin() as conn:
            for name in names:
                conn.execute(f'DROP INDEX IF EXISTS {schema}."{name}"')

    def one_run(n: int, indexed: bool) -> float:
        wh, store = store_of()
        try:
            began = time.perf_counter()
            store.ensure()  # outside the clock: creates the indexes that are missing
            if indexed and n:
                say(f"  the indexes made again by ensure() in {time.perf_counter() - began:.1f} s")
            if not indexed:
                drop_indexes()  # this store made sure of them already: it goes on without
            name = name_of(0)
            window_start = sample.query_window_start_timestamp - timedelta(days=400 + n)
            record = attrs.evolve(sample, pipeline_id=f"{name}_bench_{uuid.uuid4().hex[:8]}", pipeline_name=name,
                                  query_window_start_timestamp=window_start,
                                  query_window_end_timestamp=window_start + timedelta(hours=1),
                                  pipeline_status=RunStatus.RUNNING)
            clock = time.perf_counter()
            lease = store.acquire_lease(name, window_start, window_start + timedelta(hours=1), new_holder_id(), 600)
            lease = store.renew_lease(lease, 600)
            store.verify_lease(lease)
            store.insert(record, fence=lease)
            store.heartbeat(record.pipeline_id, record.pipeline_start_timestamp)
            for _ in range(3):
                store.update(record, fence=lease)
            store.attempts(name, window_start, window_start + timedelta(hours=1))
            store.history(name, limit=20)
            store.update(attrs.evolve(record, pipeline_status=RunStatus.SUCCESS), fence=lease)
            store.release_lease(lease)
            return time.perf_counter() - clock
        finally:
            wh.close()

    times: dict[str, list[float]] = {"with the indexes": [], "without indexes": []}
    for round_ in range(rounds):
        for label in times:
            indexed = label == "with the indexes"
            times[label].append(one_run(round_ * 2 + (not indexed), indexed))
            say(f"round {round_ + 1}: {label}: {times[label][-1] * 1000:.0f} ms")
    with server.admin() as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return {label: sorted(values)[len(values) // 2] for label, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child(*argv[1:])
    if argv[:1] == ["window-delete"]:
        from tests.servers.postgres import PostgresServer

        server = PostgresServer.start()
        try:
            for name, seconds in window_delete(server).items():
                print(f"| {name} | {seconds * 1000:.1f} ms |")
        finally:
            server.stop()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return 0
    if argv[:1] == ["drive-writes"]:
        from tests.servers.postgres import PostgresServer

        sizes = [int(v) for v in argv[1:4]]  # optional: PIPELINES DAYS COPIES
        server = PostgresServer.start()
        try:
            for name, seconds in drive_writes(server, *sizes, say=lambda text: print(text, flush=True)).items():
                print(f"| {name} | {seconds * 1000:.1f} ms |")
        finally:
            server.stop()
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return 0
    document = run(parse_args(argv), say=lambda text: print(text, flush=True))
    failed = [f"{s} {n}" for s, paths in document["summary"].items() for n, v in paths.items() if v["errors"]]
    if failed:
        print(f"failed runs: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
