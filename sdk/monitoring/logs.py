"""Log output: plain lines for people, or one JSON object per line for log shippers.

Runner log records carry ``pipeline``, ``run_id``, ``window`` and ``phase`` attributes (the
runner's ``RunLogger`` puts them in ``extra``); plain lines show them as a ``[...]`` prefix,
and :class:`JsonFormatter` writes them as fields::

    {"time": "2025-11-15T10:00:03.120Z", "level": "INFO", "logger": "drivetrain.run",
     "message": "audit COMPLETED in 0.2s", "pipeline": "lab", "run_id": "lab_20251115T100000Z_run1",
     "window": "[2025-11-15T10:00:00Z, 2025-11-15T11:00:00Z)", "phase": "audit"}

Known secrets are masked in every line (see :mod:`drivetrain.secrets`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from drivetrain.secrets import RedactingFilter, install_redaction, redact

#: Fields taken from the record's ``extra`` and written when present.
CONTEXT_FIELDS = ("pipeline", "run_id", "window", "phase")
#: Format of plain lines.
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Attribute marking the handler this module (and the CLI) installs, so a second call replaces it.
HANDLER_MARK = "_drivetrain_cli"

_STANDARD = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime", "taskName"}

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "configure_logging"]


def _strip_prefix(message: str, record: logging.LogRecord) -> str:
    """Drop the ``[pipeline run window phase] `` prefix RunLogger adds: JSON has the fields."""
    run_id = getattr(record, "run_id", None)
    if message.startswith("[") and run_id and "] " in message:
        head, _, rest = message.partition("] ")
        if str(run_id) in head:
            return rest
    return message


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        message = _strip_prefix(record.getMessage(), record)
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in data and not name.startswith("_"):
                data[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return redact(json.dumps(data, default=str, ensure_ascii=False))


def configure_logging(level: int | str = logging.INFO, json: bool = False, *, stream: IO[str] | None = None) -> logging.Handler:
    """Send log records to ``stream`` (stderr) at ``level``, as plain lines or JSON lines.

    Replaces the handler installed by an earlier call (or by the CLI's own set-up); other
    handlers are left alone. Secrets are masked.

    :param level: a logging level or its name (``"DEBUG"``).
    :param json: one JSON object per line instead of plain text.
    :returns: the handler, for tests or further set-up.
    """
    if isinstance(level, str):
        resolved = logging.getLevelName(level.upper())
        if not isinstance(resolved, int):
            raise ValueError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
        level = resolved
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, HANDLER_MARK, False):
            root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(RedactingFilter())
    setattr(handler, HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    install_redaction(root)
    return handler
