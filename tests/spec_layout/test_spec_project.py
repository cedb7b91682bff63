"""A project laid out as the spec's examples, run unchanged.

::

    acme/                          the main project folder
      user_scripts/
        common_utilities.py        shared by every pipeline of the project
      projects/
        genetic_tests/
          config.json
          window_rules.py          a module of the pipeline's own folder
          user_scripts/
            pre_validation.py      returns the spec's phases_to_skip on a retry
            source_count.py        imports both of the above
            target_count.py

The scripts are plain ``function(config, record) -> dict`` as the spec writes them.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from drivetrain import PhaseStatus, Pipeline, RunStatus
from drivetrain.testing import FaultPlugin
from tests.sdk.factory import DAY, expected_target, make_pipeline_dir, make_rows, target_rows

COMMON_UTILITIES = '''
import json
from datetime import datetime


def read_records(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def parse_timestamp(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
'''

WINDOW_RULES = '''
from user_scripts import common_utilities


def in_window(row, record):
    start = common_utilities.parse_timestamp(record["query_window_start_timestamp"])
    end = common_utilities.parse_timestamp(record["query_window_end_timestamp"])
    return start <= common_utilities.parse_timestamp(row["reported_at"]) < end
'''

SOURCE_COUNT = '''
import logging
from pathlib import Path

import window_rules
from user_scripts import common_utilities

logger = logging.getLogger(__name__)
CALLS = Path(__file__).with_name("source_count.calls")


def source_count(config, record):
    with CALLS.open("a") as calls:
        calls.write(record["pipeline_id"] + "\\n")
    folder = Path(__file__).resolve().parent.parent
    rows = common_utilities.read_records(folder / config["source_system"]["path"])
    count = sum(1 for row in rows if window_rules.in_window(row, record))
    logger.info("found %d records", count)
    return {"skip_dag_run": False, "error_message": None, "count": count}
'''

PRE_VALIDATION = '''
SPEC_RETRY_SKIPS = ["stale_pipeline_handling", "pre_validation", "source_count", "source_to_stage_transfer", "stage_count"]


def pre_validation(config, record):
    if record["pipeline_retry_number"] == 0:
        return {"skip_dag_run": False, "error_message": None, "is_fresh_run": True, "phases_to_skip": []}
    return {"skip_dag_run": False, "error_message": None, "is_fresh_run": False, "phases_to_skip": SPEC_RETRY_SKIPS}
'''

TARGET_COUNT = '''
def target_count(config, record):
    return {"skip_dag_run": False, "error_message": None, "count": record["stage_count_phase"]["phase_specific_details"]["count"]}
'''


def make_project(root: Path) -> Path:
    """The spec's layout under ``root``; returns the pipeline folder."""
    (root / "user_scripts").mkdir(parents=True)
    (root / "user_scripts" / "common_utilities.py").write_text(COMMON_UTILITIES)
    folder = make_pipeline_dir(root / "projects" / "genetic_tests", make_rows(120, hours=2, duplicates=0),
                               pipeline_metadata__pipeline_name="genetic_tests")
    (folder / "window_rules.py").write_text(WINDOW_RULES)
    scripts = folder / "user_scripts"
    scripts.mkdir()
    for name, text in {"pre_validation": PRE_VALIDATION, "source_count": SOURCE_COUNT, "target_count": TARGET_COUNT}.items():
        (scripts / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def carried(record) -> list[str]:  # type: ignore[no-untyped-def]
    """The phases a run skipped because an earlier attempt had done them."""
    return [n for n in record.phases_skipped if record.phases[n].carried_from]


def calls(folder: Path) -> list[str]:
    path = folder / "user_scripts" / "source_count.calls"
    return path.read_text().split() if path.exists() else []


def run(folder: Path, faults: FaultPlugin | None = None):  # type: ignore[no-untyped-def]
    with Pipeline.load(folder) as pipeline:
        if faults is None:
            return pipeline.runner().run(pipeline.grid.first())
        with faults.installed():
            return pipeline.runner().run(pipeline.grid.first())


class TestSpecLayout:
    def test_the_project_runs_with_its_shared_and_own_imports(self, tmp_path: Path) -> None:
        folder = make_project(tmp_path / "acme")
        record = run(folder)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phases[record.phase_failed or "audit"].error_message
        rows = [json.loads(line) for line in (folder / "data" / "records.jsonl").read_text().splitlines()]
        wanted = expected_target(rows, DAY, DAY.replace(hour=1))
        assert record.phases["source_count"].phase_specific_details["count"] == sum(
            1 for r in rows if DAY <= _ts(r) < DAY.replace(hour=1))
        assert len(target_rows(folder, DAY, DAY.replace(hour=1))) == len(wanted)

    def test_a_retry_skips_what_the_script_names_and_the_failed_attempt_completed(self, tmp_path: Path) -> None:
        folder = make_project(tmp_path / "acme")
        failed = run(folder, FaultPlugin(fail={"stage_to_target_transfer": 1}))
        assert failed.phase_failed == "stage_to_target_transfer"
        retry = run(folder)
        assert retry.pipeline_status is RunStatus.SUCCESS
        assert carried(retry) == ["source_count", "source_to_stage_transfer", "stage_count"]
        for name in carried(retry):
            assert retry.phases[name].carried_from == failed.pipeline_id
        assert calls(folder) == [failed.pipeline_id]  # the count ran once, in the first attempt
        assert retry.phases["stage_to_target_transfer"].status is PhaseStatus.COMPLETED
        details = retry.phases["pre_validation"].phase_specific_details
        assert details["is_fresh_run"] is False
        assert details["phases_to_skip"] == ["source_count", "source_to_stage_transfer", "stage_count"]

    def test_a_script_cannot_skip_a_phase_whose_work_the_failed_attempt_did_not_do(self, tmp_path: Path) -> None:
        folder = make_project(tmp_path / "acme")
        failed = run(folder, FaultPlugin(fail={"source_to_stage_transfer": 1}))
        assert failed.phase_failed == "source_to_stage_transfer"
        retry = run(folder)
        assert retry.pipeline_status is RunStatus.SUCCESS
        assert carried(retry) == ["source_count"]
        assert retry.phases["source_to_stage_transfer"].status is PhaseStatus.COMPLETED
        assert retry.phases["stage_count"].status is PhaseStatus.COMPLETED
        notes = " ".join(retry.phases["pre_validation"].phase_specific_details["continuation_notes"])
        assert "source_to_stage_transfer runs: pre_validation.py asked to skip it" in notes

    def test_an_empty_phases_to_skip_runs_every_phase_again(self, tmp_path: Path) -> None:
        folder = make_project(tmp_path / "acme")
        (folder / "user_scripts" / "pre_validation.py").write_text(
            "def pre_validation(config, record):\n    return {'skip_dag_run': False, 'error_message': None, 'phases_to_skip': []}\n")
        failed = run(folder, FaultPlugin(fail={"stage_to_target_transfer": 1}))
        retry = run(folder)
        assert retry.pipeline_status is RunStatus.SUCCESS and not carried(retry)
        assert calls(folder) == [failed.pipeline_id, retry.pipeline_id]

    def test_a_script_without_phases_to_skip_gets_the_built_in_continuation(self, tmp_path: Path) -> None:
        folder = make_project(tmp_path / "acme")
        (folder / "user_scripts" / "pre_validation.py").write_text(
            "def pre_validation(config, record):\n    return {'skip_dag_run': False, 'error_message': None}\n")
        run(folder, FaultPlugin(fail={"target_count": 0, "stage_to_target_transfer": 1}))
        retry = run(folder)
        assert carried(retry) == ["source_count", "source_to_stage_transfer", "stage_count"]

    def test_phases_to_skip_naming_no_phase_fails_pre_validation_with_the_name(self, tmp_path: Path) -> None:
        folder = make_project(tmp_path / "acme")
        (folder / "user_scripts" / "pre_validation.py").write_text(
            "def pre_validation(config, record):\n    return {'skip_dag_run': False, 'error_message': None, "
            "'phases_to_skip': ['source_cnt']}\n")
        record = run(folder)
        assert record.phase_failed == "pre_validation"
        assert "'source_cnt', which is not a phase" in (record.phases["pre_validation"].error_message or "")


class TestSharedScripts:
    def test_a_shared_phase_script_serves_every_pipeline_and_the_own_one_wins(self, tmp_path: Path) -> None:
        root = tmp_path / "acme"
        folder = make_project(root)
        (root / "user_scripts" / "stage_count.py").write_text(
            "def stage_count(config, record):\n    return {'skip_dag_run': False, 'error_message': None, 'count': -1}\n")
        (root / "user_scripts" / "target_count.py").write_text(
            "def target_count(config, record):\n    return {'skip_dag_run': True, 'error_message': 'shared', 'count': None}\n")
        record = run(folder)
        assert record.phases["stage_count"].phase_specific_details["count"] == -1  # the shared script
        assert record.phases["target_count"].error_message is None  # the pipeline's own script, not the shared one

    def test_two_pipelines_in_one_process_each_import_their_own_helpers(self, tmp_path: Path) -> None:
        one, two = make_project(tmp_path / "one"), make_project(tmp_path / "two")
        (tmp_path / "two" / "user_scripts" / "common_utilities.py").write_text(
            COMMON_UTILITIES + "\n\ndef read_records(path):\n    return []\n")
        assert run(one).phases["source_count"].phase_specific_details["count"] > 0
        assert run(two).phases["source_count"].phase_specific_details["count"] == 0
        assert run(one).phases["source_count"].phase_specific_details["count"] > 0

    def test_two_pipelines_in_one_process_each_import_their_own_folder_modules(self, tmp_path: Path) -> None:
        one, two = make_project(tmp_path / "one"), make_project(tmp_path / "two")
        (two / "window_rules.py").write_text("def in_window(row, record):\n    return False\n")
        assert run(one).phases["source_count"].phase_specific_details["count"] > 0
        assert run(two).phases["source_count"].phase_specific_details["count"] == 0
        assert run(one).phases["source_count"].phase_specific_details["count"] > 0


def _ts(row: dict) -> object:  # type: ignore[type-arg]
    from tests.sdk.factory import ts_of

    return ts_of(row)


@pytest.fixture(autouse=True)
def _forget_user_scripts():  # type: ignore[no-untyped-def]
    """Each test imports its project's modules afresh."""
    import sys

    yield
    for name in [m for m in sys.modules if m.split(".")[0] in ("user_scripts", "window_rules")]:
        del sys.modules[name]
