"""QUERY_TAG: every statement says which pipeline, run and phase sent it, so credits can be attributed.

The runner announces runs and phases through lifecycle hooks; this module implements them
and keeps the current pipeline, run id and phase in a context variable of the thread running
the phases. Each statement then carries the tag as a statement-level parameter (the query
request's ``parameters``, i.e. the driver's ``_statement_params``), which Snowflake applies to
that statement only; the session also gets a base tag at login, for statements the driver sends
by itself. No ``ALTER SESSION`` is needed, so a session is never left tagged with a stale phase
and the emulator (which refuses ``ALTER SESSION``) sees the same statements as Snowflake.

Statements sent outside a phase (taking the lease, the heartbeat thread) get the pipeline and
run from the caller, which passes them as hints.

The hooks are registered on the plugin manager the first time a Snowflake session is used
(:func:`install`); registering this module among the default plugins does the same.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from drivetrain.plugins import hookimpl

if TYPE_CHECKING:
    from drivetrain.record import RunRecord

#: Snowflake refuses a longer QUERY_TAG.
MAX_TAG_LENGTH = 2000
_current: ContextVar[dict[str, str | None]] = ContextVar("drivetrain_snowflake_tag", default={})  # noqa: B039 - never mutated


def install() -> None:
    """Register this module's hooks on the current plugin manager (once per manager)."""
    import sys

    from drivetrain.plugins import get_plugin_manager

    pm = get_plugin_manager()
    module = sys.modules[__name__]
    if not pm.is_registered(module) and pm.get_plugin(__name__) is None:
        pm.register(module, name=__name__)


def current() -> dict[str, str | None]:
    """The pipeline, run id and phase of the phase running in this context (may be empty)."""
    return dict(_current.get())


def set_context(**values: str | None) -> None:
    """Replace the current tag context (tests and callers outside the runner)."""
    _current.set(dict(values))


def query_tag(prefix: str = "", hints: dict[str, Any] | None = None) -> str:
    """The QUERY_TAG for one statement: ``prefix`` + compact JSON, at most 2000 characters.

    ``hints`` fill in (or override) the context, e.g. the pipeline of a lease being taken.
    """
    data: dict[str, Any] = {"app": "drivetrain", **_current.get()}
    for key, value in (hints or {}).items():
        if value is not None:
            data[key] = value
    body = {k: v for k, v in data.items() if v is not None}
    text = prefix + json.dumps(body, separators=(",", ":"), default=str)
    if len(text) > MAX_TAG_LENGTH:
        body = {k: (v[:200] if isinstance(v, str) else v) for k, v in body.items()}
        text = (prefix + json.dumps(body, separators=(",", ":"), default=str))[:MAX_TAG_LENGTH]
    return text


def _enter(record: RunRecord, phase: str | None) -> None:
    _current.set({"pipeline": record.pipeline_name, "run_id": record.pipeline_id, "phase": phase})


@hookimpl
def drivetrain_run_started(record: RunRecord) -> None:
    _enter(record, None)


@hookimpl
def drivetrain_phase_started(record: RunRecord, phase: str) -> None:
    _enter(record, phase)


@hookimpl
def drivetrain_phase_finished(record: RunRecord) -> None:
    _enter(record, None)


@hookimpl
def drivetrain_run_finished() -> None:
    _current.set({})
