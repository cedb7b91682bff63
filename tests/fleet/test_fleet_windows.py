"""Property: the fleet's next windows and gaps, read from islands of completed windows in a few
queries per drive table, are exactly what each pipeline's own questions answer.

Four pipelines share one real DuckDB drive file: hourly with ``catchup: true`` and ``false``,
two-hourly, and daily in Paris (a calendar grid: its islands are never trusted, so it takes the
per-pipeline path). Generated histories mix successes, skips, failures, partial runs (started
before their window ended), dead RUNNING rows, RUNNING rows of a live process (a held lease),
and windows of another length or offset (recorded before a config change). For every pipeline:

* :func:`next_windows` gives what ``runner.next_window(now)`` gives;
* :func:`find_gaps` gives the gaps a model computes window by window from the rows written;
* :func:`gap_summaries` gives :func:`summarize` of those gaps.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.monitoring.fleet_windows import next_windows
from drivetrain.monitoring.gaps import (
    FAILED,
    MISSING,
    RUNNING,
    Gap,
    find_gaps,
    gap_summaries,
    gaps_begin,
    summarize,
)
from drivetrain.record import RunRecord
from drivetrain.window import Window
from tests.sdk.factory import DAY, make_pipeline_dir

HOUR = timedelta(hours=1)
DONE = (RunStatus.SUCCESS, RunStatus.SKIPPED)
PIPELINES = {
    "hourly": {"dag_schedule__catchup": True},
    "late_start": {"dag_schedule__catchup": False},
    "twohourly": {"dag_schedule__catchup": True, "query_window__duration": "2h"},
    "daily": {"dag_schedule__catchup": True, "dag_schedule__frequency": "daily", "dag_schedule__timezone": "Europe/Paris",
              "query_window__type": "daily", "query_window__duration": "1d"},
}
KINDS = ["success", "skipped", "failed", "partial", "dead", "live", "odd_length", "odd_offset"]
rows = st.lists(st.tuples(st.sampled_from(sorted(PIPELINES)), st.integers(0, 40), st.sampled_from(KINDS), st.integers(0, 3)),
                max_size=40)


class Fleet:
    """The drive rows written, by pipeline, and the windows a live process holds."""

    def __init__(self, pipelines: dict[str, Pipeline], now: datetime) -> None:
        self.pipelines, self.now = pipelines, now
        self.rows: dict[str, list[tuple[datetime, datetime, RunStatus, datetime]]] = {n: [] for n in pipelines}
        self.live: set[tuple[str, datetime, datetime]] = set()
        self.count = 0

    def write(self, name: str, index: int, kind: str, delay: int) -> None:
        pipeline = self.pipelines[name]
        grid = pipeline.grid
        window = grid.first()
        for _ in range(index % (6 if grid.is_calendar else 40)):
            window = grid.next(window)
        start, end = window.start, window.end
        if kind == "odd_length":
            end = start + (window.end - window.start) * 2
        elif kind == "odd_offset":
            start, end = start + HOUR / 2, end + HOUR / 2
        status = {"skipped": RunStatus.SKIPPED, "failed": RunStatus.FAILED, "dead": RunStatus.RUNNING,
                  "live": RunStatus.RUNNING}.get(kind, RunStatus.SUCCESS)
        began = start + HOUR / 4 if kind == "partial" else end + delay * HOUR
        if began > self.now or (kind == "live" and (name, start, end) in self.live):
            return
        holder = "elsewhere:1:gone"
        store = pipeline.drive_store()
        if kind == "live":
            holder = f"live-{name}-{index}"
            store.acquire_lease(name, start, end, holder, 3600)
            self.live.add((name, start, end))
        self.count += 1
        store.insert(RunRecord(
            pipeline_id=f"{name}_{self.count}", pipeline_name=name, pipeline_status=status,
            pipeline_start_timestamp=began, query_window_start_timestamp=start, query_window_end_timestamp=end,
            target_date=window.target_date, query_window_duration=pipeline.config.query_window.duration, lease_holder=holder,
            pipeline_end_timestamp=None if status is RunStatus.RUNNING else began,
        ))
        self.rows[name].append((start, end, status, began))

    def gaps(self, name: str) -> list[Gap]:
        """Window by window, from the rows written: what has no completing run."""
        pipeline = self.pipelines[name]
        begin = gaps_begin(pipeline, self.now)
        if begin is None or self.now <= begin:
            return []
        out = []
        for window in pipeline.grid.windows_between(begin, self.now):
            runs = [r for r in self.rows[name] if (r[0], r[1]) == (window.start, window.end)]
            if any(status in DONE and began >= window.end for _, _, status, began in runs):
                continue
            kind = MISSING if not runs else RUNNING if (name, window.start, window.end) in self.live else FAILED
            out.append(Gap(window, kind, len(runs)))
        return out


@pytest.mark.slow
@pytest.mark.parametrize("drive_file", ["drive.duckdb", "drive.sqlite"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=rows, hours=st.integers(0, 60))
def test_fleet_answers_are_each_pipelines_own(drive_file: str, history: list[tuple[str, int, str, int]], hours: int) -> None:
    """On both drive stores (each keeps the window summary the fleet questions read)."""
    with tempfile.TemporaryDirectory() as tmp:
        drive = str(Path(tmp) / drive_file)
        pipelines = {
            name: Pipeline.load(make_pipeline_dir(Path(tmp) / name, [], pipeline_metadata__pipeline_name=name,
                                                  stage_system__drive_path=drive, target_system__drive_path=drive, **changes))
            for name, changes in PIPELINES.items()
        }
        try:
            fleet = Fleet(pipelines, DAY + hours * HOUR + timedelta(minutes=20))
            for name, index, kind, delay in history:
                fleet.write(name, index, kind, delay)
            now = fleet.now
            chosen = next_windows(list(pipelines.values()), now)
            for name, pipeline in pipelines.items():
                own = pipeline.runner().next_window(now)
                assert chosen[id(pipeline)] == own, (name, chosen[id(pipeline)], own, fleet.rows[name])
                expected = fleet.gaps(name)
                assert find_gaps(pipeline, now=now) == expected, (name, fleet.rows[name])
            summaries = {s.pipeline: s for s in gap_summaries(list(pipelines.values()), now=now)}
            for name in pipelines:
                assert summaries[name] == summarize(name, fleet.gaps(name)), (name, fleet.rows[name])
        finally:
            for pipeline in pipelines.values():
                pipeline.close()


def test_a_window_of_the_grid_between_islands_is_found_without_reading_every_window(tmp_path: Path) -> None:
    """Two islands of completed hours around one failed hour and one never run: the gaps and the
    next window (the failed hour first) come from the islands."""
    folder = make_pipeline_dir(tmp_path / "lab", [], dag_schedule__catchup=True)
    with Pipeline.load(folder) as pipeline:
        store = pipeline.drive_store()
        for i, status in enumerate([RunStatus.SUCCESS] * 3 + [RunStatus.FAILED, None] + [RunStatus.SUCCESS] * 3):
            if status is None:
                continue
            window = Window(DAY + i * HOUR, DAY + (i + 1) * HOUR, "UTC")
            store.insert(RunRecord(
                pipeline_id=f"lab_{i}", pipeline_name="lab", pipeline_status=status, pipeline_start_timestamp=window.end,
                query_window_start_timestamp=window.start, query_window_end_timestamp=window.end,
                target_date=window.target_date, query_window_duration="1h", pipeline_end_timestamp=window.end))
        now = DAY + 8 * HOUR
        gaps = find_gaps(pipeline, now=now)
        assert [(g.window.start, g.kind, g.attempts) for g in gaps] == [(DAY + 3 * HOUR, FAILED, 1), (DAY + 4 * HOUR, MISSING, 0)]
        assert next_windows([pipeline], now)[id(pipeline)] == Window(DAY + 3 * HOUR, DAY + 4 * HOUR, "UTC")
        (summary,) = gap_summaries([pipeline], now=now)
        assert (summary.missing, summary.failed, summary.first) == (1, 1, DAY + 3 * HOUR)


def test_a_drive_table_without_its_summary_answers_the_same(tmp_path: Path) -> None:
    """A drive table of layout 2 (no window summary, not yet written by this version): status,
    the next windows and the gaps read the drive table itself, with the same answers."""
    import sqlite3

    from drivetrain.monitoring.fleet import fleet_states

    drive = str(tmp_path / "drive.sqlite")

    def load() -> dict[str, Pipeline]:
        return {name: Pipeline.load(make_pipeline_dir(tmp_path / name, [], pipeline_metadata__pipeline_name=name,
                                                      stage_system__drive_path=drive, target_system__drive_path=drive, **changes))
                for name, changes in PIPELINES.items()}

    def answers(pipelines: dict[str, Pipeline], now: datetime) -> tuple[object, ...]:
        group = list(pipelines.values())
        chosen = next_windows(group, now)
        states = fleet_states(group[0].drive_store(), sorted(pipelines))
        return ([chosen[id(p)] for p in group], gap_summaries(group, now=now), [find_gaps(p, now=now) for p in group],
                [(s.latest.pipeline_id if s.latest else None, s.open_failures, s.last_success_at) for s in states.values()])

    pipelines = load()
    fleet = Fleet(pipelines, DAY + 30 * HOUR + timedelta(minutes=20))
    for i, kind in enumerate([k for k in KINDS if k != "live"] * 3):  # a live run's lock goes with its pipelines
        fleet.write(sorted(PIPELINES)[i % 4], i, kind, i % 3)
    assert pipelines["hourly"].drive_store().summarized()
    before = answers(pipelines, fleet.now)
    for pipeline in pipelines.values():
        pipeline.close()
    with sqlite3.connect(drive) as conn:
        conn.execute('DROP TABLE "pipeline_execution_drive__windows"')
        conn.execute("UPDATE drivetrain_meta SET meta_value = '2' WHERE meta_key = 'schema_version'")
    again = load()
    try:
        assert not again["hourly"].drive_store().summarized()
        assert answers(again, fleet.now) == before
    finally:
        for pipeline in again.values():
            pipeline.close()
