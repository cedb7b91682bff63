"""The phase summary (``<drive table>__phases``) says exactly what the drive table's phase
documents say, on every store that shares drivetrain.sql.drive, and the report's figures read
from it are the ones read from the documents: after any history of writes (runs started and
finished with phases completed, failed, retried, skipped or pending, timestamps to the
microsecond, bulk imports, two pipelines), and after an older drive table without it is migrated."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.monitoring import metrics
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.sql import drive_phases
from drivetrain.warehouse import Warehouse

from .conftest import _make, rows
from .test_window_summary import backend  # noqa: F401 - the module-wide warehouse of each store

T0 = datetime(2025, 11, 15, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)

#: One phase as a run leaves it: status, seconds after the run's start it began (None: never),
#: microseconds it took (None: no end recorded), expected duration, in-phase retries.
PHASE = st.tuples(st.sampled_from(list(PhaseStatus)), st.sampled_from([None, 0, 7]),
                  st.sampled_from([None, 0, 1, 2_500_001, 40_000_000, 299_999_999]),
                  st.sampled_from([None, "30s", "5m"]), st.sampled_from([0, 0, 2]))
#: One write: (kind, pipeline, window, minutes after the window's end the run starts, run
#: status, the phases it ends with (phase index -> PHASE)).
WRITES = st.lists(st.tuples(
    st.sampled_from(["run", "run", "start", "bulk"]), st.sampled_from(["lab", "ops"]), st.integers(0, 3),
    st.sampled_from([5, 30, 90]), st.sampled_from([RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED]),
    st.dictionaries(st.integers(0, len(PHASE_NAMES) - 1), PHASE, max_size=4)), min_size=1, max_size=6)


def phases_of(started: datetime, drawn: dict[int, tuple[Any, ...]]) -> dict[str, PhaseState]:
    out = {name: PhaseState() for name in PHASE_NAMES}
    for index, (status, after, micros, expected, retries) in drawn.items():
        begun = None if after is None else started + timedelta(seconds=after, microseconds=123_457 * index)
        ended = None if begun is None or micros is None else begun + timedelta(microseconds=micros)
        out[PHASE_NAMES[index]] = PhaseState(status=status, start_timestamp=begun, end_timestamp=ended,
                                             expected_run_duration=expected, retry_number=retries)
    return out


def apply(store: Any, writes: list[tuple[Any, ...]]) -> None:
    """The writes through the store's API: a run is inserted RUNNING with its first phases and
    updated with all of them; ``start`` leaves it running; ``bulk`` imports the finished row."""
    attempts: dict[tuple[str, int], int] = {}
    for kind, name, window, minutes, status, drawn in writes:
        attempt = attempts.get((name, window), 0)
        attempts[(name, window)] = attempt + 1
        start = T0 + window * HOUR
        started = start + HOUR + timedelta(minutes=minutes, microseconds=attempt * 11)
        phases = phases_of(started, drawn)
        record = RunRecord(
            pipeline_id=f"{name}_w{window}_a{attempt}", pipeline_name=name, pipeline_status=RunStatus.RUNNING,
            pipeline_retry_number=attempt, pipeline_start_timestamp=started, query_window_start_timestamp=start,
            query_window_end_timestamp=start + HOUR, target_date=date(2025, 11, 15), query_window_duration="1h",
            phases={**phases, **{n: PhaseState() for n in PHASE_NAMES[len(PHASE_NAMES) // 2:]}}, lease_holder="host:1:abc",
            config_snapshot={"monitoring": {"duration_multiplier_threshold": 1.5}},
        )
        ended = attrs.evolve(record, pipeline_status=status, pipeline_end_timestamp=started + timedelta(minutes=3), phases=phases)
        if kind == "bulk":
            store.insert_many([ended])
            continue
        store.insert(record)
        if kind == "run":
            store.update(ended)


def new_store(wh: Warehouse) -> Any:
    store = wh.drive_store(wh.table_ref({"table": f"drive_{uuid.uuid4().hex[:10]}"}, None))
    store.ensure()
    return store


def summary(store: Any) -> list[tuple[Any, ...]]:
    """The phase summary's rows, decoded (instants as aware UTC, numbers as int)."""
    names = [n for n, _, _ in drive_phases.PHASE_COLUMNS]
    kinds = [k for _, k, _ in drive_phases.PHASE_COLUMNS]
    out = []
    for row in rows(store.wh, f"SELECT {', '.join(names)} FROM {store.phases_sql}"):
        values = []
        for kind, value in zip(kinds, row, strict=True):
            if value is not None and kind == "timestamp":
                value = store.dialect.decode("timestamp", value)
                value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            elif value is not None and kind in ("integer", "bigint"):
                value = int(value)
            values.append(value)
        out.append(tuple(values))
    return sorted(out, key=repr)


@attrs.frozen
class DocumentsOnly:
    """The drive table as a report source that has no summaries (as a drive table of an older
    layout is read): every figure from the drive rows' own phase documents."""

    store: Any

    @property
    def location(self) -> str:
        return str(self.store.location)

    @property
    def dialect(self) -> Any:
        return self.store.dialect

    @property
    def table_sql(self) -> str:
        return str(self.store.table_sql)

    def query(self, sql: str, params: Any = ()) -> list[dict[str, object]]:
        return self.store.query(sql, params)  # type: ignore[no-any-return]


def figures(store: Any) -> Any:
    """The metrics a report prints (as JSON)."""
    computed = metrics.compute(store, since=T0, now=T0 + 6 * HOUR).to_json()
    computed.pop("sources")
    return computed


def same(a: Any, b: Any, where: str = "") -> None:
    """``a`` and ``b`` equal, floats to 1e-4 (an average's last bits depend on the order it was
    summed in, and the ratios are rounded to four places)."""
    if isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-4), (where, a, b)
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=WRITES)
def test_the_phase_summary_is_what_the_phase_documents_say(backend: Warehouse, writes: list[tuple[Any, ...]]) -> None:  # noqa: F811
    store = new_store(backend)
    with store.keep_open():  # as a run holds its drive file between its writes
        apply(store, writes)
        assert summary(store) == drive_phases.expected(store.history())
        same(figures(store), figures(DocumentsOnly(store)))


def test_the_report_reads_the_phase_summary(backend: Warehouse) -> None:  # noqa: F811
    """A drive table of this layout answers the per-phase figures from the summary: emptied
    behind the store's back, the figures are gone (so the test above compares two paths)."""
    store = new_store(backend)
    apply(store, [("run", "lab", 0, 5, RunStatus.SUCCESS, {3: (PhaseStatus.COMPLETED, 0, 299_999_999, "30s", 2)})])
    assert [f["ran"] for f in figures(store)["phase_failures"] if f["phase"] == PHASE_NAMES[3]] == [1]
    # 300 s against 30 s x 1.5: over the threshold, counted from the summary's microseconds
    assert [(d["runs"], d["max_seconds"], d["over_threshold"]) for d in figures(store)["durations"]] == [(1, 299.999999, 1)]
    with store.wh.sql("empty the summary") as s:
        s.execute(f"DELETE FROM {store.phases_sql}")
    assert [f["ran"] for f in figures(store)["phase_failures"] if f["phase"] == PHASE_NAMES[3]] == [0]


def test_an_older_drive_table_gets_its_phase_summary_built_on_first_use(backend: Warehouse) -> None:  # noqa: F811
    """A drive table of layout 3 (window summary, no phase summary) is migrated: the phase
    summary is built from its rows, and the layout says 4."""
    store = new_store(backend)
    apply(store, [("run", "lab", 0, 5, RunStatus.FAILED, {3: (PhaseStatus.FAILED, 0, 1, "5m", 2)}),
                  ("bulk", "ops", 1, 30, RunStatus.SUCCESS, {4: (PhaseStatus.COMPLETED, 7, 2_500_001, None, 0)}),
                  ("start", "lab", 2, 5, RunStatus.SUCCESS, {})])
    want = drive_phases.expected(store.history())
    assert want
    meta, (key, value) = store.dialect.qualified(store.meta), store.meta_columns
    with store.wh.sql("make it an older layout") as s:
        for trigger in ("insert", "update", "delete"):  # as a layout-3 SQLite file has none
            if backend.dialect.__class__.__name__.startswith("Sqlite"):
                s.execute(f"DROP TRIGGER IF EXISTS {backend.dialect.owned(store.table.name + '__phases_' + trigger)}")
        s.execute(f"DROP TABLE {store.phases_sql}")
        s.execute(f"UPDATE {meta} SET {value} = '3' WHERE {key} = 'schema_version'")
    again = backend.drive_store(store.table)
    again.ensure()
    assert summary(again) == want
    assert rows(again.wh, f"SELECT {value} FROM {meta} WHERE {key} = 'schema_version'") == [(str(again.layout),)]


def test_on_sqlite_a_row_changed_by_hand_is_followed_by_the_phase_summary(tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """The runbook changes drive rows with SQL: on the default drive file triggers keep the
    phase summary; a heartbeat (no phase changed) leaves it alone."""
    import json
    import sqlite3

    wh = _make("sqlite", request, tmp_path)
    try:
        store = new_store(wh)
        apply(store, [("run", "lab", 0, 5, RunStatus.SUCCESS, {3: (PhaseStatus.COMPLETED, 0, 40_000_000, "30s", 0)}),
                      ("run", "lab", 1, 5, RunStatus.SUCCESS, {3: (PhaseStatus.COMPLETED, 0, 1, "30s", 0)})])
        failed = json.dumps({"status": "FAILED", "retry_number": 1, "start_timestamp": "2025-11-15T01:05:00+00:00",
                             "end_timestamp": "2025-11-15T01:05:02.5+00:00", "expected_run_duration": "30s"})
        column = f"{PHASE_NAMES[3]}_phase"
        with sqlite3.connect(tmp_path / "drive.sqlite") as conn:
            conn.execute(f"UPDATE {store.table_sql} SET {column} = ? WHERE pipeline_id = 'lab_w0_a0'", [failed])
            conn.execute(f"DELETE FROM {store.table_sql} WHERE pipeline_id = 'lab_w1_a0'")
            conn.execute(f"UPDATE {store.table_sql} SET heartbeat_at = '2025-11-15 03:00:00.000000+00:00'")
        assert summary(store) == drive_phases.expected(store.history())
        assert [(r[4], r[6], r[7]) for r in summary(store)] == [("FAILED", 1, 2_500_000)]
    finally:
        wh.close()


@pytest.mark.parametrize("damage", ["Infinity", '{"status": "COMPLETED", "start_tim', "NaN", "{status: 'FAILED'}"])
def test_on_sqlite_a_phase_column_that_is_not_json_reads_as_absent(
        tmp_path: Any, request: pytest.FixtureRequest, damage: str) -> None:
    """Another tool writes a phase column that is not JSON (SQLite keeps any text): the write
    is not refused by the summary's trigger, the phase counts as not done there, and the
    report and the metrics still answer (as the row codec reads such a row: damaged, not fatal).
    The figures are those of the row without that phase."""
    import sqlite3

    wh = _make("sqlite", request, tmp_path)
    try:
        store = new_store(wh)
        apply(store, [("run", "lab", 0, 5, RunStatus.SUCCESS, {3: (PhaseStatus.COMPLETED, 0, 40_000_000, "30s", 0),
                                                             4: (PhaseStatus.COMPLETED, 0, 2_000_000, "30s", 0)})])
        column = f"{PHASE_NAMES[3]}_phase"
        with sqlite3.connect(tmp_path / "drive.sqlite") as conn:
            conn.execute(f"UPDATE {store.table_sql} SET {column} = ? WHERE pipeline_id = 'lab_w0_a0'", [damage])
        assert [r[3] for r in summary(store)] == [PHASE_NAMES[4]]
        reference = new_store(wh)
        apply(reference, [("run", "lab", 0, 5, RunStatus.SUCCESS, {4: (PhaseStatus.COMPLETED, 0, 2_000_000, "30s", 0)})])
        same(figures(store), figures(reference), "a phase column that is not JSON")
        same(figures(DocumentsOnly(store)), figures(reference), "read from the documents")
    finally:
        wh.close()
