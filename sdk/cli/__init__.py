"""The ``drivetrain`` command line.

::

    drivetrain demo [--dir PATH]                  a synthetic day, hour by hour, into DuckDB
    drivetrain new NAME [--source files]          scaffold a pipeline folder
    drivetrain validate PIPELINE                  config, then every system it names
    drivetrain run PIPELINE [window options]      run windows (the next one due by default)
    drivetrain status [PIPELINE]                  latest run of each pipeline
    drivetrain history PIPELINE                   runs, newest first
    drivetrain show RUN_ID                        one run, phase by phase
    drivetrain report [PIPELINE...] [--html FILE] metrics, dashboards, alerts

Every command calls the same runner and drive table as the Airflow operator. Exit statuses
are the constants in :mod:`drivetrain.cli._output`: 0 success, 1 a run failed, 2 bad usage
or config, 3 the window is locked by another run.
"""

from __future__ import annotations

from typing import Any

import click

from drivetrain.errors import (
    ConfigError,
    ConnectorError,
    DrivetrainError,
    LeaseError,
    PipelineNotFound,
)
from drivetrain.monitoring.cli import report_command

from ._output import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_USAGE,
    CliError,
    Output,
    is_terminal,
    setup_logging,
)
from ._pipelines import config_message
from .demo import demo_command
from .inspect import history_command, show_command, status_command
from .run import run_command
from .scaffold import new_command
from .validate import validate_command

__all__ = ["main", "cli"]

EPILOG = """\b
Exit status: 0 success (also when no window is due), 1 a run ended FAILED or a
system check failed, 2 bad usage or configuration, 3 the window is being run by
another process. PIPELINE is a registered pipeline name or a folder holding
config.json. Docs: docs/index.md.
"""


class DrivetrainGroup(click.Group):
    """Turns drivetrain's errors into a message and the matching exit status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise CliError(config_message(exc), EXIT_USAGE) from exc
        except PipelineNotFound as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        except LeaseError as exc:
            raise CliError(str(exc), EXIT_LOCKED) from exc
        except ConnectorError as exc:
            raise CliError(str(exc), EXIT_FAILED) from exc
        except DrivetrainError as exc:
            raise CliError(f"{type(exc).__name__}: {exc}", EXIT_FAILED) from exc


@click.group(cls=DrivetrainGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (repeat for debug).")
@click.option("-q", "--quiet", count=True, help="Less output: warnings and errors only (repeat for errors only).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line, for log shippers.")
@click.version_option(package_name="drivetrain", prog_name="drivetrain")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int, log_format: str) -> None:
    """drivetrain: incremental, windowed data pipelines with a drive table."""
    terminal = is_terminal()
    ctx.obj = Output(terminal=terminal, verbosity=verbose - quiet)
    setup_logging(verbose - quiet, terminal)
    if log_format == "json":
        import logging

        from drivetrain.monitoring.logs import configure_logging

        configure_logging(logging.getLogger().level, json=True)


for command in (demo_command, new_command, validate_command, run_command, status_command, history_command, show_command,
                report_command):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``drivetrain``)."""
    cli.main(args=argv, prog_name="drivetrain")
