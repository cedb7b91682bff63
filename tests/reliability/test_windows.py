"""Windows end to end through the runner: clock changes, rows on an edge, crowds on one instant.

Daily windows run from local midnight to local midnight, so across a clock change they are
23 or 25 hours long (23.5 and 24.5 on Lord Howe Island); hourly windows stay 3600 s. Either way
the windows a pipeline runs must tile time: each shares its start with the previous one's end,
and every source row lands in exactly one window of the target. Rows stamped exactly on an edge
belong to the window that starts there; more rows on one instant than a batch or page holds
must all arrive, from every kind of source.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, make_pipeline_dir, query, ts_of

from .sources import es_pipeline, mysql_pipeline, sn_pipeline, whole_seconds

TRANSITIONS = [
    ("America/Chicago", date(2025, 3, 9)),
    ("America/Chicago", date(2025, 11, 2)),
    ("Europe/Berlin", date(2025, 3, 30)),
    ("Europe/Berlin", date(2025, 10, 26)),
    ("Australia/Lord_Howe", date(2025, 4, 6)),
    ("Australia/Lord_Howe", date(2025, 10, 5)),
]
SOURCES = ["files", "mysql", "elasticsearch", "servicenow"]


def local_midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def rows_between(start: datetime, end: datetime, zone: str, every: timedelta = timedelta(minutes=7)) -> list[dict[str, Any]]:
    """One row every ``every``; odd rows written with the zone's local offset, even ones in UTC."""
    rows, at, i = [], start, 0
    while at < end:
        text = at.astimezone(ZoneInfo(zone)).isoformat() if i % 2 else at.isoformat().replace("+00:00", "Z")
        rows.append({"test_id": f"R{i:06d}", "age": 30, "result": "negative", "reported_at": text})
        at, i = at + every, i + 1
    return rows


def run_windows(folder: Path, count: int, first: datetime | None = None) -> list[Any]:
    records = []
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.window_starting(first) if first else pipeline.grid.first()
        for _ in range(count):
            record = pipeline.runner().run(window)
            assert record.pipeline_status is RunStatus.SUCCESS, (window, record.phase_failed, record.phases)
            records.append(record)
            window = pipeline.grid.next(window)
    return records


def assert_tiled(folder: Path, records: list[Any], rows: list[dict[str, Any]]) -> None:
    """Windows share their edges and each row of their span is in the target once, in its window."""
    for before, after in zip(records, records[1:], strict=False):
        assert before.query_window_end_timestamp == after.query_window_start_timestamp
    start, end = records[0].query_window_start_timestamp, records[-1].query_window_end_timestamp
    inside = {r["test_id"] for r in rows if start <= ts_of(r) < end}
    found = query(folder, "SELECT test_id FROM tests ORDER BY test_id")
    assert [t for (t,) in found] == sorted(inside)
    misplaced = query(folder, "SELECT count(*) FROM tests WHERE NOT (reported_at >= _drivetrain_window_start "
                              "AND reported_at < _drivetrain_window_end)")
    assert misplaced == [(0,)]


def zone_config(zone: str, start: date, duration: str) -> dict[str, Any]:
    kind = "daily" if duration == "1d" else "hourly"
    return {
        "dag_schedule": {"frequency": kind, "timezone": zone, "start_date": start.isoformat()},
        "query_window": {"type": kind, "duration": duration},
    }


@pytest.mark.slow
@pytest.mark.parametrize(("zone", "day"), TRANSITIONS, ids=[f"{z}-{d}" for z, d in TRANSITIONS])
class TestClockChanges:
    def test_daily_windows_follow_local_midnight_and_tile_time(self, tmp_path: Path, zone: str, day: date) -> None:
        begin, end = local_midnight(day - timedelta(days=1), zone), local_midnight(day + timedelta(days=2), zone)
        rows = rows_between(begin - timedelta(hours=3), end + timedelta(hours=3), zone)
        folder = make_pipeline_dir(tmp_path / "lab", rows, **zone_config(zone, day - timedelta(days=1), "1d"))
        records = run_windows(folder, 3)
        assert_tiled(folder, records, rows)
        days = [day - timedelta(days=1), day, day + timedelta(days=1)]
        assert [r.target_date for r in records] == days
        lengths = [r.query_window_end_timestamp - r.query_window_start_timestamp for r in records]
        assert lengths == [local_midnight(d + timedelta(days=1), zone) - local_midnight(d, zone) for d in days]
        assert lengths[1] != timedelta(hours=24)

    def test_hourly_windows_stay_an_hour_across_the_change(self, tmp_path: Path, zone: str, day: date) -> None:
        begin = local_midnight(day, zone)
        rows = rows_between(begin - timedelta(hours=1), begin + timedelta(hours=8), zone, every=timedelta(minutes=4))
        folder = make_pipeline_dir(tmp_path / "lab", rows, **zone_config(zone, day, "1h"))
        records = run_windows(folder, 6)
        assert_tiled(folder, records, rows)
        assert {r.query_window_end_timestamp - r.query_window_start_timestamp for r in records} == {timedelta(hours=1)}


EDGE_ROWS = [
    ("E00", "2025-11-15T00:00:00Z"),
    ("E01", "2025-11-15T00:59:59.999999Z"),
    ("E02", "2025-11-15T01:00:00Z"),
    ("E03", "2025-11-15T02:00:00+01:00"),  # 01:00Z, written with an offset
    ("E04", "2025-11-15T01:00:00.000001Z"),
    ("E05", "2025-11-15T01:59:59.999999Z"),
    ("E06", "2025-11-14T20:00:00-06:00"),  # 02:00Z
    ("E07", "2025-11-15T02:30:00Z"),
    ("E08", "2025-11-15T03:00:00Z"),  # the end of the last window: in none of them
    ("E09", "2025-11-14T23:59:59.999999Z"),  # before the first window
]


def edge_rows() -> list[dict[str, Any]]:
    return [{"test_id": t, "age": 40, "result": "positive", "reported_at": ts} for t, ts in EDGE_ROWS]


def crowd_rows() -> list[dict[str, Any]]:
    """230 rows on one instant (more than four batches of 50), with a few neighbours."""
    crowd = [{"test_id": f"C{i:04d}", "age": i % 90, "result": "negative", "reported_at": "2025-11-15T00:30:00Z"}
             for i in range(230)]
    around = [{"test_id": f"N{i}", "age": 1, "result": "positive", "reported_at": ts}
              for i, ts in enumerate(["2025-11-15T00:29:59Z", "2025-11-15T00:30:01Z", "2025-11-15T00:00:00Z"])]
    return around[:1] + crowd + around[1:]


@pytest.fixture
def build(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A function making a pipeline folder for ``rows`` read from the source kind under test."""
    kind = request.param

    def make(rows: list[dict[str, Any]]) -> tuple[Path, list[dict[str, Any]]]:
        root = tmp_path / kind
        if kind == "files":
            return make_pipeline_dir(root, rows, source_system__batch_size=50), rows
        if kind == "mysql":
            return mysql_pipeline(root, request.getfixturevalue("mariadb"), rows, monkeypatch), rows
        if kind == "elasticsearch":
            return es_pipeline(root, request.getfixturevalue("es"), rows), rows
        return sn_pipeline(root, request.getfixturevalue("sn"), rows, monkeypatch), whole_seconds(rows)

    return make


@pytest.mark.parametrize("build", SOURCES, indirect=True)
class TestEdgesAndCrowds:
    def test_a_row_on_a_window_edge_lands_in_exactly_one_window(self, build) -> None:
        folder, rows = build(edge_rows())
        records = run_windows(folder, 3, first=DAY)
        assert_tiled(folder, records, rows)

    def test_more_rows_on_one_instant_than_a_batch_holds_all_arrive(self, build) -> None:
        folder, rows = build(crowd_rows())
        records = run_windows(folder, 1, first=DAY)
        assert_tiled(folder, records, rows)
        transfer = records[0].phases["source_to_stage_transfer"].phase_specific_details
        assert transfer["rows_read"] == transfer["rows_written"] == 233
