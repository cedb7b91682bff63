"""Mutable records: a record updated later moves to a later window and must end up in the target once.

The property test drives a DuckDB pipeline through random inserts, updates that move records to
later windows, and runs in any order (re-runs of old windows, out-of-order backfills); the
target must never hold a record twice, never an older version than one it held, and, once every
window has run after the last change, exactly the latest version of every source record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.cli import _templates as templates
from drivetrain.cli.scaffold import config_for, scaffold
from drivetrain.record import RunRecord
from drivetrain.testing import MemorySource

START = datetime.fromisoformat(templates.SAMPLE_DAY).replace(tzinfo=UTC)
HOUR = timedelta(hours=1)


def run_window(folder: Path, hour: int) -> RunRecord:
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(START + hour * HOUR))
    failed = record.phases[record.phase_failed].error_message if record.phase_failed else None
    assert record.pipeline_status is RunStatus.SUCCESS, failed
    return record


def target(folder: Path, table: str, key: str, field: str) -> list[tuple[Any, ...]]:
    if not (folder / "warehouse.duckdb").exists():
        return []  # no window ran yet
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
        if not conn.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [table]).fetchall():
            return []  # nothing loaded yet
        return conn.execute(f'SELECT "{key}", CAST("{field}" AS VARCHAR), status FROM "{table}" ORDER BY 1, 2').fetchall()


def write_jsonl(folder: Path, rows: list[dict[str, Any]]) -> None:
    (folder / "data" / "sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def sample() -> list[dict[str, Any]]:
    return [json.loads(line) for line in templates.sample_jsonl().splitlines()]


class TestScaffoldedDefaults:
    def test_the_scaffold_merges_on_the_key_for_every_source_type(self) -> None:
        for source_type, key in templates.KEY_COLUMN.items():
            target_cfg = config_for("orders", source_type)["target_system"]
            assert target_cfg["load_strategy"] == "merge" and target_cfg["merge_keys"] == [key]

    def test_a_record_updated_into_a_later_window_is_in_the_target_once(self, tmp_path: Path) -> None:
        folder = tmp_path / "orders"
        scaffold(folder, "orders", "files")
        run_window(folder, 0)
        rows = sample()
        rows[0].update(status="refunded", updated_at="2025-01-01T02:30:00Z")  # order 1000 moves from 00:05 to 02:30
        write_jsonl(folder, rows)
        for hour in (1, 2):
            run_window(folder, hour)
        held = [r for r in target(folder, "orders", "order_id", "updated_at") if r[0] == 1000]
        assert held == [(1000, "2025-01-01 02:30:00+00", "REFUNDED")]
        assert len(target(folder, "orders", "order_id", "updated_at")) == 12

    @pytest.mark.parametrize("source_type", sorted(templates.SOURCES))
    def test_every_source_types_target_config_keeps_an_updated_record_once(self, tmp_path: Path, source_type: str) -> None:
        key = templates.KEY_COLUMN[source_type]
        config = config_for("moves", source_type)
        field = config["source_system"]["query_field"]
        config["source_system"] = {"type": "memory", "name": f"moves_{source_type}", "query_field": field}
        config["stage_system"].pop("columns", None)
        folder = tmp_path / source_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))

        def rows(moved: bool) -> list[dict[str, Any]]:
            first = START + (2 * HOUR + timedelta(minutes=3) if moved else timedelta(minutes=3))
            return [{key: "r1", "status": "new" if not moved else "closed", field: first.isoformat()},
                    {key: "r2", "status": "new", field: (START + timedelta(minutes=9)).isoformat()}]

        MemorySource.registry[f"moves_{source_type}"] = rows(moved=False)
        run_window(folder, 0)
        MemorySource.registry[f"moves_{source_type}"] = rows(moved=True)
        for hour in (1, 2):  # the first window is not run again: nothing tells anyone to
            run_window(folder, hour)
        assert [(r[0], r[2]) for r in target(folder, "moves", key, field)] == [("r1", "closed"), ("r2", "new")]


class TestNewestVersionWins:
    """A change log holding both versions: an older window run later must not undo the newer one."""

    def make(self, tmp_path: Path) -> Path:
        folder = tmp_path / "orders"
        scaffold(folder, "orders", "files")
        rows = sample()
        newer = dict(rows[0], status="refunded", updated_at="2025-01-01T02:30:00Z")
        write_jsonl(folder, [*rows, newer])
        return folder

    def test_a_backfill_of_the_old_window_after_the_new_one_keeps_the_newer_version(self, tmp_path: Path) -> None:
        folder = self.make(tmp_path)
        run_window(folder, 2)
        record = run_window(folder, 0)
        held = [r for r in target(folder, "orders", "order_id", "updated_at") if r[0] == 1000]
        assert held == [(1000, "2025-01-01 02:30:00+00", "REFUNDED")]
        details = record.phases["target_count"].phase_specific_details
        assert details["count"] == record.phases["stage_count"].phase_specific_details["count"] == 4
        assert details["held_at_a_newer_version"] == 1
        assert record.phases["audit"].phase_specific_details["stage_to_target_loss_percent"] == 0

    def test_rerunning_every_window_in_order_and_back_again_keeps_one_newest_row(self, tmp_path: Path) -> None:
        folder = self.make(tmp_path)
        for hour in (0, 1, 2, 2, 1, 0):
            record = run_window(folder, hour)
            audit = record.phases["audit"].phase_specific_details
            assert audit["stage_count"] == audit["target_count"], audit
        rows = target(folder, "orders", "order_id", "updated_at")
        assert len(rows) == len({r[0] for r in rows}) == 12
        assert [r for r in rows if r[0] == 1000] == [(1000, "2025-01-01 02:30:00+00", "REFUNDED")]


class TestVersionColumn:
    """A change log whose versions arrive out of order: ``version_column`` decides, not the arrival time."""

    def make(self, tmp_path: Path, **target: Any) -> Path:
        folder = tmp_path / "orders"
        scaffold(folder, "orders", "files")
        config = json.loads((folder / "config.json").read_text())
        config["stage_system"]["columns"].append({"name": "rev", "type": "integer"})
        config["target_system"].update(target)
        (folder / "config.json").write_text(json.dumps(config))
        rows = [dict(r, rev=1) for r in sample()]
        rows.append(dict(rows[1], status="refunded", rev=3, updated_at="2025-01-01T00:40:00Z"))  # order 1001, newest
        rows.append(dict(rows[1], status="shipped", rev=2, updated_at="2025-01-01T02:40:00Z"))  # arrives late, older
        write_jsonl(folder, rows)
        return folder

    def test_the_highest_version_wins_whatever_window_brings_it(self, tmp_path: Path) -> None:
        folder = self.make(tmp_path, version_column="rev")
        for hour in (0, 1, 2):
            record = run_window(folder, hour)
        held = [r for r in target(folder, "orders", "order_id", "updated_at") if r[0] == 1001]
        assert held == [(1001, "2025-01-01 00:40:00+00", "REFUNDED")]
        counted = record.phases["target_count"].phase_specific_details
        assert counted["count"] == record.phases["stage_count"].phase_specific_details["count"]
        assert counted["held_at_a_newer_version"] == 1

    def test_without_it_the_later_time_wins(self, tmp_path: Path) -> None:
        folder = self.make(tmp_path)
        for hour in (0, 1, 2):
            run_window(folder, hour)
        held = [r for r in target(folder, "orders", "order_id", "updated_at") if r[0] == 1001]
        assert held == [(1001, "2025-01-01 02:40:00+00", "SHIPPED")]


class TestHardDeletes:
    def make(self, tmp_path: Path, **target: Any) -> Path:
        folder = tmp_path / "orders"
        scaffold(folder, "orders", "files")
        config = json.loads((folder / "config.json").read_text())
        config["target_system"].update(target)
        (folder / "config.json").write_text(json.dumps(config))
        return folder

    def test_with_delete_missing_a_record_deleted_at_the_source_leaves_when_its_window_runs_again(self, tmp_path: Path) -> None:
        folder = self.make(tmp_path, delete_missing=True)
        run_window(folder, 0)
        write_jsonl(folder, sample()[1:])  # order 1000 deleted at the source
        record = run_window(folder, 0)
        assert [r[0] for r in target(folder, "orders", "order_id", "updated_at")] == [1001, 1002, 1003]
        assert record.phases["publish"].phase_specific_details["rows_removed_missing_at_source"] == 1
        audit = record.phases["audit"].phase_specific_details
        assert audit["stage_count"] == audit["target_count"] == 3

    def test_without_it_the_merge_keeps_what_the_source_deleted(self, tmp_path: Path) -> None:
        folder = self.make(tmp_path)
        run_window(folder, 0)
        write_jsonl(folder, sample()[1:])
        run_window(folder, 0)
        assert [r[0] for r in target(folder, "orders", "order_id", "updated_at")] == [1000, 1001, 1002, 1003]


# -- the property --------------------------------------------------------------------------

WINDOWS = 3
#: Operations: ("put", record, window, minute) inserts or updates a record to a time in a window
#: no earlier than its last one; ("del", record) deletes it at the source; ("run", window) runs a window.
operation = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 4), st.integers(0, WINDOWS - 1), st.integers(0, 59)),
    st.tuples(st.just("del"), st.integers(0, 4)),
    st.tuples(st.just("run"), st.integers(0, WINDOWS - 1)),
)


def property_folder(root: Path, *, delete_missing: bool) -> Path:
    folder = root / "prop"
    config = config_for("prop", "files")
    config["source_system"] = {"type": "memory", "name": f"prop_{root.name}", "query_field": "updated_at"}
    config["stage_system"].pop("columns", None)
    config["target_system"]["delete_missing"] = delete_missing
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=10), final_order=st.permutations(list(range(WINDOWS))),
       change_log=st.booleans(), delete_missing=st.booleans())
def test_the_target_holds_the_latest_version_of_every_record_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[Any, ...]], final_order: list[int],
    change_log: bool, delete_missing: bool,
) -> None:
    """The data contract of mutable records under merge, for any history of changes and runs.

    ``change_log``: the source keeps every version (an append-only log, which cannot express a
    delete) instead of the current state only. ``delete_missing``: a record deleted at the source
    leaves the target when the window of its last version runs again; without it, the target
    keeps its last version. At the end only the windows holding a change made since that window
    last ran are run (in any order), as a scheduler would: windows a record left are not run again.
    """
    folder = property_folder(tmp_path_factory.mktemp("mutable"), delete_missing=delete_missing)
    registry = f"prop_{folder.parent.name}"
    latest: dict[str, dict[str, Any]] = {}  # what the source holds now, per record
    last_time: dict[str, datetime] = {}  # update times never go back, even across a delete
    log: list[dict[str, Any]] = []
    changes: list[tuple[int, int]] = []  # (step, a window the change concerns)
    last_run: dict[int, int] = {}  # window -> step of its last run
    highest: dict[str, int] = {}
    observed: dict[str, str] = {}  # what the target held for each record after the last run
    kept_after_delete: dict[str, str] = {}  # without delete_missing: what stays of a deleted record

    def window_of(row: dict[str, Any]) -> int:
        return int((datetime.fromisoformat(row["updated_at"]) - START) / HOUR)

    def run_and_check(window: int, step: int) -> None:
        run_window(folder, window)
        last_run[window] = step
        held = target(folder, "prop", "order_id", "updated_at")
        keys = [r[0] for r in held]
        assert len(keys) == len(set(keys)), f"a record is in the target twice: {held}"
        observed.clear()
        for key, _, status in held:
            seen = int(status.removeprefix("v"))
            assert seen >= highest.get(key, -1), f"{key} went back from version {highest.get(key)} to {seen}"
            highest[key] = seen
            observed[key] = status

    MemorySource.registry[registry] = []
    for step, op in enumerate(operations):
        if op[0] == "run":
            run_and_check(op[1], step)
            continue
        key = f"k{op[1]}"
        if op[0] == "del":
            if change_log or key not in latest:
                continue
            changes.append((step, window_of(latest.pop(key))))
            if key in observed:
                kept_after_delete[key] = observed[key]
        else:
            _, _, window, minute = op
            at = max(START + window * HOUR + timedelta(minutes=minute), last_time.get(key, START))
            last_time[key] = at
            before = latest.get(key)
            latest[key] = {"order_id": key, "status": f"v{step}", "updated_at": at.isoformat()}
            log.append(latest[key])
            kept_after_delete.pop(key, None)
            changes.append((step, window_of(latest[key])))
            if delete_missing and before is not None:
                changes.append((step, window_of(before)))  # the record left that window: it must run again
        MemorySource.registry[registry] = [dict(r) for r in (log if change_log else latest.values())]
    dirty = {window for step, window in changes if step > last_run.get(window, -1)}
    for window in final_order:
        if window in dirty:
            run_and_check(window, len(operations))
    expected = {k: r["status"] for k, r in latest.items()}
    if not delete_missing:
        expected.update(kept_after_delete)
    assert [(r[0], r[2]) for r in target(folder, "prop", "order_id", "updated_at")] == sorted(expected.items())
