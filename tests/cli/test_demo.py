"""``drivetrain demo`` end to end, the synthetic source it generates, and the registered demo pipeline."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from drivetrain import Pipeline
from drivetrain.demo import (
    DEMO_DAY,
    MARKER,
    DemoFolderError,
    demo_overrides,
    generate_source,
    reset_folder,
)

from .conftest import Cli, Result


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path, Cli]:
    """One demo, shared by the tests that read its output (it takes a few seconds)."""
    root = tmp_path_factory.mktemp("demo")
    (root / "home").mkdir()
    cli = Cli(cwd=root, home=root / "home")
    result = cli("demo", "--dir", "out")
    return result, root / "out", cli


def drive_rows(drive: Path) -> list[tuple]:
    """The demo's runs, read from its SQLite drive file (the default) as a user would."""
    with contextlib.closing(sqlite3.connect(f"file:{drive}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT pipeline_id, pipeline_status, phase_failed, phases_skipped FROM pipeline_execution_drive "
            "ORDER BY query_window_start_timestamp, pipeline_retry_number"
        ).fetchall()
    return [(*row[:3], json.loads(row[3]) if row[3] else row[3]) for row in rows]


class TestDemoCommand:
    def test_the_demo_succeeds_and_prints_the_summary(self, demo_run: tuple[Result, Path, Cli]) -> None:
        result, out, _ = demo_run
        assert result.returncode == 0, result
        assert "summary" in result.stdout
        assert "24 hourly windows, 24 succeeded, in 25 runs (1 retry)" in result.stdout
        assert f"DuckDB file      {out.resolve() / 'warehouse.duckdb'}" in result.stdout
        assert "FROM pipeline_execution_drive" in result.stdout
        assert "Traceback" not in result.stdout + result.stderr

    def test_the_commands_it_prints_for_the_drive_table_answer_when_pasted(self, demo_run: tuple[Result, Path, Cli]) -> None:
        result, out, _ = demo_run
        assert f"drive table      {out.resolve() / 'drive.sqlite'}" in result.stdout
        lines = result.stdout.splitlines()
        python = lines[lines.index("the drive table, one row per run: paste this") + 1].strip()
        cli = lines[lines.index("or, with the sqlite3 command-line tool installed:") + 1].strip()
        for command in (python, cli):
            pasted = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, check=False)  # noqa: S602 - the printed line, as a user pastes it
            assert pasted.returncode == 0, (command, pasted.stderr)
            assert pasted.stdout.count("demo_2025") == 25, (command, pasted.stdout)

    def test_one_window_fails_on_purpose_and_the_retry_resumes_it(self, demo_run: tuple[Result, Path, Cli]) -> None:
        result, out, _ = demo_run
        rows = drive_rows(out / "drive.sqlite")
        assert len(rows) == 25
        failed = [r for r in rows if r[1] == "FAILED"]
        assert [(r[0], r[2]) for r in failed] == [("demo_20251115T130000Z_run1", "stage_to_target_transfer")]
        retry = next(r for r in rows if r[0] == "demo_20251115T130000Z_run2")
        assert retry[1] == "SUCCESS"
        assert {"source_count", "source_to_stage_transfer", "stage_count"} <= set(retry[3])
        assert "demo_20251115T130000Z_run2 skipped source_count, source_to_stage_transfer, stage_count" in result.stdout

    def test_the_summary_counts_match_the_tables(self, demo_run: tuple[Result, Path, Cli]) -> None:
        result, out, _ = demo_run
        with duckdb.connect(str(out / "warehouse.duckdb"), read_only=True) as conn:
            target = conn.execute("SELECT count(*), count(DISTINCT test_id) FROM genetic_tests").fetchone()
            rejects = conn.execute("SELECT count(*) FROM stg_genetic_tests__rejects").fetchone()[0]
        assert target[0] == target[1], "duplicates reached the target"
        assert f"target           {target[0]:,} rows" in result.stdout
        assert f"({rejects:,} rejected by validation" in result.stdout

    def test_the_demo_folder_works_with_the_other_commands(self, demo_run: tuple[Result, Path, Cli]) -> None:
        _, out, cli = demo_run
        history = cli("history", str(out), "--limit", "30", "--json")
        assert history.returncode == 0, history
        assert len(history.json()) == 25
        shown = cli("show", "demo_20251115T130000Z_run2", "--dir", str(out), "--json")
        assert shown.returncode == 0, shown
        assert shown.json()["source_to_stage_transfer_phase"]["carried_from"] == "demo_20251115T130000Z_run1"


class TestSyntheticSource:
    def test_the_same_seed_writes_the_same_file(self, tmp_path: Path) -> None:
        one = generate_source(tmp_path / "a.jsonl")
        two = generate_source(tmp_path / "b.jsonl")
        assert one.records == two.records
        assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()

    def test_about_two_percent_are_invalid_and_about_one_percent_repeat(self, tmp_path: Path) -> None:
        stats = generate_source(tmp_path / "day.jsonl")
        assert 1.5 <= stats.invalid * 100 / stats.records <= 2.5
        assert 0.5 <= stats.duplicates * 100 / stats.records <= 1.5
        lines = [json.loads(line) for line in (tmp_path / "day.jsonl").read_text().splitlines()]
        ids = Counter(r["test_id"] for r in lines if r.get("test_id"))
        assert sum(n - 1 for n in ids.values()) == stats.duplicates
        assert all(r["reported_at"].startswith(DEMO_DAY.isoformat()) for r in lines)
        assert all(isinstance(r["metadata"], dict) for r in lines)


def fill(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class TestResetFolder:
    def test_a_new_demo_replaces_what_an_earlier_one_wrote(self, tmp_path: Path) -> None:
        fill(tmp_path, MARKER, "config.json", "warehouse.duckdb", "warehouse.duckdb.wal",
             "source/genetic_tests_2025-11-15.jsonl", "archive/pipeline_name=demo/target_date=2025-11-15/part.parquet")
        reset_folder(tmp_path)
        assert listing(tmp_path) == [MARKER]

    def test_a_new_or_empty_folder_is_marked_as_the_demos(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        reset_folder(tmp_path / "new")
        reset_folder(tmp_path / "empty")
        assert (tmp_path / "new" / MARKER).is_file() and (tmp_path / "empty" / MARKER).is_file()

    def test_a_pipeline_folder_without_the_marker_is_refused_untouched(self, tmp_path: Path) -> None:
        fill(tmp_path, "config.json", "warehouse.duckdb", "archive/orders/2025-11-15/part.parquet")
        before = listing(tmp_path)
        with pytest.raises(DemoFolderError, match=f"not made by drivetrain demo.*{MARKER}"):
            reset_folder(tmp_path)
        assert listing(tmp_path) == before

    def test_a_marked_folder_holding_other_files_is_refused_untouched(self, tmp_path: Path) -> None:
        fill(tmp_path, MARKER, "warehouse.duckdb", "notes.txt", "source/orders.csv", "archive/pipeline_name=orders/x.parquet")
        before = listing(tmp_path)
        with pytest.raises(DemoFolderError, match=r"did not write \(archive/pipeline_name=orders, notes.txt, source/orders.csv\)"):
            reset_folder(tmp_path)
        assert listing(tmp_path) == before

    def test_a_folder_from_a_demo_before_the_marker_is_recognised_by_its_config(self, tmp_path: Path) -> None:
        fill(tmp_path, "warehouse.duckdb", "source/genetic_tests_2025-11-15.jsonl")
        (tmp_path / "config.json").write_text(json.dumps({"_comment": "Written by `drivetrain demo`: the..."}))
        reset_folder(tmp_path)
        assert listing(tmp_path) == [MARKER]

    def test_a_file_is_refused(self, tmp_path: Path) -> None:
        fill(tmp_path, "warehouse.duckdb")
        with pytest.raises(DemoFolderError, match="is a file"):
            reset_folder(tmp_path / "warehouse.duckdb")


class TestDemoFolderOnTheCommandLine:
    def test_a_real_pipelines_folder_is_refused_with_exit_2_and_nothing_deleted(self, cli: Cli, shop: Path) -> None:
        run = cli("run", "./shop")
        assert run.returncode == 0, run
        fill(shop, "archive/shop/2025-11-15/part.parquet")
        before = {p: p.read_bytes() for p in shop.rglob("*") if p.is_file()}
        result = cli("demo", "--dir", str(shop))
        assert result.returncode == 2, result
        assert "not made by drivetrain demo" in result.stderr and "give --dir another folder" in result.stderr
        assert {p: p.read_bytes() for p in shop.rglob("*") if p.is_file()} == before

    def test_running_the_demo_twice_in_one_folder_works(self, demo_run: tuple[Result, Path, Cli]) -> None:
        _, out, cli = demo_run
        assert (out / MARKER).is_file()
        again = cli("demo", "--dir", str(out))
        assert again.returncode == 0, again
        assert len(drive_rows(out / "drive.sqlite")) == 25


class TestRegisteredDemoPipeline:
    def test_the_demo_pipeline_is_registered_and_points_at_the_home_folder(self) -> None:
        pipeline = Pipeline.load("demo")
        assert pipeline.name == "demo"
        assert ".drivetrain/demo" in str(pipeline.config.source.get("path"))

    def test_overrides_point_every_path_at_the_demo_folder(self, tmp_path: Path) -> None:
        with Pipeline.load("demo", overrides=demo_overrides(tmp_path)) as pipeline:
            assert str(pipeline.config.stage.path("path")).startswith(str(tmp_path))
            assert str(pipeline.config.drive_table.path("path")).startswith(str(tmp_path))
            assert pipeline.config.phases.stage_cleaning.archive_location.startswith(str(tmp_path))
