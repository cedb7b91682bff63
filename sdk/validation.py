"""Record validation against the schema declared in ``stage_system.columns``.

Each source batch is split into valid rows, converted to the declared types, and rejected
rows, each with the first reason it failed and its raw record as JSON. Work is vectorised with
``pyarrow.compute``; per-value Python runs only for values a whole-column conversion refused,
to find which ones. Every input row ends up in exactly one of the two outputs, so
``rows in = valid + rejected`` always holds.

Timestamps written without an offset are wall-clock time in the source's zone, read by the
rule of :mod:`drivetrain.window` (the repeated hour as its earlier instant, a skipped time as
the instant the clocks jumped), the same rule sources use to pick a window's records. A number
in a timestamp field is a count of ``timestamp_unit`` (s, ms, us or ns) since 1970-01-01 UTC;
without a declared unit it is rejected with a reason, never read as a date in 1970.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.errors import ConfigError
from drivetrain.window import ARROW_LOCAL_RULES

if TYPE_CHECKING:
    from drivetrain.config import ColumnConfig, PipelineConfig

ERROR_COLUMN = "_drivetrain_error"
RAW_COLUMN = "_drivetrain_raw"
RESERVED = (ERROR_COLUMN, RAW_COLUMN)

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "float": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "json": pa.string(),
}
#: Units a number in a timestamp field may count since 1970-01-01 UTC (``timestamp_unit``).
TIMESTAMP_UNITS = ("s", "ms", "us", "ns")
_MICROS_PER = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0.001}
_NUMBER = r"^\s*[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?\s*$"


class NumberWithoutUnit(ValueError):
    """A number in a timestamp field, and no ``timestamp_unit`` to read it by."""


REJECTS_SCHEMA = pa.schema(
    [
        ("pipeline_id", pa.string()),
        ("pipeline_name", pa.string()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("window_end", pa.timestamp("us", tz="UTC")),
        ("target_date", pa.date32()),
        ("reason", pa.string()),
        ("raw_record", pa.string()),
        ("rejected_at", pa.timestamp("us", tz="UTC")),
    ]
)


@attrs.frozen
class ColumnSpec:
    """One declared column of the stage table."""

    name: str
    type: str = "string"
    required: bool = False
    nullable: bool = True
    max_length: int | None = None
    min: Any = None
    max: Any = None

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.type]

    @classmethod
    def from_config(cls, column: ColumnConfig) -> ColumnSpec:
        """The spec of one typed ``stage_system.columns`` entry."""
        return cls(name=column.name, type=column.type, required=column.required, nullable=column.nullable,
                   max_length=column.max_length, min=column.min, max=column.max)

    @classmethod
    def parse(cls, items: Sequence[Mapping[str, Any]]) -> list[ColumnSpec]:
        out = []
        for i, item in enumerate(items):
            kind = item.get("type", "string")
            if kind not in ARROW_TYPES:
                raise ConfigError(f"stage_system.columns[{i}].type: {kind!r} is not one of {sorted(ARROW_TYPES)}")
            out.append(cls(
                name=item["name"], type=kind, required=bool(item.get("required", False)),
                nullable=bool(item.get("nullable", True)), max_length=item.get("max_length"),
                min=item.get("min"), max=item.get("max"),
            ))
        return out


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def raw_json(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as JSON text for the rejects table (reserved columns left out)."""
    out = []
    for row in rows:
        raw = row.get(RAW_COLUMN)
        if raw is not None:
            out.append(raw if isinstance(raw, str) else _json_default(raw))
            continue
        clean = {k: v for k, v in row.items() if k not in RESERVED}
        out.append(json.dumps(clean, default=_json_default, ensure_ascii=False))
    return out


def _cast_each(values: pa.Array, target: pa.DataType, naive_tz: str, unit: str | None) -> tuple[pa.Array, pa.Array]:
    """Convert value by value; returns (converted with nulls where it failed, failed mask)."""
    converted: list[Any] = []
    failed: list[bool] = []
    for scalar in values:
        if not scalar.is_valid:
            converted.append(None)
            failed.append(False)
            continue
        try:
            one = _cast_array(pa.array([scalar.as_py()], type=values.type), target, naive_tz, unit)
            converted.append(one[0].as_py())
            failed.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError, ValueError):
            converted.append(None)
            failed.append(True)
    return pa.array(converted, type=target), pa.array(failed, type=pa.bool_())


def _epoch(values: pa.Array, unit: str | None) -> pa.Array:
    """Numbers counting ``unit`` since 1970-01-01 UTC as UTC microseconds."""
    if unit is None:
        raise NumberWithoutUnit("a number needs timestamp_unit")
    factor = _MICROS_PER[unit]
    if pa.types.is_integer(values.type) and factor >= 1:
        micros = pc.multiply_checked(values.cast(pa.int64()), pa.scalar(int(factor), pa.int64()))
    elif pa.types.is_integer(values.type):  # nanoseconds: whole microseconds, rounded down
        micros = pc.divide(pc.subtract(values.cast(pa.int64()), pc.if_else(
            pc.less(values.cast(pa.int64()), 0), pa.scalar(999, pa.int64()), pa.scalar(0, pa.int64()))), 1000)
    else:
        scaled = pc.round(pc.multiply(values.cast(pa.float64()), float(factor)))
        if not pc.all(pc.fill_null(pc.is_finite(scaled), True)).as_py():
            raise pa.ArrowInvalid("not a finite number")
        micros = pc.cast(scaled, pa.int64())  # safe cast: raises when out of range
    return pc.cast(micros, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))


def _assume(naive: pa.Array, naive_tz: str) -> pa.Array:
    return pc.assume_timezone(naive.cast(pa.timestamp("us")), naive_tz, **ARROW_LOCAL_RULES)


def _cast_array(values: pa.Array, target: pa.DataType, naive_tz: str, unit: str | None = None) -> pa.Array:
    if values.type == target:
        return values
    if pa.types.is_timestamp(target):
        if pa.types.is_timestamp(values.type):
            if values.type.tz is None:
                return _assume(values, naive_tz).cast(target)
            return values.cast(target)
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            return _epoch(values, unit).cast(target)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            text = pc.utf8_trim_whitespace(values)
            try:
                return pc.cast(text, target)
            except pa.ArrowInvalid:
                pass
            numbers = pc.match_substring_regex(text, _NUMBER)
            if pc.all(pc.fill_null(numbers, True)).as_py() and pc.any(numbers).as_py():
                try:
                    as_number = pc.cast(text, pa.int64())
                except pa.ArrowInvalid:
                    as_number = pc.cast(text, pa.float64())
                return _epoch(as_number, unit).cast(target)
            naive = pc.cast(pc.replace_substring(text, " ", "T", max_replacements=1), pa.timestamp("us"))
            return _assume(naive, naive_tz).cast(target)
        if pa.types.is_date(values.type):
            return _assume(values, naive_tz).cast(target)
    if pa.types.is_boolean(target) and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(values))
        truthy = pc.is_in(lowered, value_set=pa.array(["true", "1", "yes", "y", "t"]))
        falsy = pc.is_in(lowered, value_set=pa.array(["false", "0", "no", "n", "f"]))
        if not pc.all(pc.or_kleene(pc.or_(truthy, falsy), pc.is_null(values))).as_py():
            raise pa.ArrowInvalid("not a boolean")
        return pc.if_else(pc.is_null(values), pa.scalar(None, pa.bool_()), truthy)
    if (pa.types.is_integer(target) or pa.types.is_floating(target)) and pa.types.is_boolean(values.type):
        raise pa.ArrowInvalid("true/false is not a number")
    if pa.types.is_integer(target) and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        try:
            return pc.cast(values, target)
        except pa.ArrowInvalid:
            values = pc.cast(values, pa.float64())  # "7.0" is 7, as the JSON number 7.0 is
    if pa.types.is_integer(target) and pa.types.is_floating(values.type):
        finite = pc.fill_null(pc.equal(values, pc.floor(values)), True)
        if not pc.all(finite).as_py():
            raise pa.ArrowInvalid("not an integer")
    if target == pa.string() and (pa.types.is_nested(values.type) or pa.types.is_binary(values.type)):
        return pa.array(
            [None if v is None else (json.dumps(v, default=_json_default, ensure_ascii=False) if not isinstance(v, bytes) else v.decode("utf-8")) for v in values.to_pylist()],
            type=pa.string(),
        )
    return pc.cast(values, target)


def convert_column(values: pa.Array, target: pa.DataType, naive_tz: str = "UTC",
                   unit: str | None = None) -> tuple[pa.Array, pa.Array]:
    """Convert a column to ``target``; returns (converted, failed mask). Fast path first.

    :param naive_tz: zone of timestamps written without an offset.
    :param unit: what a number in a timestamp column counts since 1970 (``s``, ``ms``, ``us``,
        ``ns``); None makes such numbers fail.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    try:
        return _cast_array(values, target, naive_tz, unit), pa.repeat(pa.scalar(False), len(values))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError, UnicodeDecodeError, ValueError):
        return _cast_each(values, target, naive_tz, unit)


def numbers_without_unit(values: pa.Array, failed: pa.Array, unit: str | None) -> pa.Array:
    """Which of the ``failed`` values of a timestamp column are numbers read without a unit."""
    if unit is not None or not pc.any(failed).as_py():
        return pa.repeat(pa.scalar(False), len(values))
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return pc.and_(failed, pc.is_valid(values))
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pc.and_(failed, pc.fill_null(pc.match_substring_regex(values, _NUMBER), False))
    return pa.repeat(pa.scalar(False), len(values))


def number_reason(field: str) -> str:
    """Why a number in the timestamp field ``field`` was not read."""
    return (f"{field}: a number is not a timestamp unless source_system.timestamp_unit says what "
            "it counts since 1970 (s, ms, us or ns)")


@attrs.frozen
class Validated:
    """One batch split in two: rows to load and rows to reject (with reasons)."""

    valid: pa.RecordBatch
    rejected_rows: list[dict[str, Any]]
    reasons: list[str]

    @property
    def rejected(self) -> int:
        return len(self.reasons)


class RecordValidator:
    """Checks batches against declared columns; without them, only the query field is checked."""

    def __init__(self, columns: Sequence[ColumnSpec], query_field: str, *, naive_timezone: str = "UTC",
                 timestamp_unit: str | None = None) -> None:
        self.columns = list(columns)
        self.query_field = query_field
        self.naive_timezone = naive_timezone
        self.timestamp_unit = timestamp_unit
        if self.columns and query_field not in {c.name for c in self.columns}:
            self.columns.append(ColumnSpec(name=query_field, type="timestamp", required=True, nullable=False))

    @classmethod
    def for_config(cls, config: PipelineConfig) -> RecordValidator:
        """The validator a pipeline's config describes: ``stage_system.columns``, checked with
        the source's query field, the zone of its naive timestamps and its timestamp unit."""
        keys = config.source_keys
        return cls([ColumnSpec.from_config(c) for c in config.stage.columns], keys.query_field or "",
                   naive_timezone=keys.source_timezone, timestamp_unit=keys.timestamp_unit)

    def _specs_for(self, batch: pa.RecordBatch) -> list[ColumnSpec]:
        if self.columns:
            return self.columns
        specs = []
        for field in batch.schema:
            if field.name in RESERVED:
                continue
            if field.name == self.query_field:
                specs.append(ColumnSpec(name=field.name, type="timestamp", required=True, nullable=False))
            else:
                specs.append(ColumnSpec(name=field.name, type="_keep"))
        return specs

    def validate(self, batch: pa.RecordBatch) -> Validated:
        n = batch.num_rows
        reason = pa.nulls(n, pa.string())

        def flag(mask: pa.Array, text: str) -> None:
            nonlocal reason
            if not pc.any(mask).as_py():  # the usual case: nothing to flag, nothing to rebuild
                return
            mask = pc.fill_null(mask, False)
            reason = pc.if_else(pc.and_(mask, pc.is_null(reason)), pa.scalar(text), reason)

        names = batch.schema.names
        if ERROR_COLUMN in names:
            err = batch.column(ERROR_COLUMN)
            reason = pc.if_else(pc.is_valid(err), pc.binary_join_element_wise("unreadable record: ", err, ""), reason)
        out_arrays, out_fields = [], []
        for spec in self._specs_for(batch):
            if spec.type == "_keep":
                out_arrays.append(batch.column(spec.name))
                out_fields.append(batch.schema.field(spec.name))
                continue
            if spec.name in names:
                source = batch.column(spec.name)
                converted, failed = convert_column(source, spec.arrow_type, self.naive_timezone, self.timestamp_unit)
                if spec.type == "timestamp":
                    flag(numbers_without_unit(source, failed, self.timestamp_unit), number_reason(spec.name))
                flag(failed, f"{spec.name}: not a valid {spec.type}")
                if spec.type == "json":
                    converted = self._check_json(converted, source, flag, spec)
            else:
                converted = pa.nulls(n, spec.arrow_type)
                if spec.required:
                    flag(pa.array([True] * n), f"{spec.name}: required field is missing")
            missing = pc.is_null(converted)
            if spec.required or not spec.nullable:
                flag(missing, f"{spec.name}: required field is empty")
            if spec.max_length is not None and spec.arrow_type == pa.string():
                flag(pc.greater(pc.utf8_length(converted), spec.max_length), f"{spec.name}: longer than {spec.max_length} characters")
            for bound, op, word in ((spec.min, pc.less, "below the minimum"), (spec.max, pc.greater, "above the maximum")):
                if bound is not None:
                    limit = convert_column(pa.array([bound]), spec.arrow_type, self.naive_timezone, self.timestamp_unit)[0][0]
                    flag(op(converted, limit), f"{spec.name}: {word} {bound}")
            out_arrays.append(converted)
            out_fields.append(pa.field(spec.name, spec.arrow_type))
        checked = pa.RecordBatch.from_arrays(out_arrays, schema=pa.schema(out_fields))
        if reason.null_count == n:  # every row passed: hand the columns on without copying them
            return Validated(valid=checked, rejected_rows=[], reasons=[])
        ok = pc.is_null(reason)
        valid = checked.filter(ok)
        bad = pc.invert(ok)
        rejected_rows = batch.filter(bad).to_pylist()
        reasons = reason.filter(bad).to_pylist()
        return Validated(valid=valid, rejected_rows=rejected_rows, reasons=reasons)

    @staticmethod
    def _check_json(converted: pa.Array, source: pa.Array, flag: Any, spec: ColumnSpec) -> pa.Array:
        if not (pa.types.is_string(source.type) or pa.types.is_large_string(source.type)):
            return converted
        bad, deep = [], []
        for value in converted.to_pylist():
            invalid = too_deep = False
            if value is not None:
                try:
                    json.loads(value)
                except RecursionError:
                    too_deep = True
                except ValueError:
                    invalid = True
            bad.append(invalid)
            deep.append(too_deep)
        flag(pa.array(bad, type=pa.bool_()), f"{spec.name}: not valid JSON")
        flag(pa.array(deep, type=pa.bool_()), f"{spec.name}: JSON nested too deeply to read")
        return converted
