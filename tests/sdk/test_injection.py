"""Giving a pipeline its connectors: ``Pipeline(..., connectors=...)`` and ``pipeline.use(...)``.

Files source and DuckDB warehouse from the test factory; the connectors given are the real
ones (MemorySource, FaultySource, DuckDBWarehouse, LocalArchive), built as a user would.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus, SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.connectors.files import FilesSource
from drivetrain.connectors.local_archive import LocalArchive
from drivetrain.plugins import get_plugin_manager, hookimpl
from drivetrain.testing import FaultySource, MemorySource

from .factory import DAY, expected_target, make_pipeline_dir, make_rows, query, target_rows

HOUR = timedelta(hours=1)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_pipeline_dir(tmp_path / "lab")


def duckdb_at(path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(SystemConfig.from_section("stage_system", {"type": "duckdb", "path": str(path), "table": "unused"}))


def memory_rows() -> list[dict[str, Any]]:
    """Rows only the memory source holds (prefix M): the files source has none of them."""
    return make_rows(40, hours=1, seed=5, invalid_every=0, duplicates=0, prefix="M")


class TestRefused:
    def test_an_unknown_role_names_the_roles_and_the_likely_one(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline, pytest.raises(TypeError) as caught:
            pipeline.use(sorce=MemorySource.from_rows([], query_field="reported_at"))
        message = str(caught.value)
        assert "'sorce'" in message and "did you mean 'source'" in message
        assert "source, stage, target, drive_table, archive" in message

    def test_an_unknown_role_given_to_the_constructor_is_refused(self, folder: Path) -> None:
        with pytest.raises(TypeError, match="no connector role 'stage_system'; did you mean 'stage'"):
            Pipeline(folder / "config.json", connectors={"stage_system": duckdb_at(folder / "w.duckdb")})

    def test_an_object_of_the_wrong_kind_says_what_the_role_takes(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline, pytest.raises(TypeError) as caught:
            pipeline.use(source=duckdb_at(folder / "w.duckdb"))
        message = str(caught.value)
        assert message.startswith("source: expected a drivetrain.Source instance, replacing source_system")
        assert "got drivetrain.connectors.duckdb.warehouse.DuckDBWarehouse" in message

    def test_a_class_instead_of_an_instance_is_refused(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline, pytest.raises(TypeError, match="got the class itself: give an instance"):
            pipeline.use(source=MemorySource)  # type: ignore[arg-type]

    def test_a_stage_table_instead_of_its_warehouse_says_to_give_the_warehouse(self, folder: Path) -> None:
        with Pipeline.load(folder) as pipeline, pytest.raises(TypeError, match=r"give its warehouse \(\.warehouse\) instead"):
            pipeline.use(stage=pipeline.stage())  # type: ignore[arg-type]

    def test_a_refused_call_changes_nothing(self, folder: Path) -> None:
        """One bad role among good ones: none of them is taken."""
        memory = MemorySource.from_rows(memory_rows(), query_field="reported_at")
        with Pipeline.load(folder) as pipeline:
            with pytest.raises(TypeError, match="archive: expected a drivetrain.Archive"):
                pipeline.use(source=memory, archive=memory)
            assert isinstance(pipeline.source(), FilesSource)


class TestGivenSource:
    def test_a_given_source_is_counted_extracted_and_loaded(self, folder: Path) -> None:
        rows = memory_rows()
        source = MemorySource.from_rows(rows, query_field="reported_at", batch_size=7)
        with Pipeline.load(folder).use(source=source) as pipeline:
            assert pipeline.source() is source
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert record.phases["source_count"].phase_specific_details["count"] == len(rows)
        expected = expected_target(rows, DAY, DAY + HOUR)
        assert target_rows(folder, DAY, DAY + HOUR) == sorted((k, v["result"]) for k, v in expected.items())

    def test_use_returns_the_pipeline_and_a_later_use_replaces_the_source(self, folder: Path) -> None:
        first = MemorySource.from_rows([], query_field="reported_at")
        second = MemorySource.from_rows(memory_rows(), query_field="reported_at")
        with Pipeline(folder / "config.json", connectors={"source": first}) as pipeline:
            assert pipeline.use(source=second) is pipeline
            assert pipeline.source() is second

    def test_a_faulty_source_fails_the_transfer_and_the_next_run_resumes_from_it(self, folder: Path) -> None:
        rows = make_rows()
        with Pipeline.load(folder) as pipeline:
            window = pipeline.grid.first()
            faulty = FaultySource(pipeline.source(), fail_at_batch=1, transient=False)
            failed = pipeline.use(source=faulty).runner().run(window)
        assert failed.pipeline_status is RunStatus.FAILED
        assert failed.phase_failed == "source_to_stage_transfer"
        assert "injected fault" in failed.phases["source_to_stage_transfer"].error_message

        with Pipeline.load(folder) as pipeline:
            resumed = pipeline.runner().run(window)
        assert resumed.pipeline_status is RunStatus.SUCCESS, resumed.phase_failed
        assert resumed.phases_skipped == ("target_cleaning",)  # disabled; nothing carried: the extract runs again,
        assert {"source_count", "source_to_stage_transfer"} <= set(resumed.phases_completed)  # and its count with it
        expected = expected_target(rows, window.start, window.end)
        assert target_rows(folder, window.start, window.end) == sorted((k, v["result"]) for k, v in expected.items())


class TestGivenWarehouses:
    def test_a_given_warehouse_holds_stage_target_and_drive_table(self, folder: Path, tmp_path: Path) -> None:
        warehouse = duckdb_at(tmp_path / "elsewhere.duckdb")
        with Pipeline.load(folder).use(stage=warehouse, target=warehouse, drive_table=warehouse) as pipeline:
            assert pipeline.stage().warehouse is pipeline.target().warehouse is warehouse
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert not (folder / "warehouse.duckdb").exists()
        import duckdb

        with duckdb.connect(str(tmp_path / "elsewhere.duckdb"), read_only=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        with contextlib.closing(sqlite3.connect(tmp_path / "drive.sqlite")) as drive:  # its drive file, beside it (the default)
            runs = drive.execute("SELECT pipeline_status FROM pipeline_execution_drive").fetchall()
        assert {"stg_tests", "tests"} <= tables
        assert runs == [("SUCCESS",)]

    def test_a_configured_warehouse_on_the_same_file_shares_the_given_one(self, folder: Path) -> None:
        """The target's config names the given stage warehouse's file: one warehouse, push-down works."""
        warehouse = duckdb_at(folder / "warehouse.duckdb")
        with Pipeline(folder / "config.json", connectors={"stage": warehouse}) as pipeline:
            assert pipeline.target().warehouse is warehouse
            assert pipeline.drive_store() is not None
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert record.phases["stage_to_target_transfer"].phase_specific_details["method"] == "push-down SQL"

    def test_a_warehouse_given_after_the_stage_was_built_replaces_it(self, folder: Path, tmp_path: Path) -> None:
        with Pipeline.load(folder) as pipeline:
            built = pipeline.stage().warehouse
            warehouse = duckdb_at(tmp_path / "elsewhere.duckdb")
            pipeline.use(stage=warehouse)
            assert pipeline.stage().warehouse is warehouse is not built
            assert pipeline.target().warehouse is not warehouse  # the target's file is another one


class TestGivenArchive:
    def test_stage_cleaning_archives_to_the_given_archive(self, tmp_path: Path) -> None:
        rows = make_rows(200, seed=3) + make_rows(200, seed=4, start=DAY + timedelta(days=1), prefix="U")
        folder = make_pipeline_dir(tmp_path / "lab", rows)
        elsewhere = tmp_path / "kept"
        archive = LocalArchive(SystemConfig.from_section("archive", {"type": "local", "location": str(elsewhere)}))
        overrides = {"phases.stage_cleaning.delete_after_days": 0}
        with Pipeline(folder / "config.json", overrides=overrides, connectors={"archive": archive}) as pipeline:
            assert pipeline.archive() is archive
            day1 = pipeline.runner().run(pipeline.grid.first())
            day2 = pipeline.runner().run(pipeline.grid.window_starting(DAY + timedelta(days=1)))
        assert day1.pipeline_status is day2.pipeline_status is RunStatus.SUCCESS, (day1.phase_failed, day2.phase_failed)
        parts = list(elsewhere.glob("pipeline_name=lab/target_date=2025-11-15/*.parquet"))
        assert parts and not (folder / "archive").exists()
        assert query(folder, "SELECT count(*) FROM stg_tests WHERE _drivetrain_target_date = DATE '2025-11-15'") == [(0,)]


CLOSED: list[object] = []  # every connector closed, in order, by the tracked classes below


class ClosingSource(MemorySource):
    """A user's source that records being closed."""

    type_name = "closing"

    def close(self) -> None:
        CLOSED.append(self)


class ClosingDuckDB(DuckDBWarehouse):
    """The DuckDB warehouse, recording being closed."""

    def close(self) -> None:
        CLOSED.append(self)


class ClosingArchive(LocalArchive):
    """The local archive, recording being closed."""

    def close(self) -> None:
        CLOSED.append(self)


class _ClosingPlugin:
    """Configs naming ``closing``, ``duckdb`` or a local archive get the recording classes."""

    @hookimpl
    def drivetrain_register_connectors(self) -> dict[str, type]:
        return {"source:closing": ClosingSource, "warehouse:duckdb": ClosingDuckDB, "archive:local": ClosingArchive}


@pytest.fixture(autouse=True)
def closing_plugin() -> None:
    get_plugin_manager().register(_ClosingPlugin())


def closing_folder(root: Path) -> Path:
    CLOSED.clear()
    return make_pipeline_dir(root / "lab", source_system={"type": "closing", "query_field": "reported_at"})


def given_connectors(roles: set[str], root: Path) -> dict[str, Any]:
    """One object per role asked for; the warehouse roles share one warehouse."""
    warehouse = ClosingDuckDB(SystemConfig.from_section("stage_system", {"type": "duckdb", "path": str(root / "given.duckdb"), "table": "x"}))
    made = {
        "source": ClosingSource.from_rows(memory_rows(), query_field="reported_at"),
        "stage": warehouse, "target": warehouse, "drive_table": warehouse,
        "archive": ClosingArchive(SystemConfig.from_section("archive", {"type": "local", "location": str(root / "kept")})),
    }
    return {role: made[role] for role in roles}


def touch_every_connector(pipeline: Pipeline) -> list[object]:
    """Build (or fetch) every connector; returns the closable objects the pipeline hands out."""
    return [pipeline.source(), pipeline.stage().warehouse, pipeline.target().warehouse,
            pipeline.drive_store(), pipeline.archive()]


class TestClosing:
    def test_close_leaves_a_given_source_open(self, tmp_path: Path) -> None:
        folder = closing_folder(tmp_path)
        given = ClosingSource.from_rows(memory_rows(), query_field="reported_at")
        with Pipeline.load(folder).use(source=given) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert given not in CLOSED
        assert pipeline.source() is given  # still in place for the next use of the pipeline

    def test_close_closes_the_source_it_built_under_a_given_wrapper(self, tmp_path: Path) -> None:
        folder = closing_folder(tmp_path)
        with Pipeline.load(folder) as pipeline:
            built = pipeline.source()
            wrapper = FaultySource(built)
            pipeline.use(source=wrapper)
            pipeline.runner().run(pipeline.grid.first())
        assert [c for c in CLOSED if isinstance(c, ClosingSource)] == [built]

    def test_a_given_warehouse_outlives_the_run_and_the_pipeline(self, tmp_path: Path) -> None:
        """keep_open() and session() hold a given warehouse for the run; close() does not end it."""
        folder = closing_folder(tmp_path)
        warehouse = given_connectors({"stage"}, tmp_path)["stage"]
        with Pipeline(folder / "config.json", connectors={"stage": warehouse, "target": warehouse, "drive_table": warehouse}) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        assert warehouse not in CLOSED
        assert pipeline.drive_store().get(record.pipeline_id).pipeline_status is RunStatus.SUCCESS  # read through it again

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(roles=st.sets(st.sampled_from(["source", "stage", "target", "drive_table", "archive"])), early=st.booleans())
    def test_close_closes_exactly_what_the_pipeline_built_once_each(self, roles: set[str], early: bool) -> None:
        """Whatever is given, before or after the pipeline built its own: close() closes each
        connector it built exactly once (replaced ones included) and none it was given."""
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            folder = closing_folder(root)
            given = given_connectors(roles, root)
            pipeline = Pipeline(folder / "config.json")
            handed_out = touch_every_connector(pipeline) if early else []
            pipeline.use(**given)
            handed_out += touch_every_connector(pipeline)
            pipeline.close()
            pipeline.close()  # a second close closes nothing again
            given_ids = {id(c) for c in given.values()}
            built = {id(c): c for c in handed_out if id(c) not in given_ids and hasattr(c, "close")}
            closed_ids = [id(c) for c in CLOSED]
            assert not given_ids & set(closed_ids)
            assert len(closed_ids) == len(set(closed_ids))
            recording = (ClosingSource, ClosingDuckDB, ClosingArchive)
            assert {i for i, c in built.items() if isinstance(c, recording)} <= set(closed_ids)
