"""Numbers in timestamp fields: read by ``source_system.timestamp_unit``, or refused; never 1970.

``"updated_at": 1735689900`` used to be read as microseconds: every record landed in the
1970-01-01 00:00 window, each real window passed with 0 rows and ``validate`` said nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.validation import RecordValidator, convert_column
from tests.cli.conftest import Cli
from tests.sdk.factory import DAY, make_pipeline_dir, query

UTC_US = pa.timestamp("us", tz="UTC")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PER_UNIT = {"s": timedelta(seconds=1), "ms": timedelta(milliseconds=1), "us": timedelta(microseconds=1)}


class TestConversion:
    def test_a_number_without_a_unit_is_refused_not_read_as_1970(self) -> None:
        converted, failed = convert_column(pa.array([1735689900, None]), UTC_US)
        assert converted.to_pylist() == [None, None]
        assert failed.to_pylist() == [True, False]

    @pytest.mark.parametrize(("unit", "value"), [("s", 1735689900), ("ms", 1735689900_000), ("us", 1735689900_000_000),
                                                 ("ns", 1735689900_000_000_000), ("s", 1735689900.0),
                                                 ("s", "1735689900"), ("ms", "1735689900000")])
    def test_each_unit_reads_the_same_instant(self, unit: str, value: object) -> None:
        converted, failed = convert_column(pa.array([value]), UTC_US, unit=unit)
        assert converted.to_pylist() == [datetime(2025, 1, 1, 0, 5, tzinfo=UTC)]
        assert not failed[0].as_py()

    def test_fractions_and_nanoseconds_keep_microseconds(self) -> None:
        converted, _ = convert_column(pa.array([1735689900.25]), UTC_US, unit="s")
        assert converted[0].as_py() == datetime(2025, 1, 1, 0, 5, 0, 250000, tzinfo=UTC)
        converted, _ = convert_column(pa.array([1735689900_123456_789]), UTC_US, unit="ns")
        assert converted[0].as_py() == datetime(2025, 1, 1, 0, 5, 0, 123456, tzinfo=UTC)

    def test_a_number_out_of_range_fails_instead_of_wrapping(self) -> None:
        converted, failed = convert_column(pa.array([10**17, 5]), UTC_US, unit="s")
        assert failed.to_pylist() == [True, False]
        assert converted[1].as_py() == EPOCH + timedelta(seconds=5)

    @given(st.sampled_from(sorted(PER_UNIT)), st.integers(-(10**9), 4 * 10**9))
    def test_any_count_of_seconds_reads_exactly(self, unit: str, seconds: int) -> None:
        count = seconds * (PER_UNIT["s"] // PER_UNIT[unit])
        converted, failed = convert_column(pa.array([count], pa.int64()), UTC_US, unit=unit)
        assert not failed[0].as_py()
        assert converted[0].as_py() == EPOCH + timedelta(seconds=seconds)

    def test_the_validator_gives_the_reason_and_the_key_to_set(self) -> None:
        checked = RecordValidator([], "updated_at").validate(pa.record_batch({"updated_at": [1735689900]}))
        assert checked.rejected == 1
        assert "source_system.timestamp_unit" in checked.reasons[0]
        unit = RecordValidator([], "updated_at", timestamp_unit="s").validate(pa.record_batch({"updated_at": [1735689900]}))
        assert unit.rejected == 0
        assert unit.valid.column("updated_at")[0].as_py() == datetime(2025, 1, 1, 0, 5, tzinfo=UTC)


def _epoch_folder(tmp_path: Path, **changes: object) -> Path:
    rows = [{"test_id": f"E{i}", "age": 30, "result": "negative",
             "reported_at": int((DAY + timedelta(minutes=5 * i)).timestamp())} for i in range(6)]
    return make_pipeline_dir(tmp_path / "lab", rows, **changes)


class TestPipelines:
    def test_without_a_unit_the_records_are_counted_in_no_window_and_nothing_lands_in_1970(self, tmp_path: Path) -> None:
        folder = _epoch_folder(tmp_path)
        with Pipeline.load(folder) as pipeline:
            grid = pipeline.grid
            old = pipeline.runner().run(grid.window_at(EPOCH))
            real = pipeline.runner().run(grid.window_starting(DAY))
        assert old.phase("source_count").phase_specific_details["count"] == 0
        lost = real.phase("source_count").phase_specific_details["unplaceable"]
        assert lost["records"] == 6
        assert "timestamp_unit" in next(iter(lost["reasons"]))

    def test_with_timestamp_unit_seconds_they_load_into_their_window(self, tmp_path: Path) -> None:
        folder = _epoch_folder(tmp_path, source_system__timestamp_unit="s")
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases
        found = query(folder, "SELECT test_id, reported_at FROM tests ORDER BY test_id")
        assert [(t, ts.astimezone(UTC)) for t, ts in found] == [
            (f"E{i}", DAY + timedelta(minutes=5 * i)) for i in range(6)]

    def test_an_unknown_unit_is_a_config_error_naming_the_key(self, tmp_path: Path) -> None:
        cli = Cli(cwd=tmp_path, home=tmp_path / "home")
        _epoch_folder(tmp_path, source_system__timestamp_unit="minutes")
        result = cli("validate", "./lab")
        assert result.returncode == 2, result
        assert "timestamp_unit" in result.stdout + result.stderr

    def test_validate_warns_from_a_sample_of_the_data(self, tmp_path: Path) -> None:
        cli = Cli(cwd=tmp_path, home=tmp_path / "home")
        _epoch_folder(tmp_path)
        result = cli("validate", "./lab")
        assert "warning" in result.stdout and "timestamp_unit" in result.stdout, result
        assert str(int(DAY.timestamp())) in result.stdout
        config = json.loads((tmp_path / "lab" / "config.json").read_text())
        config["source_system"]["timestamp_unit"] = "s"
        (tmp_path / "lab" / "config.json").write_text(json.dumps(config))
        result = cli("validate", "./lab")
        assert result.returncode == 0, result
        assert "the first value is 2025-11-15T00:00:00+00:00" in result.stdout
