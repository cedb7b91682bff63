"""Island edges on the window summary of the SQLite drive table (layout version 5).

``status`` asks every pipeline for its next window, which needs its islands of completed
windows (:mod:`drivetrain.monitoring.fleet_windows`): their edges were found by two anti-joins
over every completed window, so the question grew with each pipeline's history (a year of 50
hourly pipelines: 438k windows, 0.56 s; of 500, ten times that from a file larger than memory).
Here each summary row says whether it is an edge:

* ``island_start`` = 1: a completed window no completed window of its pipeline ends at the
  start of (the first of an island);
* ``island_end`` = 1: a completed window no completed window of its pipeline starts at the end
  of (the last of an island);

and a partial index on each holds only the edges, so the islands are read in proportion to the
edges (gaps and open windows), not to the windows. The flags are exactly the anti-joins'
answer, kept by the same triggers that keep the summary: once a window's row is computed again,
its flags and those of its neighbours (the windows ending where it starts, or starting where it
ends) are computed again too. A drive table of layout 4 gets the columns and its flags on first
use, and its triggers replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivetrain.sql.dialect import SqlDialect
    from drivetrain.sql.names import TableRef
    from drivetrain.sql.session import SqlSession

#: The flag columns, added to the window summary: (column, SQL).
COLUMNS = {"island_start": "INTEGER NOT NULL DEFAULT 0", "island_end": "INTEGER NOT NULL DEFAULT 0"}
#: Partial indexes holding only the edges: name suffix -> (columns, condition).
INDEXES = {"island_starts": ("pipeline_name, window_start", "island_start = 1"),
           "island_ends": ("pipeline_name, window_end", "island_end = 1"),
           # each pipeline's shortest and longest completed window by one seek each (is it on its grid?)
           "completed_lengths": ("pipeline_name, window_seconds", "completed > 0")}
#: The partial indexes of the island starts and ends (keys of :data:`INDEXES`), which the
#: islands are read through.
EDGE_INDEXES = ("island_starts", "island_ends")
#: A word only the triggers that keep the flags contain (an older file's are replaced).
MARK = "island_start"


def flags_sql(summary: str, where: str) -> str:
    """``UPDATE`` the flags of the summary rows matching ``where`` (its columns unqualified)."""
    def lonely(mine: str, theirs: str) -> str:
        return (f"CASE WHEN completed > 0 AND NOT EXISTS (SELECT 1 FROM {summary} n WHERE n.pipeline_name = {summary}.pipeline_name "
                f"AND n.{theirs} = {summary}.{mine} AND n.completed > 0) THEN 1 ELSE 0 END")

    return (f"UPDATE {summary} SET island_start = {lonely('window_start', 'window_end')}, "
            f"island_end = {lonely('window_end', 'window_start')} WHERE {where}")


def around(summary: str, row: str) -> str:
    """Trigger statements: the flags of the window of ``row`` (``NEW`` or ``OLD``) and of its
    neighbours, after its summary row was computed again."""
    name, start, end = (f"{row}.{c}" for c in ("pipeline_name", "query_window_start_timestamp", "query_window_end_timestamp"))
    return (f"{flags_sql(summary, f'pipeline_name = {name} AND window_start IN ({start}, {end})')}; "
            f"{flags_sql(summary, f'pipeline_name = {name} AND window_end = {start}')};")


def upgrade(s: SqlSession, dialect: SqlDialect, summary_ref: TableRef, columns: dict[str, str]) -> bool:
    """Add the flag columns and their indexes to the summary when it lacks them (``columns``:
    its current ones); True when they were added (their flags are then to be computed)."""
    summary = dialect.qualified(summary_ref)
    missing = [name for name in COLUMNS if name not in columns]
    for name in missing:
        s.execute(f"ALTER TABLE {summary} ADD COLUMN {name} {COLUMNS[name]}")
    for suffix, (listed, where) in INDEXES.items():
        s.execute(f"CREATE INDEX IF NOT EXISTS {dialect.owned(f'{summary_ref.name}__{suffix}')} ON {summary} ({listed}) WHERE {where}")
    return bool(missing)


def flag_all(s: SqlSession, dialect: SqlDialect, summary_ref: TableRef) -> None:
    """Compute every row's flags (after the columns were added, or the summary rebuilt)."""
    summary = dialect.qualified(summary_ref)
    s.execute(f"UPDATE {summary} SET island_start = 0, island_end = 0 WHERE completed = 0 AND (island_start <> 0 OR island_end <> 0)")
    s.execute(flags_sql(summary, "completed > 0"))


def stale_triggers(s: SqlSession, drive: TableRef) -> list[str]:
    """The window summary's triggers written by an older layout (without the flags): to drop."""
    found = s.rows("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? AND name LIKE ?",
                   [drive.name, f"{drive.name}__windows%"])
    return [str(name) for name, sql in found if MARK not in str(sql)]
