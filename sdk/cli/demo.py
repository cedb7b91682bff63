"""``drivetrain demo``: render what :mod:`drivetrain.demo` does, window by window, then a summary."""

from __future__ import annotations

import shlex
import sys

import click

from drivetrain._user_path import user_path
from drivetrain.record import RunStatus

from ._output import EXIT_FAILED, EXIT_USAGE, CliError, Output, output, setup_logging
from ._pipelines import folder_for_writing
from ._progress import RunProgress
from ._records import carried_phases, outcome_text, window_label


@click.command("demo")
@click.option("--dir", "folder", metavar="PATH", default=None,
              help="Where the source, the DuckDB file and the archive go. Default: ~/.drivetrain/demo, "
                   "where the registered demo pipeline's config points.")
def demo_command(folder: str | None) -> None:
    """Generate a day of synthetic genetic test results and load it hour by hour.

    \b
    About 10,000 records over one day, with ~2% invalid records and ~1% sent twice,
    go from JSONL files through a stage table into a target table in DuckDB, one
    hourly window per run. The 13:00 window is made to fail in stage_to_target_transfer;
    the next run resumes it, skipping what the failed attempt finished. Ends with a
    summary and a query of the drive table to paste. PATH must be new, empty, or a
    folder an earlier demo made (it holds a .drivetrain-demo file); the files of that
    earlier demo are replaced. A folder holding anything else is refused untouched.
    """
    from drivetrain import demo

    out = output()
    if not out.terminal:
        setup_logging(out.verbosity - 1, terminal=False)  # the window lines below replace per-phase logs
    target = user_path(folder or demo.DEFAULT_DIR)
    folder_for_writing(target, "--dir")
    try:
        demo.check_folder(target.resolve())
    except demo.DemoFolderError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    out.line(f"drivetrain demo: one day of synthetic genetic test results -> {target.resolve()}")
    out.line("")

    def show(outcome: demo.WindowOutcome) -> None:
        record = outcome.record
        note = "  <- failed on purpose; the next run resumes it" if outcome.deliberate_failure else ""
        out.line(f"  {window_label(record):<32} {record.pipeline_status.value:<8} run{record.pipeline_retry_number + 1}  "
                 f"{record.pipeline_run_duration or '':>7}  {outcome_text(record)}{note}")

    with RunProgress(out) as progress:
        progress.start("demo")
        result = demo.run_demo(target, on_window=show, progress=progress.advance)
        progress.finish()
    summarize(result, out)
    if not result.succeeded:
        raise click.exceptions.Exit(EXIT_FAILED)


def summarize(result: object, out: Output) -> None:
    from drivetrain import demo
    from drivetrain.connectors.duckdb.warehouse import DEFAULT_DRIVE_FILE

    assert isinstance(result, demo.DemoResult)
    totals = result.totals()
    source = totals["source"] or 1
    stage = totals["stage"] or 1
    windows = result.final
    resumed = [o for o in result.outcomes if o.record.pipeline_retry_number > 0]
    out.line("")
    out.line("summary")
    out.line(f"  source file      {result.source.path} ({result.source.records:,} records; "
             f"{result.source.invalid} invalid and {result.source.duplicates} repeats generated)")
    ok = sum(1 for o in windows if o.record.pipeline_status is RunStatus.SUCCESS)
    out.line(f"  windows          {len(windows)} hourly windows, {ok} succeeded, in {len(result.outcomes)} runs "
             f"({len(result.outcomes) - len(windows)} retry)")
    for outcome in resumed:
        record = outcome.record
        out.line(f"  resumed          {record.pipeline_id} skipped {', '.join(carried_phases(record))}, "
                 f"completed by {record.phases[carried_phases(record)[0]].carried_from}" if carried_phases(record)
                 else f"  retried          {record.pipeline_id} ran every phase again")
    out.line(f"  source           {totals['source']:,} records")
    out.line(f"  stage            {totals['stage']:,} rows   ({totals['rejected']:,} rejected by validation: "
             f"loss {totals['rejected'] * 100 / source:.2f}%, tolerance {result.tolerances[0]:g}%)")
    out.line(f"  target           {totals['target']:,} rows   ({totals['duplicates']:,} duplicates dropped: "
             f"loss {totals['duplicates'] * 100 / stage:.2f}%, tolerance {result.tolerances[1]:g}%)")
    out.line(f"  time             {result.seconds:.1f}s for {len(result.outcomes)} runs "
             f"({result.seconds / max(1, len(result.outcomes)):.2f}s per run)")
    out.line(f"  DuckDB file      {result.warehouse}")
    drive = result.warehouse.with_name(DEFAULT_DRIVE_FILE)  # the drive table's own SQLite file (the default)
    out.line(f"  drive table      {drive}")
    out.line("  rejects          table stg_genetic_tests__rejects (reason and raw record of each)")
    out.line("")
    query = demo.example_query()
    python = shlex.quote(sys.executable)
    snippet = (f'import sqlite3; rows = sqlite3.connect("file:{drive}?mode=ro", uri=True).execute("{query}"); '
               'print(*(" | ".join(map(str, row)) for row in rows), sep="\\n")')
    out.line("the drive table, one row per run: paste this")
    out.line(f"  {python} -c {shlex.quote(snippet)}")
    out.line("or, with the sqlite3 command-line tool installed:")
    out.line(f"  sqlite3 -readonly -header -column {shlex.quote(str(drive))} {shlex.quote(query)}")
    out.line("")
    out.line("or with drivetrain:")
    out.line(f"  drivetrain history {shlex.quote(str(result.folder))} --limit 30")
    if resumed:
        out.line(f"  drivetrain show {resumed[0].record.pipeline_id} --dir {shlex.quote(str(result.folder))}")
