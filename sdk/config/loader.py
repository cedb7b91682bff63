"""Reading config.json and finding everything wrong with it, in one pass.

The steps: read the file (clear lines for a missing file or bad JSON, with line and column),
check that the value is plain JSON (finite numbers, string keys, no duplicate keys), drop the
keys that are only there for people (``"$schema"``, ``"_comment..."``, ``"//..."``), validate
against the shipped JSON Schema, then run the checks a schema cannot express (cron syntax, time
zones, real dates, secrets in config, credentials in hosts and URLs, the declared column schema). Every problem becomes one
line ``FILE: json.path: what is wrong and what is expected``; all of them are raised together
as one :class:`~drivetrain.errors.ConfigError`, sorted by path.

Building the typed model from the validated data is :mod:`drivetrain.config.model`'s job.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from drivetrain.config.spec_keys import replaced_hint
from drivetrain.errors import ConfigError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from drivetrain.config.model import PipelineConfig

JsonPath = tuple["str | int", ...]

#: Keys people add for themselves; ignored anywhere in a config.
_IGNORED = re.compile(r"^(_comment|//)")
#: Key names that hold secrets, compared lower-cased with '-' read as '_'.
SECRET_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "access_key",
        "secret_access_key",
    }
)
SECRETS_MESSAGE = (
    "secrets do not belong in config; set credentials_ref and provide them through the environment"
)
_SECRET_SUFFIXES = tuple(f"_{name}" for name in SECRET_KEYS)


def is_ignored_key(key: object) -> bool:
    """Whether ``key`` is a comment key or ``$schema``, which every part of a config may hold."""
    return isinstance(key, str) and (key == "$schema" or bool(_IGNORED.match(key)))


def looks_like_secret(key: object) -> bool:
    """Whether a config key names a secret (``password``, ``db_password``, ``API-Key``...)."""
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in SECRET_KEYS or name.endswith(_SECRET_SUFFIXES)


def strip_ignored(value: Any) -> Any:
    """A copy of a JSON value without comment keys and ``$schema``, at any depth."""
    if isinstance(value, Mapping):
        return {k: strip_ignored(v) for k, v in value.items() if not is_ignored_key(k)}
    if isinstance(value, list | tuple):
        return [strip_ignored(v) for v in value]
    return value


def format_path(path: Iterable[str | int]) -> str:
    """``("stage_system", "columns", 2, "type")`` as ``stage_system.columns[2].type``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def show(value: Any) -> str:
    """A short, JSON-flavoured rendering of a value for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def did_you_mean(word: object, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or an empty string."""
    import difflib

    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Problems:
    """Collects ``(path, message)`` pairs and turns them into one sorted ConfigError."""

    def __init__(self, source: str, prefix: JsonPath = ()) -> None:
        self.source = source
        self.prefix = prefix
        self._items: dict[str, JsonPath] = {}
        self._blocked: set[JsonPath] = set()

    def add(self, path: Iterable[str | int], message: str, *, block: bool = False) -> None:
        """Record a problem at ``path`` (relative to the prefix).

        ``block`` hides later problems at or below the same path: they would only repeat it.
        """
        full = self.prefix + tuple(path)
        if any(full[: len(b)] == b for b in self._blocked):
            return
        if block:
            self._blocked.add(full)
        where = format_path(full)
        line = f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}"
        self._items.setdefault(line, full)

    def __bool__(self) -> bool:
        return bool(self._items)

    def lines(self) -> list[str]:
        """Every problem, one line each, sorted by JSON path."""

        def key(item: tuple[str, JsonPath]) -> tuple[Any, ...]:
            line, path = item
            parts = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)
            return (parts, line)

        return [line for line, _ in sorted(self._items.items(), key=key)]

    def raise_if_any(self) -> None:
        """Raise one ConfigError holding every problem, if there is any."""
        if self._items:
            raise ConfigError(self.lines(), source=self.source)


# -- reading ---------------------------------------------------------------------------------


class _Duplicates(dict):  # type: ignore[type-arg]
    """A JSON object that remembers which of its keys appeared more than once."""

    duplicates: tuple[str, ...] = ()


class _NonFinite:
    def __init__(self, text: str) -> None:
        self.text = text


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _Duplicates(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen.add(key)
        obj.duplicates = tuple(repeated)
    return obj


def read_json(path: str | Path) -> Any:
    """Parse a config file; a missing file or bad JSON raises ConfigError naming the file."""
    source = str(path)
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found", source=source) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{source}: is a folder; expected a config.json file", source=source
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: is not UTF-8 text ({exc.reason})", source=source) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot be read: {exc.strerror}", source=source) from None
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_NonFinite)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.msg.startswith(("Expecting property name", "Expecting value")):
            hint = " (JSON allows no trailing commas or comments; use '_comment' keys instead)"
        raise ConfigError(
            f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}{hint}",
            source=source,
        ) from None
    except ValueError as exc:  # e.g. integers past the interpreter's digit limit
        raise ConfigError(f"{source}: invalid JSON: {exc}", source=source) from None


def normalize(value: Any, problems: Problems, path: JsonPath = ()) -> Any:
    """A plain-JSON copy of ``value`` (dicts, lists, str, int, float, bool, None).

    Non-finite numbers, non-string keys, duplicate keys and values JSON cannot hold are
    reported; the offending value is dropped (None) so validation can go on.
    """
    if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        text = value.text if isinstance(value, _NonFinite) else show(value)
        problems.add(path, f"{text} is not allowed; numbers must be finite", block=True)
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        problems.add(path, "is too large a number; integers must fit in 64 bits", block=True)
        return None
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        for key in getattr(value, "duplicates", ()):
            problems.add(path + (key,), "appears more than once in the same object; keep one")
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.add(path, f"key {show(key)} is not a string; JSON keys are strings")
                continue
            out[key] = normalize(item, problems, path + (key,))
        return out
    if isinstance(value, list | tuple):
        return [normalize(item, problems, path + (i,)) for i, item in enumerate(value)]
    problems.add(path, f"a {type(value).__name__} value cannot be stored in JSON", block=True)
    return None


# -- plain JSON values ----------------------------------------------------------------------


def freeze(value: Any) -> Any:
    """A read-only deep copy of a JSON value: mappings become proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A plain, JSON-able deep copy (dicts and lists) of a frozen or plain JSON value."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


def canonical_hash(data: Any) -> str:
    """sha256 hex digest of the canonical JSON of ``data`` (sorted keys, no whitespace)."""
    text = json.dumps(thaw(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_dotted_path(dotted: str) -> list[str | int]:
    """``"stage_system.columns[0].type"`` as ``["stage_system", "columns", 0, "type"]``."""
    parts: list[str | int] = []
    for piece in dotted.split("."):
        match = re.fullmatch(r"([^\[\]]+)((?:\[[0-9]+\])*)", piece)
        if not match:
            raise ValueError(f"{dotted!r} is not a dotted path like 'stage_system.path'")
        parts.append(match.group(1))
        parts.extend(int(i) for i in re.findall(r"\[([0-9]+)\]", match.group(2)))
    return parts


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``value`` at a dotted path in plain JSON, creating missing objects on the way.

    :raises ValueError: when the path is malformed or runs through a scalar or past a list.
    """
    *parents, last = split_dotted_path(dotted)
    node: Any = data
    for part, following in zip(parents, [*parents[1:], last][: len(parents)], strict=True):
        if isinstance(node, dict) and isinstance(part, str):
            node = node.setdefault(part, [] if isinstance(following, int) else {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            raise ValueError(f"{dotted!r} goes through {show(node)}, which has no {part!r}")
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and last <= len(node):
        node[last : last + 1] = [value]
    else:
        raise ValueError(f"{dotted!r} cannot be set inside {show(node)}")


# -- the JSON Schema -------------------------------------------------------------------------


@functools.cache
def _schema_text() -> str:
    return resources.files("drivetrain.config").joinpath("schema.json").read_text("utf-8")


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of config.json, as shipped in the package."""
    return json.loads(_schema_text())


@functools.cache
def _validator() -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def make_validator(section_schema: Mapping[str, Any]) -> Validator:
    """A draft 2020-12 validator for a connector's own section schema."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(thaw(section_schema))


_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def schema_problems(
    validator: Validator, instance: Any, problems: Problems, *, also_known: Iterable[str] = ()
) -> None:
    """Add one readable line per JSON Schema error found in ``instance``.

    :param also_known: keys allowed at the top level of ``instance`` besides the schema's own
        (a connector section's core keys), offered in suggestions for an unknown key.
    """
    for error in validator.iter_errors(instance):
        path = tuple(error.absolute_path)
        kind, wanted, value = error.validator, error.validator_value, error.instance
        custom = error.schema.get("x-message") if isinstance(error.schema, Mapping) else None
        if kind == "required":
            template = error.schema.get("x-required-message", "{key} is required")
            for key in wanted:
                if isinstance(value, Mapping) and key not in value:
                    problems.add(path, template.replace("{key}", repr(key)))
        elif kind in ("additionalProperties", "unevaluatedProperties"):
            known = [k for k in error.schema.get("properties", {}) if k != "$schema"]
            if not path:
                known += [k for k in also_known if k not in known]
            patterns = list(error.schema.get("patternProperties", {}))
            for key in value:
                if key in known or is_ignored_key(key) or looks_like_secret(key):
                    continue
                if any(re.search(pattern, key) for pattern in patterns):
                    continue
                hint = replaced_hint(key) or did_you_mean(key, known)
                if not hint and known:
                    hint = "; expected one of " + ", ".join(repr(k) for k in known)
                elif not hint:
                    hint = "; nothing else is allowed here"
                problems.add(path + (key,), f"unknown key{hint}")
        elif custom:
            problems.add(path, str(custom).replace("{value}", show(value)))
        elif kind == "type":
            names = [wanted] if isinstance(wanted, str) else list(wanted)
            expected = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
            problems.add(path, f"expected {expected}, got {show(value)}")
        elif kind == "enum":
            options = ", ".join(repr(o) for o in wanted)
            hint = did_you_mean(value, [o for o in wanted if isinstance(o, str)])
            problems.add(path, f"{show(value)} is not one of {options}{hint}")
        elif kind == "minimum":
            problems.add(path, f"{show(value)} is below the minimum {wanted}")
        elif kind == "maximum":
            problems.add(path, f"{show(value)} is above the maximum {wanted}")
        elif kind == "exclusiveMinimum":
            problems.add(path, f"{show(value)} must be greater than {wanted}")
        elif kind == "exclusiveMaximum":
            problems.add(path, f"{show(value)} must be less than {wanted}")
        elif kind == "minLength" and wanted == 1:
            problems.add(path, "must not be empty")
        elif kind == "minItems" and wanted == 1:
            problems.add(path, "must list at least one item")
        elif kind == "uniqueItems":
            problems.add(path, "lists the same item more than once")
        elif kind == "const":
            problems.add(path, f"must be {show(wanted)}")
        else:
            text = error.message
            problems.add(path, text if len(text) <= 200 else text[:197] + "...")


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
    from drivetrain.config import env

    clean = env.resolve(normalize(data, problems), problems)  # ${VAR} values, before any check
    if not isinstance(clean, dict):
        problems.add((), f"the top level must be a JSON object, found {show(clean)}")
        problems.raise_if_any()
    stripped = strip_ignored(clean)
    secret_key_problems(stripped, problems)
    from drivetrain.config.hosts import embedded_credential_problems

    embedded_credential_problems(stripped, problems)
    schema_problems(_validator(), stripped, problems)
    semantic_problems(stripped, problems)
    problems.raise_if_any()
    return clean, stripped


def load_config(path_or_folder: str | Path) -> PipelineConfig:
    """Load and validate a pipeline config; a folder means ``folder/config.json``."""
    from drivetrain.config.model import PipelineConfig

    path = Path(path_or_folder)
    if path.is_dir():
        path = path / "config.json"
        return PipelineConfig.from_file(path)
    return PipelineConfig.from_file(path_or_folder)
