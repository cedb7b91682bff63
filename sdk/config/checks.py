"""The checks a JSON Schema cannot express, and the whole check of a parsed config.

Cron syntax, time zones, real dates, durations that tile time, secrets in config, plain table
names, the declared column schema, role collisions; then :func:`validate_document` runs every
check on a parsed document and raises all problems at once.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from . import env
from .jsondoc import normalize
from .problems import (
    SECRETS_MESSAGE,
    JsonPath,
    Problems,
    did_you_mean,
    looks_like_secret,
    show,
    strip_ignored,
)
from .schema_check import config_validator, schema, schema_problems

# -- checks a schema cannot express ----------------------------------------------------------

COLUMN_TYPES = ("string", "integer", "float", "boolean", "timestamp", "date", "json")
_CRON_FIELDS = "minute hour day-of-month month day-of-week"


def secret_key_problems(value: Any, problems: Problems, path: JsonPath = ()) -> None:
    """Report every key, at any depth, that looks like it holds a secret (never its value)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if looks_like_secret(key):
                problems.add(path + (key,), SECRETS_MESSAGE, block=True)
            else:
                secret_key_problems(item, problems, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            secret_key_problems(item, problems, path + (i,))


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a five-field cron expression, or None when it is one."""
    fields = expression.split()
    if len(fields) != 5:
        return (
            f"{show(expression)} has {len(fields)} fields; a cron expression has 5: {_CRON_FIELDS}"
        )
    from croniter import croniter

    try:
        valid = bool(croniter.is_valid(expression))
    except Exception:  # croniter raises assorted errors on odd input
        valid = False
    return None if valid else f"{show(expression)} is not a valid cron expression ({_CRON_FIELDS})"


@functools.cache
def _zone_names() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable IANA time zone, or None when it is one."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
        return None
    except Exception:  # not found, a folder, a bad path: all mean "unknown"
        hint = did_you_mean(name, _zone_names()) or "; use an IANA name such as 'UTC'"
        return f"{show(name)} is not a known time zone{hint}"


@functools.cache
def _duration_shape() -> re.Pattern[str]:
    return re.compile(schema()["$defs"]["duration"]["pattern"])


def duration_problem(text: str) -> str | None:
    """Why a duration the schema's pattern accepts still cannot be read, or None.

    Text the pattern rejects, and zero, are left to the schema's own messages.
    """
    from drivetrain.durations import parse_duration

    if not _duration_shape().search(text):
        return None
    try:
        parse_duration(text)
    except (ValueError, TypeError, OverflowError) as exc:
        return str(exc)
    return None


def window_duration_problem(text: str) -> str | None:
    """Why ``query_window.duration`` cannot tile time (windows are whole seconds), or None."""
    from drivetrain.durations import parse_duration

    problem = duration_problem(text)
    if problem is not None or not _duration_shape().search(text):
        return problem
    try:
        length = parse_duration(text)
    except (ValueError, TypeError, OverflowError):
        return None  # the schema's own messages say why
    if length % timedelta(seconds=1):
        return f"{show(text)} is not a whole number of seconds; windows are counted in whole seconds"
    return None


def table_name_problems(data: Mapping[str, Any], problems: Problems) -> None:
    """Stage and target name their table; table and schema names must be plain identifiers.

    Warehouses refuse anything else when they build the table's name; checking here names the
    key, so a name carrying SQL is a config error found before anything runs.
    """
    from drivetrain.errors import PermanentError
    from drivetrain.warehouse import check_identifier

    for section in ("stage_system", "target_system", "drive_table"):
        options = data.get(section)
        if not isinstance(options, Mapping):
            continue
        if section != "drive_table" and "table" not in options:
            problems.add((section,), f"'table' is required: the name of the {section.split('_')[0]} table")
        for key, what in (("table", "table name"), ("schema", "schema")):
            value = options.get(key)
            if isinstance(value, str):
                try:
                    check_identifier(value, what)
                except PermanentError as exc:
                    problems.add((section, key), str(exc))


def column_bound(column_type: str, value: Any) -> int | float | datetime | date:
    """A column's ``min``/``max`` as a comparable value; ValueError says what is expected."""
    if column_type in ("integer", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number for a {column_type} column, got {show(value)}")
        return value
    if column_type == "timestamp":
        try:
            stamp = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            stamp = None
        if stamp is None:
            raise ValueError(
                f"expected an ISO timestamp such as '2025-01-31T00:00:00Z', got {show(value)}"
            )
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if column_type == "date":
        try:
            day = date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            day = None
        if day is None:
            raise ValueError(f"expected an ISO date such as '2025-01-31', got {show(value)}")
        return day
    raise ValueError(f"applies to integer, float, timestamp and date columns, not {column_type}")


def column_problems(columns: Any, problems: Problems, at: JsonPath) -> None:
    """Check a declared record schema (``stage_system.columns``, found at ``at``)."""
    if not isinstance(columns, list):
        return
    seen: dict[str, int] = {}
    for i, column in enumerate(columns):
        if not isinstance(column, dict):
            continue
        path: JsonPath = at + (i,)
        name, kind = column.get("name"), column.get("type")
        if isinstance(name, str):
            if name.lower() in seen:
                problems.add(
                    path + ("name",),
                    f"{show(name)} is declared twice (also columns[{seen[name.lower()]}]); "
                    "column names are case-insensitive",
                )
            seen.setdefault(name.lower(), i)
        if kind not in COLUMN_TYPES:
            continue
        if "max_length" in column and kind != "string":
            problems.add(path + ("max_length",), f"applies to string columns only, not {kind}")
        bounds = {}
        for key in ("min", "max"):
            if key in column:
                try:
                    bounds[key] = column_bound(kind, column[key])
                except ValueError as exc:
                    problems.add(path + (key,), str(exc))
        if len(bounds) == 2 and bounds["min"] > bounds["max"]:  # type: ignore[operator]
            problems.add(
                path + ("min",), f"{show(column['min'])} is above max {show(column['max'])}"
            )


@functools.cache
def _archive_required_message() -> str:
    stage_cleaning = schema()["$defs"]["phases"]["properties"]["stage_cleaning"]
    return str(stage_cleaning["then"]["x-required-message"]).replace("{key}", "'archive_location'")


def semantic_problems(data: Mapping[str, Any], problems: Problems) -> None:
    """The checks a JSON Schema cannot express; each tolerates any shape of input."""

    def section(name: str) -> Mapping[str, Any]:
        value = data.get(name)
        return value if isinstance(value, Mapping) else {}

    schedule = section("dag_schedule")
    checks: list[tuple[JsonPath, Any, Callable[[str], str | None]]] = [
        (("dag_schedule", "cron_expression"), schedule.get("cron_expression"), cron_problem),
        (("dag_schedule", "timezone"), schedule.get("timezone"), zone_problem),
        (("query_window", "duration"), section("query_window").get("duration"), window_duration_problem),
        (
            ("monitoring", "freshness_threshold"),
            section("monitoring").get("freshness_threshold"),
            duration_problem,
        ),
    ]
    phases = section("phases")
    for name, phase in phases.items():
        if isinstance(phase, Mapping):
            where: JsonPath = ("phases", name, "expected_run_duration")
            checks.append((where, phase.get("expected_run_duration"), duration_problem))
    for where, value, check in checks:
        if isinstance(value, str) and (message := check(value)) is not None:
            problems.add(where, message)
    start = schedule.get("start_date")
    if isinstance(start, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", start):
        try:
            date.fromisoformat(start)
        except ValueError:
            problems.add(("dag_schedule", "start_date"), f"{show(start)} is not a real date")
    column_problems(section("stage_system").get("columns"), problems, ("stage_system", "columns"))
    table_name_problems(data, problems)
    from drivetrain.config.preflight import document_problems

    document_problems(data, problems)

    from .roles import role_collision_problems  # stage, rejects, target, drive table, archive

    role_collision_problems(data, problems)
    if "phases" not in data or (
        isinstance(data["phases"], Mapping) and "stage_cleaning" not in phases
    ):
        problems.add(("phases", "stage_cleaning"), _archive_required_message())


def validate_document(data: Any, source: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a whole parsed config and return ``(plain JSON copy, copy without comments)``.

    :raises ConfigError: with every problem found, one line each, sorted by path.
    """
    problems = Problems(source)
    clean = env.resolve(normalize(data, problems), problems)  # ${VAR} values, before any check
    if not isinstance(clean, dict):
        problems.add((), f"the top level must be a JSON object, found {show(clean)}")
        problems.raise_if_any()
    stripped = strip_ignored(clean)
    from . import validated_cache  # a document that passed before passes again: see that module

    if not problems and validated_cache.known_valid(clean):
        return clean, stripped
    secret_key_problems(stripped, problems)
    from drivetrain.config.hosts import embedded_credential_problems

    embedded_credential_problems(stripped, problems)
    schema_problems(config_validator(), stripped, problems)
    semantic_problems(stripped, problems)
    problems.raise_if_any()
    validated_cache.remember(clean)
    return clean, stripped
