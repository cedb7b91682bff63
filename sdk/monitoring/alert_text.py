"""The pieces of alert text every alert shares: who receives it, the window, aligned lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from drivetrain.config import PipelineConfig
    from drivetrain.record import RunRecord

__all__ = ["_lines", "_when", "_window", "recipients"]


def recipients(config: PipelineConfig) -> dict[str, Any]:
    """``emails`` (owner first, no repeats) and ``slack_channel`` from the pipeline's metadata."""
    meta = config.metadata
    emails = [e for e in (meta.owner_email, *meta.notification_emails) if e]
    return {"emails": tuple(dict.fromkeys(emails)), "slack_channel": meta.slack_channel}


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "never"


def _window(record: RunRecord) -> str:
    return f"[{_when(record.query_window_start_timestamp)}, {_when(record.query_window_end_timestamp)})"


def _lines(pairs: list[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in pairs if v not in (None, ""))
