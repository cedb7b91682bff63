"""How often a run writes its drive row, and that each merged write is durable where it must be.

A phase's end is written with the next phase's start (or with the run's close), and phases
turned off in the config with the inserted row: a run writes its row once per phase it runs,
plus the insert and the close. Pipelines sharing one drive file hand it over for each write,
so this is what eight of them at once pay (benchmarks/results/fleet-concurrency.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivetrain import PhaseStatus, Pipeline, RunStatus, hookimpl
from drivetrain.plugins import get_plugin_manager
from drivetrain.record import RunRecord
from drivetrain.sql.drive import SqlDriveStore
from tests.sdk.factory import make_pipeline_dir
from tests.sdk.test_crash import WINDOW_A, WINDOW_B, check_recovered, child, prepare


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Each drive-row write of this process: the real insert and update, counted on their way."""
    seen: list[str] = []
    for name in ("insert", "update"):
        real = getattr(SqlDriveStore, name)

        def counted(self: SqlDriveStore, record: RunRecord, *args: Any, _real: Any = real, _name: str = name, **kw: Any) -> None:
            seen.append(_name)
            _real(self, record, *args, **kw)

        monkeypatch.setattr(SqlDriveStore, name, counted)
    yield seen


@pytest.mark.parametrize("drive", ["drive.duckdb", "drive.sqlite"])
def test_a_run_writes_its_row_once_per_phase_it_runs_plus_insert_and_close(tmp_path: Path, writes: list[str], drive: str) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", phases__target_cleaning={"enabled": False},
                               stage_system__drive_path=drive, target_system__drive_path=drive)
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.first())
    assert record.pipeline_status is RunStatus.SUCCESS
    ran = [n for n, s in record.phases.items() if s.start_timestamp is not None]
    assert record.phases["target_cleaning"].status is PhaseStatus.SKIPPED
    assert writes == ["insert"] + ["update"] * (len(ran) + 1), (ran, writes)


def test_an_empty_window_writes_no_more(tmp_path: Path, writes: list[str]) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", rows=[])
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.first())
    ran = [n for n, s in record.phases.items() if s.start_timestamp is not None]
    assert writes.count("update") == len(ran) + 1, (record.pipeline_status, ran, writes)


class ReadsTheDriveTable:
    """On each finished phase, reads the row back: the hook's state must be what the table holds."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.checked: list[str] = []

    @hookimpl
    def drivetrain_phase_finished(self, record: RunRecord, phase: str, state: Any) -> None:
        stored = self.pipeline.drive_store().get(record.pipeline_id)
        assert stored is not None and stored.phases[phase] == state, (phase, stored and stored.phases[phase], state)
        self.checked.append(phase)


def test_phase_finished_goes_out_once_the_drive_table_holds_that_state(tmp_path: Path) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", phases__target_cleaning={"enabled": False})
    with Pipeline.load(folder) as pipeline:
        reader = ReadsTheDriveTable(pipeline)
        get_plugin_manager().register(reader)
        try:
            record = pipeline.runner().run(pipeline.grid.first())
        finally:
            get_plugin_manager().unregister(reader)
    assert record.pipeline_status is RunStatus.SUCCESS
    assert set(reader.checked) == set(record.phases)


def row_of(folder: Path) -> RunRecord:
    with Pipeline.load(folder) as pipeline:
        (record,) = [r for r in pipeline.drive_store().attempts(pipeline.name, *WINDOW_B)]
    return record


def prepared(tmp_path: Path, drive: str) -> Path:
    """tests/sdk/test_crash.py's folder (window A done, its run in a pinned drive.duckdb); with
    ``sqlite``, its drive table then kept in drive.sqlite (window A's run moved there by the next
    use, the child's run)."""
    folder = prepare(tmp_path, stage_system__drive_path="drive.duckdb", target_system__drive_path="drive.duckdb")
    if drive == "sqlite":
        config = json.loads((folder / "config.json").read_text())
        for section in ("stage_system", "target_system"):
            config[section]["drive_path"] = "drive.sqlite"
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def recovered(folder: Path, drive: str) -> None:
    check_recovered(folder, arrow=False)  # the target, stage and archive (and the DuckDB drive file's rows)
    with Pipeline.load(folder) as pipeline:
        store = pipeline.drive_store()
        assert type(store).__name__ == ("SqliteDriveStore" if drive == "sqlite" else "DuckDBDriveStore")
        runs = store.history(pipeline.name)
    assert RunStatus.RUNNING not in {r.pipeline_status for r in runs}
    assert {r.query_window_start_timestamp for r in runs if r.pipeline_status is RunStatus.SUCCESS} == {
        WINDOW_A[0], WINDOW_B[0]}


@pytest.mark.slow
@pytest.mark.parametrize("drive", ["duckdb", "sqlite"])
def test_killed_as_a_phase_starts_the_row_holds_the_previous_end_and_this_start(tmp_path: Path, drive: str) -> None:
    """The merged write (stage_count ended, stage_to_target_transfer started) is durable before the transfer runs."""
    folder = prepared(tmp_path, drive)
    done = child(folder, "before:stage_to_target_transfer", arrow=False)
    assert done.returncode == -9, done.stderr[-3000:]
    row = row_of(folder)
    assert row.phases["stage_count"].status is PhaseStatus.COMPLETED
    assert row.phases["stage_to_target_transfer"].status is PhaseStatus.RUNNING
    recovered(folder, drive)


@pytest.mark.slow
@pytest.mark.parametrize("drive", ["duckdb", "sqlite"])
def test_killed_after_the_last_phase_finished_the_run_is_already_closed(tmp_path: Path, drive: str) -> None:
    """The last phase's end and the run's close are one write: the hook fires after it."""
    folder = prepared(tmp_path, drive)
    done = child(folder, "after:target_cleaning", arrow=False)
    assert done.returncode == -9, done.stderr[-3000:]
    row = row_of(folder)
    assert row.pipeline_status is RunStatus.SUCCESS, json.dumps(row.phase_failed)
    assert row.phases["target_cleaning"].status is PhaseStatus.COMPLETED
    assert row.pipeline_end_timestamp is not None


def test_the_writers_benchmark_runs_small(tmp_path: Path) -> None:
    from benchmarks import fleet_concurrency_writers

    medians = fleet_concurrency_writers.main(["--writers", "2", "--writes", "2", "--rounds", "1", "--out", str(tmp_path)])
    assert set(medians) == set(fleet_concurrency_writers.STORES)
    assert "| SQLite WAL, synchronous=FULL |" in (tmp_path / "fleet-concurrency-writers.md").read_text()
