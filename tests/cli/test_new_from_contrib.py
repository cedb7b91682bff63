"""``drivetrain new NAME --from-contrib PIPELINE``: a contrib pipeline copied, renamed, runnable."""

from __future__ import annotations

import json

import duckdb
import pytest

from drivetrain import Pipeline
from tests.contrib.datasets import LAB_PER_WINDOW, WINDOWS, lab_rows
from tests.contrib.test_lab_results import fill_table
from tests.servers.mariadb import MariaDBServer

from .conftest import Cli, edit_config


class TestCopy:
    def test_the_copy_is_renamed_and_says_what_to_fill_in(self, cli: Cli) -> None:
        result = cli("new", "my_labs", "--from-contrib", "lab_results")
        assert result.returncode == 0, result
        folder = cli.cwd / "my_labs"
        assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "dag.py", "pipeline.py"]
        config = json.loads((folder / "config.json").read_text())
        assert config["pipeline_metadata"]["pipeline_name"] == "my_labs"
        todo = "\n".join(config["_comment_fill_in"])
        assert "source_system.host: 'mysql-lis.example.com' is a placeholder" in todo
        assert "set LIS_MYSQL_USER and LIS_MYSQL_PASSWORD" in todo
        assert "stage_system.account: 'myorg-myaccount' is a placeholder" in todo
        assert "set CDW_SNOWFLAKE_USER and CDW_SNOWFLAKE_PASSWORD" in todo
        assert "drivetrain validate ./my_labs" in result.stdout

    def test_the_copy_loads_as_its_own_pipeline_with_the_contribs_phases(self, cli: Cli) -> None:
        assert cli("new", "my_labs", "--from-contrib", "lab_results").returncode == 0
        with Pipeline.load(cli.cwd / "my_labs") as pipeline:
            assert pipeline.name == "my_labs"
            assert type(pipeline).__name__ == "LabResults"
            assert pipeline.config.target.type == "snowflake"

    def test_the_dag_file_builds_from_the_copied_folder_not_the_contrib_name(self, cli: Cli) -> None:
        assert cli("new", "my_labs", "--from-contrib", "lab_results").returncode == 0
        dag = (cli.cwd / "my_labs" / "dag.py").read_text()
        assert '"lab_results"' not in dag and "build_dag(str(Path(__file__).resolve().parent))" in dag

    def test_an_unknown_contrib_pipeline_exits_2_listing_them_and_writes_nothing(self, cli: Cli) -> None:
        result = cli("new", "mine", "--from-contrib", "lab_result")
        assert result.returncode == 2, result
        assert "no contrib pipeline 'lab_result'; the contrib pipelines are: demo, genetic_tests, incidents, lab_results" in result.stderr
        assert not (cli.cwd / "mine").exists()

    def test_a_non_empty_folder_is_refused(self, cli: Cli) -> None:
        (cli.cwd / "mine").mkdir()
        (cli.cwd / "mine" / "keep.txt").write_text("mine")
        result = cli("new", "mine", "--from-contrib", "lab_results")
        assert result.returncode == 2 and "already exists and is not empty" in result.stderr


class TestOnDuckDB:
    def test_the_duckdb_copy_runs_against_a_real_mysql_into_a_local_file(
            self, cli: Cli, mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch) -> None:
        result = cli("new", "my_labs", "--from-contrib", "lab_results", "--warehouse", "duckdb")
        assert result.returncode == 0, result
        folder = cli.cwd / "my_labs"
        config = json.loads((folder / "config.json").read_text())
        assert {config[r]["type"] for r in ("stage_system", "target_system")} == {"duckdb"}
        assert config["phases"]["stage_cleaning"]["archive_location"] == "archive"
        assert not any("CDW_SNOWFLAKE" in line for line in config["_comment_fill_in"])
        fill_table(mariadb, lab_rows())
        edit_config(folder, lambda c: c["source_system"].update(host=mariadb.host, port=mariadb.port,
                                                                 database=mariadb.database))
        monkeypatch.setenv("LIS_MYSQL_USER", mariadb.user)
        monkeypatch.setenv("LIS_MYSQL_PASSWORD", mariadb.password)
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner(heartbeat_seconds=0.5).run(pipeline.grid.window_starting(WINDOWS[0][0]))
        assert record.pipeline_status.value == "SUCCESS", record.phases[record.phase_failed or "audit"].error_message
        with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
            loaded, flagged = conn.execute(
                "SELECT count(*), count(abnormal_flag) FROM main.lab_results").fetchone()  # type: ignore[misc]
        assert loaded == LAB_PER_WINDOW - 2  # the contrib's two invalid results per window are rejected
        assert flagged > 0
