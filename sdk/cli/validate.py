"""``drivetrain validate``: the config first, then each configured system, one check per line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from drivetrain.errors import ConfigError, ConnectorError, DrivetrainError

from ._output import EXIT_FAILED, EXIT_USAGE, Output, output
from ._pipelines import config_message, load


@click.command("validate")
@click.argument("pipeline")
def validate_command(pipeline: str) -> None:
    """Check PIPELINE's config, then connect to each system it names.

    \b
    In order: config.json (schema and values, the schedule against the windows,
    the target's keys against the declared columns), the source, the stage and
    target tables, the drive table, and the archive when stage cleaning archives
    before deleting. Every check prints one line; all checks run even after a problem.

    \b
    Exit status: 0 all good; 2 the config (or a connector's options or credentials)
    is wrong; 1 a system could not be reached or used.
    """
    from drivetrain.config.preflight import pipeline_problems

    out = output()
    pipe = load(pipeline)
    sched = pipe.config.schedule
    worst = 0
    problem = pipeline_problems(pipe)
    if problem is None:
        out.line(f"ok      config        {pipe.config.source_file}: pipeline {pipe.name!r}, "
                 f"{pipe.config.query_window.duration} windows in {sched.timezone}, from {sched.start_date}, "
                 f"one run per window ({sched.cron_expression!r})")
        _environment(out, pipe.config.source_file)
    else:
        out.line(f"FAILED  config        {config_message(problem)}")
        worst = EXIT_USAGE
    try:
        for label, check in _checks(pipe):
            worst = max(worst, _run_check(out, label, check))
    finally:
        pipe.close()
    if worst:
        out.note(f"{pipe.name}: {'configuration problem' if worst == EXIT_USAGE else 'a system check failed'}; see above")
        raise click.exceptions.Exit(worst)
    out.note(f"{pipe.name}: every check passed")


def _environment(out: Output, source_file: str) -> None:
    """One line per ``${VAR}`` the config uses, with the value it resolved to."""
    from pathlib import Path

    from drivetrain.config import env, loader

    if not Path(source_file).is_file():
        return
    for sub in env.substitutions(loader.read_json(source_file)):
        note = f" (default: {', '.join(sub.defaulted)} unset)" if sub.defaulted else ""
        out.line(f"{'ok':<8}{'environment':<14}{sub.path}: {sub.written} -> {sub.resolved}{note}")


def _checks(pipe: Any) -> list[tuple[str, Callable[[], list[str]]]]:
    checks: list[tuple[str, Callable[[], list[str]]]] = [
        ("source_system", lambda: _described(pipe.source())),
        ("stage_system", lambda: pipe.stage().check()),
        ("target_system", lambda: pipe.target().check()),
        ("drive_table", lambda: _drive(pipe)),
    ]
    cleaning = pipe.config.phases.stage_cleaning
    if cleaning.enabled and cleaning.archive_before_delete:
        checks.append(("archive", lambda: _described(pipe.archive())))
    return checks


def _described(connector: Any) -> list[str]:
    lines = connector.check() or []
    return [f"{connector.describe()}: {lines[0]}" if lines else connector.describe(), *lines[1:]]


def _drive(pipe: Any) -> list[str]:
    store = pipe.drive_store()
    store.ensure()
    return [f"{store.location}: ready", *store.check()]


def _run_check(out: Output, label: str, check: Callable[[], list[str]]) -> int:
    """Run one check and print its lines; returns the exit status it calls for (0 when fine)."""
    try:
        lines = check()
    except ConfigError as exc:
        out.line(f"FAILED  {label:<13} {config_message(exc)}")
        return EXIT_USAGE
    except ConnectorError as exc:
        out.line(f"FAILED  {label:<13} {exc}")
        return EXIT_FAILED
    except DrivetrainError as exc:
        out.line(f"FAILED  {label:<13} {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - a connector's own bug: report it like a failed check
        out.line(f"FAILED  {label:<13} unexpected {type(exc).__name__}: {exc}")
        return EXIT_FAILED
    for i, text in enumerate(lines or ["ok"]):
        out.line(f"{'ok' if i == 0 else '':<8}{label if i == 0 else '':<14}{text}")
    return 0
