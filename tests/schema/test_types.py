"""A column whose values change type mid-history: widened, refused or discarded as the policy says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivetrain import RunStatus

from .scenario import Lab, details, records
from .test_policies import KEY, balanced, history


def age(k: int) -> float:
    return k + 0.5 if k % 4 == 1 else float(k)  # records 1, 5, 9 hold a fraction: 3 of 10 do not fit BIGINT


def duckdb_lab(tmp_path: Path, **options: object) -> Lab:
    return Lab(tmp_path / "lab", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("arrow", [False, True], ids=["push-down", "arrow"])
def test_evolve_widens_an_integer_column_to_double_in_stage_pending_and_target(tmp_path: Path, arrow: bool) -> None:
    lab = duckdb_lab(tmp_path, arrow=arrow)
    history(lab)

    record = lab.run(2, records(2, age=age))

    balanced(record)
    for which in ("stage", "pending", "target") if arrow else ("stage", "target"):  # push-down: row numbers pending
        assert lab.columns(which)["age"] == "DOUBLE", which
    assert [r["age"] for r in lab.rows(2)] == [age(k) for k in range(10)]
    assert [r["age"] for r in lab.rows(0)] == list(range(10))  # older windows keep their values
    pending = [("stage_to_target_transfer", "main.tests__pending")] if arrow else []
    for phase, table in (("source_to_stage_transfer", "main.stg_tests"), *pending, ("publish", "main.tests")):
        assert details(record, phase)["schema_changes"] == [
            {"table": table, "column": "age", "change": "widened", "old_type": "BIGINT", "new_type": "DOUBLE"}]


def test_values_that_fit_the_old_type_load_without_a_change(tmp_path: Path) -> None:
    lab = duckdb_lab(tmp_path, contract="freeze")
    history(lab)

    record = lab.run(2, records(2, age=lambda k: float(k)))  # 3.0 is the integer 3

    balanced(record)
    assert lab.columns("target")["age"] == "BIGINT" and [r["age"] for r in lab.rows(2)] == list(range(10))
    assert "schema_changes" not in details(record, "source_to_stage_transfer")


def test_freeze_fails_naming_column_types_and_key(tmp_path: Path) -> None:
    lab = duckdb_lab(tmp_path, contract={"data_type": "freeze"})
    history(lab)

    failed = lab.run(2, records(2, age=age))

    assert failed.phase_failed == "source_to_stage_transfer"
    message = failed.phases["source_to_stage_transfer"].error_message or ""
    assert "'age'" in message and "BIGINT" in message and "double" in message and f"{KEY}.data_type" in message
    assert lab.rows(2, "stage") == [] and lab.columns("stage")["age"] == "BIGINT"

    lab.set_contract({"data_type": "evolve"})
    balanced(lab.run(2))
    assert lab.columns("target")["age"] == "DOUBLE"


def test_discard_row_rejects_the_records_whose_value_does_not_fit(tmp_path: Path) -> None:
    lab = duckdb_lab(tmp_path, contract={"data_type": "discard_row"})
    history(lab)

    record = lab.run(2, records(2, age=age))

    balanced(record)
    s2s = details(record, "source_to_stage_transfer")
    assert s2s["records_failed"] == 3 and s2s["rows_written"] == 7
    (reason, count), = s2s["reject_reasons"].items()
    assert count == 3 and "'age'" in reason and "BIGINT" in reason
    assert [r["age"] for r in lab.rows(2)] == [k for k in range(10) if k % 4 != 1]
    assert lab.columns("target")["age"] == "BIGINT"


def test_discard_value_loads_the_records_with_the_value_empty(tmp_path: Path) -> None:
    lab = duckdb_lab(tmp_path, contract={"data_type": "discard_value"})
    history(lab)

    record = lab.run(2, records(2, age=age))

    balanced(record)
    s2s = details(record, "source_to_stage_transfer")
    assert s2s["rows_written"] == 10 and s2s["records_failed"] == 0
    assert list(s2s["schema_discards"]["values"].values()) == [3]
    assert [r["age"] for r in lab.rows(2)] == [None if k % 4 == 1 else k for k in range(10)]


def test_an_incompatible_type_fails_with_what_to_do_and_loads_nothing(tmp_path: Path) -> None:
    lab = duckdb_lab(tmp_path)
    history(lab)

    failed = lab.run(2, records(2, age=lambda k: f"about {k}"))

    message = failed.phases["source_to_stage_transfer"].error_message or ""
    assert failed.phase_failed == "source_to_stage_transfer"
    assert "'age'" in message and "BIGINT" in message and "cannot widen" in message and "discard_row" in message
    assert "ALTER TABLE main.stg_tests" in message  # the table named as it is spelled
    assert lab.rows(2, "stage") == []


@pytest.mark.slow  # fakesnow: ~40 s
def test_snowflake_cannot_widen_number_to_float_so_evolve_fails_and_discard_value_loads(
        tmp_path: Path, fakesnow_server: Any, database: str, sf_env: dict[str, str]) -> None:
    lab = Lab(tmp_path / "lab", snowflake=(fakesnow_server, database))
    history(lab)

    failed = lab.run(2, records(2, age=age))

    message = failed.phases["source_to_stage_transfer"].error_message or ""
    assert failed.pipeline_status is RunStatus.FAILED and "snowflake cannot widen NUMBER(38,0)" in message
    lab.set_contract({"data_type": "discard_value"})
    balanced(lab.run(2))
    assert [r["age"] for r in lab.rows(2)] == [None if k % 4 == 1 else k for k in range(10)]


def test_declared_columns_gain_a_column_and_a_wider_type_when_the_config_says_so(tmp_path: Path) -> None:
    lab = duckdb_lab(tmp_path, contract={"columns": "freeze"})
    declared = [{"name": "test_id", "type": "string", "required": True}, {"name": "age", "type": "integer"},
                {"name": "reported_at", "type": "timestamp", "required": True}]
    lab.config["stage_system"]["columns"] = declared
    lab.save()
    history(lab)
    assert "note" not in lab.columns("stage")
    lab.config["stage_system"]["columns"] = [*declared[:1], {"name": "age", "type": "float"}, *declared[2:],
                                             {"name": "note", "type": "string"}]
    lab.save()

    failed = lab.run(2, records(2, note="n", age=age))  # a declared column is a new column too: freeze refuses it

    assert failed.phase_failed == "pre_validation"  # before any data moves
    message = failed.phases["pre_validation"].error_message or ""
    assert "no column 'note'" in message and f"{KEY}.columns to 'evolve' (now 'freeze')" in message
    assert lab.rows(2, "stage") == []
    lab.set_contract("evolve")
    balanced(lab.run(2))
    target = lab.columns("target")
    assert target["age"] == "DOUBLE" and target["note"] == "VARCHAR"
    assert [(r["age"], r["note"]) for r in lab.rows(2)] == [(age(k), "n") for k in range(10)]
