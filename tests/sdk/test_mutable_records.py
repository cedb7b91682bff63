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


# -- the property --------------------------------------------------------------------------

WINDOWS = 3
#: Operations: ("put", record, window, minute) inserts or updates a record to a time in a window
#: no earlier than its current one; ("run", window) runs that window.
operation = st.one_of(
    st.tuples(st.just("put"), st.integers(0, 4), st.integers(0, WINDOWS - 1), st.integers(0, 59)),
    st.tuples(st.just("run"), st.integers(0, WINDOWS - 1)),
)


def property_folder(root: Path) -> Path:
    folder = root / "prop"
    config = config_for("prop", "files")
    config["source_system"] = {"type": "memory", "name": f"prop_{root.name}", "query_field": "updated_at"}
    config["stage_system"].pop("columns", None)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=10), final_order=st.permutations(list(range(WINDOWS))),
       change_log=st.booleans())
def test_the_target_holds_the_latest_version_of_every_record_exactly_once(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[Any, ...]], final_order: list[int], change_log: bool
) -> None:
    """``change_log``: the source keeps every version (an append-only log) instead of the current state only.

    At the end only the windows holding a latest version changed since that window last ran are
    run (in any order), as a scheduler would: old windows a record left are not run again.
    """
    folder = property_folder(tmp_path_factory.mktemp("mutable"))
    registry = f"prop_{folder.parent.name}"
    latest: dict[str, dict[str, Any]] = {}
    log: list[dict[str, Any]] = []
    changed: dict[str, int] = {}  # record -> step of its last change
    last_run: dict[int, int] = {}  # window -> step of its last run
    highest: dict[str, int] = {}

    def window_of(row: dict[str, Any]) -> int:
        return int((datetime.fromisoformat(row["updated_at"]) - START) / HOUR)

    def run_and_check(window: int, step: int) -> None:
        run_window(folder, window)
        last_run[window] = step
        held = target(folder, "prop", "order_id", "updated_at")
        keys = [r[0] for r in held]
        assert len(keys) == len(set(keys)), f"a record is in the target twice: {held}"
        for key, _, status in held:
            seen = int(status.removeprefix("v"))
            assert seen >= highest.get(key, -1), f"{key} went back from version {highest.get(key)} to {seen}"
            highest[key] = seen

    MemorySource.registry[registry] = []
    for step, op in enumerate(operations):
        if op[0] == "run":
            run_and_check(op[1], step)
            continue
        _, record, window, minute = op
        key = f"k{record}"
        at = START + window * HOUR + timedelta(minutes=minute)
        current = latest.get(key)
        if current is not None and datetime.fromisoformat(current["updated_at"]) > at:
            at = datetime.fromisoformat(current["updated_at"])  # update times never go back
        latest[key] = {"order_id": key, "status": f"v{step}", "updated_at": at.isoformat()}
        log.append(latest[key])
        changed[key] = step
        MemorySource.registry[registry] = [dict(r) for r in (log if change_log else latest.values())]
    dirty = {window_of(row) for key, row in latest.items() if changed[key] > last_run.get(window_of(row), -1)}
    for window in final_order:
        if window in dirty:
            run_and_check(window, len(operations))
    expected = sorted((k, r["status"]) for k, r in latest.items())
    assert [(r[0], r[2]) for r in target(folder, "prop", "order_id", "updated_at")] == expected
