"""Pre-validation's structural checks: the stage can be written, and the stage and target
tables match the columns declared in ``stage_system.columns``.

Each check becomes one entry of the phase's ``validation_checks`` details: ``PASSED``,
``NOTE`` (nothing wrong, something to know: a table the first load creates, a column the next
load adds) or ``FAILED``. Every failure is named by system, table and column; all failures
are raised together, so one run shows everything to fix.

What fails:

* the stage cannot be written (the warehouse tried a write and rolled it back);
* a declared column exists in a table with a type its values cannot be stored in
  (a ``timestamp`` column that is ``VARCHAR``, an ``integer`` that is ``BOOLEAN``...);
* an existing target lacks a declared column (after ``target_system.rename``) and
  ``stage_system.schema_contract.columns`` is not ``evolve`` (under ``evolve`` the transfer adds
  it: a note). The stage's load adds missing columns itself, so there it is a note. With a
  stage-to-target phase of your own, target mismatches are notes: your code decides the
  target's shape. A declared type the column cannot hold is a note too when the schema
  contract widens the column or discards the values that do not fit;
* the target table is missing although a successful run of this pipeline counted rows in it
  (someone dropped it: the drive table says those rows are there).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.phase_names import STAGE_TO_TARGET_TRANSFER, TARGET_COUNT
from drivetrain.record import RunStatus
from drivetrain.schema_contract import KEY, SchemaContract, declared_type_note, missing_column_note

from .transfers import StageToTargetTransfer

if TYPE_CHECKING:
    from drivetrain.tables import WarehouseTable

    from .base import PhaseContext



#: How many of the newest successful runs are searched for one that left rows in the target.
LOOK_BACK = 100

#: Declared type -> patterns of warehouse column types that can hold its values.
COMPATIBLE: dict[str, tuple[str, ...]] = {
    "string": (r"VARCHAR", r"TEXT", r"STRING", r"CHAR"),
    "json": (r"VARCHAR", r"TEXT", r"STRING", r"CHAR", r"JSON", r"VARIANT", r"OBJECT", r"ARRAY", r"STRUCT", r"MAP"),
    "integer": (r"INT", r"NUMBER", r"NUMERIC", r"DECIMAL", r"FIXED"),
    "float": (r"DOUBLE", r"FLOAT", r"REAL", r"NUMBER", r"NUMERIC", r"DECIMAL", r"FIXED"),
    "boolean": (r"BOOL",),
    "timestamp": (r"TIMESTAMP", r"DATETIME"),
    "date": (r"^DATE$", r"TIMESTAMP", r"DATETIME"),
}


def type_fits(declared: str, actual: str) -> bool:
    """Whether a warehouse column of type ``actual`` can hold values declared ``declared``."""
    patterns = COMPATIBLE.get(declared)
    if patterns is None:
        return True
    text = actual.upper().strip()
    if declared in ("string", "json") and text.startswith(("INT", "BIGINT", "BOOL", "TIMESTAMP", "DATE")):
        return False
    return any(re.search(p, text) for p in patterns)


def _check(name: str, status: str, system: str, table: Any, detail: str, column: str | None = None) -> dict[str, Any]:
    entry = {"check": name, "status": status, "system": system, "table": str(table), "detail": detail}
    if column is not None:
        entry["column"] = column
    return entry


def structure_checks(ctx: PhaseContext) -> list[dict[str, Any]]:
    """Run every structural check; raise PermanentError naming each failure.

    :returns: one entry per check (see the module doc).
    """
    pipeline = ctx.pipeline
    checks = [writable_check(pipeline.stage())]
    declared = [(c.name, c.type) for c in ctx.config.stage.columns]
    contract = SchemaContract.from_option(ctx.config.stage.get("schema_contract"))
    checks += column_checks("stage_system", pipeline.stage(), declared, required=True, adds_missing=True, contract=contract)
    rename = dict(ctx.config.target.get("rename") or {})
    default_move = pipeline.phase_class(STAGE_TO_TARGET_TRANSFER) is StageToTargetTransfer
    target = pipeline.target()
    if not target.exists():
        checks.append(missing_target_check(ctx, target))
    else:
        checks += column_checks("target_system", target, [(rename.get(n, n), t) for n, t in declared],
                                required=default_move, adds_missing=False, contract=contract)
    failed = [c for c in checks if c["status"] == "FAILED"]
    if failed:
        raise PermanentError("pre-validation: " + "; ".join(c["detail"] for c in failed))
    return checks


def writable_check(stage: WarehouseTable) -> dict[str, Any]:
    """The stage warehouse tries a write it rolls back (see ``Warehouse.write_problem``)."""
    where = f"stage_system table {stage.ref} ({stage.describe()})"
    problem = stage.write_problem()
    if problem is None:
        return _check("stage_writable", "PASSED", "stage_system", stage.ref, f"{where}: writable (a write was tried and rolled back)")
    if problem.startswith("not checked"):
        return _check("stage_writable", "NOTE", "stage_system", stage.ref, f"{where}: {problem}")
    return _check("stage_writable", "FAILED", "stage_system", stage.ref, f"{where} cannot be written: {problem}")


def column_checks(system: str, table: WarehouseTable, declared: list[tuple[str, str]], *, required: bool,
                  adds_missing: bool, contract: SchemaContract | None = None) -> list[dict[str, Any]]:
    """Each declared column against the table's columns (names compared without case).

    :param required: a mismatch fails (else it is a note: a user's own phase fills the table).
    :param adds_missing: the load adds a missing column (the stage's does; the target's
        push-down names its columns and needs them there).
    """
    columns = {name.lower(): (name, kind) for name, kind in table.columns().items()}
    where = f"{system} table {table.ref}"
    if not columns:
        return [_check(f"{system}_structure", "NOTE", system, table.ref, f"{where} does not exist yet; the first load creates it")]
    out = []
    for name, declared_type in declared:
        found = columns.get(name.lower())
        if found is None and adds_missing:
            out.append(_check(f"{system}_column", "NOTE", system, table.ref,
                              f"{where} has no column {name!r} (declared {declared_type}); the next load adds it", name))
        elif found is None and contract is not None and (note := missing_column_note(contract)):
            out.append(_check(f"{system}_column", "NOTE", system, table.ref,
                              f"{where} has no column {name!r} (declared {declared_type}); {note}", name))
        elif found is None:
            out.append(_check(f"{system}_column", "FAILED" if required else "NOTE", system, table.ref,
                              f"{where} has no column {name!r} (declared {declared_type} in stage_system.columns); "
                              "add it to the table, or map it elsewhere with target_system.rename"
                              + (f", or set {KEY}.columns to 'evolve' (now {contract.columns!r}) to have it added"
                                 if contract is not None else ""), name))
        elif not type_fits(declared_type, found[1]) and contract is not None and (
                note := declared_type_note(contract, table.warehouse_type, declared_type, found[1])):
            out.append(_check(f"{system}_column", "NOTE", system, table.ref,
                              f"{where} column {found[0]!r} is {found[1]} but stage_system.columns declares it {declared_type}; "
                              f"{note}", name))
        elif not type_fits(declared_type, found[1]):
            status = "FAILED" if required else "NOTE"
            out.append(_check(f"{system}_column", status, system, table.ref,
                              f"{where} column {found[0]!r} is {found[1]} but stage_system.columns declares it {declared_type}; "
                              "change the column's type in the warehouse or the declared type", name))
        else:
            out.append(_check(f"{system}_column", "PASSED", system, table.ref, f"{where} column {found[0]!r} is {found[1]}", name))
    return out


def missing_target_check(ctx: PhaseContext, target: WarehouseTable) -> dict[str, Any]:
    """A missing target is expected before the first load, and an error after one."""
    where = f"target_system table {target.ref} ({target.describe()})"
    successes = ctx.drive.history(ctx.pipeline.name, status=[RunStatus.SUCCESS], limit=LOOK_BACK) if ctx.drive else []
    loaded = [r for r in successes if r.phases[TARGET_COUNT].phase_specific_details.get("count")]
    if loaded:
        return _check("target_structure", "FAILED", "target_system", target.ref,
                      f"{where} does not exist, yet {loaded[0].pipeline_id} loaded a window into it; it was dropped or "
                      "renamed: restore it, or point target_system at where it is now")
    return _check("target_structure", "NOTE", "target_system", target.ref,
                  f"{where} does not exist yet; the first load creates it")
