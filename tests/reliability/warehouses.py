"""The warehouses the store-level reliability scenarios run over: DuckDB, Snowflake, PostgreSQL
(and "sqlite": DuckDB with the drive table in a SQLite file).

A :class:`WarehouseCase` puts a pipeline folder's stage, target and drive table in one warehouse
(a DuckDB file in the folder; a fakesnow database of its own; a PostgreSQL schema of its own on
the session's server), says how to start a child process on it (Snowflake is registered as a
warehouse by tests/connectors/snowflake/child.py), and reads back what the checks need through
the pipeline's own connectors: the target's rows, the stage's rows of a day, the drive records,
load tables left behind. So one check serves every warehouse, written once.

Credentials reach the children through the environment (``credentials_ref``), as in production.
"""

from __future__ import annotations

import copy
import sys
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from drivetrain import Pipeline, RunRecord
from tests.sdk.factory import BASE_CONFIG, make_pipeline_dir

SF_CHILD = Path(__file__).resolve().parents[1] / "connectors" / "snowflake" / "child.py"
WAREHOUSES = ("duckdb", "snowflake", "postgres", "sqlite")


@attrs.define
class WarehouseCase:
    """One warehouse holding a scenario's stage, target and drive table."""

    name: str
    connection: dict[str, Any] = attrs.field(factory=dict)
    """Keys replacing ``path`` in BASE_CONFIG's stage and target sections (empty: DuckDB as it is)."""
    prefix: list[str] = attrs.field(factory=lambda: [sys.executable])
    """What runs a child script (the script and its arguments follow)."""
    drive: dict[str, Any] = attrs.field(factory=dict)
    """The ``drive_table`` section (empty: the drive table in the stage's warehouse, or its default)."""

    def folder(self, root: Path, rows: list[dict[str, Any]] | None = None, **changes: Any) -> Path:
        """make_pipeline_dir with the stage and target (and so the drive table) in this warehouse."""
        sections: dict[str, Any] = {}
        if self.connection:
            for name in ("stage_system", "target_system"):
                section = {**copy.deepcopy(BASE_CONFIG[name]), **self.connection}
                section.pop("path")
                sections[name] = section
        if self.drive:
            sections["drive_table"] = copy.deepcopy(self.drive)
        return make_pipeline_dir(root, rows, **sections, **changes)

    def pipeline(self, folder: Path) -> Pipeline:
        self.register()
        return Pipeline.load(folder)

    def register(self) -> None:
        if self.name == "snowflake":
            from tests.connectors.snowflake.scenario import register_snowflake

            register_snowflake()

    # -- what the checks read ---------------------------------------------------------------

    def target_rows(self, folder: Path, start: datetime, end: datetime) -> list[tuple[str, str]]:
        """``(test_id, result)`` of the target's rows with ``start <= reported_at < end``, by id."""
        with self.pipeline(folder) as pipeline:
            target = pipeline.target()
            d = target.warehouse.dialect
            sql = (f"SELECT {d.quote('test_id')}, {d.quote('result')} FROM {d.qualified(target.ref)} "
                   f"WHERE {d.quote('reported_at')} >= ? AND {d.quote('reported_at')} < ? ORDER BY 1")
            with target.warehouse.sql("read the target") as s:
                return [(str(k), str(v)) for k, v in s.rows(sql, [start, end])]

    def target_counts(self, folder: Path) -> tuple[int, int]:
        """Rows in the target, and distinct ids among them."""
        with self.pipeline(folder) as pipeline:
            target = pipeline.target()
            d = target.warehouse.dialect
            with target.warehouse.sql("count the target") as s:
                total, distinct = s.rows(f"SELECT COUNT(*), COUNT(DISTINCT {d.quote('test_id')}) FROM {d.qualified(target.ref)}")[0]
        return int(total), int(distinct)

    def stage_rows_of(self, folder: Path, day: date) -> int:
        with self.pipeline(folder) as pipeline:
            return pipeline.stage().count_date(day)

    def runs(self, folder: Path, window_start: datetime) -> list[RunRecord]:
        """The window's drive records, oldest attempt first."""
        with self.pipeline(folder) as pipeline:
            records = [r for r in pipeline.drive_store().history(pipeline.name) if r.query_window_start_timestamp == window_start]
        return sorted(records, key=lambda r: r.pipeline_retry_number)

    def all_runs(self, folder: Path) -> list[RunRecord]:
        with self.pipeline(folder) as pipeline:
            return pipeline.drive_store().history(pipeline.name)

    def load_tables_left(self, folder: Path) -> list[str]:
        """Tables a window load makes for itself (``..._load_...``) still in the target's schema."""
        with self.pipeline(folder) as pipeline:
            target = pipeline.target()
            with target.warehouse.sql("list load tables") as s:
                names = s.rows("SELECT table_schema, table_name FROM information_schema.tables")
        schema = (target.ref.schema or "").lower()
        return [str(t) for sch, t in names if "_load_" in str(t).lower() and (not schema or str(sch).lower() == schema)]


def make_case(name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> WarehouseCase:
    """The case for ``name``, starting its server (session fixtures) only when it is asked for."""
    if name == "duckdb":
        return WarehouseCase("duckdb")
    if name == "snowflake":
        from tests.connectors.snowflake.conftest import CREDENTIALS_REF, ENV

        server = request.getfixturevalue("fakesnow_server")
        for key, value in ENV.items():
            monkeypatch.setenv(key, value)
        database = f"R_{uuid.uuid4().hex[:12].upper()}"
        return WarehouseCase("snowflake", {**server.options(database), "credentials_ref": CREDENTIALS_REF},
                             [sys.executable, str(SF_CHILD)])
    if name == "postgres":
        from tests.connectors.postgres.warehouse import env, new_schema, section

        server = request.getfixturevalue("postgres")
        for key, value in env(server).items():
            monkeypatch.setenv(key, value)
        connection = section(server, new_schema(server))
        return WarehouseCase("postgres", connection)
    if name == "sqlite":  # DuckDB stage and target, the drive table in a SQLite file
        return WarehouseCase("sqlite", drive={"type": "sqlite", "path": "drive.sqlite"})
    raise ValueError(f"no warehouse case {name!r}; known: {', '.join(WAREHOUSES)}")
