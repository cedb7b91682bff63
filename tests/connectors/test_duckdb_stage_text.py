"""A stage window's text is written to DuckDB uncompressed; the target's stays compressed.

Compressing text (a dictionary and FSST symbol tables tried on every column segment) was about
40% of the CPU of a window's insert into the stage, which the source-to-stage transfer waits
for (issue 22). The stage is written once, read by the push-down and archived, then deleted;
the target keeps the rows and is compressed when they are copied into it. ``compress_stage:
true`` keeps the stage compressed, for a small or slow disk. The setting is the database's: the
one before is given back when the load ends, whatever the user set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from drivetrain import Pipeline
from drivetrain.config import SystemConfig
from drivetrain.connectors.duckdb import DuckDBWarehouse
from drivetrain.connectors.duckdb.load import TEXT_COMPRESSION
from drivetrain.errors import ConfigError
from drivetrain.record import RunStatus
from drivetrain.warehouse import TableRef
from drivetrain.window import Window
from tests.sdk.factory import make_pipeline_dir

START = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))
STG = TableRef(name="stg", query_field="at")
ROW_GROUP = 122_880


def warehouse(tmp_path: Path, **settings: object) -> DuckDBWarehouse:
    section = {"type": "duckdb", "path": "w.duckdb", "table": "stg", **settings}
    return DuckDBWarehouse(SystemConfig.from_section("stage_system", section, base_dir=tmp_path))


def batch(rows: int, first: int = 0) -> pa.RecordBatch:
    """Text that compresses well: a few distinct values, repeated."""
    ids = range(first, first + rows)
    at = pa.array([START + timedelta(microseconds=i) for i in ids], pa.timestamp("us", tz="UTC"))
    status = pa.array([("shipped", "pending", "returned")[i % 3] for i in ids])
    return pa.RecordBatch.from_arrays([pa.array(ids, pa.int64()), at, status], names=["id", "at", "status"])


def text_compression(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The compression of the table's VARCHAR column segments (``Uncompressed``, ``DICT_FSST``...)."""
    found = conn.execute("SELECT DISTINCT compression FROM pragma_storage_info(?) WHERE segment_type = 'VARCHAR'",
                         [table]).fetchall()
    return {name for (name,) in found}


def shown(wh: DuckDBWarehouse) -> list[str]:
    """The database's disabled compression methods as DuckDB shows them."""
    with wh.connect() as conn:
        text = str(conn.execute("SELECT current_setting('disabled_compression_methods')").fetchall()[0][0])
    return [m.strip() for m in text.split(",") if m.strip()]


def disabled(wh: DuckDBWarehouse) -> set[str]:
    """The database's disabled compression methods, lower-cased."""
    return {m.lower() for m in shown(wh)}


class TestTheStage:
    """A pipeline's stage tells its loads they stage, unless ``compress_stage: true``."""

    def methods_while_loading(self, folder: Path) -> set[str]:
        with Pipeline.load(folder) as pipeline:
            stage = pipeline.stage()
            window = pipeline.grid.first()
            with stage.load(window, "k") as load:
                load.append(stage.ref, pa.RecordBatch.from_pylist(
                    [{"test_id": "T1", "age": 3, "result": "negative", "reported_at": window.start}]))
                during = disabled(stage.warehouse)
                load.commit([stage.ref])
            assert disabled(stage.warehouse) == set()
        return during

    def test_the_stage_is_written_for_speed(self, tmp_path: Path) -> None:
        assert self.methods_while_loading(make_pipeline_dir(tmp_path / "lab")) == set(TEXT_COMPRESSION)

    def test_compress_stage_keeps_it_compressed(self, tmp_path: Path) -> None:
        assert self.methods_while_loading(make_pipeline_dir(tmp_path / "lab", stage_system__compress_stage=True)) == set()

    def test_a_run_loads_the_stage_for_speed_and_gives_the_setting_back(self, tmp_path: Path) -> None:
        folder = make_pipeline_dir(tmp_path / "lab")
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner().run(pipeline.grid.first())
            assert record.pipeline_status is RunStatus.SUCCESS
            assert disabled(pipeline.stage().warehouse) == set()


@pytest.mark.parametrize("section", ["target_system", "drive_table"])
def test_compress_stage_anywhere_but_the_stage_is_refused_where_it_is(tmp_path: Path, section: str) -> None:
    """It says nothing about a target (always compressed): a clear error rather than no effect."""
    config = SystemConfig.from_section(section, {"type": "duckdb", "table": "t", "compress_stage": True}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=rf"{section}\.compress_stage: applies to stage_system only"):
        DuckDBWarehouse(config)


class TestTheLoad:
    """Row groups a window fills are written as it streams in: those of a staging load keep
    their text uncompressed (the rest of a window is written by the checkpoint, compressed)."""

    @pytest.mark.parametrize("end", ["commit", "abort"])
    def test_a_staging_load_gives_the_setting_back_as_it_was(self, tmp_path: Path, end: str) -> None:
        wh = warehouse(tmp_path)
        with wh.session():
            with wh.connect() as conn:  # the user's, kept (DuckDB shows them upper-cased: named once)
                conn.execute("SET disabled_compression_methods = 'rle,fsst'")
            with wh.window_load(WINDOW, "k") as load:
                load.staging()
                load.append(STG, batch(100))
                assert disabled(wh) == {"rle", *TEXT_COMPRESSION}
                assert len(shown(wh)) == 4
                if end == "commit":
                    load.commit([STG])
            assert disabled(wh) == {"rle", "fsst"}

    def test_an_insert_on_several_threads_keeps_compressing(self, tmp_path: Path) -> None:
        """A large window given the memory for two insert threads: they share the compression,
        which costs them less than the memory uncompressed text would take."""
        wh = warehouse(tmp_path, threads=2, memory_limit="1GB")
        with wh.session(), wh.window_load(WINDOW, "k") as load:
            load.staging()
            load.expect(10**7)
            load.append(STG, batch(100))
            assert disabled(wh) == set()
            load.commit([STG])

    @pytest.mark.parametrize("staging", [True, False])
    def test_the_full_row_groups_of_a_staging_load_hold_their_text_uncompressed(self, tmp_path: Path, staging: bool) -> None:
        wh = warehouse(tmp_path)
        with wh.session(), wh.window_load(WINDOW, "k") as load:
            if staging:
                load.staging()
            for first in range(0, ROW_GROUP, 10_000):
                load.append(STG, batch(min(10_000, ROW_GROUP - first), first=first))
            load.commit([STG])
        with duckdb.connect(str(wh.path)) as conn:
            assert conn.execute("SELECT count(*), count(DISTINCT id) FROM stg").fetchall() == [(ROW_GROUP, ROW_GROUP)]
            # the text reads back as written, whichever way it is stored
            assert conn.execute("SELECT count(*) FROM stg WHERE status IS DISTINCT FROM "
                                "['shipped', 'pending', 'returned'][id % 3 + 1]"
                                ).fetchall() == [(0,)]
            found = text_compression(conn, "stg")
        assert found == ({"Uncompressed"} if staging else {"DICT_FSST"})
