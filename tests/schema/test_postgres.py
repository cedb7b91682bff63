"""The schema contract with PostgreSQL as stage, pending and target: a new column, a widened type, a discard."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.connectors.postgres.warehouse import env, new_schema
from tests.servers.postgres import PostgresServer

from .scenario import Lab, details, records
from .test_policies import balanced, history, with_note
from .test_types import age


@pytest.fixture
def lab(tmp_path: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Lab:
    for key, value in env(postgres).items():
        monkeypatch.setenv(key, value)
    return Lab(tmp_path / "lab", postgres=(postgres, new_schema(postgres)))


@pytest.mark.parametrize("arrow", [False, True], ids=["push-down", "arrow"])
def test_a_new_column_and_a_wider_type_reach_stage_pending_and_target(lab: Lab, arrow: bool) -> None:
    lab.arrow = arrow
    history(lab)

    record = lab.run(2, records(2, note=with_note, age=age))

    balanced(record)
    for which in ("stage", "pending", "target"):
        columns = lab.columns(which)
        assert columns["age"] == "double precision" and "note" in columns, (which, columns)
    assert [(r["age"], r["note"]) for r in lab.rows(2)] == [(age(k), with_note(k)) for k in range(10)]
    assert [r["age"] for r in lab.rows(0)] == list(range(10))
    widened = [c for c in details(record, "publish")["schema_changes"] if c["change"] == "widened"]
    assert widened == [{"table": widened[0]["table"], "column": "age", "change": "widened", "old_type": "bigint",
                        "new_type": "double precision"}]


def test_discard_row_on_postgres_rejects_and_balances(lab: Lab) -> None:
    lab.set_contract("discard_row")
    history(lab)

    record = lab.run(2, records(2, age=age))

    balanced(record)
    assert details(record, "source_to_stage_transfer")["records_failed"] == 3
    assert lab.columns("target")["age"] == "bigint" and len(lab.rows(2)) == 7
