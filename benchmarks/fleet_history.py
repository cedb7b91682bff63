"""The fleet benchmark's workspace: N pipeline folders sharing one drive table, and years of history.

Every pipeline is an hourly pipeline (files source, its own DuckDB warehouse file, ``catchup``
from ``days`` ago) whose folder sits under ``<workspace>/pipelines`` (the CLI finds them through
``DRIVETRAIN_PIPELINES_HOME``). They all share one drive table: on the default layout their
warehouse is ``<workspace>/warehouse.duckdb`` with no drive setting, so the drive table is the
``drive.sqlite`` beside it; ``--backend duckdb`` pins ``<workspace>/drive.duckdb``, and
``--backend snowflake`` puts it in a Snowflake database (fakesnow).

The history is what a year of hourly runs leaves behind, written through the drive store's
public bulk API (:meth:`~drivetrain.sql.drive.SqlDriveStore.insert_many`), the same for every
seed: most windows one SUCCESS; about 2% a FAILED first attempt (at the load, the move or the
audit) and a SUCCESS retry that carries the phases the failure had completed; about 0.5%
never run (gaps); one pipeline in 20 ends with an open failure nobody retried yet.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus

HOUR = timedelta(hours=1)
FAIL_AT = ("source_to_stage_transfer", "stage_to_target_transfer", "audit")
TAGS = ("finance", "lab", "ops", "sales")
EXPECTED = {"source_count": "30s", "source_to_stage_transfer": "5m", "stage_to_target_transfer": "2m", "audit": "30s"}


def fleet_now() -> datetime:
    """The start of the current hour: the history ends there."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def name_of(index: int) -> str:
    return f"fleet_{index:04d}"


def config_of(index: int, days: int, now: datetime, drive: dict[str, Any]) -> dict[str, Any]:
    name = name_of(index)
    start = (now - timedelta(days=days)).date()
    config: dict[str, Any] = {
        "pipeline_metadata": {"pipeline_name": name, "owner_name": "Fleet", "owner_email": "fleet@example.com",
                              "tags": [TAGS[index % len(TAGS)]]},
        "dag_schedule": {"frequency": "hourly", "timezone": "UTC", "start_date": start.isoformat(), "catchup": True},
        "query_window": {"type": "hourly", "duration": "1h"},
        "source_system": {"type": "files", "path": "data/*.jsonl", "query_field": "at"},
        "stage_system": {"type": "duckdb", "path": "warehouse.duckdb", "table": f"stg_{name}",
                         "columns": [{"name": "id", "type": "string"}, {"name": "at", "type": "timestamp"}]},
        "target_system": {"type": "duckdb", "path": "warehouse.duckdb", "table": name},
        "phases": {"stage_cleaning": {"archive_location": "archive", "delete_after_days": 1}},
    }
    if drive["type"] == "sqlite":  # the default layout: one warehouse file, the drive.sqlite beside it
        config["stage_system"]["path"] = config["target_system"]["path"] = drive["warehouse"]
    elif drive["type"] == "duckdb":  # every pipeline's warehouse names the fleet's one drive file
        config["stage_system"]["drive_path"] = config["target_system"]["drive_path"] = drive["drive_path"]
    else:
        config["drive_table"] = drive
    return config


def write_fleet(workspace: Path, pipelines: int, days: int, now: datetime, drive: dict[str, Any]) -> list[Path]:
    """One folder per pipeline under ``<workspace>/pipelines``; returns them."""
    folders = []
    for index in range(pipelines):
        folder = workspace / "pipelines" / name_of(index)
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config_of(index, days, now, drive), indent=1))
        folders.append(folder)
    return folders


def _phases(start: datetime, *, failed_at: str | None = None, carried: tuple[str, ...] = (),
            carried_from: str | None = None) -> tuple[dict[str, PhaseState], list[str], list[str]]:
    """Phase states of one run starting at ``start``: completed one after the other, up to a failure."""
    phases, completed, skipped = {}, [], []
    at = start
    for name in PHASE_NAMES:
        if name in carried:
            phases[name] = PhaseState(status=PhaseStatus.SKIPPED, skip_reason="completed earlier", carried_from=carried_from)
            skipped.append(name)
            continue
        took = timedelta(seconds=3 if name not in EXPECTED else 40)
        details: dict[str, Any] = {}
        if name == "audit":
            details = {"source_count": 1200, "stage_count": 1195, "target_count": 1190,
                       "source_to_stage_loss_percent": 0.42, "stage_to_target_loss_percent": 0.42}
        if name == failed_at:
            phases[name] = PhaseState(status=PhaseStatus.FAILED, start_timestamp=at, end_timestamp=at + took,
                                      expected_run_duration=EXPECTED.get(name), retry_number=2,
                                      error_message=f"{name}: the connection was reset (after 2 retries)")
            return phases | {n: PhaseState() for n in PHASE_NAMES if n not in phases}, completed, skipped
        phases[name] = PhaseState(status=PhaseStatus.COMPLETED, start_timestamp=at, end_timestamp=at + took,
                                  actual_run_duration=f"{int(took.total_seconds())}s",
                                  expected_run_duration=EXPECTED.get(name), phase_specific_details=details)
        completed.append(name)
        at += took
    return phases, completed, skipped


def _record(name: str, window: datetime, attempt: int, started: datetime, *, failed_at: str | None = None,
            carried: tuple[str, ...] = (), carried_from: str | None = None) -> RunRecord:
    phases, completed, skipped = _phases(started, failed_at=failed_at, carried=carried, carried_from=carried_from)
    ended = started + timedelta(minutes=3)
    return RunRecord(
        pipeline_id=f"{name}_{window:%Y%m%dT%H%M%S}Z_run{attempt + 1}", pipeline_name=name,
        pipeline_status=RunStatus.FAILED if failed_at else RunStatus.SUCCESS, pipeline_retry_number=attempt,
        pipeline_start_timestamp=started, pipeline_end_timestamp=ended, pipeline_run_duration="3m",
        query_window_start_timestamp=window, query_window_end_timestamp=window + HOUR, target_date=window.date(),
        query_window_duration="1h", phases=phases, phases_completed=tuple(completed), phases_skipped=tuple(skipped),
        phase_failed=failed_at, lease_holder="fleet-host:1:bench", config_hash=f"h{name}",
        config_snapshot={"pipeline_metadata": {"pipeline_name": name},
                         "monitoring": {"freshness_threshold": "3h", "duration_multiplier_threshold": 2.0}},
        created_at=started, updated_at=ended,
    )


def history(index: int, days: int, now: datetime, seed: int = 20) -> Iterator[RunRecord]:
    """Every run of pipeline ``index`` over the ``days`` before ``now`` (see the module doc)."""
    rng = random.Random(seed * 100_003 + index)
    name = name_of(index)
    first = datetime.combine((now - timedelta(days=days)).date(), datetime.min.time(), UTC)
    windows = int((now - first) / HOUR)
    open_failure = index % 20 == 7
    for i in range(windows):
        window = first + i * HOUR
        started = window + HOUR + timedelta(minutes=5)
        roll = rng.random()
        if roll < 0.005 and i < windows - 3:
            continue  # never ran: a gap
        if (open_failure and i == windows - 1) or roll < 0.025:
            failed_at = rng.choice(FAIL_AT)
            failed = _record(name, window, 0, started, failed_at=failed_at)
            yield failed
            if open_failure and i == windows - 1:
                continue
            carried = tuple(PHASE_NAMES[:PHASE_NAMES.index(failed_at)])[:4]
            yield _record(name, window, 1, started + timedelta(minutes=20), carried=carried, carried_from=failed.pipeline_id)
        else:
            yield _record(name, window, 0, started)


def fleet_history(pipelines: int, days: int, now: datetime) -> Iterator[RunRecord]:
    """Every pipeline's runs, in the order they would have been written (by start time), so
    the table interleaves the pipelines as a real one does."""
    return heapq.merge(*(history(index, days, now) for index in range(pipelines)),
                       key=lambda r: r.pipeline_start_timestamp)
