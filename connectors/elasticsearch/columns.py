"""From search hits to Arrow record batches with one schema for the whole extract.

The columns are decided once per extract, from the index mapping read right after the point
in time opens (so every field of every document in it is already mapped):

- the query field, as ``timestamp[us, UTC]``, read from the hit's sort value (the value the
  range filter and the ordering used; nanoseconds are cut to microseconds);
- ``_id`` when ``include_id`` is set;
- with ``fields``: exactly those columns, each read from its dotted path;
  otherwise one column per top-level key of the mapping, plus ``_unmapped`` (JSON of the
  top-level keys the mapping does not know) when the mapping is not dynamic;
- ``_drivetrain_error`` and ``_drivetrain_raw``: null, unless a value did not fit its column.

Column types follow the mapping: date -> timestamp (unless a custom date format is declared),
integer types -> int64, floating types -> float64, boolean -> bool, the rest -> string.
Objects, and arrays in string columns, are kept as JSON text. A value that does not fit a typed
column (an array of numbers in a long field, an unreadable date) leaves that cell null and
marks the row with ``_drivetrain_error`` and the raw document in ``_drivetrain_raw``, so it is
rejected with a reason downstream instead of silently vanishing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.errors import PermanentError

from .config import EsOptions

TIMESTAMP = pa.timestamp("us", tz="UTC")
_ARROW = {"timestamp": TIMESTAMP, "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
_INT_TYPES = {"long", "integer", "short", "byte"}
_FLOAT_TYPES = {"double", "float", "half_float", "scaled_float"}
_DATE_TYPES = {"date", "date_nanos"}
_ISO_FORMATS = {
    "strict_date_optional_time",
    "date_optional_time",
    "strict_date_optional_time_nanos",
    "strict_date_time",
    "date_time",
    "strict_date_time_no_millis",
    "date_time_no_millis",
    "epoch_millis",
    "strict_date",
    "date",
}
_SECOND_FRACTION = re.compile(r"(\.\d{6})\d+")
_MISSING = object()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@attrs.frozen
class Column:
    """One output column: its name, where its value comes from, and its kind."""

    name: str
    path: str
    """Dotted path in ``_source``."""
    kind: str
    """``timestamp``, ``int``, ``float``, ``bool``, ``string`` or ``json``."""


def _walk(mapping: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Mapping[str, Any]]]:
    for name, node in (mapping.get("properties") or {}).items():
        path = f"{prefix}{name}"
        yield path, node
        yield from _walk(node, f"{path}.")
        for sub, sub_node in (node.get("fields") or {}).items():
            yield f"{path}.{sub}", sub_node


def field_types(mappings: Mapping[str, Any]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """``path -> {index: field mapping}`` over every index of a get-mapping response."""
    found: dict[str, dict[str, Mapping[str, Any]]] = {}
    for index, entry in mappings.items():
        for path, node in _walk((entry or {}).get("mappings") or {}):
            found.setdefault(path, {})[index] = node
    return found


def _kind(nodes: Iterable[Mapping[str, Any]]) -> str:
    types = {node.get("type", "object") for node in nodes}
    if not types:
        return "string"
    if types <= _DATE_TYPES:
        formats = {f for node in nodes for f in str(node.get("format", "")).split("||") if f}
        return "timestamp" if formats <= _ISO_FORMATS else "string"
    if types <= _INT_TYPES:
        return "int"
    if types <= _INT_TYPES | _FLOAT_TYPES:
        return "float"
    if types == {"boolean"}:
        return "bool"
    if types & {"object", "nested", "flattened"}:
        return "json"
    return "string"


@attrs.frozen
class ColumnPlan:
    """The columns of every batch of one extract, and how to fill them from hits."""

    query_field: str
    include_id: bool
    columns: tuple[Column, ...]
    keep_unmapped: bool
    """Whether an ``_unmapped`` column collects top-level keys the mapping does not list."""
    projected: bool
    """Whether ``fields`` chose the columns (then unknown keys are simply not asked for)."""

    @classmethod
    def build(cls, options: EsOptions, mappings: Mapping[str, Any]) -> ColumnPlan:
        """The plan for ``options`` over a get-mapping response (one entry per index)."""
        types = field_types(mappings)
        if options.fields:
            columns = tuple(
                Column(name, path, _kind(types.get(path, {}).values()))
                for name, path in options.fields
            )
            return cls(options.query_field, options.include_id, columns, False, True)
        top = sorted(
            path
            for path, nodes in types.items()
            if "." not in path
            and path != options.query_field
            and any(node.get("type") != "alias" for node in nodes.values())  # not in _source
        )
        columns = tuple(Column(name, name, _kind(types[name].values())) for name in top)
        dynamic = {
            str(((entry or {}).get("mappings") or {}).get("dynamic", "true")).lower()
            for entry in mappings.values()
        }
        keep = bool(dynamic & {"false", "runtime"})
        return cls(options.query_field, options.include_id, columns, keep, False)

    @property
    def source_filter(self) -> list[str] | None:
        """The ``_source`` paths to ask for (None: the whole document)."""
        return [column.path for column in self.columns] if self.projected else None

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field(self.query_field, TIMESTAMP, nullable=False)]
        if self.include_id:
            fields.append(pa.field("_id", pa.string(), nullable=False))
        fields += [pa.field(c.name, _ARROW.get(c.kind, pa.string())) for c in self.columns]
        if self.keep_unmapped:
            fields.append(pa.field("_unmapped", pa.string()))
        fields += [
            pa.field("_drivetrain_error", pa.string()),
            pa.field("_drivetrain_raw", pa.string()),
        ]
        return pa.schema(fields)

    def to_batch(self, hits: Sequence[Mapping[str, Any]]) -> pa.RecordBatch:
        """One record batch from one page of hits (each with ``sort`` and ``_source``)."""
        arrays: list[pa.Array] = [_sort_timestamps(hits, self.query_field)]
        if self.include_id:
            arrays.append(pa.array([hit["_id"] for hit in hits], pa.string()))
        values: list[list[Any]] = [[] for _ in self.columns]
        unmapped: list[str | None] = []
        errors: list[str | None] = []
        raws: list[str | None] = []
        known = {column.path for column in self.columns} | {self.query_field}
        for hit in hits:
            source = hit.get("_source") or {}
            if not self.projected and any("." in key for key in source):
                source = _expand_dots(source)
            problems = []
            for column, out in zip(self.columns, values, strict=True):
                raw = (
                    source.get(column.path, _MISSING)
                    if not self.projected
                    else _lookup(source, column.path)
                )
                value, problem = _convert(raw, column)
                out.append(value)
                if problem:
                    problems.append(problem)
            if not self.projected:
                extra = {k: v for k, v in source.items() if k not in known}
                if self.keep_unmapped:
                    unmapped.append(_json(extra) if extra else None)
                elif extra:
                    problems.append(f"keys {sorted(extra)} are not in the index mapping")
            errors.append("; ".join(problems) if problems else None)
            raws.append(_json(hit.get("_source")) if problems else None)
        for column, out in zip(self.columns, values, strict=True):
            arrays.append(pa.array(out, _ARROW.get(column.kind, pa.string())))
        if self.keep_unmapped:
            arrays.append(pa.array(unmapped, pa.string()))
        arrays += [pa.array(errors, pa.string()), pa.array(raws, pa.string())]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _sort_timestamps(hits: Sequence[Mapping[str, Any]], query_field: str) -> pa.Array:
    """The query-field column from the first sort value of each hit (an ISO string)."""
    text = pa.array([str(hit["sort"][0]) for hit in hits], pa.string())
    try:
        return pc.replace_substring_regex(text, _SECOND_FRACTION.pattern, r"\1").cast(TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise PermanentError(
            f"Elasticsearch returned sort values for {query_field!r} that are not ISO dates "
            f"({exc}); query_field must be mapped as date or date_nanos"
        ) from exc


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _expand_dots(source: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` read as ``{"a": {"b": 1}}`` (merged into an existing ``a`` object).

    A key that clashes with a non-object value stays as it is, and so shows up as unknown.
    """
    expanded: dict[str, Any] = {}
    for key, value in source.items():
        *parents, leaf = key.split(".")
        target: Any = expanded
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        else:
            if isinstance(target.get(leaf), dict) and isinstance(value, dict):
                target[leaf].update(value)
            else:
                target[leaf] = value
            continue
        expanded[key] = value
    return expanded


def _lookup(source: Any, path: str) -> Any:
    """The value at a dotted path (nested objects or literal dotted keys); lists collect."""
    if not isinstance(source, dict):
        if isinstance(source, list):
            found = [v for item in source if (v := _lookup(item, path)) is not _MISSING]
            flat = [x for v in found for x in (v if isinstance(v, list) else [v])]
            return flat if flat else _MISSING
        return _MISSING
    if path in source:
        return source[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in source:
            found = _lookup(source[head], ".".join(parts[cut:]))
            if found is not _MISSING:
                return found
    return _MISSING


def _convert(raw: Any, column: Column) -> tuple[Any, str | None]:
    """(cell value, problem or None) for one raw ``_source`` value."""
    if raw is _MISSING or raw is None:
        return None, None
    kind = column.kind
    if kind == "json":
        return _json(raw), None
    if kind == "string":
        if isinstance(raw, str):
            return raw, None
        if isinstance(raw, bool):
            return ("true" if raw else "false"), None
        return (_json(raw) if isinstance(raw, dict | list) else str(raw)), None
    if isinstance(raw, list):
        raw = [item for item in raw if item is not None]
        if not raw:
            return None, None
        if len(raw) > 1:
            return None, f"{column.name}: holds {len(raw)} values, the column takes one {kind}"
        raw = raw[0]
    value = _scalar(raw, kind)
    if value is None:
        return None, f"{column.name}: cannot read {_json(raw)[:80]} as {kind}"
    return value, None


def _scalar(raw: Any, kind: str) -> Any:
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            return (
                {"true": True, "false": False}.get(str(raw).lower())
                if isinstance(raw, str)
                else None
            )
        if isinstance(raw, bool | dict | list):
            return None
        if kind == "int":
            number = float(raw) if isinstance(raw, str) else raw
            if isinstance(number, float) and not number.is_integer():
                return None
            value = int(number)
            return value if -(2**63) <= value < 2**63 else None
        if kind == "float":
            return float(raw)
        if kind == "timestamp":
            return _timestamp(raw)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _timestamp(raw: Any) -> datetime | None:
    """A date as Elasticsearch's default format reads it: ISO 8601, or epoch milliseconds."""
    if isinstance(raw, int | float) or (isinstance(raw, str) and re.fullmatch(r"-?\d+", raw)):
        return _EPOCH + timedelta(milliseconds=int(raw))
    if not isinstance(raw, str):
        return None
    text = _SECOND_FRACTION.sub(r"\1", raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
