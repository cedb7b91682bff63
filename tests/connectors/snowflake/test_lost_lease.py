"""A run whose lease is lost mid-run ends FAILED with the real cause in its row.

Not "locked" (another run holds the window: exit 3) and not "the phase was still running when
the run was closed": the row says the lease was released or taken, and the run stops there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus, StageCount
from drivetrain.record import PhaseStatus

from .scenario import make_snowflake_pipeline, register_snowflake


def losing(give_to: str | None) -> type[Pipeline]:
    """A pipeline whose stage count loses the window's lease (released, or taken by ``give_to``)."""

    class LosesLease(StageCount):
        def run(self, ctx):  # type: ignore[no-untyped-def]
            store = ctx.drive
            lease = store.current_lease(ctx.pipeline.name, ctx.window.start)
            store.release_lease(lease)
            if give_to is not None:
                store.acquire_lease(ctx.pipeline.name, ctx.window.start, ctx.window.end, give_to, 600)
            ctx.fence()  # what a commit does first
            return super().run(ctx)

    class Losing(Pipeline):
        phase_classes = {"stage_count": LosesLease}

    return Losing


@pytest.fixture
def folder(tmp_path: Path, fakesnow_server, database: str, sf_env) -> Path:  # type: ignore[no-untyped-def]
    register_snowflake()
    return make_snowflake_pipeline(tmp_path / "lab", fakesnow_server, database)


class TestLostLease:
    def test_a_lease_released_under_the_run_fails_it_saying_nobody_holds_the_window(self, folder: Path) -> None:
        cls = losing(None)
        with cls(folder / "config.json") as pipeline:
            record = pipeline.runner(heartbeat_seconds=30).run(pipeline.grid.first())
            stored = pipeline.drive_store().get(record.pipeline_id)
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "stage_count"
        message = record.phases["stage_count"].error_message or ""
        assert "no longer holds the window" in message and "no other run holds" in message, message
        assert stored is not None and stored.pipeline_status is RunStatus.FAILED
        assert stored.phases["stage_count"].status is PhaseStatus.FAILED
        assert stored.phases["stage_count"].error_message == message

    def test_a_lease_taken_by_another_run_fails_it_naming_the_new_holder(self, folder: Path) -> None:
        cls = losing("host-b:2:newer")
        with cls(folder / "config.json") as pipeline:
            record = pipeline.runner(heartbeat_seconds=30).run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.FAILED
        assert "host-b:2:newer" in (record.phases["stage_count"].error_message or "")
