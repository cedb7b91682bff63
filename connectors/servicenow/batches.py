"""Turn one page of Table API records into one flat Arrow record batch.

The Table API answers every field as a string (``""`` when empty). The batch holds:

- every field as ``string``, except the query field and ``datetime_fields``, which become
  ``timestamp[us, UTC]`` (``""`` becomes null);
- with ``display_value: "all"`` each field arrives as ``{"display_value": ..., "value": ...}``:
  the stored value goes to the field's own column (typed as above) and the display value to a
  ``dv_<field>`` text column right after it (the naming ServiceNow's own exports use);
- any other object or array value (one this connector does not flatten) as compact JSON text.

Column types depend on the field names and options only, never on the data, so every window
gives the same schema. The columns are the requested ``fields`` or, without them, the fields
of the first record in the order the instance sent them (a field first seen later is appended).

With ``display_value: true`` date-times arrive as wall-clock readings of the user's zone. The
instance selected the window's records by their stored instant, so a query-field reading from
the hour repeated when clocks go back is read as whichever of its two instants lies in the
window (the earlier one when both do); other date-time fields, which no window pins down, are
read by the rule of :mod:`drivetrain.window` (the earlier instant).

A record whose query field, or another date-time field, cannot be read is not dropped: its
batch gains the reserved columns ``_drivetrain_error`` (the reason) and ``_drivetrain_raw``
(the record as JSON), so the transfer phase rejects it with that reason.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.window import ARROW_LOCAL_RULES

from .query import DATETIME_FORMAT

if TYPE_CHECKING:
    from drivetrain.window import Window

    from .config import ServiceNowOptions

TIMESTAMP = pa.timestamp("us", tz="UTC")
ERROR_COLUMN = "_drivetrain_error"
RAW_COLUMN = "_drivetrain_raw"
DISPLAY_PREFIX = "dv_"


def as_text(value: Any) -> str | None:
    """A field value as text: strings unchanged, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def stored_value(value: Any) -> Any:
    """The stored half of a ``display_value: "all"`` pair (or the value itself)."""
    return value.get("value") if isinstance(value, dict) and "value" in value else value


class BatchBuilder:
    """Builds the batches of one extract, keeping the column list stable across pages."""

    def __init__(self, options: ServiceNowOptions, window: Window | None = None) -> None:
        self._options = options
        self._window = window
        self._columns: list[str] = list(options.request_fields or ())
        self._pairs = options.display_value == "all"
        # Stored values are UTC; display values are written in the user's profile zone.
        self._zone = options.timezone if options.display_value is True else "UTC"

    def build(self, records: list[dict[str, Any]]) -> pa.RecordBatch:
        """One record batch holding ``records`` in order."""
        self._learn_columns(records)
        names: list[str] = []
        arrays: list[pa.Array] = []
        bad_reasons: list[str | None] = [None] * len(records)
        for column in self._columns:
            raw = [record.get(column) for record in records]
            values = [stored_value(v) for v in raw] if self._pairs else raw
            text = pa.array([as_text(v) for v in values], pa.string())
            if column in self._options.timestamp_fields:
                is_query_field = column == self._options.query_field
                array, bad = self._timestamps(text, required=is_query_field,
                                              window=self._window if is_query_field else None)
                for index in _true_indices(bad):
                    if bad_reasons[index] is None:
                        bad_reasons[index] = (
                            f"cannot read {column!r} as a date-time: {values[index]!r}"
                        )
            else:
                array = text
            names.append(column)
            arrays.append(array)
            if self._pairs:
                names.append(DISPLAY_PREFIX + column)
                arrays.append(pa.array([as_text(_display(v)) for v in raw], pa.string()))
        if any(reason is not None for reason in bad_reasons):
            names += [ERROR_COLUMN, RAW_COLUMN]
            arrays.append(pa.array(bad_reasons, pa.string()))
            arrays.append(
                pa.array(
                    [
                        as_text(rec) if why else None
                        for rec, why in zip(records, bad_reasons, strict=True)
                    ],
                    pa.string(),
                )
            )
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _learn_columns(self, records: list[dict[str, Any]]) -> None:
        known = set(self._columns)
        for record in records:
            for name in record:
                if name not in known:
                    known.add(name)
                    self._columns.append(name)

    def _timestamps(self, text: pa.Array, *, required: bool,
                    window: Window | None = None) -> tuple[pa.Array, pa.Array]:
        """Parse ``YYYY-MM-DD HH:MM:SS`` strings; return the timestamps and a 'bad' mask.

        A value is bad when it is non-empty but not a real date-time in that exact format
        (the parse is checked by writing the result back, so ``2025-02-30`` does not roll over
        into March), or, for the query field, when it is empty.
        """
        present = pc.fill_null(pc.not_equal(text, ""), False)
        # Whole seconds: Arrow's %S would write fractions for a finer unit.
        parsed = pc.strptime(text, format=DATETIME_FORMAT, unit="s", error_is_null=True)
        exact = pc.fill_null(pc.equal(pc.strftime(parsed, format=DATETIME_FORMAT), text), False)
        bad = pc.and_(present, pc.invert(exact))
        if required:
            bad = pc.or_(bad, pc.invert(present))
        parsed = pc.if_else(exact, parsed, pa.scalar(None, parsed.type)).cast(pa.timestamp("us"))
        if self._zone == "UTC":
            return parsed.cast(TIMESTAMP), bad
        earlier = pc.assume_timezone(parsed, timezone=self._zone, **ARROW_LOCAL_RULES).cast(TIMESTAMP)
        if window is None:
            return earlier, bad
        later = pc.assume_timezone(
            parsed, timezone=self._zone, **{**ARROW_LOCAL_RULES, "ambiguous": "latest"}
        ).cast(TIMESTAMP)
        start, end = pa.scalar(window.start, TIMESTAMP), pa.scalar(window.end, TIMESTAMP)
        inside = pc.and_(pc.greater_equal(earlier, start), pc.less(earlier, end))
        return pc.if_else(pc.fill_null(inside, True), earlier, later), bad


def _display(value: Any) -> Any:
    return value.get("display_value") if isinstance(value, dict) else value


def _true_indices(mask: pa.Array) -> list[int]:
    if not pc.any(mask).as_py():
        return []
    return pc.indices_nonzero(mask).to_pylist()
