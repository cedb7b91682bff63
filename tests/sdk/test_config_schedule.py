"""The schedule against the window grid, and the target's keys against the declared columns."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline
from drivetrain.config import PipelineConfig
from drivetrain.config.preflight import pipeline_problems, query_field_problem
from drivetrain.config.schedule import interval_window, schedule_problem
from drivetrain.errors import ConfigError

from .factory import BASE_CONFIG, make_pipeline_dir

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Kolkata"]


def config(tmp_path: Path, *, frequency: str = "hourly", cron: str | None = None, duration: str = "1h",
           timezone: str = "UTC", start: str = "2025-11-15") -> PipelineConfig:
    data: dict[str, Any] = copy.deepcopy(BASE_CONFIG)
    data["dag_schedule"] = {"frequency": frequency, "timezone": timezone, "start_date": start}
    if cron is not None:
        data["dag_schedule"]["cron_expression"] = cron
    data["query_window"]["duration"] = duration
    path = tmp_path / f"config-{abs(hash((frequency, cron, duration, timezone, start)))}.json"
    path.write_text(json.dumps(data))
    return PipelineConfig.from_file(path)


class TestScheduleProblem:
    @pytest.mark.parametrize(("frequency", "duration"), [("hourly", "7m"), ("hourly", "2h"), ("daily", "1h"), ("hourly", "1d")])
    def test_a_window_other_than_the_schedules_interval_is_found(self, tmp_path: Path, frequency: str, duration: str) -> None:
        found = schedule_problem(config(tmp_path, frequency=frequency, duration=duration))
        assert found is not None
        path, message = found
        assert path == "dag_schedule.frequency"
        assert f"does not fire once per {duration!r} window" in message and "initialize_pipeline" in message

    def test_a_cron_that_fires_between_window_starts_is_found_at_its_key(self, tmp_path: Path) -> None:
        found = schedule_problem(config(tmp_path, frequency="custom", cron="15 * * * *"))
        assert found is not None and found[0] == "dag_schedule.cron_expression"
        assert "'0 * * * *'" in found[1]

    def test_weekly_windows_need_the_cron_on_the_start_dates_weekday(self, tmp_path: Path) -> None:
        saturday = "2025-11-15"
        found = schedule_problem(config(tmp_path, frequency="weekly", duration="1w", start=saturday))
        assert found is not None and "'0 0 * * 6'" in found[1]
        assert schedule_problem(config(tmp_path, frequency="custom", cron="0 0 * * 6", duration="1w", start=saturday)) is None

    @settings(max_examples=25, deadline=None)
    @given(zone=st.sampled_from(ZONES), day=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)),
           kind=st.sampled_from([("hourly", None, "1h"), ("daily", None, "1d"), ("custom", "*/15 * * * *", "15m")]))
    def test_a_matching_schedule_passes_in_any_zone_across_daylight_saving(
        self, tmp_path_factory: pytest.TempPathFactory, zone: str, day: date, kind: tuple[str, str | None, str]
    ) -> None:
        frequency, cron, duration = kind
        tmp = tmp_path_factory.mktemp("sched")
        assert schedule_problem(config(tmp, frequency=frequency, cron=cron, duration=duration, timezone=zone,
                                       start=day.isoformat())) is None


    def test_exact_windows_that_drift_from_local_cron_marks_at_a_clock_change_are_found(self, tmp_path: Path) -> None:
        found = schedule_problem(config(tmp_path, frequency="custom", cron="0 */6 * * *", duration="6h",
                                        timezone="Europe/Berlin", start="2025-01-01"))
        assert found is not None and "2025-03-30" in found[1]  # the spring clock change
        assert schedule_problem(config(tmp_path, frequency="custom", cron="0 */6 * * *", duration="6h")) is None


    def test_a_cron_that_never_fires_is_found(self, tmp_path: Path) -> None:
        found = schedule_problem(config(tmp_path, frequency="custom", cron="0 0 30 2 *", duration="1d"))
        assert found is not None and "never fires" in found[1]


class TestIntervalWindow:
    def test_one_window_is_returned_for_its_interval(self, tmp_path: Path) -> None:
        start = datetime(2025, 11, 15, 3, tzinfo=UTC)
        window = interval_window(config(tmp_path), start, start + timedelta(hours=1))
        assert (window.start, window.end) == (start, start + timedelta(hours=1))

    def test_an_interval_of_two_windows_is_a_config_error(self, tmp_path: Path) -> None:
        start = datetime(2025, 11, 15, 3, tzinfo=UTC)
        with pytest.raises(ConfigError, match=r"dag_schedule\.frequency: .* is not one '1h' window"):
            interval_window(config(tmp_path), start, start + timedelta(hours=2))


TRANSFORMING = '''
from pathlib import Path
import pyarrow as pa
import pyarrow.compute as pc
from drivetrain import Pipeline, StageToTargetTransfer

class Keyed(StageToTargetTransfer):
    def transform(self, batch, ctx):
        return batch.append_column("key", pc.binary_join_element_wise(batch.column("test_id"), batch.column("result"), "-"))

class Lab(Pipeline):
    config_path = Path(__file__).with_name("config.json")
    phase_classes = {"stage_to_target_transfer": Keyed}
'''


class TestTargetKeys:
    def test_every_key_outside_the_declared_columns_is_named(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", rows=[], target_system__dedup_keys=["test_idd"],
                                   target_system__rename={"resullt": "outcome"}, target_system__query_field="reportedat")
        with Pipeline.load(folder) as pipeline:
            problem = pipeline_problems(pipeline)
        assert problem is not None
        text = "\n".join(problem.problems)
        assert "target_system.dedup_keys[0]: 'test_idd' is not a column of the target; did you mean 'test_id'?" in text
        assert "target_system.rename.resullt: renames 'resullt', which is not a stage column; did you mean 'result'?" in text
        assert "target_system.query_field: 'reportedat' is not a column of the target; did you mean 'reported_at'?" in text

    def test_keys_after_rename_are_the_target_names(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", rows=[], target_system__dedup_keys=["id"],
                                   target_system__rename={"test_id": "id"})
        with Pipeline.load(folder) as pipeline:
            assert pipeline_problems(pipeline) is None

    def test_a_pipeline_that_computes_its_own_columns_is_left_to_the_run(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab", rows=[], target_system__dedup_keys=["key"])
        (folder / "pipeline.py").write_text(TRANSFORMING)
        with Pipeline.load(folder) as pipeline:
            assert pipeline_problems(pipeline) is None


class TestQueryField:
    @pytest.mark.parametrize("value", ["updated_at", "@timestamp", "metadata.reported_at", "sys_updated_on", "Reported At", "event-time",
                                       "data/ts"])
    def test_field_names_pass(self, value: str) -> None:
        assert query_field_problem(value) is None

    @pytest.mark.parametrize("value", ["CAST(updated_at AS TIMESTAMP)", "updated_at; DROP TABLE x", "updated_at desc",
                                       "updated_at' OR '1'='1", "coalesce(a, b)", "a -- comment", "updated_at > now()",
                                       "updated_at + 1", "updated_at - 1", "ts interval 1 day", "a/* x */"])
    def test_expressions_and_sql_are_refused(self, value: str) -> None:
        assert "is not a field name" in (query_field_problem(value) or "")
