"""The stage_cleaning phase end to end: files -> DuckDB, archive to S3 (moto) or a local folder.

Window A (day 1) runs once per module and leaves its rows in stage; each test copies that
folder, sets its own stage_cleaning, and runs window B (day 2), which cleans day 1:
archive, verify, delete. Upload failures are injected on the wire by the proxy in front of moto;
whatever happens to the upload, the stage must keep every day-1 row until the archive is proven.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.plugins import connector_types, get_plugin_manager, hookimpl
from drivetrain.record import PhaseStatus
from tests.servers.moto_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Fault, S3Env

from .factory import DAY, make_pipeline_dir, make_rows, query

DAY2 = DAY + timedelta(days=1)
PREFIX = "stage-archive/"
PARTITION = f"{PREFIX}pipeline_name=lab/target_date=2025-11-15/"
DATA_KEY = r"/stage-archive/pipeline_name=lab/target_date=2025-11-15/part-[0-9a-f]{16}\.parquet"


class _S3ArchivePlugin:
    """Registers the S3 archive the way the built-ins will (until they list it themselves)."""

    @hookimpl
    def drivetrain_register_connectors(self):
        return {"archive:s3": "drivetrain.connectors.s3:S3Archive"}


@pytest.fixture
def s3_archive_registered() -> None:
    if "s3" not in connector_types("archive"):
        get_plugin_manager().register(_S3ArchivePlugin())


def two_days_of_rows() -> list[dict]:
    return make_rows(200, seed=3) + make_rows(200, seed=4, start=DAY2, prefix="U")


def run(folder: Path, start) -> object:
    # A long heartbeat keeps the heartbeat thread's drive-table writes out of these short runs, so
    # "vacuumed" is predictable; TestVacuumBesideAHeartbeat makes such a write meet the CHECKPOINT.
    with Pipeline.load(folder) as pipeline:
        return pipeline.runner(heartbeat_seconds=60).run(pipeline.grid.window_starting(start))


def stage_ids(folder: Path, day) -> list[str]:
    return [r[0] for r in query(folder, "SELECT test_id FROM stg_tests WHERE _drivetrain_target_date = ? ORDER BY test_id", [day])]


@pytest.fixture(scope="module")
def day_one(tmp_path_factory) -> Path:
    """A pipeline folder whose day-1 window has run: its rows wait in stage. Copied per test."""
    folder = make_pipeline_dir(tmp_path_factory.mktemp("template") / "lab", two_days_of_rows())
    record = run(folder, DAY)
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    assert stage_ids(folder, DAY.date()), "day 1 left no rows in stage to clean"
    return folder


def copy_with_cleaning(day_one: Path, dest: Path, **cleaning) -> Path:
    """A copy of the day-1 folder whose phases.stage_cleaning is ``cleaning``."""
    shutil.copytree(day_one, dest)
    config = json.loads((dest / "config.json").read_text())
    config["phases"]["stage_cleaning"] = cleaning
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    return dest


@pytest.fixture
def s3_folder(tmp_path, day_one, s3: S3Env, s3_archive_registered, monkeypatch) -> Path:
    """Day 1 in stage; cleaning archives to S3, credentials and endpoint from S3ARCH_* variables."""
    monkeypatch.setenv("S3ARCH_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("S3ARCH_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    monkeypatch.setenv("S3ARCH_ENDPOINT", s3.proxy.url)
    monkeypatch.setenv("S3ARCH_REGION", "us-east-1")
    return copy_with_cleaning(
        day_one, tmp_path / "lab",
        archive_location=f"s3://{s3.bucket}/{PREFIX}", archive_credentials_ref="s3arch", delete_after_days=0,
    )


class TestS3StageCleaning:
    def test_successful_cleaning_archives_verifies_and_deletes_the_same_rows(self, s3_folder, s3):
        before = stage_ids(s3_folder, DAY.date())
        record = run(s3_folder, DAY2)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        details = record.phases["stage_cleaning"].phase_specific_details
        assert details["records_archived"] == details["records_deleted"] == len(before)
        assert details["archive_location"] == f"s3://{s3.bucket}/{PREFIX}"
        assert details["target_dates_cleaned"] == ["2025-11-15"]
        (key,) = s3.keys(PARTITION)
        assert details["archive_objects"] == [f"s3://{s3.bucket}/{key}"]
        body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert sorted(pq.read_table(io.BytesIO(body)).column("test_id").to_pylist()) == before
        assert stage_ids(s3_folder, DAY.date()) == []

    def test_pre_validation_checks_the_bucket_is_writable(self, s3_folder):
        record = run(s3_folder, DAY2)
        checks = record.phases["pre_validation"].phase_specific_details["validation_checks"]
        archive = [c for c in checks if c["check"] == "phases.stage_cleaning.archive_location"]
        assert archive and archive[0]["status"] == "PASSED"

    def test_upload_cut_part_way_fails_the_run_at_stage_cleaning_and_keeps_the_stage(self, s3_folder, s3):
        before = stage_ids(s3_folder, DAY.date())
        fault = s3.proxy.add(Fault("PUT", DATA_KEY, after_bytes=512))
        record = run(s3_folder, DAY2)
        assert record.pipeline_status is RunStatus.FAILED
        assert record.phase_failed == "stage_cleaning"
        state = record.phases["stage_cleaning"]
        assert state.status is PhaseStatus.FAILED
        assert f"s3://{s3.bucket}/{PARTITION}part-" in state.error_message
        assert "upload failed: the connection failed mid-request" in state.error_message
        assert "gave up after 3 attempt(s)" in state.error_message
        assert fault.hits == 3
        assert stage_ids(s3_folder, DAY.date()) == before
        assert s3.keys(PREFIX) == []

    def test_a_rerun_after_a_failed_upload_cleans_the_day(self, s3_folder, s3):
        before = stage_ids(s3_folder, DAY.date())
        s3.proxy.add(Fault("PUT", DATA_KEY, after_bytes=512))
        assert run(s3_folder, DAY2).phase_failed == "stage_cleaning"
        s3.proxy.clear()
        record = run(s3_folder, DAY2)
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        details = record.phases["stage_cleaning"].phase_specific_details
        assert details["records_archived"] == details["records_deleted"] == len(before)
        assert stage_ids(s3_folder, DAY.date()) == []

    def test_unverifiable_archive_fails_the_run_and_keeps_the_stage(self, s3_folder, s3):
        before = stage_ids(s3_folder, DAY.date())
        s3.proxy.add(Fault("GET", DATA_KEY, action="error", status=500, code="InternalError"))
        record = run(s3_folder, DAY2)
        assert record.phase_failed == "stage_cleaning"
        assert "verify failed" in record.phases["stage_cleaning"].error_message
        assert stage_ids(s3_folder, DAY.date()) == before

    def test_archive_left_by_a_failed_verification_is_replaced_not_duplicated(self, s3_folder, s3):
        s3.proxy.add(Fault("GET", DATA_KEY, action="error", status=500, code="InternalError"))
        assert run(s3_folder, DAY2).phase_failed == "stage_cleaning"
        assert len(s3.keys(PARTITION)) == 1
        s3.proxy.clear()
        assert run(s3_folder, DAY2).pipeline_status is RunStatus.SUCCESS
        assert len(s3.keys(PARTITION)) == 1

    def test_access_denied_fails_at_once_without_retries(self, s3_folder, s3):
        fault = s3.proxy.add(Fault("PUT", DATA_KEY, action="error", status=403, code="AccessDenied"))
        record = run(s3_folder, DAY2)
        assert record.phase_failed == "stage_cleaning"
        message = record.phases["stage_cleaning"].error_message
        assert "access denied" in message and "gave up" not in message
        assert fault.hits == 1
        assert SECRET_ACCESS_KEY not in message and ACCESS_KEY_ID not in message
        assert stage_ids(s3_folder, DAY.date())

    def test_missing_bucket_fails_pre_validation_before_any_transfer(self, s3_folder, s3):
        s3.client.delete_bucket(Bucket=s3.bucket)
        record = run(s3_folder, DAY2)
        assert record.phase_failed == "pre_validation"
        assert "does not exist" in record.phases["pre_validation"].error_message


class TestLocalStageCleaning:
    """The phase's own rules, on the default local archive."""

    def test_age_is_counted_from_the_window_not_from_today(self, tmp_path, day_one):
        folder = copy_with_cleaning(day_one, tmp_path / "lab", archive_location="archive", delete_after_days=1)
        record = run(folder, DAY2)
        details = record.phases["stage_cleaning"].phase_specific_details
        assert (details["records_deleted"], details["cutoff_date"]) == (0, "2025-11-15")
        assert details["vacuumed"] is False and details["vacuum_note"] == "nothing deleted"
        assert details["statistics_gathered"] is False and details["statistics_note"] == "nothing deleted"
        assert stage_ids(folder, DAY.date())

    def test_without_archive_before_delete_rows_are_deleted_unarchived(self, tmp_path, day_one):
        folder = copy_with_cleaning(day_one, tmp_path / "lab", delete_after_days=0, archive_before_delete=False)
        before = stage_ids(folder, DAY.date())
        details = run(folder, DAY2).phases["stage_cleaning"].phase_specific_details
        assert (details["records_archived"], details["records_deleted"]) == (0, len(before))
        assert details["archive_location"] is None
        assert not list((folder / "archive").rglob("*.parquet"))

    def test_local_archive_holds_exactly_the_deleted_rows(self, tmp_path, day_one):
        folder = copy_with_cleaning(day_one, tmp_path / "lab", archive_location="archive", delete_after_days=0)
        before = stage_ids(folder, DAY.date())
        details = run(folder, DAY2).phases["stage_cleaning"].phase_specific_details
        files = list((folder / "archive" / "pipeline_name=lab" / "target_date=2025-11-15").glob("part-*.parquet"))
        assert len(files) == 1
        assert sorted(pq.read_table(files[0]).column("test_id").to_pylist()) == before
        assert details["records_archived"] == details["records_deleted"] == len(before)
        assert details["vacuumed"] is True
        assert details["statistics_gathered"] is True and details["statistics_note"] == "ANALYZE main.stg_tests"


class HeartbeatInFlight:
    """A lease renewal (what the runner's heartbeat thread writes) still open while stage_cleaning vacuums.

    The runner's heartbeat writes the drive table from a thread of its own, on its own connection to
    the same DuckDB file, whenever its timer fires. Here that write starts as the phase's delete
    commits and stays uncommitted until the phase's state is recorded, so the phase's CHECKPOINT
    always meets another open write transaction, which DuckDB refuses.
    """

    def __init__(self) -> None:
        self.open = threading.Event()
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _renew(self, pipeline: Pipeline, record) -> None:
        # The drive table now has a file of its own (drive.sqlite), so the runner's heartbeat no
        # longer writes the warehouse file; another writer's open transaction on it stands in.
        try:
            warehouse = pipeline.stage().warehouse
            with warehouse.connect() as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS other_writer (written_at TIMESTAMP)")
                conn.execute("INSERT INTO other_writer VALUES (now())")
                conn.execute("BEGIN TRANSACTION")
                conn.execute("UPDATE other_writer SET written_at = now()")
                self.open.set()
                self.done.wait(60)
                conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.open.set()

    @hookimpl
    def drivetrain_before_commit(self, record, phase, pipeline) -> None:
        if phase == "stage_cleaning" and self.thread is None:
            self.thread = threading.Thread(target=self._renew, args=(pipeline, record), name="test-heartbeat")
            self.thread.start()
            assert self.open.wait(30), "the heartbeat transaction did not start"

    @hookimpl
    def drivetrain_phase_finished(self, record, phase, state) -> None:
        if phase == "stage_cleaning" and self.thread is not None:
            self.done.set()
            self.thread.join(60)

    @contextmanager
    def installed(self) -> Iterator[HeartbeatInFlight]:
        pm = get_plugin_manager()
        pm.register(self)
        try:
            yield self
        finally:
            pm.unregister(self)
            self.done.set()


class TestVacuumBesideAHeartbeat:
    def test_a_heartbeat_write_during_the_checkpoint_leaves_the_phase_completed_and_not_vacuumed(self, tmp_path, day_one):
        folder = copy_with_cleaning(day_one, tmp_path / "lab", archive_location="archive", delete_after_days=0)
        before = stage_ids(folder, DAY.date())
        with HeartbeatInFlight().installed() as heartbeat:
            record = run(folder, DAY2)
        assert heartbeat.thread is not None and heartbeat.error is None, heartbeat.error
        assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
        state = record.phases["stage_cleaning"]
        assert state.status is PhaseStatus.COMPLETED
        details = state.phase_specific_details
        assert details["records_archived"] == details["records_deleted"] == len(before)
        assert details["vacuumed"] is False
        assert details["vacuum_note"].startswith("not vacuumed now (")
        assert "reclaims the space at its next checkpoint" in details["vacuum_note"]
        assert stage_ids(folder, DAY.date()) == []
        # the heartbeat's write committed after the failed checkpoint; the file is sound and holds it
        assert query(folder, "SELECT count(*) FROM pipeline_execution_drive WHERE pipeline_id = ?", [record.pipeline_id]) == [(1,)]
