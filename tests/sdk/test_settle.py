"""Settling late data: loaded windows inside settle_horizon are re-counted and reloaded on drift.

The files source (JSONL), the MySQL source on the real MariaDB server and the ServiceNow source
on its emulator, DuckDB stage and target; late records are appended to the source after their
window was loaded.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.connectors.files import FilesSource
from drivetrain.errors import PermanentError, TransientError
from drivetrain.settle import check, plan_reloads, reload_reason, settle, settling_windows
from drivetrain.window import Window
from tests.emulators.servicenow import SnEmulator
from tests.reliability.sources import mysql_pipeline, sn_pipeline, sn_time, utc
from tests.servers.mariadb import MariaDBServer

from .factory import DAY, make_pipeline_dir, query

HOUR = timedelta(hours=1)
WINDOWS = 3
#: "Now" for the tests: an hour after the third window ended.
NOW = DAY + (WINDOWS + 1) * HOUR
HORIZON = {"query_window.settle_horizon": "6h"}


def record(i: int, hour: int, minute: int = 0, prefix: str = "T") -> dict[str, Any]:
    ts = DAY + hour * HOUR + timedelta(minutes=minute % 60, seconds=minute // 60)
    return {"test_id": f"{prefix}{i:05d}", "age": 40, "result": "positive", "reported_at": ts.isoformat().replace("+00:00", "Z")}


def first_rows() -> list[dict[str, Any]]:
    return [record(h * 100 + i, h, i) for h in range(WINDOWS) for i in range(5)]


def append(folder: Path, records: list[dict[str, Any]]) -> None:
    with open(folder / "data" / "records.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def remove(folder: Path, test_id: str) -> None:
    """Delete a record at the source (the JSONL file without its line)."""
    path = folder / "data" / "records.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if json.loads(line)["test_id"] != test_id), encoding="utf-8")


def pipeline_fingerprint(window: Window, history: list[Any]) -> str:
    """The fingerprint the window's first load recorded."""
    first = min((r for r in history if r.query_window_start_timestamp == window.start), key=lambda r: r.pipeline_retry_number)
    return str(first.phases["source_count"].phase_specific_details["fingerprint"])


def ids_in_target(folder: Path, window: Window) -> list[str]:
    rows = query(folder, "SELECT test_id FROM tests WHERE reported_at >= ? AND reported_at < ? ORDER BY 1", [window.start, window.end])
    return [r[0] for r in rows]


def load_all(pipeline: Pipeline) -> list[Window]:
    runner = pipeline.runner(heartbeat_seconds=0.2)
    windows = list(pipeline.grid.windows_between(DAY, DAY + WINDOWS * HOUR))
    for window in windows:
        assert runner.run(window).pipeline_status is RunStatus.SUCCESS
    return windows


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab", first_rows(), query_window__settle_horizon="6h")


class TestSettle:
    def test_late_records_reach_the_target_by_a_reload_that_says_why(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            append(folder, [record(900 + i, 1, 30 + i, prefix="L") for i in range(3)])
            outcome = settle(pipeline, now=NOW)
        assert outcome.reloaded == [windows[1]]
        (reload,) = outcome.records
        assert reload.pipeline_status is RunStatus.SUCCESS
        assert reload.pipeline_id == "lab_20251115T010000Z_run2"
        assert reload_reason(reload) == "source count 5 -> 8 since the run of lab_20251115T010000Z_run1"
        details = reload.phases["source_count"].phase_specific_details["reload"]
        assert details == {"previous_run": "lab_20251115T010000Z_run1", "previous_count": 5, "count": 8, "drift": 3,
                           "reason": "source count 5 -> 8 since the run of lab_20251115T010000Z_run1"}
        assert ids_in_target(folder, windows[1]) == [f"L{900 + i:05d}" for i in range(3)] + [f"T{100 + i:05d}" for i in range(5)]

    def test_a_late_record_and_a_deleted_one_in_the_same_window_are_found_by_the_fingerprint(self, folder: Path) -> None:
        """The count stays 5, the records do not: the window is reloaded and the target follows."""
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            remove(folder, "T00102")
            append(folder, [record(900, 1, 30, prefix="L")])
            outcome = settle(pipeline, now=NOW)
        assert outcome.reloaded == [windows[1]]
        (drift,) = [d for d in outcome.drifts if d.drifted]
        assert (drift.loaded, drift.count, drift.records_changed) == (5, 5, True)
        (reload,) = outcome.records
        assert reload_reason(reload) == (
            "source count unchanged (5) but the window's records changed since the run of lab_20251115T010000Z_run1 (fingerprint)")
        details = reload.phases["source_count"].phase_specific_details
        assert details["reload"]["records_changed"] is True and details["reload"]["drift"] == 0
        assert details["fingerprint"] != pipeline_fingerprint(windows[1], pipeline.drive_store().history(pipeline.name))
        assert ids_in_target(folder, windows[1]) == ["L00900", "T00100", "T00101", "T00103", "T00104"]

    def test_without_a_horizon_no_fingerprint_is_taken(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", first_rows())
        with Pipeline.load(folder) as pipeline:
            record_ = pipeline.runner().run(pipeline.grid.first())
        assert "fingerprint" not in record_.phases["source_count"].phase_specific_details

    def test_windows_whose_count_did_not_change_are_only_counted(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            load_all(pipeline)
            outcome = settle(pipeline, now=NOW)
            history = pipeline.drive_store().history(pipeline.name)
        assert [d.drifted for d in outcome.drifts] == [False] * WINDOWS
        assert outcome.records == () and len(history) == WINDOWS

    def test_windows_that_ended_before_the_horizon_are_final(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            append(folder, [record(900, 0, 30, prefix="L"), record(901, 2, 30, prefix="L")])
            outcome = settle(pipeline, now=windows[0].end + timedelta(hours=6))  # window 0 ended exactly 6h ago
        assert [d.window for d in outcome.drifts] == windows[1:]
        assert outcome.reloaded == [windows[2]]
        assert "L00900" not in ids_in_target(folder, windows[0])

    def test_without_a_horizon_loaded_windows_are_never_counted_again(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", first_rows())
        with Pipeline.load(folder) as pipeline:
            load_all(pipeline)
            append(folder, [record(900, 1, 30, prefix="L")])
            assert check(pipeline, now=NOW) == []

    def test_an_empty_window_that_was_skipped_is_reloaded_when_records_arrive(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", [], query_window__settle_horizon="6h",
                                   phases__source_count={"on_empty_window": "skip"})
        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.first()
            assert pipeline.runner().run(window).pipeline_status is RunStatus.SKIPPED
            append(folder, [record(900, 0, 10, prefix="L")])
            outcome = settle(pipeline, now=window.end + HOUR)
        assert outcome.reloaded == [window] and outcome.records[0].pipeline_status is RunStatus.SUCCESS
        assert ids_in_target(folder, window) == ["L00900"]

    def test_a_source_that_fails_the_recount_is_reported_and_nothing_is_reloaded(self, folder: Path) -> None:
        class Unreachable(FilesSource):
            def count(self, window: Window) -> int:
                raise PermanentError("source unreachable: connection refused")

        with Pipeline.load(folder) as pipeline:
            load_all(pipeline)
            pipeline.use(source=Unreachable(pipeline.config.source))
            outcome = settle(pipeline, now=NOW)
            history = pipeline.drive_store().history(pipeline.name)
        assert [d.reason for d in outcome.drifts] == ["could not re-count the source: source unreachable: connection refused"] * WINDOWS
        assert outcome.records == () and len(history) == WINDOWS

    def test_a_transient_recount_failure_is_retried_and_a_lasting_one_spares_the_other_windows(self, folder: Path) -> None:
        class Flaky(FilesSource):
            failures = 1

            def count(self, window: Window) -> int:
                if Flaky.failures:
                    Flaky.failures -= 1
                    raise TransientError("connection reset by peer")
                return super().count(window)

        with Pipeline.load(folder, overrides={"retry.backoff_strategy": "none"}) as pipeline:
            load_all(pipeline)
            append(folder, [record(900, 0, 30, prefix="L")])
            pipeline.use(source=Flaky(pipeline.config.source))
            assert [d.drifted for d in check(pipeline, now=NOW)] == [True, False, False]
            Flaky.failures = 99
            drifts = check(pipeline, now=NOW)
        assert drifts[0].reason == "could not re-count the source: connection reset by peer"
        assert [d.reason for d in drifts[1:]] == ["not counted: the source failed for an earlier window (connection reset by peer)"] * 2
        assert Flaky.failures == 99 - 3  # max_retries 2: three tries, then the other windows are left alone

    def test_a_plain_run_takes_its_own_window_first_then_each_drifted_window_once(self, folder: Path) -> None:
        notes: list[str] = []
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            append(folder, [record(900, 0, 30, prefix="L"), record(901, 2, 30, prefix="L")])
            due = pipeline.grid.next(windows[-1])
            planned = plan_reloads(pipeline, [due, windows[2]], note=notes.append, now=NOW)
            nothing_due = plan_reloads(pipeline, None, note=notes.append, now=NOW)
        assert planned == [due, windows[2], windows[0]]
        assert nothing_due == [windows[0], windows[2]]
        assert notes[0] == f"settle: {windows[0]}: source count 5 -> 6 since the run of lab_20251115T000000Z_run1: reloading the window"

    def test_a_plain_run_with_nothing_due_and_no_drift_has_nothing_to_run(self, folder: Path) -> None:
        notes: list[str] = []
        with Pipeline.load(folder) as pipeline:
            load_all(pipeline)
            assert plan_reloads(pipeline, None, note=notes.append, now=NOW) is None
        assert notes == ["settle: 3 window(s) inside settle_horizon 6h re-counted: no change"]

    def test_a_window_a_live_run_holds_is_left_to_it_and_a_dead_runs_window_is_reloaded(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            append(folder, [record(900, 1, 30, prefix="L")])
            holder = pipeline.runner()
            holder.start(windows[1])  # a run in Airflow's step mode: RUNNING, its lease held between tasks
            assert [w for w, _ in settling_windows(pipeline, NOW)] == [windows[0], windows[2]]
            pipeline.drive_store().release_lease(holder.lease)  # its process is gone; the row stays RUNNING
            outcome = settle(pipeline, now=NOW)
        assert outcome.reloaded == [windows[1]]
        assert outcome.records[0].pipeline_status is RunStatus.SUCCESS
        assert reload_reason(outcome.records[0]) == "source count 5 -> 6 since the run of lab_20251115T010000Z_run1"

    def test_a_reload_that_would_shrink_the_window_is_stopped_by_the_guard(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            kept = [r for r in first_rows() if not r["test_id"].startswith("T001")][:-1]
            (folder / "data" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
            outcome = settle(pipeline, now=NOW)
        assert outcome.reloaded == [windows[1], windows[2]]
        stopped, shrunk = outcome.records
        assert stopped.pipeline_status is RunStatus.FAILED and "shrink guard" in (stopped.phases["stage_to_target_transfer"].error_message or "")
        assert len(ids_in_target(folder, windows[1])) == 5
        assert shrunk.pipeline_status is RunStatus.SUCCESS and len(ids_in_target(folder, windows[2])) == 4


class TestSettleOnMySQL:
    def test_late_rows_inserted_in_mariadb_are_reloaded(self, tmp_path: Path, mariadb: MariaDBServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        folder = mysql_pipeline(tmp_path / "lab", mariadb, first_rows(), monkeypatch, query_window__settle_horizon="6h")
        table = json.loads((folder / "config.json").read_text())["source_system"]["table"]
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            late = [record(900 + i, 2, 40 + i, prefix="L") for i in range(4)]
            admin = mariadb.admin(database=mariadb.database)
            try:
                with admin.cursor() as cursor:
                    cursor.executemany(f"INSERT INTO {table} (test_id, age, result, reported_at) VALUES (%s, %s, %s, %s)",
                                       [(r["test_id"], str(r["age"]), r["result"], utc(r).replace(tzinfo=None)) for r in late])
                admin.commit()
            finally:
                admin.close()
            outcome = settle(pipeline, now=NOW)
        assert outcome.reloaded == [windows[2]]
        assert reload_reason(outcome.records[0]) == "source count 5 -> 9 since the run of lab_20251115T020000Z_run1"
        assert len(ids_in_target(folder, windows[2])) == 9

    def test_a_late_row_and_a_deleted_one_in_mariadb_are_found_by_the_fingerprint(
            self, tmp_path: Path, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = mysql_pipeline(tmp_path / "lab", mariadb, first_rows(), monkeypatch, query_window__settle_horizon="6h")
        table = json.loads((folder / "config.json").read_text())["source_system"]["table"]
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            late = record(900, 1, 40, prefix="L")
            admin = mariadb.admin(database=mariadb.database)
            try:
                with admin.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {table} WHERE test_id = 'T00103'")
                    cursor.execute(f"INSERT INTO {table} (test_id, age, result, reported_at) VALUES (%s, %s, %s, %s)",
                                   (late["test_id"], str(late["age"]), late["result"], utc(late).replace(tzinfo=None)))
                admin.commit()
            finally:
                admin.close()
            outcome = settle(pipeline, now=NOW)
            again = check(pipeline, now=NOW)
        assert outcome.reloaded == [windows[1]]
        assert "source count unchanged (5) but the window's records changed" in (reload_reason(outcome.records[0]) or "")
        assert ids_in_target(folder, windows[1]) == ["L00900", "T00100", "T00101", "T00102", "T00104"]
        assert not any(d.drifted for d in again)  # the reload recorded the new fingerprint


def sn_record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a ServiceNow record with the system fields the platform keeps: created when
    reported, never updated since."""
    return {**row, "sys_created_on": sn_time(row), "sys_updated_on": sn_time(row), "sys_mod_count": "0"}


def sn_table(folder: Path) -> str:
    return str(json.loads((folder / "config.json").read_text())["source_system"]["table"])


def sn_sys_id(sn: SnEmulator, table: str, test_id: str) -> str:
    return next(str(r["sys_id"]) for r in sn.tables[table] if r.get("test_id") == test_id)


class TestSettleOnServiceNow:
    def test_a_late_record_and_a_deleted_one_are_found_by_the_fingerprint(
            self, tmp_path: Path, sn: SnEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = sn_pipeline(tmp_path / "lab", sn, [sn_record(r) for r in first_rows()], monkeypatch,
                             query_window__settle_horizon="6h")
        table = sn_table(folder)
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            sn.delete_record(table, sn_sys_id(sn, table, "T00103"))
            late = record(900, 1, 40, prefix="L")  # reported in window 1, created at 03:30, after its load
            sn.add_records(table, [{**sn_record(late), "age": "40", "reported_at": sn_time(late),
                                    "sys_created_on": "2025-11-15 03:30:00", "sys_updated_on": "2025-11-15 03:30:00"}])
            outcome = settle(pipeline, now=NOW)
            again = check(pipeline, now=NOW)
        assert outcome.reloaded == [windows[1]]
        assert reload_reason(outcome.records[0]) == (
            "source count unchanged (5) but the window's records changed since the run of lab_20251115T010000Z_run1 (fingerprint)")
        assert ids_in_target(folder, windows[1]) == ["L00900", "T00100", "T00101", "T00102", "T00104"]
        assert not any(d.drifted for d in again)  # the reload recorded the new fingerprint

    def test_a_record_updated_in_place_is_reloaded(self, tmp_path: Path, sn: SnEmulator,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        folder = sn_pipeline(tmp_path / "lab", sn, [sn_record(r) for r in first_rows()], monkeypatch,
                             query_window__settle_horizon="6h")
        table = sn_table(folder)
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            sn.update_record(table, sn_sys_id(sn, table, "T00201"), {"result": "negative"}, at=DAY + 3 * HOUR + timedelta(minutes=30))
            outcome = settle(pipeline, now=NOW)
        assert outcome.reloaded == [windows[2]]
        assert "source count unchanged (5) but the window's records changed" in (reload_reason(outcome.records[0]) or "")
        assert query(folder, "SELECT result FROM tests WHERE test_id = 'T00201'") == [("negative",)]

    def test_a_table_without_the_system_fields_settles_on_counts_alone(
            self, tmp_path: Path, sn: SnEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = sn_pipeline(tmp_path / "lab", sn, first_rows(), monkeypatch, query_window__settle_horizon="6h")
        table = sn_table(folder)
        with Pipeline.load(folder) as pipeline:
            windows = load_all(pipeline)
            history = pipeline.drive_store().history(pipeline.name)
            late = record(900, 0, 40, prefix="L")
            sn.add_records(table, [{**late, "age": "40", "reported_at": sn_time(late)}])
            outcome = settle(pipeline, now=NOW)
        assert all("fingerprint" not in r.phases["source_count"].phase_specific_details for r in history)
        assert outcome.reloaded == [windows[0]]
        assert outcome.records[0].pipeline_status is RunStatus.SUCCESS


# -- the property: after a plain run covering them, every window holds exactly its source's rows -----

PROPERTY_WINDOWS = 4
PROPERTY_NOW = DAY + (PROPERTY_WINDOWS + 1) * HOUR
operations = st.lists(
    st.one_of(st.tuples(st.just("late"), st.integers(0, PROPERTY_WINDOWS - 1), st.integers(1, 3)),
              st.tuples(st.just("swap"), st.integers(0, PROPERTY_WINDOWS - 1)), st.just(("run",))),
    min_size=1, max_size=7,
)
"""Late records arriving for a window (its index, how many), a record of a window deleted as a
late one arrives in it (the count stays), and plain runs, in any order."""


def plain_run(pipeline: Pipeline) -> list[Any]:
    """What ``drivetrain run PIPELINE`` does: the next window not loaded yet, then the drifted ones."""
    store = pipeline.drive_store()
    done = {r.query_window_start_timestamp for r in store.history(pipeline.name)} if store.exists() else set()
    due = next((w for w in pipeline.grid.windows_between(DAY, DAY + PROPERTY_WINDOWS * HOUR) if w.start not in done), None)
    windows = plan_reloads(pipeline, [due] if due is not None else None, note=lambda line: None, now=PROPERTY_NOW) or []
    runner = pipeline.runner(heartbeat_seconds=0.2)
    return [runner.run(window) for window in windows]


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_after_a_plain_run_every_window_in_the_horizon_holds_exactly_its_source_rows(
        tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]) -> None:
    rows = [record(h * 100 + i, h, i) for h in range(PROPERTY_WINDOWS) for i in range(3)]
    folder = make_pipeline_dir(tmp_path_factory.mktemp("lab"), rows, query_window__settle_horizon="6h")
    source = {h: {f"T{h * 100 + i:05d}" for i in range(3)} for h in range(PROPERTY_WINDOWS)}
    late = 0
    with Pipeline.load(folder) as pipeline:
        for op in ops:
            if op[0] == "late":
                _, index, n = op
                arrivals = [record(9000 + late + k, index, 30 + k, prefix="L") for k in range(n)]
                append(folder, arrivals)
                source[index] |= {r["test_id"] for r in arrivals}
                late += n
            elif op[0] == "swap":
                index = op[1]
                gone = min(source[index])
                remove(folder, gone)
                arrival = record(9000 + late, index, 45, prefix="L")
                append(folder, [arrival])
                source[index] = (source[index] - {gone}) | {arrival["test_id"]}
                late += 1
            else:
                plain_run(pipeline)
        while len(pipeline.drive_store().history(pipeline.name, status=[RunStatus.SUCCESS])) < PROPERTY_WINDOWS:
            assert plain_run(pipeline), "a plain run ran nothing while windows were still unloaded"
        plain_run(pipeline)  # the run the property is about: the horizon covers every window
        history = pipeline.drive_store().history(pipeline.name)
        windows = list(pipeline.grid.windows_between(DAY, DAY + PROPERTY_WINDOWS * HOUR))
    for index, window in enumerate(windows):
        assert set(ids_in_target(folder, window)) == source[index], index
        assert len(ids_in_target(folder, window)) == len(source[index])
    assert all(r.pipeline_status is RunStatus.SUCCESS for r in history)
    for run in history:
        if run.pipeline_retry_number > 0:  # nothing fails here: every later attempt is a reload for drift
            reason = reload_reason(run)
            assert reason is not None and re.fullmatch(
                r"source count (\d+ -> \d+|unchanged \(\d+\) but the window's records changed) "
                r"since the run of lab_\w+_run\d+( \(fingerprint\))?", reason), reason
