"""DuckDB's column look-up (``DuckDBWarehouse.table_columns``) reads the catalog directly.

It answers what ``information_schema.columns`` answers for the file's own tables, in column
order, with DuckDB's type names (the schema contract and widening compare them), and nothing
for a table that does not exist, a table of another schema, or one of another attached file.
"""

from __future__ import annotations

import duckdb

from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.warehouse import TableRef

_COLUMNS = ('"id" BIGINT, "at" TIMESTAMPTZ, "amount" DECIMAL(18,4), "tags" VARCHAR[], "doc" JSON, '
            '"Mixed Case" VARCHAR, "nested" STRUCT(x INTEGER, y VARCHAR), "day" DATE, "ratio" DOUBLE')


def test_columns_are_those_the_information_schema_lists_in_order(tmp_path):
    wh = DuckDBWarehouse(SystemConfig.from_section("stage_system", {"type": "duckdb", "path": "w.duckdb", "table": "stg"},
                                                   base_dir=tmp_path))
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    other.execute("CREATE TABLE wide (elsewhere INTEGER)")
    other.close()
    try:
        with wh.sql("set up") as s:
            s.execute(f"CREATE TABLE main.wide ({_COLUMNS})")
            s.execute("CREATE SCHEMA side")
            s.execute('CREATE TABLE side.wide ("only_here" INTEGER)')
            s.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
            expected = s.rows("SELECT column_name, data_type FROM information_schema.columns WHERE table_catalog = "
                              "current_database() AND table_schema = 'main' AND table_name = 'wide' ORDER BY ordinal_position")
            assert dict(expected) == wh.table_columns(TableRef(name="wide"))
            assert list(wh.table_columns(TableRef(name="wide"))) == [n for n, _ in expected]
            assert wh.table_columns(TableRef(name="wide"))["amount"] == "DECIMAL(18,4)"
            assert wh.table_columns(TableRef(name="wide", schema="side")) == {"only_here": "INTEGER"}
            assert wh.table_columns(TableRef(name="missing")) == {}
            assert wh.table_columns(TableRef(name="WIDE")) == {}  # names are exact, as the information schema's
    finally:
        wh.close()
