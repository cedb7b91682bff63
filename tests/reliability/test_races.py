"""Same-window starts at the same instant, many times: exactly one contender runs each window.

Three processes race for each of 50 windows of one DuckDB pipeline; in each race one of them
(a different one each time) drives the window step by step as Airflow does, the others run it
in one go. tests/sdk/test_race.py does 20 races
of two fresh processes; here the contenders live for all the races, as scheduler workers do.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from drivetrain import Pipeline
from tests.sdk.factory import DAY, make_pipeline_dir, make_rows, query

from .race_worker import contend

RACES = 50
CONTENDERS = 3


Outcome = tuple[Path, dict[str, list[tuple[int, str, str]]]]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    folder = make_pipeline_dir(tmp_path_factory.mktemp("races") / "lab", make_rows(1500, hours=RACES, invalid_every=0))
    with Pipeline.load(folder) as pipeline:
        pipeline.drive_store().ensure()
    starts = [(DAY + timedelta(hours=i)).isoformat() for i in range(RACES)]
    ctx = multiprocessing.get_context("spawn")
    ready, tried, results = ctx.Barrier(CONTENDERS), ctx.Barrier(CONTENDERS), ctx.Queue()
    procs = [
        ctx.Process(target=contend, args=(str(folder), starts, i, CONTENDERS, ready, tried, results))
        for i in range(CONTENDERS)
    ]
    for proc in procs:
        proc.start()
    by_window: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    for _ in range(RACES * CONTENDERS):
        try:
            start, index, what, detail = results.get(timeout=300)
        except queue.Empty:
            break
        by_window[start].append((index, what, detail))
        if what == "error":
            break
    for proc in procs:
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
    return folder, by_window


@pytest.mark.slow
class TestSameWindowRaces:
    def test_no_contender_failed(self, outcome: Outcome) -> None:
        _, by_window = outcome
        errors = by_window.get(None, [])
        assert not errors, errors[0][2]
        assert len(by_window) == RACES

    def test_exactly_one_contender_ran_each_window_and_the_others_were_refused(self, outcome: Outcome) -> None:
        _, by_window = outcome
        for start, entries in by_window.items():
            kinds = sorted(what for _, what, _ in entries)
            assert kinds == ["ran", "refused", "refused"], f"window {start}: {entries}"

    def test_every_run_succeeded_and_each_window_has_one_drive_row(self, outcome: Outcome) -> None:
        folder, by_window = outcome
        assert {d for entries in by_window.values() for _, what, d in entries if what == "ran"} == {"SUCCESS"}
        rows = query(folder, "SELECT count(*), count(DISTINCT query_window_start_timestamp) FROM pipeline_execution_drive")
        assert rows == [(RACES, RACES)]

    def test_a_refusal_names_the_window_and_its_holder(self, outcome: Outcome) -> None:
        _, by_window = outcome
        refusals = [d for entries in by_window.values() for _, what, d in entries if what == "refused"]
        assert len(refusals) == RACES * (CONTENDERS - 1)
        assert all("not starting a second run" in d for d in refusals), refusals[:3]

    def test_every_window_was_leased_once(self, outcome: Outcome) -> None:
        folder, _ = outcome
        assert query(folder, "SELECT count(*), max(token) FROM drivetrain_leases") == [(RACES, 1)]
