"""``drivetrain status``: the latest run of one pipeline, or of every pipeline found, with filters
(``--failed``, ``--stale``, ``--tag``) and paging (``--limit``, ``--offset``) for fleets.

Pipelines sharing a drive table are read together (:mod:`drivetrain.monitoring.fleet`), inside
one held reading connection per drive table; the next window, the one per-pipeline question, is
asked only for the pipelines printed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from drivetrain.errors import DrivetrainError
from drivetrain.monitoring.fleet import PipelineState, fleet_states, reading, store_key
from drivetrain.monitoring.fleet_windows import next_windows
from drivetrain.monitoring.pipeline_view import SharedStores, load_folder
from drivetrain.record import RunRecord
from drivetrain.window import Window

from ._output import EXIT_FAILED, CliError, output
from ._pipelines import Candidate, candidates, drive_location, load, window_of
from ._records import window_label
from .inspect import DIR_HELP, JSON_HELP, UNREADABLE, unplaceable_lines

COLUMNS = ["pipeline", "latest run", "status", "window", "open failures", "next window", "drive table"]


@click.command("status")
@click.argument("pipeline", required=False)
@click.option("--dir", "folder", metavar="PATH", help=DIR_HELP)
@click.option("--failed", is_flag=True, help="Only pipelines whose latest run failed or that have windows whose newest attempt failed.")
@click.option("--stale", is_flag=True,
              help="Only pipelines whose newest successful run ended longer ago than their monitoring.freshness_threshold.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only pipelines with this tag in pipeline_metadata.tags (repeatable: any).")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many pipelines (after the filters), by name.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many pipelines first (the next page).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " One row per pipeline: its latest run.")
def status_command(pipeline: str | None, folder: str | None, failed: bool, stale: bool, tags: tuple[str, ...],
                   limit: int | None, offset: int, as_json: bool) -> None:
    """The latest run of PIPELINE, or of every pipeline found.

    Without PIPELINE: every registered pipeline, plus the folder given by --dir (or the
    working folder) when it holds config.json. Where it looked is printed on stderr.
    """
    out = output()
    shared = SharedStores()
    if pipeline:
        found = [Candidate(label=pipeline, pipeline=load(pipeline))]
    else:  # pipeline folders through their remembered config views (see drivetrain.config.view)
        found, where = candidates(folder, lambda path: load_folder(path, shared))
        out.note("looked at: " + "; ".join(where))
    try:
        tagged = [c for c in found if not tags or (c.pipeline is not None and set(tags) & set(c.pipeline.config.metadata.tags))]
        with reading(c.pipeline for c in tagged if c.pipeline is not None):
            states = _states(tagged)
            now = datetime.now(UTC)
            shown = [c for c in tagged if _wanted(c, states.get(id(c)), failed=failed, stale=stale, now=now)]
            total = len(shown)
            shown = shown[offset:offset + limit] if limit else shown[offset:]
            # --json answers with the latest runs: no next windows to compute
            due: dict[int, Window | None] = {id(c.pipeline): None for c in shown} if as_json else _next_windows(shown, states, now)
            rows, latest = [], []
            for item in shown:
                cells, record = _row(item, states.get(id(item)), due)
                rows.append(cells)
                if record is not None:
                    latest.append(record)
            if pipeline and rows and rows[0][2] == UNREADABLE:  # the one pipeline asked for: its drive table is the answer
                raise CliError(f"{rows[0][0]}: cannot read its drive table: {rows[0][-1]}", EXIT_FAILED)
            if as_json:
                out.json([r.to_json() for r in latest])
                return
            if not rows:
                out.note("no pipelines found" if not found else "no pipeline matches the filters")
                return
            out.table(COLUMNS, rows)
            if limit and offset + len(rows) < total:
                out.note(f"pipelines {offset + 1}-{offset + len(rows)} of {total}; next page: --offset {offset + len(rows)}")
            for record in latest:
                lost = unplaceable_lines(record, sample=False)
                if lost:
                    out.line(f"{record.pipeline_name} ({record.pipeline_id}): {lost[0]}")
            if pipeline and shown[0].pipeline is not None and shown[0].pipeline.drive_store().exists():
                from drivetrain.monitoring.cli import drift_lines, gap_lines

                for line in gap_lines(shown[0].pipeline) + drift_lines(shown[0].pipeline):
                    out.line(line)
    finally:
        for item in found:
            if item.pipeline is not None:
                item.pipeline.close()
        shared.close()


def _states(found: list[Candidate]) -> dict[int, PipelineState | DrivetrainError]:
    """Each candidate's state (or why its drive table cannot be read), one query set per drive table."""
    groups: dict[tuple[type, str], list[Candidate]] = {}
    states: dict[int, PipelineState | DrivetrainError] = {}
    for item in found:
        if item.pipeline is not None:
            try:
                store = item.pipeline.drive_store()
            except DrivetrainError as exc:  # e.g. its credentials are not set
                states[id(item)] = exc
                continue
            groups.setdefault(store_key(store), []).append(item)
    for items in groups.values():
        try:
            found_states = fleet_states(items[0].pipeline.drive_store(), sorted({c.pipeline.name for c in items}))
        except DrivetrainError as exc:
            states.update({id(c): exc for c in items})
            continue
        states.update({id(c): found_states[c.pipeline.name] for c in items})
    return states


def _wanted(item: Candidate, state: Any, *, failed: bool, stale: bool, now: datetime) -> bool:
    if not (failed or stale):
        return True
    if not isinstance(state, PipelineState):
        return item.pipeline is None or isinstance(state, DrivetrainError)  # a broken pipeline is always worth a look
    threshold = item.pipeline.config.monitoring.freshness_threshold
    return (failed and state.failing) or (stale and state.stale(threshold.total_seconds() if threshold else None, now))


def _next_windows(shown: list[Candidate], states: dict[int, Any], now: datetime) -> dict[int, Window | None]:
    """The next window of each pipeline shown that has runs, in a few queries per drive table
    (keyed by ``id`` of the pipeline); a drive table that cannot be read is left to its rows."""
    asked = [c.pipeline for c in shown if c.pipeline is not None and isinstance(states.get(id(c)), PipelineState)
             and states[id(c)].latest is not None]
    try:
        return next_windows(asked, now)
    except DrivetrainError:
        return {}


def _row(item: Candidate, state: Any, due_windows: dict[int, Window | None]) -> tuple[list[str], RunRecord | None]:
    """One status row, and the latest record when there is one."""
    if item.pipeline is None:
        return [item.label, "", "CONFIG ERROR", "", "", "", item.problem or ""], None
    pipe = item.pipeline
    name = pipe.name if item.label == pipe.name else f"{pipe.name} ({item.label})"
    try:
        if isinstance(state, DrivetrainError):
            raise state
        where = drive_location(pipe)
        latest = state.latest if isinstance(state, PipelineState) else None
        if latest is None:  # a pipeline with runs has a drive table: only the others are asked
            created = pipe.drive_store().exists()
            return [name, "", "no runs yet", "", "", "", where if created else f"{where} (not created yet)"], None
        due = due_windows[id(pipe)] if id(pipe) in due_windows else pipe.runner().next_window()
        return [name, latest.pipeline_id, latest.pipeline_status.value, window_label(latest),
                str(state.open_failures), window_of(due) if due else "none due", where], latest
    except DrivetrainError as exc:
        return [name, "", UNREADABLE, "", "", "", str(exc)], None
