"""Record validation: every row is loaded or rejected with a reason, never lost."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.validation import ColumnSpec, RecordValidator, convert_column

COLUMNS = [
    ColumnSpec("id", "string", required=True, max_length=5),
    ColumnSpec("age", "integer", min=0, max=130),
    ColumnSpec("score", "float"),
    ColumnSpec("ok", "boolean"),
    ColumnSpec("day", "date"),
    ColumnSpec("meta", "json"),
    ColumnSpec("ts", "timestamp", required=True),
]


def validate(rows, columns=COLUMNS):
    """Validate rows; a column whose values differ in type is sent as text, as a source would."""
    for key in {k for row in rows for k in row}:
        kinds = {type(row.get(key)) for row in rows if row.get(key) is not None}
        if len(kinds) > 1:
            for row in rows:
                if row.get(key) is not None:
                    row[key] = str(row[key]).lower() if isinstance(row[key], bool) else str(row[key])
    return RecordValidator(columns, "ts").validate(pa.RecordBatch.from_pylist(rows))


def good(**changes):
    row = {"id": "a1", "age": 40, "score": 1.5, "ok": True, "day": "2025-11-15", "meta": '{"k": 1}', "ts": "2025-11-15T10:00:00Z"}
    row.update(changes)
    return row


class TestConversions:
    def test_clean_rows_pass_with_declared_types(self):
        result = validate([good(), good(id="b2", age="41", ok="false", score="2")])
        assert result.rejected == 0
        assert result.valid.schema.field("age").type == pa.int64()
        assert result.valid.column("ok").to_pylist() == [True, False]
        assert result.valid.column("ts").to_pylist()[0] == datetime(2025, 11, 15, 10, tzinfo=UTC)

    @pytest.mark.parametrize(("text", "expected"), [
        ("2025-11-15T10:00:00Z", datetime(2025, 11, 15, 10, tzinfo=UTC)),
        ("2025-11-15T12:00:00+02:00", datetime(2025, 11, 15, 10, tzinfo=UTC)),
        ("2025-11-15 10:00:00", datetime(2025, 11, 15, 10, tzinfo=UTC)),
        ("2025-11-15T10:00:00.250000Z", datetime(2025, 11, 15, 10, 0, 0, 250000, tzinfo=UTC)),
    ])
    def test_timestamp_forms(self, text, expected):
        converted, failed = convert_column(pa.array([text]), pa.timestamp("us", tz="UTC"))
        assert converted.to_pylist() == [expected] and failed.to_pylist() == [False]

    def test_naive_timestamps_are_read_in_the_source_zone(self):
        converted, _ = convert_column(pa.array(["2025-11-15 10:00:00"]), pa.timestamp("us", tz="UTC"), "Europe/Paris")
        assert converted.to_pylist() == [datetime(2025, 11, 15, 9, tzinfo=UTC)]

    def test_one_bad_value_fails_only_its_row(self):
        converted, failed = convert_column(pa.array(["1", "x", "3"]), pa.int64())
        assert converted.to_pylist() == [1, None, 3] and failed.to_pylist() == [False, True, False]


class TestRejects:
    @pytest.mark.parametrize(("change", "reason"), [
        ({"id": None}, "id: required field is empty"),
        ({"id": "toolong"}, "id: longer than 5 characters"),
        ({"age": "abc"}, "age: not a valid integer"),
        ({"age": 200}, "age: above the maximum 130"),
        ({"age": -1}, "age: below the minimum 0"),
        ({"age": 1.5}, "age: not a valid integer"),
        ({"ok": "maybe"}, "ok: not a valid boolean"),
        ({"day": "15/11/2025"}, "day: not a valid date"),
        ({"meta": "{not json"}, "meta: not valid JSON"),
        ({"ts": "yesterday"}, "ts: not a valid timestamp"),
    ])
    def test_reason_names_the_field_and_the_rule(self, change, reason):
        result = validate([good(), good(**change)])
        assert result.valid.num_rows == 1
        assert result.reasons == [reason]

    def test_missing_required_column_rejects_every_row(self):
        rows = [{k: v for k, v in good().items() if k != "id"}]
        assert validate(rows).reasons == ["id: required field is missing"]

    def test_source_parse_errors_are_rejected_with_their_text(self):
        batch = pa.RecordBatch.from_pylist([
            {**good(), "_drivetrain_error": None, "_drivetrain_raw": None},
            {**good(), "_drivetrain_error": "array in a long field", "_drivetrain_raw": '{"age": [1, 2]}'},
        ])
        result = RecordValidator(COLUMNS, "ts").validate(batch)
        assert result.reasons == ["unreadable record: array in a long field"]
        assert "_drivetrain_error" not in result.valid.schema.names

    def test_without_declared_columns_only_the_query_field_is_checked(self):
        rows = [good(age="1"), good(age="2", ts=None), good(age="x")]
        result = RecordValidator([], "ts").validate(pa.RecordBatch.from_pylist(rows))
        assert result.valid.num_rows == 2 and result.reasons == ["ts: required field is empty"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "id": st.one_of(st.none(), st.text(max_size=8)),
    "age": st.one_of(st.none(), st.integers(-5, 300), st.text(max_size=4)),
    "ts": st.one_of(st.none(), st.sampled_from(["2025-11-15T10:00:00Z", "bad", "2025-11-15 10:00:00", ""])),
}), min_size=1, max_size=30))
def test_every_row_is_either_valid_or_rejected(rows):
    columns = [ColumnSpec("id", "string", required=True), ColumnSpec("age", "integer"), ColumnSpec("ts", "timestamp", required=True)]
    for row in rows:  # keep each column one Arrow type, as a source would send
        row["age"] = None if row["age"] is None else str(row["age"])
    result = validate(rows, columns)
    assert result.valid.num_rows + result.rejected == len(rows)
    assert len(result.rejected_rows) == result.rejected
