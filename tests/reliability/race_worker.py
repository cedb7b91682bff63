"""One contender of the race scenarios (see test_races.py), run in its own process.

Every contender loops over the same windows. For each window all contenders pass a start
barrier together and try to run it at once. The winner holds the window (inside its
``drivetrain_run_started`` hook) until every loser has been refused, so a loser can never
arrive after the winner finished and legitimately run the window again.
"""

from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from drivetrain import LeaseError, Pipeline, hookimpl, parse_timestamp
from drivetrain.phase_names import PHASE_NAMES
from drivetrain.plugins import get_plugin_manager

TIMEOUT = 120.0


class HoldUntilAllTried:
    """The winner waits here, holding the window, until the losers have been refused."""

    def __init__(self, tried: threading.Barrier) -> None:
        self.tried = tried

    @hookimpl
    def drivetrain_run_started(self) -> None:
        self.tried.wait(timeout=TIMEOUT)


def run_steps(pipeline: Pipeline, window: Any) -> str:
    """Drive the window step by step, as the Airflow operator does."""
    record = pipeline.runner().start(window)
    for name in PHASE_NAMES:
        pipeline.runner().run_phase(record.pipeline_id, name)
    return pipeline.runner().finish(record.pipeline_id).pipeline_status.value


def contend(folder: str, starts: list[str], index: int, contenders: int, ready: Any, tried: Any, results: Any) -> None:
    """Race for every window; put (window, contender, outcome, detail) on ``results``.

    In race ``n`` the contender with ``index == n % contenders`` drives the window step by step.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    get_plugin_manager().register(HoldUntilAllTried(tried))
    pipeline = Pipeline.load(folder)
    try:
        for n, start in enumerate(starts):
            steps = n % contenders == index
            window = pipeline.grid.window_starting(parse_timestamp(start))
            ready.wait(timeout=TIMEOUT)
            try:
                status = run_steps(pipeline, window) if steps else pipeline.runner().run(window).pipeline_status.value
                results.put((start, index, "ran", status))
            except LeaseError as exc:
                tried.wait(timeout=TIMEOUT)
                results.put((start, index, "refused", str(exc)))
    except BaseException:  # noqa: BLE001 - report it to the test, which fails with it
        results.put((None, index, "error", traceback.format_exc()))
        ready.abort()
        tried.abort()
    finally:
        pipeline.close()
