"""Sources whose query field holds wall-clock local time, across clock changes.

A MySQL ``DATETIME``, or a file timestamp written without an offset, names a reading of the
local clock, not an instant. In the hour repeated when clocks go back one reading names two
instants; in the hour skipped when they go forward it names none. The rule: a repeated reading
is its earlier instant, a skipped one the instant the clocks jumped, and
:func:`drivetrain.window.wall_clock_bounds` is the one translation of a window to the local
clock, so every reading lands in exactly one window and count, extract and validation agree.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.config import SystemConfig
from drivetrain.connectors.files import FilesSource
from drivetrain.connectors.mysql import MySQLSource, fast
from drivetrain.secrets import resolve_credentials
from drivetrain.window import Window, WindowGrid, local_instant, wall_clock_bounds
from tests.cli.conftest import Cli
from tests.sdk.factory import make_pipeline_dir, query
from tests.servers.mariadb import MariaDBServer

#: (zone, a day it changes clocks): back and forward, whole hours, half hours, a -3:30 zone.
TRANSITIONS = [
    ("America/New_York", date(2025, 11, 2)),
    ("America/New_York", date(2025, 3, 9)),
    ("Europe/Berlin", date(2025, 10, 26)),
    ("Europe/Berlin", date(2025, 3, 30)),
    ("Australia/Lord_Howe", date(2025, 4, 6)),  # back 30 minutes
    ("Australia/Lord_Howe", date(2025, 10, 5)),  # forward 30 minutes
    ("America/St_Johns", date(2025, 11, 2)),  # UTC-2:30 -> UTC-3:30
    ("Australia/Adelaide", date(2025, 4, 6)),  # UTC+10:30 -> UTC+9:30
]
IDS = [f"{zone}-{day}" for zone, day in TRANSITIONS]
SPAN = timedelta(hours=30)  # readings from 03:00 local the day before to 09:00 on the day


def _grids(zone: str, day: date) -> list[WindowGrid]:
    anchor = day - timedelta(days=1)
    return [WindowGrid.from_config(d, zone, anchor) for d in ("1h", "15m", "1d")]


def _windows(grid: WindowGrid, zone: str, day: date) -> list[Window]:
    """Windows covering every instant any reading of the span can name (with a margin)."""
    begin = datetime.combine(day - timedelta(days=1), time(0), ZoneInfo(zone)) - timedelta(hours=3)
    return list(grid.windows_between(begin, begin + SPAN + timedelta(hours=30)))


def _readings(day: date) -> st.SearchStrategy[list[datetime]]:
    """Wall-clock readings around the change: whole quarter hours (edges), seconds, microseconds."""
    origin = datetime.combine(day - timedelta(days=1), time(3))
    quarter = st.integers(0, int(SPAN / timedelta(minutes=15))).map(lambda n: origin + n * timedelta(minutes=15))
    micro = st.integers(0, SPAN // timedelta(microseconds=1)).map(lambda n: origin + n * timedelta(microseconds=1))
    # readings right at the clock change on the day, where the hour repeats or is skipped
    near = st.integers(0, 4 * 3600).map(lambda n: datetime.combine(day, time(0)) + timedelta(seconds=n))
    return st.lists(st.one_of(quarter, micro, near), min_size=1, max_size=40)


@pytest.mark.parametrize(("zone", "day"), TRANSITIONS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_reading_is_in_exactly_one_window_the_one_holding_its_instant(zone: str, day: date, data: Any) -> None:
    readings = data.draw(_readings(day))
    for grid in _grids(zone, day):
        windows = _windows(grid, zone, day)
        bounds = [wall_clock_bounds(w.start, w.end, zone) for w in windows]
        for reading in readings:
            holders = [w for w, (a, b) in zip(windows, bounds, strict=True) if a <= reading < b]
            assert len(holders) == 1, (grid.duration, reading, holders)
            assert holders[0].contains(local_instant(reading, zone))


def test_the_repeated_hour_belongs_to_the_window_of_its_earlier_pass() -> None:
    zone = "America/New_York"

    def hour(h: int) -> tuple[datetime, datetime]:
        return wall_clock_bounds(datetime(2025, 11, 2, h, tzinfo=UTC), datetime(2025, 11, 2, h + 1, tzinfo=UTC), zone)

    assert hour(5) == (datetime(2025, 11, 2, 1), datetime(2025, 11, 2, 2))  # 01:00 EDT: all of 01:xx
    assert hour(6) == (datetime(2025, 11, 2, 2), datetime(2025, 11, 2, 2))  # 01:00 EST: nothing left
    assert hour(7) == (datetime(2025, 11, 2, 2), datetime(2025, 11, 2, 3))
    # forward: 02:xx does not exist; a stored 02:30 is read as 03:00 EDT, the jump
    spring = wall_clock_bounds(datetime(2025, 3, 9, 7, tzinfo=UTC), datetime(2025, 3, 9, 8, tzinfo=UTC), zone)
    assert spring == (datetime(2025, 3, 9, 2), datetime(2025, 3, 9, 4))
    assert local_instant(datetime(2025, 3, 9, 2, 30), zone) == datetime(2025, 3, 9, 7, tzinfo=UTC)


# -- files: naive timestamps ---------------------------------------------------------------


def files_source(folder: Path, zone: str, readings: list[datetime]) -> FilesSource:
    lines = [json.dumps({"id": i, "ts": r.isoformat(sep=" ")}) for i, r in enumerate(readings)]
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    section = {"type": "files", "path": "rows.jsonl", "query_field": "ts", "source_timezone": zone, "batch_size": 7}
    return FilesSource(SystemConfig.from_section("source_system", section, base_dir=folder, source_file="config.json"))


@pytest.mark.parametrize(("zone", "day"), TRANSITIONS, ids=IDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_files_count_and_extract_agree_and_tile_naive_readings(tmp_path: Path, zone: str, day: date, data: Any) -> None:
    readings = data.draw(_readings(day))
    source = files_source(tmp_path, zone, readings)
    seen: Counter[int] = Counter()
    for window in _windows(WindowGrid.from_config("1h", zone, day - timedelta(days=1)), zone, day):
        rows = [row for batch in source.extract(window) for row in batch.to_pylist()]
        assert source.count(window) == len(rows), window
        for row in rows:
            seen[row["id"]] += 1
            assert window.contains(local_instant(readings[row["id"]], zone))
    assert seen == Counter(range(len(readings)))


# -- MySQL: DATETIME in local time ---------------------------------------------------------

MYSQL_REF = "local_time_mysql"


def _table(server: MariaDBServer, readings: list[datetime] | None = None) -> str:
    name = f"lt_{uuid.uuid4().hex[:10]}"
    admin = server.admin(database=server.database)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, ts DATETIME(6), KEY (ts))")
            if readings:
                cursor.executemany(f"INSERT INTO {name} VALUES (%s, %s)", list(enumerate(readings)))
        admin.commit()
    finally:
        admin.close()
    return name


def _refill(server: MariaDBServer, table: str, readings: list[datetime]) -> None:
    admin = server.admin(database=server.database)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")
            cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s)", list(enumerate(readings)))
        admin.commit()
    finally:
        admin.close()


def mysql_source(server: MariaDBServer, table: str, zone: str, **options: Any) -> MySQLSource:
    section = {"type": "mysql", "host": server.host, "port": server.port, "database": server.database,
               "table": table, "query_field": "ts", "source_timezone": zone, "credentials_ref": MYSQL_REF,
               "batch_size": 5, **options}
    config = SystemConfig.from_section("source_system", section, base_dir=Path("."), source_file="config.json")
    env = {f"{MYSQL_REF.upper()}_USER": server.user, f"{MYSQL_REF.upper()}_PASSWORD": server.password}
    return MySQLSource(config, resolve_credentials(MYSQL_REF, environ=env))


READERS = ["pymysql", *(["connectorx"] if fast.installed() else [])]


@pytest.fixture(scope="module")
def zone_tables(mariadb: MariaDBServer) -> Iterator[dict[str, str]]:
    yield {zone: _table(mariadb) for zone, _ in TRANSITIONS}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(("zone", "day"), TRANSITIONS, ids=IDS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mysql_count_and_extract_agree_and_tile_datetime_readings(
    mariadb: MariaDBServer, zone_tables: dict[str, str], zone: str, day: date, reader: str, data: Any
) -> None:
    readings = sorted(set(data.draw(_readings(day))))
    _refill(mariadb, zone_tables[zone], readings)
    seen: Counter[int] = Counter()
    with mysql_source(mariadb, zone_tables[zone], zone, reader=reader) as source:
        grid = WindowGrid.from_config("1h", zone, day - timedelta(days=1))
        instants = [local_instant(r, zone) for r in readings]
        # the windows holding readings, and the empty ones between them (where a double count would show)
        for window in grid.windows_between(min(instants), max(instants) + timedelta(hours=1)):
            table = pa.Table.from_batches(list(source.extract(window)), schema=source.schema())
            assert source.count(window) == table.num_rows, window
            for row in table.to_pylist():
                seen[row["id"]] += 1
                assert window.contains(row["ts"]), (window, row)
                assert row["ts"] == local_instant(readings[row["id"]], zone)
    assert seen == Counter(range(len(readings)))


def _pipeline(tmp_path: Path, server: MariaDBServer, table: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(f"{MYSQL_REF.upper()}_USER", server.user)
    monkeypatch.setenv(f"{MYSQL_REF.upper()}_PASSWORD", server.password)
    source = {"type": "mysql", "host": server.host, "port": server.port, "database": server.database,
              "table": table, "query_field": "ts", "source_timezone": "America/New_York",
              "credentials_ref": MYSQL_REF}
    return make_pipeline_dir(
        tmp_path / "ny", [], source_system=source,
        stage_system__columns=[{"name": "id", "type": "integer"}, {"name": "ts", "type": "timestamp"}],
        target_system__dedup_keys=["id"],
        dag_schedule={"frequency": "hourly", "timezone": "America/New_York", "start_date": "2025-11-01"},
    )


def test_the_repeated_hour_of_a_new_york_datetime_table_is_loaded_once(
    tmp_path: Path, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: the 06:00Z window used to select both 01:xx passes and fail forever."""
    table = _table(mariadb, [datetime(2025, 11, 2, 1, 10), datetime(2025, 11, 2, 0, 59), datetime(2025, 11, 2, 2, 0)])
    folder = _pipeline(tmp_path, mariadb, table, monkeypatch)
    cli = Cli(cwd=tmp_path, home=tmp_path / "home")
    result = cli("run", "./ny", "--window-start", "2025-11-02T06:00:00Z")
    assert result.returncode == 0, result
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.window_starting(datetime(2025, 11, 2, 4, tzinfo=UTC))
        for _ in range(4):  # 04Z, 05Z, (06Z ran above), 07Z
            if window.start.hour != 6:
                record = pipeline.runner().run(window)
                assert record.pipeline_status is RunStatus.SUCCESS, (window, record.phase_failed, record.phases)
            window = pipeline.grid.next(window)
    rows = query(folder, "SELECT id, ts, _drivetrain_window_start FROM tests ORDER BY id")
    assert [(i, ts.astimezone(UTC), start.astimezone(UTC)) for i, ts, start in rows] == [
        (0, datetime(2025, 11, 2, 5, 10, tzinfo=UTC), datetime(2025, 11, 2, 5, tzinfo=UTC)),
        (1, datetime(2025, 11, 2, 4, 59, tzinfo=UTC), datetime(2025, 11, 2, 4, tzinfo=UTC)),
        (2, datetime(2025, 11, 2, 7, tzinfo=UTC), datetime(2025, 11, 2, 7, tzinfo=UTC)),
    ]


# -- ServiceNow: display values in the user's zone -------------------------------------------


@pytest.fixture(scope="module")
def sn_emulator() -> Iterator[Any]:
    from tests.emulators.servicenow import SnEmulator

    emulator = SnEmulator()
    emulator.start()
    yield emulator
    emulator.stop()


def test_servicenow_display_values_of_the_repeated_hour_stay_in_the_window_that_selected_them(sn_emulator: Any) -> None:
    """The instance selects by the stored UTC instant; the display value ``01:30`` of the later
    pass used to be read as the earlier instant, outside its own window."""
    from drivetrain.connectors.servicenow import ServiceNowSource

    sn_emulator.reset()
    sn_emulator.user_timezone = "America/New_York"
    stored = [datetime(2025, 11, 2, h, m, tzinfo=UTC) for h in (4, 5, 6, 7) for m in (0, 30)]
    sn_emulator.add_records("incident", [{"number": f"INC{i}", "sys_updated_on": t.strftime("%Y-%m-%d %H:%M:%S")}
                                         for i, t in enumerate(stored)])
    section = {"type": "servicenow", "host": sn_emulator.host, "use_ssl": False, "table": "incident",
               "credentials_ref": "lt_sn", "display_value": True, "timezone": "America/New_York"}
    config = SystemConfig.from_section("source_system", section, base_dir=Path("."), source_file="config.json")
    creds = resolve_credentials("lt_sn", environ={"LT_SN_USER": sn_emulator.user, "LT_SN_PASSWORD": sn_emulator.password})
    seen = []
    with ServiceNowSource(config, creds) as source:
        for hour in (4, 5, 6, 7):
            window = Window(datetime(2025, 11, 2, hour, tzinfo=UTC), datetime(2025, 11, 2, hour + 1, tzinfo=UTC))
            rows = [r for b in source.extract(window) for r in b.to_pylist()]
            assert source.count(window) == len(rows) == 2
            assert all(window.contains(r["sys_updated_on"]) for r in rows), (window, rows)
            seen += [r["sys_updated_on"] for r in rows]
    assert seen == stored
