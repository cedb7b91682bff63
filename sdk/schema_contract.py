"""The schema contract: what a load does when the source's records no longer match the stage table.

``stage_system.schema_contract`` sets a policy for new columns (``columns``) and for values of
another type than their column (``data_type``): ``evolve`` (the default), ``freeze``,
``discard_row`` or ``discard_value`` (see docs/schema-evolution.md). A string sets both.

:class:`ContractGate` sits between the source's batches (after validation) and the stage load,
so it serves every source. It compares each batch with the stage table's columns as they were
when the run began and returns the batch to load, the rows it discards (they become rejects
with their reason, so ``source = stage + rejects`` still holds), or the error that stops the
load before it commits. Columns it accepts are added or widened by the load (``ensure_table``);
the stage-to-target transfer and publish carry them into the pending table and the target.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain._lazy import lazy_module
from drivetrain.schema_types import (
    Kind,
    arrow_kind,
    arrow_type_for,
    fits,
    sql_kind,
    widened_type,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pyarrow as pa

    from drivetrain.warehouse import TableRef
else:  # `drivetrain show` reads the contract's notes without pyarrow
    pa = lazy_module("pyarrow")

POLICIES = ("evolve", "freeze", "discard_row", "discard_value")
KEY = "stage_system.schema_contract"


@attrs.frozen
class SchemaContract:
    """The policy for new columns and for values of a non-conforming type."""

    columns: str = "evolve"
    data_type: str = "evolve"

    @classmethod
    def from_option(cls, raw: str | Mapping[str, str] | None) -> SchemaContract:
        """From the config value: None (evolve), one policy for both, or ``{columns, data_type}``."""
        if raw is None:
            return cls()
        if isinstance(raw, str):
            return cls(raw, raw)
        return cls(raw.get("columns", "evolve"), raw.get("data_type", "evolve"))


class ContractBreach(Exception):
    """A batch the contract refuses (freeze, or a type the warehouse cannot widen): nothing loads."""


@attrs.frozen
class Checked:
    """One batch through the contract: rows to load, rows discarded (with their reasons)."""

    batch: pa.RecordBatch
    discarded_rows: list[dict[str, Any]]
    reasons: list[str]


class ContractGate:
    """Applies a :class:`SchemaContract` to the batches loaded into ``table`` in one run.

    ``existing`` is the table's columns (name -> SQL type) when the run began; an empty map
    (no table yet) lets every batch through: its first load creates the columns.
    """

    def __init__(self, contract: SchemaContract, table: TableRef, existing: Mapping[str, str], backend: str) -> None:
        self.contract = contract
        self.table = table
        self.existing = dict(existing)
        self._folded = {name.upper(): name for name in existing}
        self.backend = backend
        self.values_discarded: Counter[str] = Counter()
        """Values set empty by ``discard_value``, by reason."""
        self.rows_discarded: Counter[str] = Counter()
        """Rows held back by ``discard_row``, by reason."""

    def _column(self, name: str) -> str | None:
        return name if name in self.existing else self._folded.get(name.upper())

    def check(self, batch: pa.RecordBatch) -> Checked:
        """The batch as the contract lets it load; raises :class:`ContractBreach` to stop the load."""
        import pyarrow.compute as pc  # loaded when a batch is checked: importing drivetrain.pipeline stays light
        if not self.existing:
            return Checked(batch, [], [])
        n = batch.num_rows
        reason = pa.nulls(n, pa.string())
        arrays: list[pa.Array] = []
        fields: list[pa.Field] = []

        def discard(mask: pa.Array, text: str) -> None:
            nonlocal reason
            reason = pc.if_else(pc.and_(pc.fill_null(mask, False), pc.is_null(reason)), pa.scalar(text), reason)

        for field, values in zip(batch.schema, batch.columns, strict=True):
            if field.name.startswith("_drivetrain_"):
                arrays.append(values)
                fields.append(field)
                continue
            known = self._column(field.name)
            if known is None:
                kept = self._new_column(field, values, discard)
            else:
                kept = self._known_column(field, values, self.existing[known], discard)
            if kept is not None:
                arrays.append(kept)
                fields.append(pa.field(field.name, kept.type))
        out = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
        if reason.null_count == n:
            return Checked(out, [], [])
        ok = pc.is_null(reason)
        bad = pc.invert(ok)
        reasons = reason.filter(bad).to_pylist()
        self.rows_discarded.update(reasons)
        return Checked(out.filter(ok), batch.filter(bad).to_pylist(), reasons)

    def _new_column(self, field: pa.Field, values: pa.Array, discard: Any) -> pa.Array | None:
        import pyarrow.compute as pc
        policy, carried = self.contract.columns, len(values) - values.null_count
        what = f"new column {field.name!r} ({field.type})"
        if policy == "evolve":
            return values  # the load adds the column
        if not carried:
            return None  # nothing in it: dropping it loses nothing
        if policy == "freeze":
            raise ContractBreach(
                f"{self.table}: the source sends a {what} with {carried} value(s) and {KEY}.columns is 'freeze', so "
                f"nothing was loaded; to accept it set {KEY}.columns to 'evolve' (the column is added), or to "
                "'discard_row' / 'discard_value' to load the records without it; the window stays to be resumed"
            )
        if policy == "discard_row":
            discard(pc.is_valid(values), f"schema contract: {what} not in {self.table} ({KEY}.columns is discard_row)")
        else:
            self.values_discarded[f"{what}: values dropped ({KEY}.columns is discard_value)"] += carried
        return None

    def _known_column(self, field: pa.Field, values: pa.Array, old_sql: str, discard: Any) -> pa.Array:
        import pyarrow.compute as pc
        old, new = sql_kind(old_sql), arrow_kind(field.type)
        target = arrow_type_for(old)
        if fits(old, new):  # another family (an integer into a DOUBLE column) is converted here, not by each warehouse
            return _cast_all(values, target) if target is not None and new.family not in ("null", old.family) else values
        whole = _cast_whole(values, target)
        if whole is not None:
            return whole  # every value converts (2.0 into BIGINT, say): the column holds them as it is
        policy = self.contract.data_type
        if policy == "evolve" and widened_type(self.backend, old, new) is not None:
            return values  # the load widens the column
        converted, failed = _cast_each(values, target)
        if converted is None or failed is None:  # no conversion at all: every value is non-conforming
            failed = pc.is_valid(values)
            converted = pa.nulls(len(values), target or field.type)
        bad = int(pc.sum(failed).as_py() or 0)
        if not bad:
            return converted  # every value converts: the column holds them as it is
        what = f"{field.name!r}: {field.type} value does not fit the column's type {old_sql}"
        if policy in ("evolve", "freeze"):
            raise ContractBreach(self._type_error(field, old_sql, old, new, bad))
        if policy == "discard_row":
            discard(failed, f"schema contract: {what} ({KEY}.data_type is discard_row)")
        else:
            self.values_discarded[f"{what}: value dropped ({KEY}.data_type is discard_value)"] += bad
        return converted  # a value that did not convert is empty

    def _type_error(self, field: pa.Field, old_sql: str, old: Kind, new: Kind, bad: int) -> str:
        policy = self.contract.data_type
        head = (f"{self.table} column {field.name!r} is {old_sql} but the source now sends {field.type} values "
                f"({bad} do not fit)")
        if policy == "freeze":
            why = f"{KEY}.data_type is 'freeze'"
            fix = f"set {KEY}.data_type to 'evolve' to widen the column where {self.backend} can"
        else:
            why = f"{self.backend} cannot widen {old_sql} ({old.family}) to hold {new.family} values in place"
            fix = f"change the column by hand (ALTER TABLE {self.table} ...) and in the target, or convert the values at the source"
        return (f"{head}; {why}, so nothing was loaded. {fix[0].upper()}{fix[1:]}, or set {KEY}.data_type to 'discard_row' "
                "or 'discard_value' to load the records without those values; the window stays to be resumed")

    def details(self) -> dict[str, Any]:
        """What the transfer's drive row records about the contract: rows and values discarded."""
        out: dict[str, Any] = {}
        if self.values_discarded or self.rows_discarded:
            out["schema_discards"] = {"rows": dict(self.rows_discarded), "values": dict(self.values_discarded)}
        return out


def _cast_all(values: pa.Array, target: pa.DataType) -> pa.Array:
    import pyarrow.compute as pc
    try:
        return pc.cast(values, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return values  # left to the warehouse, as before the contract


def _cast_whole(values: pa.Array, target: pa.DataType | None) -> pa.Array | None:
    """``values`` as ``target`` when every one converts without loss, else None."""
    import pyarrow.compute as pc
    if target is None:
        return None
    try:
        return pc.cast(values, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _cast_each(values: pa.Array, target: pa.DataType | None) -> tuple[pa.Array | None, pa.Array | None]:
    """(converted, failed mask); (None, None) when the types do not convert at all."""
    import pyarrow.compute as pc
    if target is None:
        return None, None
    try:
        return pc.cast(values, target, safe=True), pa.array([False] * len(values))
    except pa.ArrowNotImplementedError:
        return None, None
    except pa.ArrowInvalid:
        pass
    out, failed = [], []
    for value in values:
        try:
            out.append(pc.cast(pa.array([value.as_py()], type=values.type), target, safe=True)[0].as_py())
            failed.append(False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out.append(None)
            failed.append(True)
    return pa.array(out, type=target), pa.array(failed)


def schema_lines(phases: Mapping[str, Any]) -> list[str]:
    """What ``drivetrain show`` prints about a run's schema: each change, each discard count.

    ``phases`` maps phase name -> its state (``phase_specific_details``), as a RunRecord holds them.
    """
    lines = []
    for name, state in phases.items():
        details = getattr(state, "phase_specific_details", None) or {}
        for c in details.get("schema_changes") or ():
            types = f"{c['old_type']} -> {c['new_type']}" if "old_type" in c else c.get("new_type", "")
            lines.append(f"schema change ({name}): {c['table']} column {c['column']!r} {c['change']} {types}".rstrip())
        discards = details.get("schema_discards") or {}
        lines += [f"schema contract ({name}): {n} record(s) rejected: {why}" for why, n in (discards.get("rows") or {}).items()]
        lines += [f"schema contract ({name}): {n} value(s) dropped: {why}" for why, n in (discards.get("values") or {}).items()]
    return lines


def declared_type_note(contract: SchemaContract, backend: str, declared: str, actual_sql: str) -> str | None:
    """Why a declared type the table's column does not hold is no problem under ``contract``, or None.

    For pre-validation: ``evolve`` widens the column on the next load where ``backend`` can, and
    the discard policies drop the values that do not fit.
    """
    from drivetrain.validation import ARROW_TYPES

    arrow = ARROW_TYPES.get(declared)
    if arrow is None:
        return None
    policy = contract.data_type
    if policy == "evolve" and widened_type(backend, sql_kind(actual_sql), arrow_kind(arrow)) is not None:
        return f"the next load widens it ({KEY}.data_type is evolve)"
    if policy in ("discard_row", "discard_value"):
        return f"values it cannot hold are discarded ({KEY}.data_type is {policy})"
    return None


def missing_column_note(contract: SchemaContract) -> str | None:
    """Why a declared column the target lacks is no problem under ``contract`` (evolve adds it), or None."""
    if contract.columns == "evolve":
        return f"the stage-to-target transfer adds it ({KEY}.columns is evolve)"
    return None
