"""A phase past its ``timeout_minutes`` ends FAILED as timed out, whatever it does.

The runner runs a phase with a timeout on a worker thread and stops waiting when the time is
up. The abandoned work may go on in the process, but it can no longer commit: its fence
raises. Timeouts here are fractions of a minute (0.005 minutes = 0.3 s).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus, SourceToStageTransfer, TargetCount
from drivetrain.record import PhaseStatus

from .factory import make_pipeline_dir, query

SHORT = 0.005  # minutes


class Sleeper(TargetCount):
    """A custom run() that never checks for cancellation."""

    def run(self, ctx):  # type: ignore[no-untyped-def]
        time.sleep(3)
        return super().run(ctx)


class TestTimedOut:
    def test_a_custom_run_past_its_timeout_fails_as_timed_out(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", phases__target_count={"timeout_minutes": SHORT})

        class Slow(Pipeline):
            phase_classes = {"target_count": Sleeper}

        with Slow(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "target_count"
        state = record.phases["target_count"]
        assert state.status is PhaseStatus.FAILED
        assert "ran past its timeout of 0.005 minutes" in (state.error_message or "")

    def test_a_user_script_past_its_timeout_fails_as_timed_out(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", phases__stage_cleaning={"timeout_minutes": SHORT, "archive_location": "archive"})
        scripts = folder / "user_scripts"
        scripts.mkdir()
        (scripts / "stage_cleaning.py").write_text(
            "import time\n\n\ndef stage_cleaning(config, record):\n    time.sleep(3)\n    return {'skip_dag_run': False}\n"
        )
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phase_failed == "stage_cleaning"
        assert "ran past its timeout" in (record.phases["stage_cleaning"].error_message or "")

    def test_a_phase_within_its_timeout_completes(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", phases__target_count={"timeout_minutes": 5})
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
        assert record.phases["target_count"].status is PhaseStatus.COMPLETED


class TestAbandonedWork:
    def test_a_transfer_abandoned_after_its_timeout_cannot_commit(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", phases__source_to_stage_transfer={"timeout_minutes": SHORT})
        finished = threading.Event()
        outcome: list[BaseException | str] = []
        workers: list[threading.Thread] = []

        class LateTransfer(SourceToStageTransfer):
            def run(self, ctx):  # type: ignore[no-untyped-def]
                workers.append(threading.current_thread())
                try:
                    time.sleep(1.5)  # the runner has given up by now; then the transfer tries to commit
                    result = super().run(ctx)
                    outcome.append("committed")
                    return result
                except BaseException as exc:
                    outcome.append(exc)
                    raise
                finally:
                    finished.set()

        class Late(Pipeline):
            phase_classes = {"source_to_stage_transfer": LateTransfer}

        with Late(folder / "config.json") as pipeline:
            window = pipeline.grid.first()
            record = pipeline.runner().run(window)
            assert finished.wait(60), "the abandoned transfer never finished"
            workers[0].join(60)  # let it unwind (and close what it opened) before the file is read
        assert record.phase_failed == "source_to_stage_transfer"
        assert "ran past its timeout" in (record.phases["source_to_stage_transfer"].error_message or "")
        assert outcome and outcome[0] != "committed", outcome
        assert "timeout" in str(outcome[0])
        staged = query(folder, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'stg_tests'")[0][0]
        assert not staged or query(folder, "SELECT count(*) FROM stg_tests")[0][0] == 0

    def test_the_fence_of_an_abandoned_phase_refuses_even_after_the_run_ended(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", phases__target_count={"timeout_minutes": SHORT})
        finished = threading.Event()
        outcome: list[str] = []

        class FencedLate(TargetCount):
            def run(self, ctx):  # type: ignore[no-untyped-def]
                try:
                    time.sleep(1.5)
                    ctx.fence()  # what every commit calls first
                    outcome.append("fence passed")
                except Exception as exc:  # noqa: BLE001
                    outcome.append(f"{type(exc).__name__}: {exc}")
                finally:
                    finished.set()
                return super().run(ctx)

        class Late(Pipeline):
            phase_classes = {"target_count": FencedLate}

        with Late(folder / "config.json") as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
            assert finished.wait(60)
        assert record.phase_failed == "target_count"
        assert outcome == ["PhaseTimeout: this phase ran past its timeout and was abandoned; it may not commit"]


@pytest.mark.parametrize("minutes", [SHORT])
def test_the_run_after_a_timeout_resumes_and_succeeds(tmp_path: Path, minutes: float) -> None:
    folder = make_pipeline_dir(tmp_path / "lab", phases__target_count={"timeout_minutes": minutes})

    class Slow(Pipeline):
        phase_classes = {"target_count": Sleeper}

    with Slow(folder / "config.json") as pipeline:
        pipeline.runner().run(pipeline.grid.first())
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.first())
    assert record.pipeline_status is RunStatus.SUCCESS
