"""The rules for how a run's row changes (drivetrain.transitions), alone and over random runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain import transitions
from drivetrain.phase_names import ALWAYS_RUN, PHASE_NAMES
from drivetrain.record import PhaseState, PhaseStatus, RunRecord, RunStatus
from drivetrain.results import PhaseResult

T0 = datetime(2025, 11, 15, tzinfo=UTC)
OUTCOMES = ("completed", "failed", "failed_but_continue", "ends_early", "carries", "raises")


def fresh(disabled: frozenset[str] = frozenset()) -> RunRecord:
    phases = {name: PhaseState(expected_run_duration="1m") for name in PHASE_NAMES}
    record = RunRecord(
        pipeline_id="lab_run1", pipeline_name="lab", pipeline_start_timestamp=T0,
        query_window_start_timestamp=T0, query_window_end_timestamp=T0 + timedelta(hours=1),
        target_date=date(2025, 11, 15), query_window_duration="1h", phases=phases,
        phases_pending=tuple(n for n in PHASE_NAMES if n not in disabled),
    )
    return transitions.skipped(record, transitions.disabled(sorted(disabled))) if disabled else record


def step(record: RunRecord, name: str, outcome: str, now: datetime) -> RunRecord:
    """What the runner does with one phase and its outcome, through the transitions only."""
    record = transitions.running(record, name, now)
    started = record.phases[name]
    result: PhaseResult | None = {
        "completed": PhaseResult(), "failed": PhaseResult(error_message="bad"),
        "failed_but_continue": PhaseResult(skip_dag_run=True), "ends_early": PhaseResult(skip_remaining=True),
        "carries": PhaseResult(), "raises": None,
    }[outcome]
    error = transitions.failure(result, "Boom: raised" if outcome == "raises" else None)
    record = transitions.finished(record, name, started, error=error, now=now + timedelta(seconds=1), attempt=0,
                                  details={"n": 1}, continue_on_failure=outcome == "failed_but_continue")
    if error is None and result is not None:
        if outcome == "carries":
            later = [p for p in PHASE_NAMES[PHASE_NAMES.index(name) + 1:][:2] if record.phases[p].status is PhaseStatus.PENDING]
            record = transitions.skipped(record, {p: PhaseState(status=PhaseStatus.SKIPPED, carried_from="lab_run0") for p in later})
        record = transitions.skipped(record, transitions.ended_early(record, name, result))
    return record


def close(record: RunRecord, now: datetime) -> RunRecord:
    """The runner's finalize: end what is RUNNING, fail the first phase never started, close."""
    for name in transitions.still_running(record):
        record = transitions.finished(record, name, record.phases[name], error="closed", now=now, attempt=0, details={},
                                      continue_on_failure=False)
    if record.phase_failed is None and record.phases_pending:
        name = record.phases_pending[0]
        record = transitions.finished(record, name, record.phases[name], error="not started", now=now, attempt=0,
                                      details={}, continue_on_failure=False)
    return transitions.closed(record, now)


def assert_consistent(record: RunRecord) -> None:
    status = {name: record.phases[name].status for name in PHASE_NAMES}
    assert list(record.phases_completed) == [n for n in PHASE_NAMES if status[n] is PhaseStatus.COMPLETED]
    assert list(record.phases_skipped) == [n for n in PHASE_NAMES if status[n] is PhaseStatus.SKIPPED]
    assert set(record.phases_pending) <= {n for n in PHASE_NAMES if status[n] in (PhaseStatus.PENDING, PhaseStatus.RUNNING)}
    assert not set(record.phases_pending) & set(record.phases_completed) | set(record.phases_skipped) & set(record.phases_pending)
    if record.phase_failed is not None:
        assert status[record.phase_failed] is PhaseStatus.FAILED
    for name in record.phases_skipped:
        assert record.phases[name].skip_reason or record.phases[name].carried_from
        assert record.phases[name].expected_run_duration == "1m"


@st.composite
def runs(draw: st.DrawFn) -> tuple[frozenset[str], list[str], int | None]:
    disabled = draw(st.frozensets(st.sampled_from([n for n in PHASE_NAMES if n not in ALWAYS_RUN])))
    outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=len(PHASE_NAMES), max_size=len(PHASE_NAMES)))
    stop_after = draw(st.none() | st.integers(0, len(PHASE_NAMES) - 1))  # the process stops there
    return disabled, outcomes, stop_after


class TestOverRandomRuns:
    @settings(max_examples=300, deadline=None)
    @given(runs())
    def test_any_sequence_of_phase_outcomes_gives_a_consistent_row(self, run: tuple[frozenset[str], list[str], int | None]) -> None:
        disabled, outcomes, stop_after = run
        record = fresh(disabled)
        now = T0
        for i, name in enumerate(PHASE_NAMES):
            if record.phase_failed or (stop_after is not None and i > stop_after):
                break
            if record.phases[name].status is not PhaseStatus.PENDING:
                continue
            now += timedelta(minutes=1)
            record = step(record, name, outcomes[i], now)
            assert_consistent(record)
        record = close(record, now + timedelta(minutes=1))
        assert_consistent(record)
        assert record.phases_pending == () or record.phase_failed is not None
        assert not transitions.still_running(record)
        if record.pipeline_status is RunStatus.SUCCESS:
            assert all(s.status in (PhaseStatus.COMPLETED, PhaseStatus.SKIPPED) for s in record.phases.values()
                       if s.status is not PhaseStatus.FAILED) and record.phase_failed is None
            assert set(record.phases_completed) | set(record.phases_skipped) | {
                n for n in PHASE_NAMES if record.phases[n].status is PhaseStatus.FAILED} == set(PHASE_NAMES)
        assert (record.pipeline_status is RunStatus.FAILED) == (record.phase_failed is not None)
        early = any((s.skip_reason or "").startswith(transitions.EARLY_END) for s in record.phases.values())
        assert (record.pipeline_status is RunStatus.SKIPPED) == (early and record.phase_failed is None)

    @settings(max_examples=200, deadline=None)
    @given(runs())
    def test_a_row_closed_by_a_later_run_names_the_phase_it_stopped_in(self, run: tuple[frozenset[str], list[str], int | None]) -> None:
        disabled, outcomes, stop_after = run
        record = fresh(disabled)
        now = T0
        for i, name in enumerate(PHASE_NAMES):
            if record.phase_failed or (stop_after is not None and i > stop_after):
                break
            if record.phases[name].status is PhaseStatus.PENDING:
                record = step(record, name, outcomes[i], now)
        closed = transitions.closed_record(record, "crash", now + timedelta(hours=1))
        assert closed.pipeline_status is RunStatus.FAILED and closed.phase_failed is not None
        assert closed.phases[closed.phase_failed].status is PhaseStatus.FAILED
        assert closed.phase_failed not in closed.phases_pending and closed.phase_failed not in closed.phases_completed


class TestRules:
    def test_a_row_started_by_a_clock_ahead_of_ours_is_closed_with_no_time_taken(self) -> None:
        """The process that took over a dead run's window reads its own clock: another machine's,
        or one stepped back, may be behind the start the dead run wrote."""
        record = transitions.running(fresh(), "source_count", T0)
        closed = transitions.closed_record(record, "crash", T0 - timedelta(seconds=3))
        assert closed.pipeline_status is RunStatus.FAILED and closed.pipeline_run_duration == "0s"
        started = record.phases["source_count"]
        ended = transitions.finished(record, "source_count", started, error=None, now=T0 - timedelta(seconds=1), attempt=0,
                                     details={}, continue_on_failure=False)
        assert ended.phases["source_count"].actual_run_duration == "0s"
        assert transitions.closed(ended, T0 - timedelta(seconds=1)).pipeline_run_duration == "0s"

    def test_a_failure_stops_the_run_only_the_first_time(self) -> None:
        record = fresh()
        for name in ("stale_pipeline_handling", "pre_validation"):
            record = transitions.finished(record, name, record.phases[name], error="bad", now=T0, attempt=0, details={},
                                          continue_on_failure=False)
        assert record.phase_failed == "stale_pipeline_handling"

    def test_a_failure_with_continue_on_failure_does_not_stop_the_run(self) -> None:
        record = transitions.finished(fresh(), "audit", PhaseState(), error="bad", now=T0, attempt=2, details={},
                                      continue_on_failure=True)
        assert record.phase_failed is None and record.phases["audit"].status is PhaseStatus.FAILED
        assert record.phases["audit"].retry_number == 2 and "audit" not in record.phases_pending

    def test_a_result_without_a_message_still_says_why_it_failed(self) -> None:
        assert transitions.failure(PhaseResult(skip_dag_run=True), None) == (
            "the phase reported failure (skip_dag_run) without a message")
        assert transitions.failure(PhaseResult(), None) is None
        assert transitions.failure(None, None) is not None

    def test_the_stored_error_is_redacted(self) -> None:
        from drivetrain.redaction import register_secret

        register_secret("hunter2-Transitions")
        record = transitions.finished(fresh(), "audit", PhaseState(), error="login failed: hunter2-Transitions", now=T0,
                                      attempt=0, details={}, continue_on_failure=False)
        assert "hunter2-Transitions" not in (record.phases["audit"].error_message or "")

    def test_ending_early_skips_only_the_later_pending_phases_and_the_run_ends_skipped(self) -> None:
        record = transitions.skipped(fresh(), transitions.disabled(["target_cleaning"]))
        record = transitions.finished(record, "source_count", PhaseState(), error=None, now=T0, attempt=0, details={},
                                      continue_on_failure=False)
        later = transitions.ended_early(record, "source_count", PhaseResult(skip_remaining=True, details={"note": "empty"}))
        assert list(later) == list(PHASE_NAMES[3:10])
        assert all(s.skip_reason == transitions.EARLY_END + "empty" for s in later.values())
        assert transitions.final_status(transitions.skipped(record, later)) is RunStatus.SKIPPED
