"""Ways of reading one PostgreSQL window into Arrow, side by side on one server (issue 16).

Usage (from the repository root)::

    python -m benchmarks.postgres_readers                 # 400k rows over 4 days; 1- and 4-day windows
    python -m benchmarks.postgres_readers --smoke        # 2,000 rows, every reader once (tests/benchmarks)

The table is :func:`benchmarks.postgres.build`'s. Every reader connects, reads the window into
Arrow batches of the types the source delivers (decimal amounts, UTC microsecond timestamps) and
drops them; the clock includes the connection, as ``psql`` 's does. Readers, interleaved per
round, each in a child process of its own (so none profits from another's warm caches):

- ``limit``: ``psql \\copy (SELECT ...) to /dev/null`` (text COPY, nothing parsed).
- ``adbc``: ADBC's binary COPY, 4 MiB batches, normalised, the driver's defaults otherwise: it
  opens a connection of its own to read the server's type catalogue first.
- ``adbc_builtin``: the same with the driver's built-in type table (``type_resolver_mode``
  "builtin"): no catalogue connection. What the source's adbc reader does.
- ``adbc_pool``: the driver's database object (which reads the catalogue) made before the
  clock starts, as a pool kept for the process would have it; the clock covers a connection
  from it and the read (what a second window in the same process would pay).
- ``adbc_16m``: ``adbc`` with the driver's default 16 MiB batches.
- ``csv``: psycopg ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` fed to pyarrow's streaming CSV
  reader, types given (the same bytes as the limit, parsed on every core).
- ``psycopg_binary``: psycopg binary COPY, rows as Python tuples, built into Arrow.
- ``cursor``: a psycopg server-side cursor, 50k rows a fetch (the ``psycopg`` reader).
- ``connectorx``: connectorx's binary COPY into one Arrow table (not streamed).
- ``source_<reader>``: the drivetrain PostgreSQL source's ``extract`` with that reader.

Measured (issue 16, results in ``results/postgres-latest.md``): pyarrow parses the CSV in a
fraction of the limit's time, but psycopg hands the COPY over one message (one row) per Python
call, which alone costs more than ADBC's whole binary read; ADBC's own cost was its conversion
of binary ``numeric`` to text, which the source now asks the server for instead.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.postgres import START, TABLE, _window_sql, build  # noqa: E402


class CopyStream(io.RawIOBase):
    """A psycopg ``Copy`` (out) as a readable file for pyarrow: the server's one message a row,
    joined into the blocks pyarrow asks for."""

    def __init__(self, copy: Any) -> None:
        super().__init__()
        self._copy, self._rest, self._done = copy, b"", False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        parts, have = [self._rest], len(self._rest)
        while not self._done and (size < 0 or have < size):
            data = self._copy.read()
            if not data:
                self._done = True
                break
            parts.append(data)
            have += len(data)
        block = b"".join(parts)
        if size < 0 or len(block) <= size:
            self._rest = b""
            return block
        self._rest = block[size:]
        return block[:size]


READERS = ("limit", "adbc", "adbc_builtin", "adbc_pool", "adbc_16m", "csv", "psycopg_binary", "cursor", "connectorx", "source_adbc", "source_psycopg")


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([("id", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC")), ("status", pa.string()),
                      ("score", pa.float64()), ("amount", pa.decimal128(12, 2))])


def _rows_of(chunk: list[tuple[Any, ...]], schema: Any) -> int:
    """Rows of the Arrow batch built from Python rows, column by column."""
    import pyarrow as pa

    columns = zip(*chunk, strict=True)
    return pa.RecordBatch.from_arrays([pa.array(c, t) for c, t in zip(columns, schema.types, strict=True)],
                                      schema=schema).num_rows


def prepare(name: str, job: dict[str, Any]) -> Any:
    """What ``name`` has before the clock starts: for ``adbc_pool``, the driver's database."""
    if name == "adbc_pool":
        import adbc_driver_postgresql

        return adbc_driver_postgresql.connect(job["source"]["url"])
    return None


def _adbc_connection(name: str, url: str, database: Any) -> Any:
    import adbc_driver_manager
    import adbc_driver_manager.dbapi
    import adbc_driver_postgresql.dbapi as adbc

    if database is not None:  # adbc_pool
        return adbc_driver_manager.dbapi.Connection(database, adbc_driver_manager.AdbcConnection(database))
    if name == "adbc_builtin":
        return adbc.connect(url, db_kwargs={"adbc.postgresql.type_resolver_mode": "builtin"})
    return adbc.connect(url)


def read(name: str, job: dict[str, Any], prepared: Any = None) -> int:
    """Rows read by ``name`` (run in a child; ``prepared``: what :func:`prepare` returned)."""
    import pyarrow as pa

    s, statement, schema = job["source"], _window_sql(job), _schema()
    rows = 0
    if name.startswith("adbc"):
        with _adbc_connection(name, s["url"], prepared) as conn, conn.cursor() as cursor:
            if name != "adbc_16m":
                cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(4 << 20)})
            cursor.execute(statement)
            for batch in cursor.fetch_record_batch():
                amount = batch.column(4)
                amount = (amount.storage if isinstance(amount.type, pa.ExtensionType) else amount).cast(schema.field(4).type)
                rows += pa.RecordBatch.from_arrays([*batch.columns[:4], amount], schema=schema).num_rows
    elif name == "csv":
        import psycopg
        import pyarrow.csv as pcsv

        with psycopg.connect(s["url"]) as conn, conn.cursor() as cur, \
                cur.copy(f"COPY ({statement}) TO STDOUT (FORMAT csv)") as copy:
            reader = pcsv.open_csv(
                CopyStream(copy), read_options=pcsv.ReadOptions(column_names=schema.names, block_size=1 << 20),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(column_types=schema, null_values=[""], strings_can_be_null=True,
                                                    quoted_strings_can_be_null=False))
            for batch in reader:
                rows += batch.num_rows
    elif name == "psycopg_binary":
        import psycopg

        with psycopg.connect(s["url"]) as conn, conn.cursor() as cur, \
                cur.copy(f"COPY ({statement}) TO STDOUT (FORMAT binary)") as copy:
            copy.set_types(["int8", "timestamptz", "text", "float8", "numeric"])
            chunk: list[tuple[Any, ...]] = []
            for row in copy.rows():
                chunk.append(row)
                if len(chunk) == 50_000:
                    rows += _rows_of(chunk, schema)
                    chunk = []
            if chunk:
                rows += _rows_of(chunk, schema)
    elif name == "cursor":
        import psycopg

        with psycopg.connect(s["url"]) as conn, conn.cursor("bench", binary=True) as cur:
            cur.itersize = 50_000
            cur.execute(statement)
            while chunk := cur.fetchmany(50_000):
                rows += _rows_of(chunk, schema)
    elif name == "connectorx":
        import connectorx as cx

        table = cx.read_sql(s["url"].replace("postgresql://", "postgresql://", 1), statement, return_type="arrow")
        rows = table.num_rows
    elif name.startswith("source_"):
        from drivetrain.config import SystemConfig
        from drivetrain.connectors.postgres.source import PostgresSource
        from drivetrain.secrets import Credentials
        section = {"type": "postgres", "host": s["host"], "port": s["port"], "database": s["database"],
                   "table": TABLE, "query_field": "created_at", "reader": name.split("_", 1)[1]}
        config = SystemConfig.from_section("source_system", section, source_file="bench.json")
        source = PostgresSource(config, Credentials("bench", {"user": s["user"], "password": s["password"]}))
        for batch in source.extract(_window(job)):
            rows += batch.num_rows
        source.close()
    return rows


def _window(job: dict[str, Any]) -> Any:
    from datetime import datetime

    from drivetrain.window import Window

    return Window(datetime.fromisoformat(job["start"]), datetime.fromisoformat(job["end"]))


def child(name: str, job_file: str) -> int:
    import importlib

    for module in ("pyarrow", "pyarrow.csv", "pyarrow.compute", "psycopg", "adbc_driver_postgresql.dbapi",
                   "connectorx", "drivetrain.connectors.postgres.source"):
        importlib.import_module(module)
    job = json.loads(Path(job_file).read_text())
    prepared = prepare(name, job)
    began = time.perf_counter()
    rows = read(name, job, prepared)
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - began, "rows": rows}), flush=True)
    return 0


def measure(name: str, job_file: Path, job: dict[str, Any], bin_dir: Path, python: str) -> dict[str, Any]:
    s = job["source"]
    if name == "limit":
        args = [str(bin_dir / "psql"), "-h", s["host"], "-p", str(s["port"]), "-U", s["user"], "-d", s["database"],
                "-v", "ON_ERROR_STOP=1", "-c", f"\\copy ({_window_sql(job)}) to '/dev/null'"]
        began = time.perf_counter()
        subprocess.run(args, env={**os.environ, "PGPASSWORD": s["password"]}, check=True, stdout=subprocess.DEVNULL)
        return {"seconds": time.perf_counter() - began, "rows": job["expected_rows"]}
    out = subprocess.run([python, "-m", "benchmarks.postgres_readers", "child", name, str(job_file)], cwd=REPO,
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else {"error": out.stderr[-400:]}


def run(server: Any, args: argparse.Namespace, say: Any = print) -> dict[str, dict[str, list[float]]]:
    """Seconds of each reader per window size (``{"1d": {"adbc": [...]}}``) on ``server``.

    ``args.in_process`` reads in this process instead of a child per reader (the smoke test's
    way: the clock then includes no start-up, so its numbers compare nothing).
    """
    root = Path(tempfile.mkdtemp(prefix="dt-bench-pgr-"))
    names = args.readers.split(",")
    results: dict[str, dict[str, list[float]]] = {}
    build(server, args.rows, args.days)
    source = {"host": server.host, "port": server.port, "database": server.database, "user": server.user,
              "password": server.password, "url": server.url()}
    for days in (int(d) for d in args.windows.split(",")):
        job = {"source": source, "start": START.isoformat(), "end": (START + timedelta(days=days)).isoformat(),
               "expected_rows": args.rows * days // args.days}
        job_file = root / f"job_{days}.json"
        job_file.write_text(json.dumps(job))
        results[f"{days}d"] = {n: [] for n in names}
        for rep in range(args.repetitions + (0 if args.smoke else 1)):  # the first round warms up
            for name in names:
                if args.in_process and name != "limit":
                    prepared = prepare(name, job)
                    began = time.perf_counter()
                    outcome = {"rows": read(name, job, prepared)}
                    outcome["seconds"] = time.perf_counter() - began
                else:
                    outcome = measure(name, job_file, job, server.bin_dir, sys.executable)
                if "error" in outcome or outcome["rows"] != job["expected_rows"]:
                    say(f"{days}d {name}: {outcome}")
                    continue
                if rep or args.smoke:
                    results[f"{days}d"][name].append(outcome["seconds"])
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres_readers")
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--windows", default="1,4")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--readers", default=",".join(READERS))
    parser.add_argument("--smoke", action="store_true", help="2,000 rows, one round, no warm-up")
    parser.add_argument("--in-process", action="store_true", help="read in this process (no child per reader)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.days, args.windows, args.repetitions = 2_000, 2, "1", 1
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child(*argv[1:])
    args = parse_args(argv)
    from tests.servers.postgres import PostgresServer

    server = PostgresServer.start()
    try:
        results = run(server, args, say=lambda text: print(text, flush=True))
    finally:
        server.stop()
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    for size, by_name in results.items():
        limit = sorted(by_name.get("limit") or [float("nan")])[len(by_name.get("limit") or [0]) // 2]
        for name, times in by_name.items():
            if times:
                median = sorted(times)[len(times) // 2]
                print(f"| {size} | {name} | {median:.3f} | {median / limit:.2f} | {' '.join(f'{t:.2f}' for t in times)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
