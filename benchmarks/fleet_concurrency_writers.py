"""What one shared drive file costs eight writers, store by store: the prototype behind the next step.

Usage: ``python -m benchmarks.fleet_concurrency_writers [--writers 8] [--writes 30] [--rounds 3]``.

Each writer is a process that updates its own row of a one-table file ``writes`` times (a
drive-row sized JSON text, one commit each), pausing 5 ms between writes as a run does between
phases; all start together. Stores:

* ``DuckDB, open per write``: what the shared drive file pays when every write is a hand-over
  (take the gate, open the file, write, close); eight runs in their phases at once come close;
* ``DuckDB, one writer kept open``: the same writes by one process that keeps the file (the
  separate layout's case), for scale;
* ``SQLite WAL``: the stdlib ``sqlite3`` in write-ahead-log mode, each writer keeping its
  connection, ``BEGIN IMMEDIATE`` per write (``synchronous=FULL``: each commit is synced, as
  DuckDB's is; ``NORMAL``: synced at checkpoints, survives a process crash but not a power cut).

* ``drivetrain's SQLite drive store``: the shipped store (``drive_table`` of type ``sqlite``),
  each writer updating a whole drive row of its own (eleven phase documents, the config
  snapshot) through ``SqliteDriveStore.update``, connection kept for the run as a run keeps it.

Wall time to the last writer's exit, median of the rounds, interleaved. Writes
``benchmarks/results/fleet-concurrency-writers.md``. Not a drivetrain store: no drive table,
lease or migration (except the last store); only the cost of the writes themselves.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import multiprocessing
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BODY = json.dumps({"status": "COMPLETED", "details": "x" * 600})
PAUSE = 0.005
STORES = ("DuckDB, open per write", "DuckDB, one writer kept open", "SQLite WAL, synchronous=FULL",
          "SQLite WAL, synchronous=NORMAL", "drivetrain's SQLite drive store")


def _wait(start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)


def duckdb_writer(path: str, row: int, writes: int, start: float) -> None:
    import duckdb

    _wait(start)
    with open(path + ".gate", "w", encoding="utf-8") as gate:
        for _ in range(writes):
            fcntl.flock(gate, fcntl.LOCK_EX)
            try:
                conn = duckdb.connect(path)
                conn.execute("UPDATE drive SET body = ?, n = n + 1 WHERE id = ?", [BODY, row])
                conn.close()
            finally:
                fcntl.flock(gate, fcntl.LOCK_UN)
            time.sleep(PAUSE)


def duckdb_kept(path: str, rows: int, writes: int, start: float) -> None:
    import duckdb

    _wait(start)
    conn = duckdb.connect(path)
    for _ in range(writes):
        for row in range(rows):
            conn.execute("UPDATE drive SET body = ?, n = n + 1 WHERE id = ?", [BODY, row])
        time.sleep(PAUSE)
    conn.close()


def sqlite_writer(path: str, row: int, writes: int, start: float, synchronous: str) -> None:
    conn = sqlite3.connect(path, timeout=120, isolation_level=None)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    _wait(start)
    for _ in range(writes):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE drive SET body = ?, n = n + 1 WHERE id = ?", [BODY, row])
        conn.execute("COMMIT")
        time.sleep(PAUSE)
    conn.close()


def _drive_store(path: str):  # noqa: ANN202 - a SqliteDriveStore
    from drivetrain.config import SystemConfig
    from drivetrain.connectors.sqlite import SqliteWarehouse

    folder = Path(path).parent
    wh = SqliteWarehouse(SystemConfig.from_section("drive_table", {"type": "sqlite", "path": Path(path).name}, base_dir=folder))
    return wh.drive_store(wh.table_ref({"table": "pipeline_execution_drive"}, None))


def _run_record(row: int):  # noqa: ANN202 - a RunRecord
    from datetime import UTC, date, datetime

    from drivetrain.phase_names import PHASE_NAMES
    from drivetrain.record import RunRecord

    start = datetime(2025, 11, 15, tzinfo=UTC)
    return RunRecord(pipeline_id=f"writer{row}_run1", pipeline_name=f"writer{row}", pipeline_start_timestamp=start,
                     query_window_start_timestamp=start, query_window_end_timestamp=start, target_date=date(2025, 11, 15),
                     query_window_duration="1h", phases_pending=tuple(PHASE_NAMES), lease_holder=f"bench:{row}",
                     config_snapshot={"details": "x" * 600})


def store_writer(path: str, row: int, writes: int, start: float) -> None:
    import attrs

    store = _drive_store(path)
    record = _run_record(row)
    with store.keep_open():
        _wait(start)
        for n in range(writes):
            store.update(attrs.evolve(record, pipeline_retry_number=n + 1))
            time.sleep(PAUSE)


def create(path: Path, store: str, rows: int) -> None:
    if store == "drivetrain's SQLite drive store":
        drive = _drive_store(str(path))
        drive.insert_many(_run_record(row) for row in range(rows))
        return
    if store.startswith("DuckDB"):
        import duckdb

        conn = duckdb.connect(str(path))
    else:
        conn = sqlite3.connect(str(path), isolation_level=None)  # type: ignore[assignment]
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE drive (id INTEGER PRIMARY KEY, n INTEGER, body TEXT)")
    for row in range(rows):
        conn.execute("INSERT INTO drive VALUES (?, 0, '')", [row])
    conn.close()


def measure(root: Path, store: str, writers: int, writes: int) -> float:
    path = root / ("drive.duckdb" if store.startswith("DuckDB") else "drive.sqlite")
    create(path, store, writers)
    start = time.time() + (5.0 if store.startswith("drivetrain") else 0.5)  # every process started (and imported) and waiting
    if store == "DuckDB, one writer kept open":
        procs = [multiprocessing.Process(target=duckdb_kept, args=(str(path), writers, writes, start))]
    elif store == "drivetrain's SQLite drive store":
        procs = [multiprocessing.Process(target=store_writer, args=(str(path), i, writes, start)) for i in range(writers)]
    elif store.startswith("DuckDB"):
        procs = [multiprocessing.Process(target=duckdb_writer, args=(str(path), i, writes, start)) for i in range(writers)]
    else:
        sync = store.rsplit("=", 1)[1]
        procs = [multiprocessing.Process(target=sqlite_writer, args=(str(path), i, writes, start, sync)) for i in range(writers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"{store}: a writer exited {proc.exitcode}")
    return time.time() - start


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet_concurrency_writers")
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--writes", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    times: dict[str, list[float]] = {store: [] for store in STORES}
    for _ in range(args.rounds):
        for store in STORES:
            with tempfile.TemporaryDirectory(prefix="drivetrain-writers-") as root:
                times[store].append(measure(Path(root), store, args.writers, args.writes))
    medians = {store: statistics.median(t) for store, t in times.items()}
    total = args.writers * args.writes
    lines = ["# Eight writers on one drive file: what each store costs", "",
             f"{args.writers} processes x {args.writes} drive-row writes ({total} commits), {PAUSE * 1000:.0f} ms apart, all "
             f"started together; median of {args.rounds} rounds, interleaved; load average {load:.1f} on "
             f"{os.cpu_count()} cores at the start. Produced by `python -m benchmarks.fleet_concurrency_writers`.", "",
             "| store | seconds | per write |", "|---|---|---|"]
    lines += [f"| {store} | {seconds:.2f} | {seconds / total * 1000:.1f} ms |" for store, seconds in medians.items()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet-concurrency-writers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return medians


if __name__ == "__main__":
    main()
