"""The PostgreSQL readers benchmark on a tiny table of the session's server: every reader reads
the whole window. Timings are not checked (speed is the benchmark's business)."""

from __future__ import annotations

from benchmarks import postgres_readers
from tests.servers.postgres import PostgresServer


def test_every_reader_reads_every_row_of_the_window(postgres: PostgresServer) -> None:
    args = postgres_readers.parse_args(["--smoke", "--in-process"])
    said: list[str] = []
    results = postgres_readers.run(postgres, args, say=said.append)
    assert said == []  # no reader failed or read another number of rows
    assert set(results) == {"1d"}
    assert {name: len(times) for name, times in results["1d"].items()} == {name: 1 for name in postgres_readers.READERS}
    assert all(t[0] > 0 for t in results["1d"].values())
