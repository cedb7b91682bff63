"""Hostile records through the files source and validation: loaded or rejected, never lost.

Each scenario writes a JSONL file of good rows plus a few bad lines, runs one window to DuckDB
and checks the accounting: every record the source counted is either in stage or in the
rejects table with a reason, and the run itself never crashes on a record.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import DAY, make_pipeline_dir, make_rows, query

AT = "2025-11-15T00:30:00Z"
COLUMNS = [
    {"name": "test_id", "type": "string", "required": True, "max_length": 16},
    {"name": "age", "type": "integer", "min": 0, "max": 130},
    {"name": "result", "type": "string"},
    {"name": "payload", "type": "json"},
    {"name": "reported_at", "type": "timestamp", "required": True},
]
GOOD = 40


def run_with(tmp_path: Path, bad: list[bytes]) -> tuple[Any, Path]:
    """Run the first window over GOOD valid rows plus the ``bad`` lines (raw bytes)."""
    rows = make_rows(GOOD, hours=1, invalid_every=0, duplicates=0)
    folder = make_pipeline_dir(
        tmp_path / "lab", rows, stage_system__columns=COLUMNS,
        phases__audit={"count_tolerances": {"source_to_stage_tolerance_percent": 100, "stage_to_target_tolerance_percent": 100}},
    )
    data = folder / "data" / "records.jsonl"
    data.write_bytes(data.read_bytes() + b"".join(line.rstrip(b"\n") + b"\n" for line in bad))
    with Pipeline.load(folder) as pipeline:
        record = pipeline.runner().run(pipeline.grid.window_starting(DAY))
    assert record.pipeline_status is RunStatus.SUCCESS, {n: s.error_message for n, s in record.phases.items() if s.error_message}
    return record, folder


def line(**fields: Any) -> bytes:
    return json.dumps({"reported_at": AT, **fields}).encode()


def rejects(folder: Path) -> dict[str, str]:
    """test_id (read from the raw record) -> reason."""
    out = {}
    for reason, raw in query(folder, "SELECT reason, raw_record FROM stg_tests__rejects"):
        key = raw.split('"test_id": "', 1)[1].split('"', 1)[0] if '"test_id": "' in raw else raw[:20]
        out[key] = reason
    return out


def assert_accounted(record: Any, folder: Path, loaded: int, rejected: int) -> None:
    counted = record.phases["source_count"].phase_specific_details["count"]
    transfer = record.phases["source_to_stage_transfer"].phase_specific_details
    assert counted == GOOD + loaded + rejected
    assert (transfer["rows_written"], transfer["records_failed"]) == (GOOD + loaded, rejected)
    assert query(folder, "SELECT count(*) FROM stg_tests")[0][0] == GOOD + loaded
    if rejected:
        assert query(folder, "SELECT count(*) FROM stg_tests__rejects")[0][0] == rejected


class TestHugeAndOddStrings:
    def test_a_10_mb_string_is_loaded_whole(self, tmp_path: Path) -> None:
        record, folder = run_with(tmp_path, [line(test_id="BIG", result="x" * 10_000_000)])
        assert_accounted(record, folder, loaded=1, rejected=0)
        assert query(folder, "SELECT length(result) FROM tests WHERE test_id = 'BIG'") == [(10_000_000,)]

    def test_a_10_mb_string_over_its_max_length_is_rejected_with_the_reason(self, tmp_path: Path) -> None:
        record, folder = run_with(tmp_path, [line(test_id="B" * 10_000_000)])
        assert_accounted(record, folder, loaded=0, rejected=1)
        assert query(folder, "SELECT reason FROM stg_tests__rejects") == [("test_id: longer than 16 characters",)]

    def test_nul_bytes_in_a_string_are_loaded_unchanged(self, tmp_path: Path) -> None:
        record, folder = run_with(tmp_path, [line(test_id="NUL", result="a\x00b\x00")])
        assert_accounted(record, folder, loaded=1, rejected=0)
        assert query(folder, "SELECT result FROM tests WHERE test_id = 'NUL'") == [("a\x00b\x00",)]

    def test_invalid_utf8_is_rejected_with_the_reason_and_the_rest_load(self, tmp_path: Path) -> None:
        bad = b'{"test_id": "UTF", "result": "caf\xe9 \xff", "reported_at": "' + AT.encode() + b'"}'
        record, folder = run_with(tmp_path, [bad])
        assert_accounted(record, folder, loaded=0, rejected=1)
        reason = rejects(folder)["UTF"]
        assert "UTF-8" in reason, reason


class TestNesting:
    def test_json_nested_deeper_than_python_parses_is_rejected_not_a_crash(self, tmp_path: Path) -> None:
        deep = b'{"test_id": "DEEP", "reported_at": "' + AT.encode() + b'", "result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        record, folder = run_with(tmp_path, [deep])
        assert_accounted(record, folder, loaded=0, rejected=1)
        assert "nested" in rejects(folder)["DEEP"]

    def test_deeply_nested_text_in_a_json_column_is_rejected_not_a_crash(self, tmp_path: Path) -> None:
        record, folder = run_with(tmp_path, [line(test_id="DJSON", payload="[" * 100_000 + "]" * 100_000)])
        assert_accounted(record, folder, loaded=0, rejected=1)
        assert rejects(folder)["DJSON"].startswith("payload:")

    def test_reasonably_nested_json_loads(self, tmp_path: Path) -> None:
        nested: Any = "leaf"
        for _ in range(200):
            nested = {"n": nested}
        record, folder = run_with(tmp_path, [line(test_id="NEST", payload=json.dumps(nested), result=json.dumps(nested))])
        assert_accounted(record, folder, loaded=1, rejected=0)


class TestWrongTypes:
    CASES = [
        ("W_OBJ", {"age": {"years": 4}}, "age: not a valid integer"),
        ("W_LIST", {"age": [1, 2]}, "age: not a valid integer"),
        ("W_BOOL", {"age": True}, "age: not a valid integer"),
        ("W_HUGE", {"age": 2**70}, "age: not a valid integer"),
        ("W_FRAC", {"age": 1.5}, "age: not a valid integer"),
        ("W_NEG", {"age": -4}, "age: below the minimum 0"),
        ("W_JSON", {"payload": "{not json"}, "payload: not valid JSON"),
        ("W_MISS", {"test_id": None}, "test_id: required field is empty"),
    ]

    @pytest.mark.parametrize(("key", "fields", "reason"), CASES, ids=[c[0] for c in CASES])
    def test_each_is_rejected_with_its_reason(self, tmp_path: Path, key: str, fields: dict[str, Any], reason: str) -> None:
        record, folder = run_with(tmp_path, [line(**{"test_id": key, "result": "r", **fields})])
        assert_accounted(record, folder, loaded=0, rejected=1)
        assert query(folder, "SELECT reason FROM stg_tests__rejects") == [(reason,)]

    def test_values_that_convert_cleanly_are_loaded(self, tmp_path: Path) -> None:
        record, folder = run_with(tmp_path, [line(test_id="C1", age="42"), line(test_id="C2", result={"nested": [1]}),
                                             line(test_id="C3", age=7.0)])
        assert_accounted(record, folder, loaded=3, rejected=0)
        assert query(folder, "SELECT test_id, age FROM tests WHERE test_id LIKE 'C%' ORDER BY 1") == [("C1", 42), ("C2", None), ("C3", 7)]


    @pytest.mark.parametrize("age", [7.0, True, "7.5"], ids=["float", "boolean", "fraction-text"])
    def test_a_record_is_judged_alike_alone_and_among_records_of_other_types(self, tmp_path: Path, age: Any) -> None:
        alone, _ = run_with(tmp_path / "alone", [line(test_id="X", age=age)])
        mixed, _ = run_with(tmp_path / "mixed", [line(test_id="X", age=age), line(test_id="TEXT", age="42")])
        verdicts = [r.phases["source_to_stage_transfer"].phase_specific_details["reject_reasons"] for r in (alone, mixed)]
        assert verdicts[0] == verdicts[1]


class TestUnplaceableRecords:
    def test_a_broken_line_that_still_names_its_time_is_rejected_with_the_reason(self, tmp_path: Path) -> None:
        broken = b'{"test_id": "BROKEN", "reported_at": "' + AT.encode() + b'", "result": unquoted}'
        record, folder = run_with(tmp_path, [broken])
        assert_accounted(record, folder, loaded=0, rejected=1)
        assert "not valid JSON" in rejects(folder)["BROKEN"]

    def test_records_whose_time_cannot_be_read_are_reported_not_dropped_silently(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.WARNING)
        record, folder = run_with(tmp_path, [line(test_id="T1", reported_at=[1]), line(test_id="T2", reported_at="soon"),
                                             b"not json at all"])
        assert_accounted(record, folder, loaded=0, rejected=0)
        text = caplog.text
        assert "3 record(s) belong to no window" in text, text
        lost = record.phase("source_count").phase_specific_details["unplaceable"]  # and in the drive row
        assert lost["reasons"] == {"reported_at: not a timestamp": 2, "line is not valid JSON": 1}
