"""The start-up benchmark end to end, one round: every command runs and the report is written.

Timings are not checked (speed is the benchmark's business); what is checked is that each
command ran on the demo pipeline, that its heavy imports were listed, and that the report
compares the run with the target.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import startup


@pytest.mark.slow
def test_one_round_times_every_command_and_writes_the_report(tmp_path: Path) -> None:
    assert startup.main(["--rounds", "1", "--quick", "--out", str(tmp_path), "--name", "smoke"]) == 0
    result = json.loads((tmp_path / "smoke.json").read_text())
    rows = {row["command"]: row for row in result["commands"]}
    assert set(rows) == {"python -c pass", 'python -c "import duckdb"', 'python -c "import drivetrain"',
                         "drivetrain --help", "drivetrain validate DEMO", "drivetrain status DEMO", startup.RUN}
    assert all(row["wall_median"] > 0 and row["cpu_median"] > 0 for row in rows.values())
    assert rows['python -c "import duckdb"']["heavy_modules"] == ["duckdb"]
    # jsonschema only when the config is not remembered as valid yet (the benchmark's rounds run warm)
    # the warm-up run left the files' ranges: the measured empty window parses no file and needs no pyarrow
    assert "duckdb" in rows[startup.RUN]["heavy_modules"] and "pyarrow" not in rows[startup.RUN]["heavy_modules"]
    assert rows['python -c "import drivetrain"']["heavy_modules"] == []
    text = (tmp_path / "smoke.md").read_text()
    assert text.startswith("# Start-up of the drivetrain command") and "against a target of 0.5 s" in text


@pytest.mark.slow
def test_the_breakdown_names_every_part_of_one_run(tmp_path: Path) -> None:
    from benchmarks import startup_breakdown

    assert startup_breakdown.main(["--runs", "1", "--quick", "--out", str(tmp_path), "--name", "smoke"]) == 0
    result = json.loads((tmp_path / "smoke.json").read_text())
    parts = {part["part"]: part for part in result["parts"]}
    phases = [name for name in parts if name.startswith("phase ")]
    assert phases[0] == "phase stale_pipeline_handling" and phases[-1] == "phase stage_cleaning" and len(phases) == 10
    assert any(name.startswith("of which drive-table writes") for name in parts)
    assert parts["total"]["wall_ms"] >= sum(p["wall_ms"] for n, p in parts.items() if n.startswith("phase "))
    assert "duckdb" in result["imports_ms"] and "pyarrow" not in result["imports_ms"]  # an empty window needs no Arrow
    assert (tmp_path / "smoke.md").read_text().startswith("# Where `drivetrain run` of an empty window")


@pytest.mark.slow
def test_the_read_commands_of_one_pipeline_run_on_a_small_fleet(tmp_path: Path) -> None:
    from benchmarks import startup_reads

    assert startup_reads.main(["--smoke", "--out", str(tmp_path), "--name", "smoke"]) == 0
    result = json.loads((tmp_path / "smoke.json").read_text())
    names = {row["command"] for row in result["commands"]}
    assert {"drivetrain history P", "drivetrain show RUN --pipeline P", "drivetrain status P"} <= names
    assert all(row["wall_median"] > 0 for row in result["commands"]) and result["query_seconds"] > 0
    assert "against a target of 0.3 s" in (tmp_path / "smoke.md").read_text()
