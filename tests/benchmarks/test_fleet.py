"""The fleet benchmark end to end at its smoke size: it builds a fleet through the store's bulk
API, runs every measure in a process of its own next to its hand-written SQL, and writes the
report. Timings are not checked; that both sides found the same answer is."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import fleet, fleet_measures

SAME_ANSWER = ("status", "status_failed", "history", "show", "gaps", "gaps_one", "metrics", "next_window")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("fleet")
    args = fleet.parse_args(["--smoke", "--out", str(out), "--name", "smoke", "--python", sys.executable])
    return out, fleet.run(args, say=lambda text: None)


@pytest.mark.slow
class TestFleetSmoke:
    def test_the_history_is_a_fleet_with_retries_and_gaps(self, results: tuple[Path, dict[str, Any]]) -> None:
        meta = results[1]["meta"]
        assert (meta["pipelines"], meta["days"]) == (5, 3)
        assert meta["rows"] > 5 * 3 * 24 * 0.9  # about one run per window, plus retries, minus gaps

    @pytest.mark.parametrize("name", list(fleet_measures.MEASURES))
    def test_every_measure_runs_without_error(self, results: tuple[Path, dict[str, Any]], name: str) -> None:
        outcome = results[1]["results"][name]
        assert outcome["errors"] == []
        assert outcome["drivetrain"]["seconds"] > 0 and outcome["drivetrain"]["rss_mb"] > 0

    @pytest.mark.parametrize("name", SAME_ANSWER)
    def test_the_command_and_its_sql_give_the_same_answer(self, results: tuple[Path, dict[str, Any]], name: str) -> None:
        outcome = results[1]["results"][name]
        assert outcome["drivetrain"]["answer"] == outcome["sql"]["answer"]

    def test_the_report_is_written(self, results: tuple[Path, dict[str, Any]]) -> None:
        out = results[0]
        assert json.loads((out / "smoke.json").read_text())["meta"]["smoke"] is True
        text = (out / "smoke.md").read_text()
        assert text.startswith("# Fleet benchmark")
        assert all(f"| {name} |" in text for name in fleet_measures.MEASURES)


@pytest.mark.slow
def test_the_demo_benchmark_reads_every_windows_run_from_the_demos_drive_table(tmp_path: Path) -> None:
    from benchmarks import fleet_concurrency_demo

    out = fleet_concurrency_demo.main(["--rounds", "1", "--out", str(tmp_path)])
    ((wall, window),) = out.values()
    assert 0 < window < wall  # one window's run is a part of the demo
    table = (tmp_path / "fleet-concurrency-demo.md").read_text()
    assert "| this checkout |" in table
