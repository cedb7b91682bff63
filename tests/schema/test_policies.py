"""Each schema-contract policy, with the source changing mid-history, on DuckDB and on Snowflake (fakesnow).

Windows 0 and 1 load with the first schema; window 2's records carry a new key (or a value of a
wider type). What reaches stage, pending and target, what the drive row records, and whether the
audit still balances are checked through the pipeline's own tables and the drive table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from drivetrain import RunStatus
from drivetrain.record import RunRecord

from .scenario import Lab, StoppedBeforePublish, details, records

KEY = "stage_system.schema_contract"


def history(lab: Lab) -> None:
    """Windows 0 and 1 with the first schema (test_id, age, reported_at)."""
    for i in (0, 1):
        assert lab.run(i, records(i)).pipeline_status is RunStatus.SUCCESS


def balanced(record: RunRecord) -> None:
    """The run passed its audit and every source record is in the stage or rejected."""
    assert record.pipeline_status is RunStatus.SUCCESS, record.phases
    audit = details(record, "audit")
    s2s = details(record, "source_to_stage_transfer")
    assert audit["source_count"] == audit["stage_count"] + s2s["records_failed"]


def lower(columns: dict[str, str]) -> set[str]:
    return {c.lower() for c in columns}


def with_note(k: int) -> str | None:
    return f"note {k}" if k % 3 == 0 else None  # records 0, 3, 6, 9 carry it: 4 of 10


@pytest.mark.parametrize("arrow", [False, True], ids=["push-down", "arrow"])
def test_evolve_adds_a_new_column_to_stage_pending_and_target(make_lab: Callable[..., Lab], arrow: bool) -> None:
    lab = make_lab(arrow=arrow)
    history(lab)

    record = lab.run(2, records(2, note=with_note))

    balanced(record)
    # the push-down keeps only the kept stage rows' numbers pending: publish copies from the stage
    for which in ("stage", "pending", "target") if arrow else ("stage", "target"):
        assert "note" in lower(lab.columns(which)), which
    assert [r.get("note") for r in lab.rows(2)] == [with_note(k) for k in range(10)]
    assert all(r.get("note") is None for r in lab.rows(0))  # older windows: the column is empty
    phases = ("source_to_stage_transfer", "stage_to_target_transfer", "publish") if arrow else ("source_to_stage_transfer", "publish")
    changes = {phase: [(c["column"].lower(), c["change"]) for c in details(record, phase).get("schema_changes", [])]
               for phase in phases}
    assert changes == {phase: [("note", "added")] for phase in changes}
    if arrow:
        assert "tests__pending" in details(record, "stage_to_target_transfer")["schema_changes"][0]["table"].lower()
    assert lower(lab.columns("target")) >= {"test_id", "age", "reported_at", "note"}


def test_evolve_keeps_the_lineage_columns_of_the_target(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(keys=True)
    history(lab)
    with lab.pipeline() as p:
        lineage_before = {c: t for c, t in p.target().columns().items() if c.lower().startswith("_drivetrain_")}

    balanced(lab.run(2, records(2, note=with_note)))

    with lab.pipeline() as p:
        lineage_after = {c: t for c, t in p.target().columns().items() if c.lower().startswith("_drivetrain_")}
    assert lineage_after == lineage_before


def test_freeze_fails_naming_the_column_and_the_key_and_writes_nothing(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(contract={"columns": "freeze"})
    history(lab)
    stage_before, target_before = lab.columns("stage"), lab.columns("target")

    failed = lab.run(2, records(2, note=with_note))

    assert failed.pipeline_status is RunStatus.FAILED and failed.phase_failed == "source_to_stage_transfer"
    message = failed.phases["source_to_stage_transfer"].error_message or ""
    assert "'note'" in message and f"{KEY}.columns" in message and "'evolve'" in message
    assert lab.columns("stage") == stage_before and lab.columns("target") == target_before
    assert lab.rows(2, "stage") == [] and lab.rows(2) == []

    lab.set_contract({"columns": "evolve"})  # what the message says to do
    resumed = lab.run(2)

    balanced(resumed)
    assert [r.get("note") for r in lab.rows(2)] == [with_note(k) for k in range(10)]


def test_discard_row_rejects_the_records_carrying_the_new_column(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(contract={"columns": "discard_row"})
    history(lab)

    record = lab.run(2, records(2, note=with_note))

    balanced(record)
    s2s = details(record, "source_to_stage_transfer")
    assert s2s["records_failed"] == 4 and s2s["rows_written"] == 6
    (reason, count), = s2s["reject_reasons"].items()
    assert count == 4 and "'note'" in reason and f"{KEY}.columns is discard_row" in reason
    assert s2s["schema_discards"]["rows"] == {reason: 4}
    assert "note" not in lower(lab.columns("stage")) and "note" not in lower(lab.columns("target"))
    assert [r["test_id"] for r in lab.rows(2)] == [f"T02{k:03d}" for k in range(10) if with_note(k) is None]
    with lab.pipeline() as p:
        rejects = p.stage().warehouse.count_window(p.stage().rejects, p.grid.window_starting(lab_hour(2)))
    assert rejects == 4


def test_discard_value_loads_every_record_without_the_new_column(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(contract="discard_value")
    history(lab)

    record = lab.run(2, records(2, note=with_note))

    balanced(record)
    s2s = details(record, "source_to_stage_transfer")
    assert s2s["records_failed"] == 0 and s2s["rows_written"] == 10
    (reason, count), = s2s["schema_discards"]["values"].items()
    assert count == 4 and "'note'" in reason
    assert "note" not in lower(lab.columns("target")) and len(lab.rows(2)) == 10


def lab_hour(i: int) -> Any:
    from .scenario import hour

    return hour(i)


@pytest.mark.parametrize("arrow", [False, True], ids=["push-down", "arrow"])
def test_a_window_pending_when_the_column_arrives_still_publishes(make_lab: Callable[..., Lab], arrow: bool) -> None:
    lab = make_lab(keys=True, arrow=arrow)
    history(lab)
    lab.phase_classes["publish"] = StoppedBeforePublish
    held = lab.run(3, records(3))
    assert held.phase_failed == "publish" and lab.pending_count(3) == 10 and lab.rows(3) == []

    lab.phase_classes.clear()
    balanced(lab.run(2, records(2, note=with_note)))  # the new column reaches pending and target
    resumed = lab.run(3)

    assert resumed.pipeline_status is RunStatus.SUCCESS
    assert resumed.phases["stage_to_target_transfer"].carried_from == held.pipeline_id  # resumed at publish
    assert details(resumed, "publish")["rows_published"] == 10
    assert [r.get("note") for r in lab.rows(3)] == [None] * 10
    assert lab.rows(3, "pending") == []
