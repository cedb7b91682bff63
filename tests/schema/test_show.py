"""``drivetrain show`` prints the schema changes and discards a run recorded."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli, cli  # noqa: F401 - fixtures

from .scenario import Lab, records
from .test_policies import balanced, history, with_note


def test_show_prints_each_change_and_each_discard_count(tmp_path: Path, cli: Cli) -> None:  # noqa: F811
    lab = Lab(tmp_path / "lab", contract={"columns": "discard_value", "data_type": "evolve"})
    history(lab)
    record = lab.run(2, records(2, note=with_note, age=lambda k: k + 0.5))
    balanced(record)

    shown = cli("show", record.pipeline_id, "--dir", str(lab.root))

    assert shown.returncode == 0, shown
    lines = shown.stdout.splitlines()
    assert "schema change (source_to_stage_transfer): main.stg_tests column 'age' widened BIGINT -> DOUBLE" in lines
    assert not any(line.startswith("schema change (stage_to_target_transfer)") for line in lines)  # row numbers pending
    assert "schema change (publish): main.tests column 'age' widened BIGINT -> DOUBLE" in lines
    assert any(line.startswith("schema contract (source_to_stage_transfer): 4 value(s) dropped: new column 'note'")
               for line in lines), shown.stdout
