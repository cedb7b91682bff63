"""``drivetrain history`` and ``show``: reading the drive table (``status``: :mod:`.status`).

With ``--json`` each prints drive-table rows keyed by the spec's column names (phase columns as
nested objects): a list for ``status`` and ``history``, one object for ``show``.
"""

from __future__ import annotations

from pathlib import Path

import click

from drivetrain.errors import DrivetrainError
from drivetrain.phase_names import SOURCE_COUNT
from drivetrain.record import RunRecord, RunStatus
from drivetrain.unplaceable import from_details

from ._output import EXIT_USAGE, CliError, output
from ._pipelines import (
    candidates,
    drive_exists,
    drive_location,
    opened,
    try_load,
)
from ._records import (
    PHASE_COLUMNS,
    RUN_COLUMNS,
    header_rows,
    outcome_text,
    pending_lines,
    phase_rows,
    run_line,
)

#: The most runs ``history`` lists at once (the database's LIMIT must stay a 64-bit number).
MAX_LIMIT = 1_000_000
JSON_HELP = "Print drive-table rows as JSON, keyed by the drive table's column names."
UNREADABLE = "UNREADABLE"
DIR_HELP = "Also look at the pipeline folder PATH (default: the working folder, if it holds config.json)."


@click.command("history")
@click.argument("pipeline")
@click.option("--limit", "-n", type=click.IntRange(min=1, max=MAX_LIMIT), default=20, show_default=True, help="How many runs, newest first.")
@click.option("--status", "statuses", multiple=True, type=click.Choice([s.value for s in RunStatus], case_sensitive=False),
              help="Only runs with this status (repeatable).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def history_command(pipeline: str, limit: int, statuses: tuple[str, ...], as_json: bool) -> None:
    """Runs of PIPELINE (a registered name or a folder), newest first."""
    out = output()
    with opened(pipeline) as pipe, pipe.drive_store().reading():  # one opening of the drive file
        records: list[RunRecord] = []
        if drive_exists(pipe):
            records = pipe.drive_store().history(pipe.name, status=[RunStatus(s.upper()) for s in statuses], limit=limit)
        where = drive_location(pipe)
    if as_json:
        out.json([r.to_json() for r in records])
        return
    if not records:
        out.note(f"{pipe.name}: no runs recorded in {where}")
        return
    out.table(RUN_COLUMNS, [run_line(r) for r in records], title=f"{pipe.name}: {len(records)} run(s), newest first ({where})")


@click.command("show")
@click.argument("run_id")
@click.option("--pipeline", "-p", metavar="PIPELINE", help="The run's pipeline (name or folder); found from RUN_ID otherwise.")
@click.option("--dir", "folder", metavar="PATH", help=DIR_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " One object.")
def show_command(run_id: str, pipeline: str | None, folder: str | None, as_json: bool) -> None:
    """Everything the drive table holds about one run, phase by phase.

    RUN_ID is a pipeline_id such as demo_20251115T130000Z_run2. The pipeline is taken from
    --pipeline, else from the run id's prefix, else every registered pipeline (and the --dir
    folder) is searched.
    """
    out = output()
    record, searched = _find_run(run_id, pipeline, folder)
    if record is None:
        raise CliError(f"no run {run_id!r} in the drive table(s) of: {', '.join(searched) or 'no pipelines'}", EXIT_USAGE,
                       kind="not_found")
    if as_json:
        out.json(record.to_json())
        return
    out.table(["field", "value"], header_rows(record), title=f"run {record.pipeline_id}")
    out.table(PHASE_COLUMNS, phase_rows(record), title="phases")
    from drivetrain.schema_contract import schema_lines

    for line in unplaceable_lines(record) + pending_lines(record) + schema_lines(record.phases):
        out.line(line)
    if record.pipeline_status is RunStatus.FAILED:
        out.line(f"outcome: {outcome_text(record)}")


def unplaceable_lines(record: RunRecord, *, sample: bool = True) -> list[str]:
    """What the run's source count found in no window: a count, reasons and examples."""
    lost = from_details(record.phase(SOURCE_COUNT).phase_specific_details)
    if lost is None:
        return []
    lines = [f"records in no window: {lost.records} (no readable query field; on_unplaceable decides "
             "whether a run fails on them)"]
    lines += [f"  {n} x {reason}" for reason, n in lost.reasons.most_common()]
    if sample:
        lines += [f"  e.g. {example}" for example in lost.sample]
    return lines


def _find_run(run_id: str, pipeline: str | None, folder: str | None) -> tuple[RunRecord | None, list[str]]:
    from drivetrain.pipeline import Pipeline

    if pipeline:
        with opened(pipeline) as pipe, pipe.drive_store().reading():
            return (pipe.drive_store().get(run_id) if drive_exists(pipe) else None), [pipe.name]
    found, _ = candidates(folder)
    # Run ids are <pipeline>_<window>_run<n>: a folder named like the pipeline, here, is a candidate too.
    prefix = run_id.rsplit("_", 2)[0] if run_id.count("_") >= 2 else ""
    named = Path(prefix)
    if prefix and (named / "config.json").is_file() and (not folder or named.resolve() != Path(folder).resolve()):
        found.append(try_load(prefix, lambda: Pipeline.from_folder(named)))
    from drivetrain import plugins

    if prefix in plugins.registered_pipelines() and all(c.label != prefix for c in found):  # a contrib pipeline not listed
        found.append(try_load(prefix, lambda: Pipeline.load(prefix)))
    usable = [c for c in found if c.pipeline is not None]
    # Run ids start with the pipeline name: try the matching pipelines first, longest name first.
    usable.sort(key=lambda c: (not run_id.startswith(c.pipeline.name + "_"), -len(c.pipeline.name)))
    searched = []
    try:
        for item in usable:
            pipe = item.pipeline
            try:
                searched.append(f"{pipe.name} ({drive_location(pipe)})")
                if drive_exists(pipe) and (record := pipe.drive_store().get(run_id)) is not None:
                    return record, searched
            except DrivetrainError as exc:
                output().note(f"{pipe.name}: cannot read its drive table: {exc}")
    finally:
        for item in usable:
            item.pipeline.close()
    return None, searched
