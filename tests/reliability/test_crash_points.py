"""SIGKILL at the crash points that matter for each warehouse, then run again: 0 lost, 0 twice.

Each scenario: window A (day 1) has succeeded; a child process (child.py) runs window B (day 2,
whose stage cleaning archives and deletes day 1's stage rows) and is killed at one point. The
next run of B must end SUCCESS, the target hold each valid row once (old or new window, never
half of one), day 1's stage rows be archived once, and no run be left RUNNING.

Every scenario runs over the warehouses of tests/reliability/warehouses.py: DuckDB (stage,
target and drive table in files), PostgreSQL (a schema; the lease is an advisory lock the
server drops with the killed session) and Snowflake on fakesnow (a lease row whose holder
process is gone). tests/sdk/test_crash.py kills DuckDB before and after every phase; here are
the edges of a commit (inside the transaction, the window whole in the load table before it,
the instant after it returned but before the runner recorded it), the publish, the Arrow path
and runs killed while resuming a failed attempt. The server warehouses take the points that
differ per engine (push-down, Arrow, publish, lease) rather than the whole product;
tests/connectors/snowflake/test_crash.py adds Snowflake's own (the session a killed run left open).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from drivetrain import RunStatus
from tests.sdk.factory import DAY, expected_target
from tests.sdk.test_crash import WINDOW_A, WINDOW_B, rows

from .warehouses import WarehouseCase, make_case

CHILD = Path(__file__).with_name("child.py")

S2S, S2T, CLEAN = "source_to_stage_transfer", "stage_to_target_transfer", "stage_cleaning"

#: warehouse -> push-down path points (stage and target in one warehouse: SQL moves the window).
POINTS = {
    "duckdb": [f"loaded:{S2S}", f"committed:{S2S}", f"commit:{S2T}", f"committed:{S2T}", "after:audit", "commit:publish",
               "committed:publish", f"committed:{CLEAN}", "batch:0", "batch:6"],  # S2T writes pending row numbers
    "postgres": ["batch:1", f"loaded:{S2S}", f"commit:{S2S}", f"commit:{S2T}", f"committed:{S2T}", "after:audit",
                 f"commit:{CLEAN}", "commit:publish", "committed:publish"],
    # the other points are in tests/connectors/snowflake/test_crash.py
    "snowflake": [f"loaded:{S2S}", "commit:publish", "committed:publish"],
    # DuckDB's stage and target with a SQLite drive table: the kills between a commit and the drive write recording it
    "sqlite": [f"committed:{S2S}", f"committed:{S2T}", f"committed:{CLEAN}"],
}
#: warehouse -> Arrow path points (a transform() override moves stage to target in batches).
ARROW_POINTS = {
    "duckdb": [f"loaded:{S2S}", f"committed:{S2T}"],
    "postgres": ["s2t_batch:0", f"commit:{S2T}", f"committed:{S2T}"],
    "snowflake": [],  # fakesnow is slow: its own file kills the Arrow path twice
    "sqlite": [],  # the Arrow path writes the drive table as the push-down path does
}
#: warehouse -> (phase that fails first, point where the resuming attempt is killed)
RESUMED = {
    "duckdb": [(S2T, f"before:{S2T}"), (S2T, f"committed:{S2T}"), (CLEAN, f"committed:{CLEAN}")],
    "postgres": [(S2T, f"committed:{S2T}")],
    "snowflake": [(S2T, f"committed:{S2T}")],
    "sqlite": [(S2T, f"committed:{S2T}")],
}


def cases(table: dict[str, list]) -> list:  # type: ignore[type-arg]
    return [pytest.param(name, point, id=f"{name}-{point}") for name, points in table.items() for point in points]


@pytest.fixture
def case(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, warehouse: str) -> WarehouseCase:
    return make_case(warehouse, request, monkeypatch)


def prepare(case: WarehouseCase, tmp_path: Path) -> Path:
    """Window A loaded; day 2's run will archive and delete day 1's stage rows."""
    folder = case.folder(
        tmp_path / "crash", rows(),
        phases__stage_cleaning={"archive_location": "archive", "delete_after_days": 0},
        phases__target_cleaning={"enabled": True},
        source_system__batch_size=20,
    )
    with case.pipeline(folder) as pipeline:
        record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.window_starting(WINDOW_A[0]))
    assert record.pipeline_status is RunStatus.SUCCESS, record.phase_failed
    return folder


def child(case: WarehouseCase, folder: Path, point: str, *extra: str, window: tuple = WINDOW_B) -> subprocess.CompletedProcess[str]:  # type: ignore[type-arg]
    """Run ``window`` (default B) in a child process that misbehaves at ``point`` (see child.py)."""
    cmd = [*case.prefix, str(CHILD), str(folder), window[0].isoformat(), "--point", point, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def assert_killed(done: subprocess.CompletedProcess[str], point: str) -> None:
    assert done.returncode == -9, f"expected SIGKILL at {point}: rc={done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"


def check_recovered(case: WarehouseCase, folder: Path, *, arrow: bool) -> None:
    done = child(case, folder, "none", *(["--arrow"] if arrow else []))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "SUCCESS", done.stdout[-3000:]
    data = rows()
    for window in (WINDOW_A, WINDOW_B):
        expected = expected_target(data, *window)
        assert case.target_rows(folder, *window) == sorted((k, v["result"]) for k, v in expected.items())
    total, distinct = case.target_counts(folder)
    assert total == distinct, f"{total - distinct} rows of the target are there twice"
    runs = case.all_runs(folder)
    assert "RUNNING" not in [r.pipeline_status.value for r in runs]
    assert case.stage_rows_of(folder, DAY.date()) == 0
    archived = sum(pq.ParquetFile(p).metadata.num_rows for p in (folder / "archive").rglob("*.parquet"))
    loaded_a = [r.phases[S2S].phase_specific_details["rows_written"] for r in runs
                if r.query_window_start_timestamp == WINDOW_A[0] and r.pipeline_status.value == "SUCCESS"]
    assert archived == int(loaded_a[0])
    assert case.load_tables_left(folder) == []


def statuses(case: WarehouseCase, folder: Path) -> list[str]:
    return [r.pipeline_status.value for r in case.runs(folder, WINDOW_B[0])]


@pytest.mark.slow
class TestKillAtCommitEdges:
    @pytest.mark.parametrize(("warehouse", "point"), cases(POINTS))
    def test_push_down_path_recovers(self, tmp_path: Path, case: WarehouseCase, point: str) -> None:
        folder = prepare(case, tmp_path)
        assert_killed(child(case, folder, point), point)
        check_recovered(case, folder, arrow=False)
        transfer = case.runs(folder, WINDOW_B[0])[-1].phases[S2T]
        if case.name == "duckdb":  # the gate kept the kept stage rows' numbers
            assert "pending_row_numbers" in transfer.phase_specific_details

    @pytest.mark.parametrize(("warehouse", "point"), cases(ARROW_POINTS))
    def test_arrow_path_recovers(self, tmp_path: Path, case: WarehouseCase, point: str) -> None:
        folder = prepare(case, tmp_path)
        assert_killed(child(case, folder, point, "--arrow"), point)
        check_recovered(case, folder, arrow=True)

    @pytest.mark.parametrize("warehouse", ["duckdb", "postgres", "sqlite"])
    def test_a_kill_after_the_target_commit_is_closed_as_failed_with_the_phase_still_running(
        self, tmp_path: Path, case: WarehouseCase
    ) -> None:
        folder = prepare(case, tmp_path)
        assert_killed(child(case, folder, f"committed:{S2T}"), "committed")
        check_recovered(case, folder, arrow=False)
        first = case.runs(folder, WINDOW_B[0])[0]
        assert first.phase_failed == S2T
        assert "stopped before finishing" in (first.phases[S2T].error_message or "")
        assert statuses(case, folder) == ["FAILED", "SUCCESS"]


@pytest.mark.slow
class TestKillWhileResuming:
    @pytest.mark.parametrize(("warehouse", "failing_point"), cases(RESUMED))
    def test_a_resuming_attempt_killed_is_resumed_again(self, tmp_path: Path, case: WarehouseCase, failing_point: tuple[str, str]) -> None:
        failing, point = failing_point
        folder = prepare(case, tmp_path)
        failed = child(case, folder, "none", "--fail", failing)
        assert failed.returncode == 0, failed.stderr[-3000:]
        assert json.loads(failed.stdout.strip().splitlines()[-1])["status"] == "FAILED"
        assert_killed(child(case, folder, point), point)
        check_recovered(case, folder, arrow=False)
        assert statuses(case, folder) == ["FAILED", "FAILED", "SUCCESS"]
        carried = case.runs(folder, WINDOW_B[0])[2].phases[S2S]
        assert carried.status.value == "SKIPPED", "the third attempt should carry the first attempt's load forward"
