"""The indexes of a row-store drive table (SQLite, PostgreSQL): what each write and read seeks by.

Every write of a run looks its row up by ``pipeline_id`` (the insert's "not there yet" guard,
each update, each heartbeat), and refreshes its window's summary row and its run's phase rows
by key; ``status``, ``history`` and the next window read one pipeline's newest runs and windows.
Without an index each of these is a scan of a table that grows by a row per run, for ever: at a
year of a 500-pipeline fleet (4.4 million runs) every drive write of every run would read the
whole table. A columnar store (DuckDB) keeps its own two indexes; Snowflake has none to make.

Each index is named ``<table>__<suffix>`` after the table it belongs to (the names SQLite drive
files have carried since layout 3, so an existing file keeps its indexes).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from drivetrain.sql import drive_phases, drive_windows
from drivetrain.sql.names import TableRef


@attrs.frozen
class Index:
    """One index: on which of the drive store's tables, its columns, an optional ``WHERE``."""

    table: str
    """``drive``, ``leases``, ``windows`` (the window summary) or ``phases`` (the phase summary)."""
    suffix: str
    columns: str
    why: str
    where: str = ""


def _drive(*columns: str, why: str) -> Index:
    return Index("drive", "__".join(columns), ", ".join(columns), why)


INDEXES: tuple[Index, ...] = (
    _drive("pipeline_id", why="one run by id (show, every update)"),
    _drive("pipeline_name", "query_window_start_timestamp", why="one pipeline's runs of a window (attempts, the summary's refresh)"),
    _drive("pipeline_name", "pipeline_start_timestamp", why="one pipeline's newest runs (status, history)"),
    Index("leases", "window", "pipeline_name, window_start", "a window's lease (every acquire, renew and fenced write)"),
    # The window summary's, covering what the fleet queries read so they never visit the rows:
    # one window's row (each write's refresh), one pipeline's windows in order with their
    # lengths (the next windows, gaps), the window ending where another starts (the islands),
    # and the few windows whose newest attempt failed or runs, the open ones and the newest
    # success (status). The few-rows ones are partial, so a planner never takes them for the
    # reads of all completed windows (SQLite did with a plain index: 15 s at a year).
    Index("windows", "window", "pipeline_name, window_start, window_end, completed, window_seconds", "one window's row; a pipeline's windows"),
    Index("windows", "end", "pipeline_name, window_end, completed", "the window ending where another starts"),
    Index("windows", "ok", "pipeline_name, ok_end", "the newest success"),
    Index("windows", "failed_windows", "pipeline_name, newest_failed", "windows whose newest attempt failed", "newest_failed > 0"),
    Index("windows", "running_windows", "pipeline_name, newest_running", "windows whose newest attempt runs", "newest_running > 0"),
    Index("windows", "open_windows", "pipeline_name", "windows not completed", "completed = 0"),
    # The phase summary's: a pipeline's phases in the report's period, covering every column
    # the report groups and sums (the rows are never visited), and a run's rows for its refresh.
    Index("phases", "period", "pipeline_name, pipeline_start, phase, expected, status, retries, micros", "the report's period"),
)

#: Written by the store after each write (PostgreSQL): a run's phase rows are refreshed by its
#: id. SQLite's triggers find them by the run's start instead (the ``period`` index).
RUN_PHASES = Index("phases", "run", "pipeline_name, pipeline_id", "a run's phase rows (each write's refresh)")


def tables(drive: TableRef, leases: TableRef) -> dict[str, TableRef]:
    """The drive store's tables by the names :attr:`Index.table` uses."""
    return {"drive": drive, "leases": leases, "windows": drive_windows.summary_ref(drive),
            "phases": drive_phases.summary_ref(drive)}


def name_of(index: Index, refs: dict[str, TableRef]) -> str:
    """``<table>__<suffix>``: the index's name, before the dialect makes it an identifier."""
    return f"{refs[index.table].name}__{index.suffix}"


def create_sql(indexes: tuple[Index, ...], refs: dict[str, TableRef], qualified: Callable[[TableRef], str],
               identifier: Callable[[str], str]) -> list[str]:
    """``CREATE INDEX IF NOT EXISTS`` statements for ``indexes``."""
    return [
        f"CREATE INDEX IF NOT EXISTS {identifier(name_of(index, refs))} ON {qualified(refs[index.table])} "
        f"({index.columns}){f' WHERE {index.where}' if index.where else ''}"
        for index in indexes
    ]
