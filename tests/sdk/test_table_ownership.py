"""Two pipelines writing one table: refused unless both declare it shared, then each keeps its own rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.errors import PermanentError, TransientError
from drivetrain.ownership import owner_pattern
from drivetrain.record import RunRecord

from .factory import DAY, make_pipeline_dir, make_rows

WINDOW_END = DAY.replace(hour=1)


def make(tmp_path: Path, name: str, *, target_shared: bool | None = None, stage: str | None = None,
         stage_shared: bool | None = None, n: int = 30) -> Path:
    """Pipeline ``name`` loading ``n`` rows of its own into table ``orders`` of one shared DuckDB file."""
    db = str(tmp_path / "shared.duckdb")
    changes: dict[str, Any] = {
        "pipeline_metadata__pipeline_name": name,
        "stage_system__path": db, "stage_system__table": stage or f"stg_{name}",
        "target_system__path": db, "target_system__table": "orders",
        "phases__audit__count_tolerances__source_to_stage_tolerance_percent": 0,
        "phases__audit__count_tolerances__stage_to_target_tolerance_percent": 0,
    }
    if target_shared is not None:
        changes["target_system__shared"] = target_shared
    if stage_shared is not None:
        changes["stage_system__shared"] = stage_shared
    rows = make_rows(n, hours=1, invalid_every=0, duplicates=0, prefix=name.upper(), seed=len(name) + n)
    return make_pipeline_dir(tmp_path / name, rows, **changes)


def run(root: Path) -> RunRecord:
    with Pipeline.load(root) as pipeline:
        return pipeline.runner().run(pipeline.grid.window_starting(DAY))


def error_of(record: RunRecord) -> str:
    assert record.phase_failed, "the run did not fail"
    return record.phases[record.phase_failed].error_message or ""


def ids_in_target(tmp_path: Path) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(tmp_path / "shared.duckdb"), read_only=True) as conn:
        rows = conn.execute("SELECT left(test_id, 1), count(*) FROM orders GROUP BY 1").fetchall()
    return {k: int(n) for k, n in rows}


class TestOwnedTable:
    def test_a_second_pipeline_writing_the_first_ones_target_fails_and_erases_nothing(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a", n=30), make(tmp_path, "b", n=20)
        assert run(a).pipeline_status is RunStatus.SUCCESS
        record = run(b)
        assert record.pipeline_status is RunStatus.FAILED
        message = error_of(record)
        assert "table main.orders belongs to pipeline 'a'" in message
        assert "pipeline 'b' may not write it" in message and "target_system.shared: true" in message
        assert ids_in_target(tmp_path) == {"A": 30}

    def test_the_owner_keeps_running_after_another_pipeline_was_refused(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a"), make(tmp_path, "b")
        run(a)
        run(b)
        assert run(a).pipeline_status is RunStatus.SUCCESS
        assert ids_in_target(tmp_path) == {"A": 30}

    def test_one_pipeline_declaring_shared_alone_cannot_write_an_owned_table(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a", target_shared=False), make(tmp_path, "b", target_shared=True)
        run(a)
        assert "belongs to pipeline 'a'" in error_of(run(b))

    def test_validate_names_the_owner_before_anything_runs(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a"), make(tmp_path, "b")
        run(a)
        with Pipeline.load(b) as pipeline, pytest.raises(PermanentError, match="belongs to pipeline 'a'.*target_system.shared"):
            pipeline.target().check()
        with Pipeline.load(a) as pipeline:
            assert pipeline.target().check()

    def test_a_stage_table_is_owned_like_a_target(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a", stage="stg_common"), make(tmp_path, "b", stage="stg_common")
        run(a)
        record = run(b)
        assert "table main.stg_common belongs to pipeline 'a'" in error_of(record)
        assert "stage_system.shared" in error_of(record)


class TestSharedTable:
    def test_pipelines_sharing_a_target_each_keep_their_rows(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a", target_shared=True, n=30), make(tmp_path, "b", target_shared=True, n=20)
        first, second = run(a), run(b)
        assert first.pipeline_status is second.pipeline_status is RunStatus.SUCCESS
        assert ids_in_target(tmp_path) == {"A": 30, "B": 20}
        assert second.phases["audit"].phase_specific_details["target_count"] == 20

    def test_rerunning_one_pipelines_window_replaces_only_its_rows(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a", target_shared=True, n=30), make(tmp_path, "b", target_shared=True, n=20)
        run(a)
        run(b)
        record = run(a)
        assert record.pipeline_status is RunStatus.SUCCESS
        assert record.phases["audit"].phase_specific_details["target_count"] == 30
        assert ids_in_target(tmp_path) == {"A": 30, "B": 20}

    def test_a_shared_stage_counts_only_its_own_rows(self, tmp_path: Path) -> None:
        a = make(tmp_path, "a", stage="stg_common", stage_shared=True, target_shared=True, n=30)
        b = make(tmp_path, "b", stage="stg_common", stage_shared=True, target_shared=True, n=20)
        assert run(a).pipeline_status is RunStatus.SUCCESS
        record = run(b)
        assert record.pipeline_status is RunStatus.SUCCESS, error_of(record)
        details = record.phases["audit"].phase_specific_details
        assert (details["source_count"], details["stage_count"], details["target_count"]) == (20, 20, 20)
        assert ids_in_target(tmp_path) == {"A": 30, "B": 20}

    def test_stage_cleaning_of_a_shared_stage_deletes_only_its_own_rows(self, tmp_path: Path) -> None:
        a = make(tmp_path, "a", stage="stg_common", stage_shared=True, target_shared=True, n=30)
        b = make(tmp_path, "b", stage="stg_common", stage_shared=True, target_shared=True, n=20)
        run(a)
        run(b)
        with Pipeline.load(a) as pipeline:
            stage = pipeline.stage()
            day = DAY.date()
            assert stage.warehouse.dates_before(stage.ref, day.replace(day=day.day + 1)) == [day]
            assert stage.warehouse.count_date(stage.ref, day) == 30
            assert stage.warehouse.delete_date(stage.ref, day, expected=30) == 30
        with Pipeline.load(b) as pipeline:
            assert pipeline.stage().warehouse.count_date(pipeline.stage().ref, day) == 20

    def test_an_owner_turning_shared_off_again_is_refused(self, tmp_path: Path) -> None:
        a, b = make(tmp_path, "a", target_shared=True), make(tmp_path, "b", target_shared=True)
        run(a)
        run(b)
        a = make(tmp_path, "a", target_shared=False)
        record = run(a)
        assert "shared with pipeline(s) 'b'" in error_of(record)
        assert ids_in_target(tmp_path) == {"A": 30, "B": 30}


class TestOwnerPattern:
    def test_a_pipeline_does_not_match_the_runs_of_a_longer_name(self) -> None:
        import duckdb

        pattern = owner_pattern("a")
        ids = ["a_20251115T100000Z_run1", "a_b_20251115T100000Z_run1", "ab_20251115T100000Z_run2", "a_20251115T100000Z_run12"]
        found = [i for i in ids if duckdb.sql(f"SELECT ? LIKE '{pattern}' ESCAPE '!'", params=[i]).fetchall()[0][0]]
        assert found == ["a_20251115T100000Z_run1", "a_20251115T100000Z_run12"]


class TestClaimRace:
    @pytest.mark.parametrize("attempt", range(3))
    def test_two_pipelines_claiming_one_table_at_once_never_both_write(self, tmp_path: Path, attempt: int) -> None:
        import threading

        from drivetrain.config import SystemConfig
        from drivetrain.connectors.duckdb import DuckDBWarehouse
        from drivetrain.ownership import owned
        from drivetrain.warehouse import TableRef

        section = {"type": "duckdb", "path": "race.duckdb", "table": "orders"}
        table = TableRef(name="orders", query_field="at")
        warehouses = [DuckDBWarehouse(SystemConfig.from_section("target_system", section, base_dir=tmp_path)) for _ in "ab"]
        start = threading.Barrier(2)
        outcome: dict[str, str] = {}

        def claim(wh: DuckDBWarehouse, name: str) -> None:
            start.wait()
            try:
                wh.claim_table(owned(table, name, False, "target_system"))
                outcome[name] = "owner"
            except PermanentError as exc:
                outcome[name] = str(exc)
            except TransientError as exc:  # DuckDB's write-write conflict: the phase's retry claims again
                outcome[name] = f"gave way: {exc}"

        threads = [threading.Thread(target=claim, args=(wh, name)) for wh, name in zip(warehouses, "ab", strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        owners = [name for name, result in outcome.items() if result == "owner"]
        assert len(owners) <= 1, outcome  # never both; both giving way is safe, and a retry settles it
        if not owners:
            warehouses[0].claim_table(owned(table, "a", False, "target_system"))
            owners = ["a"]
        assert [c.pipeline for c in warehouses[0].table_claims(table)] == owners
