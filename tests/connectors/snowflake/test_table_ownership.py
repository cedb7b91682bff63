"""Table ownership on Snowflake (fakesnow): one owner per table unless every writer declares it shared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.record import RunRecord
from tests.sdk.factory import DAY, make_rows

from .conftest import sf_rows
from .scenario import make_snowflake_pipeline, register_snowflake


@pytest.fixture
def make(tmp_path, fakesnow_server, database, sf_env):
    register_snowflake()

    def build(name: str, *, shared: bool | None = None, n: int = 20) -> Path:
        changes: dict[str, Any] = {
            "pipeline_metadata__pipeline_name": name,
            "stage_system__table": f"stg_{name}",
            "target_system__table": "orders",
        }
        if shared is not None:
            changes["target_system__shared"] = shared
        rows = make_rows(n, hours=1, invalid_every=0, duplicates=0, prefix=name.upper(), seed=n)
        return make_snowflake_pipeline(tmp_path / name, fakesnow_server, database, rows, **changes)

    return build


def run(folder: Path) -> RunRecord:
    with Pipeline.load(folder) as pipeline:
        return pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(DAY))


def by_prefix(server, database) -> dict[str, int]:
    rows = sf_rows(server, database, 'SELECT LEFT("test_id", 1), COUNT(*) FROM ORDERS GROUP BY 1 ORDER BY 1')
    return {k: int(n) for k, n in rows}


class TestOwnershipOnSnowflake:
    def test_a_second_pipeline_is_refused_and_the_owners_rows_stay(self, make, fakesnow_server, database):
        a, b = make("a", n=30), make("b", n=20)
        assert run(a).pipeline_status is RunStatus.SUCCESS
        record = run(b)
        assert record.pipeline_status is RunStatus.FAILED
        message = record.phases[record.phase_failed or ""].error_message or ""
        assert "belongs to pipeline 'a'" in message and "target_system.shared: true" in message
        assert by_prefix(fakesnow_server, database) == {"A": 30}
        owners = sf_rows(fakesnow_server, database, "SELECT TABLE_NAME, PIPELINE_NAME FROM DRIVETRAIN_TABLE_OWNERS ORDER BY 1, 2")
        assert ("ORDERS", "a") in owners and ("ORDERS", "b") not in owners

    def test_shared_pipelines_each_replace_only_their_own_rows(self, make, fakesnow_server, database):
        a, b = make("a", shared=True, n=30), make("b", shared=True, n=20)
        assert run(a).pipeline_status is RunStatus.SUCCESS
        second = run(b)
        assert second.pipeline_status is RunStatus.SUCCESS
        assert second.phases["audit"].phase_specific_details["target_count"] == 20
        assert run(a).pipeline_status is RunStatus.SUCCESS  # the rerun replaces a's window only
        assert by_prefix(fakesnow_server, database) == {"A": 30, "B": 20}

    def test_validate_names_the_owner(self, make):
        a, b = make("a"), make("b")
        run(a)
        with Pipeline.load(b) as pipeline, pytest.raises(Exception, match="belongs to pipeline 'a'"):
            pipeline.target().check()


class TestClaimRaceOnSnowflake:
    def test_two_pipelines_claiming_one_table_at_once_never_both_write(self, fakesnow_server, database, sf_env):
        import threading

        from drivetrain.errors import PermanentError
        from drivetrain.ownership import owned
        from drivetrain.warehouse import TableRef

        from .conftest import make_warehouse

        warehouses = [make_warehouse(fakesnow_server, database, "target_system", table="orders") for _ in "ab"]
        try:
            table = TableRef(name="orders", query_field="at")
            start = threading.Barrier(2)
            outcome: dict[str, str] = {}

            def claim(wh, name: str) -> None:
                start.wait()
                try:
                    wh.claim_table(owned(table, name, False, "target_system"))
                    outcome[name] = "owner"
                except PermanentError as exc:
                    outcome[name] = str(exc)

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
        finally:
            for wh in warehouses:
                wh.close()
