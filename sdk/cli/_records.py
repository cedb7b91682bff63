"""Drive-table rows as the commands print them: one line per run, or phase by phase."""

from __future__ import annotations

import math
from typing import Any

from drivetrain.drive import is_partial
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.record import PhaseStatus, RunRecord, RunStatus
from drivetrain.settle import reload_reason

from ._pipelines import when, window_text


def timezone_of(record: RunRecord) -> str:
    """The schedule timezone the run was made with (UTC when the snapshot does not say, or is damaged)."""
    schedule = (record.config_snapshot or {}).get("dag_schedule")
    zone = schedule.get("timezone") if isinstance(schedule, dict) else None
    if not isinstance(zone, str):
        return "UTC"
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(zone)
    except (ValueError, KeyError, OSError):  # not a zone name (ZoneInfoNotFoundError is a KeyError)
        return "UTC"
    return zone


def window_label(record: RunRecord) -> str:
    return window_text(record.query_window_start_timestamp, record.query_window_end_timestamp, timezone_of(record))


def counts(record: RunRecord) -> dict[str, int | None]:
    """Source, stage and target counts and rejected/dropped rows, as far as the run got."""
    def detail(phase: str, key: str) -> int | None:
        value = record.phases[phase].phase_specific_details.get(key)
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            return int(value)
        return None  # a damaged row may hold anything here

    return {
        "source": detail("source_count", "count"),
        "stage": detail("stage_count", "count"),
        "target": detail("target_count", "count"),
        "rejected": detail("source_to_stage_transfer", "records_failed"),
        "dropped": detail("stage_to_target_transfer", "rows_dropped"),
        "published": detail("publish", "rows_published"),
    }


def counts_text(record: RunRecord) -> str:
    parts = [f"{name} {value:,}" for name, value in counts(record).items()
             if value is not None and (value or name in ("source", "stage", "target"))]
    return ", ".join(parts)


def unpublished_text(record: RunRecord) -> str:
    """``; target unchanged: N rows wait in <pending table>`` for a run whose written rows were
    not published (the publish gate stopped them), else nothing."""
    details = record.phases["stage_to_target_transfer"].phase_specific_details
    if not details.get("pending_table") or record.phases["publish"].status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED):
        return ""
    written = details.get("rows_written")
    return f"; target unchanged: {written if isinstance(written, int) else 'its'} rows wait in {details['pending_table']}"


#: How a run that started before its window ended (``run --allow-partial``) is labelled.
PARTIAL_TEXT = "partial: started before the window ended; a plain run loads the window again"


def carried_phases(record: RunRecord) -> list[str]:
    """Phases this run skipped because an earlier attempt had completed them."""
    return [name for name in record.phases_skipped if record.phases[name].carried_from]


def outcome_text(record: RunRecord) -> str:
    """What happened, in a few words: the failure, or the counts and what was resumed."""
    if record.damage:
        return f"damaged row: {len(record.damage)} unreadable value(s), see drivetrain show {record.pipeline_id}"
    if record.pipeline_status is RunStatus.FAILED:
        phase = record.phase_failed or "?"
        error = record.phases[phase].error_message if phase in record.phases else None
        return f"failed at {phase}: {error or 'no message'}{unpublished_text(record)}"
    text = counts_text(record)
    carried = carried_phases(record)
    if carried:
        origin = record.phases[carried[0]].carried_from
        text += f"{'; ' if text else ''}resumed: skipped {', '.join(carried)} (done by {origin})"
    if record.pipeline_status is RunStatus.SKIPPED:
        text += f"{'; ' if text else ''}window skipped"
    if is_partial(record):
        text += f"{'; ' if text else ''}{PARTIAL_TEXT}"
    if (reason := reload_reason(record)) is not None:
        text += f"{'; ' if text else ''}reload: {reason}"
    return text


def run_line(record: RunRecord) -> list[str]:
    """The cells of one run in history-style tables."""
    return [
        record.pipeline_id,
        record.pipeline_status.value,
        window_label(record),
        str(record.pipeline_retry_number),
        record.pipeline_run_duration or "",
        outcome_text(record),
    ]


RUN_COLUMNS = ["run", "status", "window", "retry", "duration", "outcome"]


def _details_text(details: dict[str, Any], limit: int = 160) -> str:
    keep = {k: v for k, v in details.items() if v not in (None, [], {}, "")}
    for noisy in ("validation_checks", "continuation_notes", "resolved_runs", "archive_objects"):
        keep.pop(noisy, None)
    text = ", ".join(f"{k}={v}" for k, v in keep.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def phase_rows(record: RunRecord) -> list[list[str]]:
    """One row per phase: status, times, duration against expected, retries, details or error."""
    rows = []
    for name in PHASE_NAMES:
        state = record.phases[name]
        if state.status is PhaseStatus.FAILED:
            info = state.error_message or ""
        elif state.status is PhaseStatus.SKIPPED:
            info = state.skip_reason or ""
        else:
            info = _details_text(state.phase_specific_details)
        duration = state.actual_run_duration or ""
        if state.expected_run_duration:
            duration += f" (expected {state.expected_run_duration})"
        rows.append([name, state.status.value, when(state.start_timestamp), duration, str(state.retry_number or ""), info])
    return rows


PHASE_COLUMNS = ["phase", "status", "started", "duration", "retries", "details"]


def pending_lines(record: RunRecord) -> list[str]:
    """Where a run's written but unpublished rows wait, and the query that shows them."""
    details = record.phases["stage_to_target_transfer"].phase_specific_details
    publish = record.phases["publish"]
    if not details.get("pending_table") or publish.status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED):
        return []
    return [
        f"pending rows (written, not published, not visible in the target): {details['pending_table']}",
        f"  query them: {details.get('pending_query', '')}",
        "  they stay until the window's next attempt replaces or publishes them",
    ]


def header_rows(record: RunRecord) -> list[list[str]]:
    """Key facts of a run, as (field, value) rows."""
    return [
        ["pipeline", record.pipeline_name],
        ["status", record.pipeline_status.value + (f" ({PARTIAL_TEXT})" if is_partial(record) else "")],
        ["window", window_label(record)],
        ["target date", record.target_date.isoformat()],
        ["attempt", f"{record.pipeline_retry_number + 1} (retry number {record.pipeline_retry_number})"],
        ["started", when(record.pipeline_start_timestamp)],
        ["ended", when(record.pipeline_end_timestamp)],
        ["duration", record.pipeline_run_duration or ""],
        ["phase failed", record.phase_failed or ""],
        ["completed", ", ".join(record.phases_completed)],
        ["skipped", ", ".join(record.phases_skipped)],
        ["pending", ", ".join(record.phases_pending)],
        ["counts", counts_text(record)],
        ["config hash", (record.config_hash or "")[:12]],
        *[["damaged", problem] for problem in record.damage],
    ]
