"""Same-window starts at the same instant, many times: exactly one contender runs each window.

Three processes race for each of 50 windows of one pipeline; in each race one of them (a
different one each time) drives the window step by step as Airflow does, the others run it in
one go. The races run with the drive table in DuckDB (a file lock per window) and in PostgreSQL
(an advisory lock per window, and for the step-by-step driver the lease row between its steps),
and with DuckDB's stage and target beside a SQLite drive table (a file lock per window, as DuckDB);
see tests/reliability/warehouses.py. tests/sdk/test_race.py does 20 races of two fresh
processes; here the contenders live for all the races, as scheduler workers do. Snowflake's
race is tests/connectors/snowflake/test_race.py (fakesnow is too slow for 150 runs).
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.sdk.factory import DAY, make_rows

from .race_worker import contend
from .warehouses import WarehouseCase, make_case

RACES = 50
CONTENDERS = 3


Outcome = tuple[WarehouseCase, Path, dict[str, list[tuple[int, str, str]]]]


@pytest.fixture(scope="module", params=["duckdb", "postgres", "sqlite"])
def outcome(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    with pytest.MonkeyPatch.context() as monkeypatch:  # the credentials, inherited by the contenders
        case = make_case(request.param, request, monkeypatch)
        folder = case.folder(tmp_path_factory.mktemp("races") / "lab", make_rows(1500, hours=RACES, invalid_every=0))
        with case.pipeline(folder) as pipeline:
            pipeline.drive_store().ensure()
        yield case, folder, race_all(folder)


def race_all(folder: Path) -> dict[str, list[tuple[int, str, str]]]:
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
    return by_window


@pytest.mark.slow
@pytest.mark.timeout(900)  # the 150 runs of the module's fixture count against its first test (minutes on a loaded machine)
class TestSameWindowRaces:
    def test_no_contender_failed(self, outcome: Outcome) -> None:
        *_, by_window = outcome
        errors = by_window.get(None, [])
        assert not errors, errors[0][2]
        assert len(by_window) == RACES

    def test_exactly_one_contender_ran_each_window_and_the_others_were_refused(self, outcome: Outcome) -> None:
        *_, by_window = outcome
        for start, entries in by_window.items():
            kinds = sorted(what for _, what, _ in entries)
            assert kinds == ["ran", "refused", "refused"], f"window {start}: {entries}"

    def test_every_run_succeeded_and_each_window_has_one_drive_row(self, outcome: Outcome) -> None:
        case, folder, by_window = outcome
        assert {d for entries in by_window.values() for _, what, d in entries if what == "ran"} == {"SUCCESS"}
        runs = case.all_runs(folder)
        assert (len(runs), len({r.query_window_start_timestamp for r in runs})) == (RACES, RACES)

    def test_a_refusal_names_the_window_and_its_holder(self, outcome: Outcome) -> None:
        *_, by_window = outcome
        refusals = [d for entries in by_window.values() for _, what, d in entries if what == "refused"]
        assert len(refusals) == RACES * (CONTENDERS - 1)
        assert all("not starting a second run" in d for d in refusals), refusals[:3]

    def test_every_window_was_leased_once(self, outcome: Outcome) -> None:
        case, folder, _ = outcome
        with case.pipeline(folder) as pipeline:
            store = pipeline.drive_store()
            leases = [store.current_lease(pipeline.name, DAY + timedelta(hours=i)) for i in range(RACES)]
        assert [lease.token if lease else None for lease in leases] == [1] * RACES
