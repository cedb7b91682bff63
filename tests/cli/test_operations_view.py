"""The operations view tells the truth: contrib pipelines appear only when enabled; a failure a
retry fixed is no alert; gaps start where the pipeline's windows start (``catchup``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline
from drivetrain.monitoring.cli import build_metrics, gap_lines
from drivetrain.monitoring.gaps import find_gaps
from drivetrain.pipeline_names import enabled_contrib, is_contrib, listed_by_default
from drivetrain.plugins import registered_pipelines
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import make_pipeline_dir

from .conftest import Cli

CONTRIB = ("demo", "genetic_tests", "incidents", "lab_results")


class TestContribPipelines:
    def test_status_lists_no_contrib_pipeline_the_user_did_not_enable(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DRIVETRAIN_CONTRIB_PIPELINES", raising=False)
        result = cli("status")
        assert result.returncode == 0, result
        assert "UNREADABLE" not in result.stdout and "genetic_tests" not in result.stdout
        assert "contrib pipelines not enabled: demo, genetic_tests, incidents, lab_results" in result.stderr
        assert "DRIVETRAIN_CONTRIB_PIPELINES=name,... or all" in result.stderr

    def test_report_lists_no_contrib_pipeline_the_user_did_not_enable(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DRIVETRAIN_CONTRIB_PIPELINES", raising=False)
        result = cli("report")
        assert result.returncode == 0, result
        assert "skipped" not in result.stderr and "genetic_tests" not in result.stdout

    def test_an_enabled_contrib_pipeline_is_listed(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DRIVETRAIN_CONTRIB_PIPELINES", "genetic_tests")
        result = cli("status")
        rows = {line.split()[0] for line in result.stdout.splitlines()[1:] if line.strip()}
        assert rows == {"genetic_tests"}
        assert "UNREADABLE" in result.stdout  # enabled without its Snowflake credentials: said so

    def test_all_enables_every_contrib_pipeline(self) -> None:
        assert enabled_contrib({"DRIVETRAIN_CONTRIB_PIPELINES": "all"}) is None
        for name, target in registered_pipelines().items():
            assert is_contrib(target) == (name in CONTRIB)
            assert listed_by_default(name, target, {"DRIVETRAIN_CONTRIB_PIPELINES": "all"})
            assert listed_by_default(name, target, {}) is (name not in CONTRIB)

    def test_a_contrib_pipeline_named_explicitly_always_works(self, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("DRIVETRAIN_CONTRIB_PIPELINES", raising=False)
        result = cli("status", "demo")
        assert result.returncode == 0, result
        assert result.stdout.splitlines()[1].split()[0] == "demo"


def run(folder: Path, index: int, *, fail: str | None = None) -> None:
    with Pipeline.load(folder) as pipeline:
        window = pipeline.grid.first()
        for _ in range(index):
            window = pipeline.grid.next(window)
        if fail is None:
            pipeline.runner().run(window)
        else:
            with FaultPlugin(fail={fail: 1}).installed():
                pipeline.runner().run(window)


class TestRecoveredWindows:
    def test_a_failure_a_retry_fixed_is_not_an_alert(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab")
        run(folder, 0, fail="stage_to_target_transfer")
        run(folder, 0)
        with Pipeline.load(folder) as pipeline:  # "now" just after the one window: no gaps to warn about
            [health] = build_metrics([pipeline], now=datetime(2025, 11, 15, 1, 0, 30, tzinfo=UTC)).health()
        assert health.level == "ok", health.notes
        assert health.success_rate == 50.0  # the spec's run-level rate is still shown

    def test_a_failure_still_open_is_an_alert(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab")
        run(folder, 0)
        run(folder, 1, fail="stage_to_target_transfer")
        with Pipeline.load(folder) as pipeline:
            [health] = build_metrics([pipeline]).health()
        assert health.level == "alert"


class TestGapsRespectCatchup:
    NOW = datetime(2025, 11, 16, 0, 30, tzinfo=UTC)

    def write(self, tmp_path: Path, catchup: bool) -> Path:
        folder = make_pipeline_dir(tmp_path / "lab", dag_schedule__start_date="2025-01-01", dag_schedule__catchup=catchup)
        return folder

    def run_window(self, folder: Path, start: datetime) -> None:
        with Pipeline.load(folder) as pipeline:
            pipeline.runner().run(pipeline.grid.window_at(start))

    def test_without_catchup_gaps_start_at_the_first_window_that_ran(self, tmp_path: Path) -> None:
        folder = self.write(tmp_path, catchup=False)
        self.run_window(folder, datetime(2025, 11, 15, 0, tzinfo=UTC))
        with Pipeline.load(folder) as pipeline:
            gaps = find_gaps(pipeline, now=self.NOW)
            lines = gap_lines(pipeline, now=self.NOW)
        assert len(gaps) == 23  # 01:00 to 24:00 on the 15th; nothing since 2025-01-01
        assert gaps[0].window.start == datetime(2025, 11, 15, 1, tzinfo=UTC)
        assert lines[0].startswith("gaps since 2025-11-15 00:00Z (catchup: false: from the first window it ran): 23 never ran")

    def test_with_catchup_gaps_start_at_the_start_date(self, tmp_path: Path) -> None:
        folder = self.write(tmp_path, catchup=True)
        self.run_window(folder, datetime(2025, 11, 15, 0, tzinfo=UTC))
        with Pipeline.load(folder) as pipeline:
            gaps = find_gaps(pipeline, now=self.NOW)
        expected = int((self.NOW.replace(minute=0) - datetime(2025, 1, 1, tzinfo=UTC)) / timedelta(hours=1)) - 1
        assert len(gaps) == expected

    def test_without_catchup_and_no_run_only_the_latest_window_is_due(self, tmp_path: Path) -> None:
        folder = self.write(tmp_path, catchup=False)
        with Pipeline.load(folder) as pipeline:
            gaps = find_gaps(pipeline, now=self.NOW)
        assert [g.window.start for g in gaps] == [datetime(2025, 11, 15, 23, tzinfo=UTC)]
