"""The window summary (``<drive table>__windows``) says exactly what the drive table says, on
every store that shares drivetrain.sql.drive: after any history of writes (runs started and
finished, retries, runs carrying phases, runs started before their window ended, bulk imports,
two pipelines), and after an older drive table without it is migrated."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.config import SystemConfig
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.sql import drive_windows
from drivetrain.warehouse import Warehouse

from .conftest import _make, rows

T0 = datetime(2025, 11, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
STORES = ["sqlite", "duckdb", "snowflake", "postgres"]


def _warehouse(name: str, request: pytest.FixtureRequest, tmp_path: Any) -> Warehouse:
    if name == "duckdb":  # the DuckDB drive store itself (the default layout would use drive.sqlite)
        from drivetrain.connectors.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(SystemConfig.from_section(
            "stage_system", {"type": "duckdb", "path": "w.duckdb", "table": "stg", "drive_path": "drive.duckdb"}, base_dir=tmp_path))
    return _make(name, request, tmp_path)


@pytest.fixture(params=STORES, scope="module")
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """One warehouse per store for the module; each example takes a drive table of its own."""
    mp = pytest.MonkeyPatch()  # the helpers ask for function-scoped fixtures: module-wide ones here
    request.getfixturevalue = _module_wide(request, mp)  # type: ignore[method-assign]
    wh = _warehouse(request.param, request, tmp_path_factory.mktemp(request.param))
    try:
        yield wh
    finally:
        wh.close()
        mp.undo()


def _module_wide(request: pytest.FixtureRequest, mp: pytest.MonkeyPatch) -> Any:
    original = request.getfixturevalue
    given = {"monkeypatch": mp, "database": f"T_{uuid.uuid4().hex[:12].upper()}"}

    def get(name: str) -> Any:
        return given[name] if name in given else original(name)
    return get


def new_store(wh: Warehouse):  # noqa: ANN201 - the backend's SqlDriveStore
    store = wh.drive_store(wh.table_ref({"table": f"drive_{uuid.uuid4().hex[:10]}"}, None))
    store.ensure()
    return store


def summary(store: Any) -> set[tuple[Any, ...]]:
    """The summary table's rows, decoded (instants as aware UTC, counts as int)."""
    names = [n for n, _, _ in drive_windows.WINDOW_COLUMNS]
    kinds = [k for _, k, _ in drive_windows.WINDOW_COLUMNS]
    found = rows(store.wh, f"SELECT {', '.join(names)} FROM {store.dialect.qualified(store.windows_ref)}")
    out = set()
    for row in found:
        values = []
        for kind, value in zip(kinds, row, strict=True):
            if value is not None and kind == "timestamp":
                value = store.dialect.decode("timestamp", value)
                value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            elif value is not None and kind == "integer":
                value = int(value)
            values.append(value)
        out.add(tuple(values))
    return out


def run(name: str, window: int, attempt: int, started: datetime, status: RunStatus, *, carried: bool = False) -> RunRecord:
    start = T0 + window * HOUR
    phases = {p: PhaseState(status=PhaseStatus.SKIPPED, skip_reason="completed earlier", carried_from=f"{name}_w{window}_a0")
              for p in PHASE_NAMES[:2]} if carried else {}
    return RunRecord(
        pipeline_id=f"{name}_w{window}_a{attempt}", pipeline_name=name, pipeline_status=status, pipeline_retry_number=attempt,
        pipeline_start_timestamp=started, query_window_start_timestamp=start, query_window_end_timestamp=start + HOUR,
        target_date=date(2025, 11, 15), query_window_duration="1h", phases={**{p: PhaseState() for p in PHASE_NAMES}, **phases},
        pipeline_end_timestamp=None if status is RunStatus.RUNNING else started + timedelta(minutes=3),
        phases_skipped=tuple(phases), lease_holder="host:1:abc",
    )


#: One write: (kind, pipeline, window, minutes after the window's end the run starts (negative:
#: before it ended), the status it ends with, whether it carries phases).
WRITES = st.lists(st.tuples(
    st.sampled_from(["run", "run", "start", "bulk"]), st.sampled_from(["lab", "ops"]), st.integers(0, 3),
    st.sampled_from([-20, 5, 5, 30, 90]), st.sampled_from([RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED]),
    st.booleans()), min_size=1, max_size=8)


def apply(store: Any, writes: list[tuple[Any, ...]]) -> None:
    """The writes through the store's API: a run is inserted RUNNING and updated with its end;
    ``start`` leaves it running; ``bulk`` imports the finished row with insert_many."""
    attempts: dict[tuple[str, int], int] = {}
    for kind, name, window, minutes, status, carried in writes:
        attempt = attempts.get((name, window), 0)
        attempts[(name, window)] = attempt + 1
        started = T0 + (window + 1) * HOUR + timedelta(minutes=minutes)
        record = run(name, window, attempt, started, RunStatus.RUNNING, carried=carried)
        if kind == "bulk":
            store.insert_many([attrs.evolve(record, pipeline_status=status, pipeline_end_timestamp=started + HOUR)])
            continue
        store.insert(record)
        store.insert(record)  # a retried insert changes nothing
        if kind == "run":
            store.update(attrs.evolve(record, pipeline_status=status, pipeline_end_timestamp=started + timedelta(minutes=3)))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=WRITES)
def test_the_summary_is_what_the_drive_table_says_after_any_writes(backend: Warehouse, writes: list[tuple[Any, ...]]) -> None:
    store = new_store(backend)
    with store.keep_open():  # as a run holds its drive file between its writes
        apply(store, writes)
    assert summary(store) == drive_windows.expected(store.history())


def test_an_older_drive_table_gets_its_summary_built_on_first_use(backend: Warehouse) -> None:
    """A drive table of layout 2 (no summary) is migrated: the summary is built from its rows."""
    store = new_store(backend)
    apply(store, [("run", "lab", 0, 5, RunStatus.FAILED, False), ("run", "lab", 0, 30, RunStatus.SUCCESS, True),
                  ("start", "lab", 1, 5, RunStatus.SUCCESS, False), ("run", "ops", 2, -20, RunStatus.SUCCESS, False)])
    want = drive_windows.expected(store.history())
    meta, (key, value) = store.dialect.qualified(store.meta), store.meta_columns
    with store.wh.sql("make it an older layout") as s:
        s.execute(f"DROP TABLE {store.dialect.qualified(store.windows_ref)}")
        s.execute(f"UPDATE {meta} SET {value} = '2' WHERE {key} = 'schema_version'")
    again = backend.drive_store(store.table)
    again.ensure()
    assert summary(again) == want
    assert rows(again.wh, f"SELECT {value} FROM {meta} WHERE {key} = 'schema_version'") == [(str(again.layout),)]


def test_on_sqlite_a_row_changed_by_hand_is_followed_by_the_summary(tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """The runbook changes drive rows with SQL: on the default drive file triggers keep the summary."""
    import sqlite3

    wh = _make("sqlite", request, tmp_path)
    try:
        store = new_store(wh)
        apply(store, [("run", "lab", 0, 5, RunStatus.SUCCESS, False), ("run", "lab", 1, 5, RunStatus.SUCCESS, False)])
        with sqlite3.connect(tmp_path / "drive.sqlite") as conn:
            conn.execute(f"UPDATE {store.table_sql} SET pipeline_status = 'FAILED' WHERE pipeline_id = 'lab_w0_a0'")
            conn.execute(f"DELETE FROM {store.table_sql} WHERE pipeline_id = 'lab_w1_a0'")
        assert summary(store) == drive_windows.expected(store.history())
        assert [r[4] for r in summary(store)] == [1]  # window 0 failed; window 1 has no runs, so no row
    finally:
        wh.close()


def edges(store: Any) -> set[tuple[Any, ...]]:
    """The SQLite summary's island flags: (pipeline, window start, window end, island_start, island_end)."""
    found = rows(store.wh, f"SELECT pipeline_name, window_start, window_end, island_start, island_end FROM {store.windows_sql}")
    at = store.dialect.decode
    return {(n, at("timestamp", s), at("timestamp", e), int(a), int(b)) for n, s, e, a, b in found}


def expected_edges(records: list[RunRecord]) -> set[tuple[Any, ...]]:
    """The flags as the anti-joins define them, from the summary's definition: a completed window
    no completed window of its pipeline ends at the start of (starts), or starts at the end of (ends)."""
    windows = drive_windows.expected(records)
    done = {(w[0], w[1], w[2]) for w in windows if w[6] > 0}
    return {(n, s, e, int((n, s, e) in done and not any(d[0] == n and d[2] == s for d in done)),
             int((n, s, e) in done and not any(d[0] == n and d[1] == e for d in done))) for n, s, e, *_ in windows}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=WRITES, by_hand=st.lists(st.tuples(st.sampled_from(["fail", "succeed", "delete"]), st.integers(0, 7)), max_size=3))
def test_on_sqlite_the_island_edges_are_the_anti_joins_answer_after_any_writes(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, writes: list[tuple[Any, ...]],
        by_hand: list[tuple[str, int]]) -> None:
    """Layout 5: each window's island flags, kept by the triggers with every write (one by hand
    too), are what the islands' anti-joins over every completed window say."""
    import sqlite3

    folder = tmp_path_factory.mktemp("edges")
    wh = _make("sqlite", request, folder)
    try:
        store = new_store(wh)
        apply(store, writes)
        ids = sorted(r.pipeline_id for r in store.history())
        with sqlite3.connect(folder / "drive.sqlite") as conn:
            for change, pick in by_hand:
                if not ids:
                    break
                where = f"WHERE pipeline_id = '{ids[pick % len(ids)]}'"
                conn.execute(f"DELETE FROM {store.table_sql} {where}" if change == "delete" else
                             f"UPDATE {store.table_sql} SET pipeline_status = '{'FAILED' if change == 'fail' else 'SUCCESS'}' {where}")
        assert edges(store) == expected_edges(store.history())
    finally:
        wh.close()


def test_on_sqlite_a_layout_4_file_gets_its_island_edges_and_new_triggers_on_first_use(
        tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """A drive file of layout 4 (no flags, the triggers of then) is migrated on first use: the
    flags computed for its rows, its triggers replaced, and the next writes keep them."""
    wh = _make("sqlite", request, tmp_path)
    try:
        store = new_store(wh)
        apply(store, [("run", "lab", 0, 5, RunStatus.SUCCESS, False), ("run", "lab", 1, 5, RunStatus.FAILED, False),
                      ("run", "lab", 2, 5, RunStatus.SUCCESS, False), ("run", "lab", 3, 5, RunStatus.SUCCESS, False)])
        meta, (key, value) = store.dialect.qualified(store.meta), store.meta_columns
        with store.wh.sql("make it layout 4") as s:
            for name, in s.rows("SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql LIKE '%island%' "
                                "OR name LIKE '%completed_lengths'"):
                kind = s.rows("SELECT type FROM sqlite_master WHERE name = ?", [name])[0][0]
                s.execute(f"DROP {kind.upper()} {store.dialect.owned(name)}")
            for column in ("island_start", "island_end"):
                s.execute(f"ALTER TABLE {store.windows_sql} DROP COLUMN {column}")
            for trigger in drive_windows.trigger_sql(store.dialect, store.table):  # layout 4's triggers
                s.execute(trigger)
            s.execute(f"UPDATE {meta} SET {value} = '4' WHERE {key} = 'schema_version'")
        again = wh.drive_store(store.table)
        assert again.island_indexes() is None
        again.ensure()
        assert again.island_indexes() is not None
        assert edges(again) == expected_edges(again.history())
        assert rows(again.wh, f"SELECT {value} FROM {meta} WHERE {key} = 'schema_version'") == [(str(again.layout),)]
        apply(again, [("run", "lab", 1, 30, RunStatus.SUCCESS, False)])  # the hole closes: one island
        assert edges(again) == expected_edges(again.history())
        assert sorted((e[1].hour, e[3], e[4]) for e in edges(again)) == [(0, 1, 0), (1, 0, 0), (2, 0, 0), (3, 0, 1)]
    finally:
        wh.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=WRITES, since=st.integers(0, 4))
def test_on_sqlite_a_runs_next_window_questions_read_the_summary_with_the_same_answers(
        tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, writes: list[tuple[Any, ...]], since: int) -> None:
    """What a run asks to choose its window -- the first window from ``since`` no run completed,
    and the open windows from ``since`` -- read from the island edges and the summary's open
    windows, is what the drive table's own runs say (the generic queries, and a model)."""
    from drivetrain.sql.drive import SqlDriveStore

    wh = _make("sqlite", request, tmp_path_factory.mktemp("choice"))
    try:
        store = new_store(wh)
        apply(store, writes)
        records = store.history()
        at = T0 + since * HOUR
        for name in ("lab", "ops"):
            assert store.island_indexes() is not None
            assert store.first_incomplete(name, at) == SqlDriveStore.first_incomplete(store, name, at)
            windows: dict[tuple[datetime, datetime], list[RunRecord]] = {}
            for r in records:
                if r.pipeline_name == name and r.query_window_start_timestamp >= at:
                    windows.setdefault((r.query_window_start_timestamp, r.query_window_end_timestamp), []).append(r)
            ok = (RunStatus.SUCCESS, RunStatus.SKIPPED)
            want = [(s, e, len(runs), sum(r.pipeline_status is RunStatus.FAILED for r in runs),
                     sum(r.pipeline_status is RunStatus.RUNNING for r in runs), sum(r.pipeline_status in ok for r in runs))
                    for (s, e), runs in sorted(windows.items())
                    if not any(r.pipeline_status in ok and r.pipeline_start_timestamp >= e for r in runs)]
            assert [(w.start, w.end, w.attempts, w.failed, w.running, w.partial) for w in store.open_windows(name, at)] == want
    finally:
        wh.close()
