"""``drivetrain status`` over a fleet sharing one drive file: filters and pages.

Three real pipelines in a pipelines home, one drive file: ``good`` (tag lab, succeeded),
``late`` (tag ops, succeeded, a freshness threshold far in the future) and ``broken`` (tag ops,
its audit fails: every record is rejected by the stage schema; a freshness threshold of an hour,
never met). The filters select among the rows one query set returned for all three.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from drivetrain import Pipeline, RunStatus
from tests.sdk.factory import BASE_CONFIG, make_pipeline_dir, make_rows

SCRIPT = Path(sys.executable).with_name("drivetrain")


def status(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DRIVETRAIN_PIPELINES_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run([str(SCRIPT), "status", *args], cwd=home, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def names(done: subprocess.CompletedProcess[str]) -> list[str]:
    import json

    assert done.returncode == 0, done.stderr
    return [row["pipeline_name"] for row in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("fleet")
    drive = str(home / "shared" / "drive.duckdb")
    strict = [{**c, "max_length": 1} if c["name"] == "test_id" else c for c in BASE_CONFIG["stage_system"]["columns"]]
    specs: dict[str, dict[str, Any]] = {
        "good": {"pipeline_metadata__tags": ["lab"]},
        "late": {"pipeline_metadata__tags": ["ops"], "monitoring__freshness_threshold": "3650d"},
        "broken": {"pipeline_metadata__tags": ["ops"], "monitoring__freshness_threshold": "1h", "stage_system__columns": strict},
    }
    for name, changes in specs.items():
        folder = make_pipeline_dir(home / name, rows=make_rows(hours=1, prefix=name[0].upper()),
                                   pipeline_metadata__pipeline_name=name, stage_system__drive_path=drive,
                                   target_system__drive_path=drive, **changes)
        with Pipeline.load(folder) as pipeline:
            record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
        assert (record.pipeline_status is RunStatus.FAILED) == (name == "broken"), record.phase_failed
    return home


def test_every_pipeline_of_the_home_is_listed_by_name(fleet: Path) -> None:
    assert names(status(fleet, "--json")) == ["broken", "good", "late"]


def test_failed_lists_only_the_pipeline_with_an_open_failure(fleet: Path) -> None:
    assert names(status(fleet, "--failed", "--json")) == ["broken"]
    table = status(fleet, "--failed")
    (row,) = [line.split() for line in table.stdout.splitlines()[1:] if line.strip()]
    assert row[0] == "broken" and row[2] == "FAILED" and row[8] == "1"  # after the window: its one open failure


def test_stale_lists_the_pipeline_older_than_its_freshness_threshold(fleet: Path) -> None:
    assert names(status(fleet, "--stale", "--json")) == ["broken"]  # never succeeded; the others have none or far


def test_tags_select_by_pipeline_metadata_tags(fleet: Path) -> None:
    assert names(status(fleet, "--tag", "ops", "--json")) == ["broken", "late"]
    assert names(status(fleet, "--tag", "lab", "--tag", "nope", "--json")) == ["good"]
    assert names(status(fleet, "--tag", "ops", "--failed", "--json")) == ["broken"]


def test_pages_follow_the_names_and_say_where_the_next_one_starts(fleet: Path) -> None:
    assert names(status(fleet, "--limit", "2", "--json")) == ["broken", "good"]
    assert names(status(fleet, "--limit", "2", "--offset", "2", "--json")) == ["late"]
    page = status(fleet, "--limit", "1", "--offset", "1")
    assert [line.split()[0] for line in page.stdout.splitlines()[1:] if line.strip()] == ["good"]
    assert "pipelines 2-2 of 3; next page: --offset 2" in page.stderr


def test_no_match_says_so(fleet: Path) -> None:
    done = status(fleet, "--tag", "nobody")
    assert done.returncode == 0
    assert "no pipeline matches the filters" in done.stderr
