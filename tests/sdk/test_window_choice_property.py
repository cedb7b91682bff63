"""Property: whatever runs happened (plain, --window-start, ranges, failures, partial runs,
killed and live runs) at whatever times, a plain run never leaves a window behind.

The drive store is the real DuckDB one; rows are written as the runner writes them (status,
start time, lease holder), so what is tested is the window choice read from the drive table:

* while an ended window since start_date has no complete success, a plain run takes one of
  them (a failed or dead one first, else the oldest), never a complete or a live one;
* when there is none, a plain run has nothing to do;
* plain runs that succeed complete every ended window, one per run.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain import Pipeline, RunStatus
from drivetrain.record import RunRecord
from drivetrain.window import Window

from .factory import DAY, make_pipeline_dir

HOUR = timedelta(hours=1)
WINDOWS = 12
DONE = (RunStatus.SUCCESS, RunStatus.SKIPPED)

tick = st.tuples(st.just("tick"), st.integers(0, 3))
plain = st.tuples(st.just("plain"), st.sampled_from([RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.SKIPPED]))
explicit = st.tuples(st.just("window"), st.integers(0, WINDOWS - 1), st.sampled_from([RunStatus.SUCCESS, RunStatus.FAILED]), st.booleans())
ranged = st.tuples(st.just("range"), st.integers(0, WINDOWS - 1), st.integers(0, 4), st.integers(0, 5))
killed = st.tuples(st.just("kill"), st.integers(0, WINDOWS - 1))
live = st.tuples(st.just("live"), st.integers(0, WINDOWS - 1))
steps = st.lists(st.one_of(tick, plain, explicit, ranged, killed, live), max_size=14)


class Model:
    """The drive table as written, and what a plain run may take (computed independently)."""

    def __init__(self, pipeline: Pipeline, now: datetime) -> None:
        self.pipeline = pipeline
        self.store = pipeline.drive_store()
        self.now = now
        self.rows: list[tuple[int, RunStatus, datetime]] = []
        self.live: dict[int, object] = {}
        self.count = 0

    def window(self, i: int) -> Window:
        return self.pipeline.grid.window_starting(DAY + i * HOUR)

    def write(self, i: int, status: RunStatus, holder: str = "elsewhere:1:gone") -> None:
        w, self.count = self.window(i), self.count + 1
        self.store.insert(RunRecord(
            pipeline_id=f"lab_{i}_{self.count}", pipeline_name="lab", pipeline_status=status,
            pipeline_start_timestamp=self.now, query_window_start_timestamp=w.start, query_window_end_timestamp=w.end,
            target_date=w.target_date, query_window_duration="1h", lease_holder=holder,
            pipeline_end_timestamp=None if status is RunStatus.RUNNING else self.now,
        ))
        self.rows.append((i, status, self.now))

    def ended(self, i: int) -> bool:
        return self.window(i).end <= self.now

    def complete(self, i: int) -> bool:
        return any(j == i and s in DONE and t >= self.window(i).end for j, s, t in self.rows)

    def incomplete(self) -> list[int]:
        """Ended windows with no complete success that no live process runs, oldest first."""
        return [i for i in range(WINDOWS + 16) if self.ended(i) and not self.complete(i) and i not in self.live]

    def urgent(self) -> list[int]:
        """Of those, the ones with a failed attempt or a dead RUNNING one."""
        return [i for i in self.incomplete() if any(j == i and s in (RunStatus.FAILED, RunStatus.RUNNING) for j, s, _ in self.rows)]

    def choice(self) -> int | None:
        w = self.pipeline.runner().next_window(now=self.now)
        return None if w is None else int((w.start - DAY) / HOUR)

    def check(self) -> int | None:
        chosen = self.choice()
        incomplete, urgent = self.incomplete(), self.urgent()
        if not incomplete:
            assert chosen is None, (chosen, self.rows)
        else:
            expected = urgent[0] if urgent else incomplete[0]
            assert chosen == expected, (chosen, expected, incomplete, urgent, self.rows)
        return chosen

    def apply(self, step: tuple) -> None:
        kind = step[0]
        if kind == "tick":
            self.now += step[1] * HOUR
        elif kind == "plain":
            chosen = self.check()
            if chosen is not None:
                self.write(chosen, step[1])
        elif kind == "window":
            _, i, status, partial = step
            if (self.ended(i) or partial) and self.window(i).start < self.now and i not in self.live:
                self.write(i, status)
        elif kind == "range":
            _, first, length, fail_at = step
            for n, i in enumerate(range(first, first + length)):
                if not self.ended(i) or i in self.live:
                    break
                self.write(i, RunStatus.FAILED if n == fail_at else RunStatus.SUCCESS)
                if n == fail_at:
                    break
        elif kind == "kill":
            if self.ended(step[1]) and step[1] not in self.live:
                self.write(step[1], RunStatus.RUNNING)
        elif kind == "live":
            i = step[1]
            if self.ended(i) and i not in self.live and not self.complete(i):
                w, holder = self.window(i), f"live-{i}"
                self.live[i] = self.store.acquire_lease("lab", w.start, w.end, holder, 600)
                self.write(i, RunStatus.RUNNING, holder=holder)

    def finish(self) -> None:
        """Live runs end (their processes stop); plain runs then complete every ended window."""
        for lease in self.live.values():
            self.store.release_lease(lease)  # type: ignore[arg-type]
        self.live.clear()
        for _ in range(len(self.incomplete())):
            chosen = self.check()
            assert chosen is not None
            self.write(chosen, RunStatus.SUCCESS)
        assert self.check() is None
        assert all(self.complete(i) for i in range(WINDOWS + 16) if self.ended(i))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=st.integers(0, 6), ops=steps)
def test_a_plain_run_never_leaves_a_window_behind(start: int, ops: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_pipeline_dir(Path(tmp) / "lab", [], dag_schedule__catchup=True)
        with Pipeline.load(folder) as pipeline, pipeline.keep_open():
            model = Model(pipeline, DAY + start * HOUR + timedelta(minutes=30))
            for op in ops:
                model.apply(op)
                model.check()
            model.finish()
