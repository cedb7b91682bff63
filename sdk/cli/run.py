"""``drivetrain run``: one window, the next due window, or a range of windows in order."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from drivetrain.drive import is_partial
from drivetrain.errors import LeaseError
from drivetrain.record import RunRecord, RunStatus

from ._output import EXIT_FAILED, EXIT_LOCKED, EXIT_USAGE, CliError, Output, output
from ._pipelines import opened, out_of_range, window_of, within_range
from ._progress import RunProgress
from ._records import outcome_text, window_label

if TYPE_CHECKING:
    from drivetrain.pipeline import Pipeline
    from drivetrain.window import Window


HELP = """Run windows of PIPELINE (a registered name or a folder holding config.json).

\b
Which windows:
  (nothing)                 the oldest FAILED window first (a run whose process died
                            counts as failed), else the oldest window since the
                            pipeline's beginning that no run has completed; so running
                            ahead (--window-start, --from) never leaves a window behind.
                            The beginning is dag_schedule.start_date with catchup: true,
                            else the oldest window the pipeline ever ran. Nothing when
                            every window that has ended is complete.
  --window-start TS         the window starting at TS (it must be on the pipeline's grid)
  --from TS --to TS         every window from TS up to TS, in order; stops at the
                            first failure (--to defaults to now)

A window that has not ended yet is refused (exit 2, saying when it ends) unless
--allow-partial is given: that run loads what exists so far and is recorded as
partial, and a plain run loads the window again once it has ended.

Timestamps are ISO 8601 (2025-11-15T10:00:00Z); without an offset, or as a plain
date, they are read in the pipeline's schedule timezone. A window that failed before
is resumed: phases the failed attempt completed are skipped.

\b
Exit status: 0 every run succeeded, or no window was due (a message says so);
1 a run ended FAILED; 2 bad usage or config, or a window that has not ended;
3 another process is running the window.
"""


@click.command("run", help=HELP)
@click.argument("pipeline")
@click.option("--window-start", "--window", "window_start", metavar="TS", help="Run the window that starts at TS.")
@click.option("--window-end", metavar="TS", help="Optional check: the window must end at TS.")
@click.option("--from", "range_from", metavar="TS", help="Run every window from TS (a backfill).")
@click.option("--to", "range_to", metavar="TS", help="...up to TS (exclusive). Default: now.")
@click.option("--only-gaps", is_flag=True, help="With --from: only the windows that never ran or never succeeded.")
@click.option("--allow-partial", is_flag=True,
              help="With --window-start or --from: also run a window that has not ended yet, recorded as partial; "
                   "a plain run completes it once it has ended.")
@click.option("--dry-run", is_flag=True, help="Print the plan (windows; phases to run or skip, and why); change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the drive-table rows (or the plan) as JSON.")
@click.option("--accept-shrink", is_flag=True,
              help="Let loads through that the shrink guard stops (a window reloaded with far fewer rows, "
                   "because the source really lost them).")
def run_command(pipeline: str, window_start: str | None, window_end: str | None, range_from: str | None,
                range_to: str | None, only_gaps: bool, allow_partial: bool, dry_run: bool, as_json: bool,
                accept_shrink: bool) -> None:
    out = output()
    if window_end and not window_start:
        raise click.UsageError("--window-end needs --window-start")
    if range_to and not range_from:
        raise click.UsageError("--to needs --from")
    if window_start and range_from:
        raise click.UsageError("give either --window-start or --from/--to, not both")
    if only_gaps and not range_from:
        raise click.UsageError("--only-gaps needs --from")
    if allow_partial and not (window_start or range_from):
        raise click.UsageError("--allow-partial needs --window-start or --from (a plain run only takes windows that have ended)")
    with opened(pipeline) as pipe:
        if accept_shrink:  # recorded in the run's config snapshot, like any setting
            pipe.config = pipe.config.with_overrides({"phases.stage_to_target_transfer.accept_shrink": True})
        windows = choose_windows(pipe, window_start, window_end, range_from, range_to, allow_partial=allow_partial)
        if windows is None:
            out.note(f"{pipe.name}: nothing to run: every window that has ended is complete, and the next one has not "
                     f"ended yet (now {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ})")
            if as_json:
                out.json([])
            return
        if not windows:
            raise CliError(f"{pipe.name}: the range holds no complete window", EXIT_USAGE)
        if only_gaps:
            from drivetrain.monitoring.cli import only_gaps as gaps_of

            windows = gaps_of(pipe, windows)
            if not windows:
                out.note(f"{pipe.name}: every window of the range already has a successful run, or one running now")
                if as_json:
                    out.json([])
                return
        if dry_run:
            print_plan(pipe, windows, out, as_json)
            return
        records = run_windows(pipe, windows, out, as_json, partial=allow_partial)
        if as_json:  # the rows as stored: the store stamps created_at and updated_at
            out.json([(pipe.drive_store().get(r.pipeline_id) or r).to_json() for r in records])
    if any(r.pipeline_status is RunStatus.FAILED for r in records):
        raise click.exceptions.Exit(EXIT_FAILED)


def parse(text: str, pipe: Pipeline, option: str) -> datetime:
    """Read a timestamp option; a local time the clocks skipped is refused, a repeated one noted.

    A plain date keeps the schedule's rule (midnight, or the first instant of a day whose
    midnight was skipped). A time of day without an offset that does not exist locally is an
    error (for --window-start it names the two nearest windows); one the clocks showed twice
    is read as the earlier instant, and a note says which and how to ask for the later one.
    """
    from drivetrain.window import parse_timestamp, wall_clock_kind

    zone = pipe.config.schedule.timezone
    try:
        instant = within_range(parse_timestamp(text, zone), option)
        local = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise CliError(f"{option}: {exc}", EXIT_USAGE) from exc
    except OverflowError as exc:  # past year 9999 once converted to UTC
        raise out_of_range(text, option) from exc
    if local.utcoffset() is not None or len(text.strip()) <= 10:  # an offset, or a plain date
        return instant
    kind = wall_clock_kind(local, zone)
    if kind == "skipped":
        nearest = _nearest_starts(pipe, instant) if option == "--window-start" else ""
        raise CliError(f"{option}: {text} does not exist in {zone}: the clocks skipped it "
                       f"(they jumped to {_local(instant, zone)}){nearest}", EXIT_USAGE)
    if kind == "repeated":
        later = local.replace(tzinfo=_zone_of(zone), fold=1).astimezone(UTC)
        output().note(f"{option}: {text} happened twice in {zone}; taking the first, {_local(instant, zone)}; "
                      f"write {_local(later, zone)} for the second")
    return instant


def _zone_of(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _local(instant: datetime, zone: str) -> str:
    return instant.astimezone(_zone_of(zone)).isoformat(timespec="minutes")


def _nearest_starts(pipe: Pipeline, jump: datetime) -> str:
    grid = pipe.grid
    window = grid.window_at(jump)
    before, after = (grid.previous(window).start, jump) if window.start == jump else (window.start, window.end)
    zone = pipe.config.schedule.timezone
    return (f"; the nearest windows start at {_local(before, zone)} and {_local(after, zone)}: "
            "give one of those")


def choose_windows(pipe: Pipeline, start: str | None, end: str | None, range_from: str | None,
                   range_to: str | None, *, allow_partial: bool = False) -> list[Window] | None:
    """The windows to run, in order; None when no window is due.

    Windows that have not ended are refused (exit 2) unless ``allow_partial``.
    """
    grid = pipe.grid
    if start:
        try:
            window = grid.window_starting(parse(start, pipe, "--window-start"))
        except ValueError as exc:
            raise CliError(f"--window-start: {exc}", EXIT_USAGE) from exc
        if end and parse(end, pipe, "--window-end") != window.end:
            raise CliError(
                f"--window-end: the window starting {window.start:%Y-%m-%dT%H:%M:%SZ} ends at "
                f"{window.end:%Y-%m-%dT%H:%M:%SZ} (query_window.duration is {pipe.config.query_window.duration!r}), "
                f"not at {parse(end, pipe, '--window-end'):%Y-%m-%dT%H:%M:%SZ}; leave --window-end out or fix it",
                EXIT_USAGE,
            )
        return refuse_unended([window], allow_partial)
    if range_from:
        begin = parse(range_from, pipe, "--from")
        finish = parse(range_to, pipe, "--to") if range_to else datetime.now(UTC)
        try:
            windows = list(grid.windows_between(begin, finish))
        except ValueError as exc:
            raise CliError(f"--from/--to: {exc}", EXIT_USAGE) from exc
        return refuse_unended(windows, allow_partial)
    window = pipe.runner().next_window()
    # Settling late data (drivetrain.settle): loaded windows whose source records changed are reloaded after it.
    from drivetrain.settle import plan_reloads

    return plan_reloads(pipe, [window] if window is not None else None, note=output().note)


def refuse_unended(windows: list[Window], allow_partial: bool) -> list[Window]:
    """``windows`` if they have all ended; else exit 2 saying when, unless partial runs are allowed.

    With ``allow_partial`` the window running now is kept (to run partially) and windows that
    have not started are left out.
    """
    now = datetime.now(UTC)
    unended = [w for w in windows if w.end > now]
    if not unended:
        return windows
    first = unended[0]
    if not allow_partial:
        more = f" (and {len(unended) - 1} later one(s))" if len(unended) > 1 else ""
        raise CliError(
            f"{window_of(first)}{more} has not ended yet: it ends at {first.end:%Y-%m-%dT%H:%M:%SZ} "
            f"(now {now:%Y-%m-%dT%H:%M:%SZ}); run it after that, or add --allow-partial to load what exists so far "
            "(a plain run loads the window again once it has ended)", EXIT_USAGE,
        )
    started = [w for w in windows if w.start < now]
    if not started:
        raise CliError(f"{window_of(first)} has not started yet (it starts at {first.start:%Y-%m-%dT%H:%M:%SZ}): there is "
                       "nothing to load, even partially", EXIT_USAGE)
    return started


def print_plan(pipe: Pipeline, windows: list[Window], out: Output, as_json: bool) -> None:
    runner = pipe.runner()
    plans = [(w, runner.plan(w)) for w in windows]
    if as_json:
        out.json([
            {"pipeline_name": pipe.name, "query_window_start_timestamp": w.start.isoformat(),
             "query_window_end_timestamp": w.end.isoformat(),
             "phases": [{"phase": p.phase, "action": p.action, "reason": p.reason} for p in plan]}
            for w, plan in plans
        ])
        return
    for window, plan in plans:
        out.table(["phase", "action", "reason"], [[p.phase, p.action, p.reason] for p in plan],
                  title=f"{pipe.name} {window_of(window)}: plan (dry run, nothing changed)")


def run_windows(pipe: Pipeline, windows: list[Window], out: Output, as_json: bool, *, partial: bool = False) -> list[RunRecord]:
    """Run each window in order; stop at the first failure, lock or interruption.

    ``partial`` lets a window that has not ended run (recorded as partial).
    """
    records: list[RunRecord] = []
    with RunProgress(out) as progress:
        runner = pipe.runner(progress=progress.advance)
        with _stop_on_signals(runner, out) as stopped:
            for window in windows:
                progress.start(f"{pipe.name} {window_of(window)}")
                try:
                    record = runner.run(window, partial=partial)
                except LeaseError as exc:
                    progress.finish()
                    done = {"runs": [r.to_json() for r in records]} if records else None  # in the --json error
                    raise CliError(f"{window_of(window)} is locked: {exc}", EXIT_LOCKED, extra=done) from exc
                progress.finish()
                records.append(record)
                if not as_json:
                    _print_record(record, out)
                    if is_partial(record) and record.pipeline_status is not RunStatus.FAILED:
                        out.note(f"{window_of(window)} ran partially: it ends at {window.end:%Y-%m-%dT%H:%M:%SZ}; "
                                 "a plain run loads it again once it has ended")
                if record.pipeline_status is RunStatus.FAILED or stopped:
                    break
    if len(windows) > 1 and len(records) < len(windows) and not as_json:
        out.note(f"stopped after {len(records)} of {len(windows)} window(s); later windows were not run")
    return records


def _print_record(record: RunRecord, out: Output) -> None:
    out.line(f"{record.pipeline_status.value:<8} {record.pipeline_id}  {window_label(record)}  "
             f"{record.pipeline_run_duration or ''}  {outcome_text(record)}")


@contextmanager
def _stop_on_signals(runner: Any, out: Output) -> Iterator[list[str]]:
    """SIGINT/SIGTERM ask the run to stop at its next safe point; a second SIGINT aborts."""
    stopped: list[str] = []

    def handle(signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if stopped and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stopped.append(name)
        out.note(f"{name}: stopping at the next safe point; the run will be recorded as FAILED and resume later")
        runner.cancel(f"stopped by {name}")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
