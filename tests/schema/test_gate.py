"""The contract on Arrow batches alone: types as each warehouse reports them, and the record count kept."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.schema_contract import POLICIES, ContractBreach, ContractGate, SchemaContract
from drivetrain.schema_types import Kind, arrow_kind, fits, sql_kind, widened_type
from drivetrain.warehouse import TableRef

TABLE = TableRef(name="stg", schema="main")
EXISTING = {"id": "BIGINT", "amount": "BIGINT", "name": "VARCHAR", "ts": "TIMESTAMP WITH TIME ZONE"}


@pytest.mark.parametrize(("sql", "kind"), [
    ("BIGINT", Kind("int", 64)), ("integer", Kind("int", 32)), ("NUMBER(38,0)", Kind("int", 128)),
    ("NUMBER(10,2)", Kind("decimal", 10)), ("double precision", Kind("float", 64)), ("FLOAT", Kind("float", 64)),
    ("real", Kind("float", 32)), ("VARCHAR(16777216)", Kind("string")), ("character varying", Kind("string")),
    ("TEXT", Kind("string")), ("TIMESTAMP_TZ", Kind("timestamp")), ("timestamp with time zone", Kind("timestamp")),
    ("DATE", Kind("date")), ("BOOLEAN", Kind("bool")), ("VARIANT", Kind("other")), ("JSONB", Kind("other")),
])
def test_types_as_duckdb_postgres_and_snowflake_report_them(sql: str, kind: Kind) -> None:
    assert sql_kind(sql) == kind


@pytest.mark.parametrize(("backend", "old", "new", "expected"), [
    ("duckdb", "INTEGER", pa.int64(), "BIGINT"), ("duckdb", "BIGINT", pa.float64(), "DOUBLE"),
    ("duckdb", "DATE", pa.timestamp("us", tz="UTC"), "TIMESTAMP WITH TIME ZONE"),
    ("postgres", "bigint", pa.float64(), "DOUBLE PRECISION"), ("postgres", "date", pa.timestamp("us"), "TIMESTAMPTZ"),
    ("snowflake", "NUMBER(38,0)", pa.float64(), None), ("snowflake", "DATE", pa.timestamp("us"), None),
    ("duckdb", "BIGINT", pa.string(), None), ("duckdb", "BIGINT", pa.uint64(), None),
])
def test_widening_per_warehouse(backend: str, old: str, new: pa.DataType, expected: str | None) -> None:
    assert widened_type(backend, sql_kind(old), arrow_kind(new)) == expected


def test_values_that_fit_are_no_change() -> None:
    assert fits(sql_kind("NUMBER(38,0)"), arrow_kind(pa.int64()))
    assert fits(sql_kind("DOUBLE"), arrow_kind(pa.int32()))
    assert fits(sql_kind("TIMESTAMP"), arrow_kind(pa.date32()))
    assert not fits(sql_kind("INTEGER"), arrow_kind(pa.int64()))


def test_a_contract_on_a_table_not_made_yet_lets_everything_through() -> None:
    batch = pa.record_batch({"id": [1], "brand_new": ["x"]})
    checked = ContractGate(SchemaContract("freeze", "freeze"), TABLE, {}, "duckdb").check(batch)
    assert checked.batch.equals(batch) and checked.reasons == []


values = st.one_of(st.none(), st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 1)))


@settings(max_examples=150, deadline=None)
@given(columns=st.sampled_from(POLICIES), data_type=st.sampled_from(POLICIES),
       amounts=st.lists(values, min_size=1, max_size=20), extra=st.data())
def test_every_record_is_loaded_discarded_or_the_batch_refused(columns: str, data_type: str, amounts: list, extra) -> None:
    n = len(amounts)
    notes = extra.draw(st.lists(st.one_of(st.none(), st.text(max_size=3)), min_size=n, max_size=n))
    amount = pa.array([float(a) if a is not None else None for a in amounts], type=pa.float64())
    batch = pa.record_batch({"id": pa.array(range(n), pa.int64()), "amount": amount, "note": pa.array(notes, pa.string())})
    gate = ContractGate(SchemaContract(columns, data_type), TABLE, EXISTING, "duckdb")
    fractions = sum(1 for a in amounts if a is not None and float(a) != int(a))
    carried = sum(1 for v in notes if v is not None)
    try:
        checked = gate.check(batch)
    except ContractBreach as exc:
        assert (columns == "freeze" and carried and "'note'" in str(exc)) or (data_type == "freeze" and fractions)
        return
    assert checked.batch.num_rows + len(checked.reasons) == n  # nothing lost, nothing counted twice
    names = checked.batch.schema.names
    assert ("note" in names) == (columns == "evolve")
    if data_type == "evolve" and fractions:
        assert checked.batch.schema.field("amount").type == pa.float64()  # the load widens the column
    elif "amount" in names:
        assert checked.batch.schema.field("amount").type == pa.int64()  # values that fit, as the column holds them
    dropped = sum(gate.values_discarded.values())
    expected_values = (carried if columns == "discard_value" else 0) + (fractions if data_type == "discard_value" else 0)
    if columns != "discard_row" and data_type != "discard_row":
        assert dropped == expected_values and not checked.reasons
