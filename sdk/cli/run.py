"""``drivetrain run``: one window, the next due window, or a range of windows in order."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

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
  (nothing)                 the oldest FAILED window first, else the window after the
                            last successful one; nothing when it has not ended yet
  --window-start TS         the window starting at TS (it must be on the pipeline's grid)
  --from TS --to TS         every window from TS up to TS, in order; stops at the
                            first failure (--to defaults to now)

Timestamps are ISO 8601 (2025-11-15T10:00:00Z); without an offset, or as a plain
date, they are read in the pipeline's schedule timezone. A window that failed before
is resumed: phases the failed attempt completed are skipped.

\b
Exit status: 0 every run succeeded, or no window was due (a message says so);
1 a run ended FAILED; 2 bad usage or config; 3 another process is running the window.
"""


@click.command("run", help=HELP)
@click.argument("pipeline")
@click.option("--window-start", "--window", "window_start", metavar="TS", help="Run the window that starts at TS.")
@click.option("--window-end", metavar="TS", help="Optional check: the window must end at TS.")
@click.option("--from", "range_from", metavar="TS", help="Run every window from TS (a backfill).")
@click.option("--to", "range_to", metavar="TS", help="...up to TS (exclusive). Default: now.")
@click.option("--only-gaps", is_flag=True, help="With --from: only the windows that never ran or never succeeded.")
@click.option("--dry-run", is_flag=True, help="Print the plan (windows; phases to run or skip, and why); change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the drive-table rows (or the plan) as JSON.")
def run_command(pipeline: str, window_start: str | None, window_end: str | None, range_from: str | None,
                range_to: str | None, only_gaps: bool, dry_run: bool, as_json: bool) -> None:
    out = output()
    if window_end and not window_start:
        raise click.UsageError("--window-end needs --window-start")
    if range_to and not range_from:
        raise click.UsageError("--to needs --from")
    if window_start and range_from:
        raise click.UsageError("give either --window-start or --from/--to, not both")
    if only_gaps and not range_from:
        raise click.UsageError("--only-gaps needs --from")
    with opened(pipeline) as pipe:
        windows = choose_windows(pipe, window_start, window_end, range_from, range_to)
        if windows is None:
            out.note(f"{pipe.name}: nothing to run: no failed window, and the next window has not ended yet "
                     f"(now {datetime.now(UTC):%Y-%m-%d %H:%M:%SZ})")
            if as_json:
                out.json([])
            return
        if not windows:
            raise CliError(f"{pipe.name}: the range holds no complete window", EXIT_USAGE)
        if only_gaps:
            from drivetrain.monitoring.cli import only_gaps as gaps_of

            windows = gaps_of(pipe, windows)
            if not windows:
                out.note(f"{pipe.name}: every window of the range already has a successful run")
                if as_json:
                    out.json([])
                return
        if dry_run:
            print_plan(pipe, windows, out, as_json)
            return
        records = run_windows(pipe, windows, out, as_json)
        if as_json:  # the rows as stored: the store stamps created_at and updated_at
            out.json([(pipe.drive_store().get(r.pipeline_id) or r).to_json() for r in records])
    if any(r.pipeline_status is RunStatus.FAILED for r in records):
        raise click.exceptions.Exit(EXIT_FAILED)


def parse(text: str, pipe: Pipeline, option: str) -> datetime:
    from drivetrain.window import parse_timestamp

    try:
        return within_range(parse_timestamp(text, pipe.config.schedule.timezone), option)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}", EXIT_USAGE) from exc
    except OverflowError as exc:  # past year 9999 once converted to UTC
        raise out_of_range(text, option) from exc


def choose_windows(pipe: Pipeline, start: str | None, end: str | None, range_from: str | None,
                   range_to: str | None) -> list[Window] | None:
    """The windows to run, in order; None when no window is due."""
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
        if window.end > datetime.now(UTC):
            output().note(f"warning: {window_of(window)} has not ended yet; it may be incomplete at the source")
        return [window]
    if range_from:
        begin = parse(range_from, pipe, "--from")
        finish = parse(range_to, pipe, "--to") if range_to else datetime.now(UTC)
        try:
            return list(grid.windows_between(begin, finish))
        except ValueError as exc:
            raise CliError(f"--from/--to: {exc}", EXIT_USAGE) from exc
    window = pipe.runner().next_window()
    return [window] if window is not None else None


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


def run_windows(pipe: Pipeline, windows: list[Window], out: Output, as_json: bool) -> list[RunRecord]:
    """Run each window in order; stop at the first failure, lock or interruption."""
    records: list[RunRecord] = []
    with RunProgress(out) as progress:
        runner = pipe.runner(progress=progress.advance)
        with _stop_on_signals(runner, out) as stopped:
            for window in windows:
                progress.start(f"{pipe.name} {window_of(window)}")
                try:
                    record = runner.run(window)
                except LeaseError as exc:
                    progress.finish()
                    done = {"runs": [r.to_json() for r in records]} if records else None  # in the --json error
                    raise CliError(f"{window_of(window)} is locked: {exc}", EXIT_LOCKED, extra=done) from exc
                progress.finish()
                records.append(record)
                if not as_json:
                    _print_record(record, out)
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
