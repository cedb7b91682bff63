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
    drivetrain docs [PAGE]                        the user documentation, shipped with the package
    drivetrain new-plugin NAME                    scaffold a pip-installable plugin package

Every command calls the same runner and drive table as the Airflow operator. Exit statuses
are the constants in :mod:`drivetrain.cli._output`: 0 success, 1 a run failed, 2 bad usage
or config, 3 the window is locked by another run.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from drivetrain.errors import (
    ConfigError,
    ConnectorError,
    DrivetrainError,
    LeaseError,
    PipelineNotFound,
)

from ._output import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_USAGE,
    CliError,
    JsonUsageError,
    Output,
    is_terminal,
    setup_logging,
)
from ._pipelines import config_message

__all__ = ["main", "cli", "console"]

EPILOG = """\b
Exit status: 0 success (also when no window is due), 1 a run ended FAILED or a
system check failed, 2 bad usage or configuration, 3 the window is being run by
another process. PIPELINE is a registered pipeline name or a folder holding
config.json. Docs: `drivetrain docs` lists the pages installed with this
version; `drivetrain docs configuration` prints one.
"""


#: Every command, by name: its module is imported only when the command is looked up (to run
#: it, or for --help), so ``drivetrain run`` loads neither the scaffolding templates nor the
#: monitoring package (HTML, e-mail) that ``report`` needs (tests/test_startup_imports.py).
LAZY_COMMANDS = {
    "demo": ("drivetrain.cli.demo", "demo_command"),
    "docs": ("drivetrain.cli.docs", "docs_command"),
    "history": ("drivetrain.cli.inspect", "history_command"),
    "new": ("drivetrain.cli.scaffold", "new_command"),
    "new-plugin": ("drivetrain.cli.plugin_scaffold", "new_plugin_command"),
    "report": ("drivetrain.monitoring.cli", "report_command"),
    "run": ("drivetrain.cli.run", "run_command"),
    "show": ("drivetrain.cli.inspect", "show_command"),
    "status": ("drivetrain.cli.status", "status_command"),
    "validate": ("drivetrain.cli.validate", "validate_command"),
}
#: The first paragraph of each lazy command's help, what ``drivetrain --help`` shortens into its
#: list of commands without importing them all (tests/cli keeps them equal to the commands' own).
SUMMARIES = {
    "demo": "Generate a day of synthetic genetic test results and load it hour by hour.",
    "docs": "List the documentation pages, or print PAGE (e.g. configuration, plugins).",
    "history": "Runs of PIPELINE (a registered name or a folder), newest first.",
    "new": "Create a pipeline folder NAME with config.json, pipeline.py and a test.",
    "new-plugin": "Create NAME/, a plugin package: a source, a phase, a pipeline, its entry point and a test.",
    "report": "Health of PIPELINES (default: every pipeline found): success rate, failures, durations against "
              "expected, count mismatches, freshness, retries and gaps.",
    "run": "Run windows of PIPELINE (a registered name or a folder holding config.json).",
    "show": "Everything the drive table holds about one run, phase by phase.",
    "status": "The latest run of PIPELINE, or of every pipeline found.",
    "validate": "Check PIPELINE's config, then connect to each system it names.",
}


class DrivetrainGroup(click.Group):
    """Turns every error into a message and the matching exit status, never a traceback.

    With ``--json`` the command's error is also printed on stdout as one JSON object
    (``{"error": {"message", "exit_code", "kind"}}``), so stdout is always valid JSON.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, name = LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's list of commands, from :data:`SUMMARIES` for commands not imported yet."""
        names = [name for name in self.list_commands(ctx) if name not in self.commands or not self.commands[name].hidden]
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self.commands[name].get_short_help_str(limit) if name in self.commands
                 else click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["drivetrain.args"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        args = ctx.meta.get("drivetrain.args", [])
        wants_json = "--json" in (args[: args.index("--")] if "--" in args else args)
        try:
            return self._invoke(ctx)
        except CliError as exc:
            exc.as_json = wants_json
            raise
        except click.UsageError as exc:
            raise (JsonUsageError(exc) if wants_json else exc) from exc

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise CliError(config_message(exc), EXIT_USAGE, kind="config") from exc
        except PipelineNotFound as exc:
            raise CliError(str(exc), EXIT_USAGE, kind="not_found") from exc
        except LeaseError as exc:
            raise CliError(str(exc), EXIT_LOCKED) from exc
        except ConnectorError as exc:
            raise CliError(str(exc), EXIT_FAILED) from exc
        except DrivetrainError as exc:
            raise CliError(f"{type(exc).__name__}: {exc}", EXIT_FAILED) from exc
        except OSError as exc:  # a file or folder the command was pointed at
            raise CliError(_os_message(exc), EXIT_FAILED) from exc
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last guard: a bug must not print a traceback
            logging.getLogger("drivetrain.cli").debug("internal error", exc_info=True)
            raise CliError(
                f"internal error: {type(exc).__name__}: {exc}; this is a bug in drivetrain, please report it "
                "with the command line (run with -vv to log the traceback)", EXIT_FAILED, kind="internal",
            ) from exc


def _os_message(exc: OSError) -> str:
    """``<path>: <reason>`` for an error from the file system."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


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
        from drivetrain.monitoring.logs import configure_logging

        configure_logging(logging.getLogger().level, json=True)


def main(argv: list[str] | None = None) -> None:
    """The command line (``python -m drivetrain``, and :func:`console`)."""
    cli.main(args=argv, prog_name="drivetrain")


def console() -> None:
    """Console-script entry point (``drivetrain``): :func:`main`, then :func:`exit_now`."""
    try:
        main()
    except SystemExit as exc:
        exit_now(exc.code)
        raise
    exit_now(0)


def exit_now(code: object) -> None:
    """End the process at once with ``code`` when nothing else runs in it; else return.

    An interpreter that loaded DuckDB and pyarrow takes 50-250 ms to tear itself down after the
    command is done (their thread pools and memory pools, every module's objects), about a tenth
    of a run of an empty window. Everything the command owes is done first, as a normal exit
    does it: the ``atexit`` handlers run (logging's flush, a plugin's), then stdout and stderr
    are flushed. Only the teardown is skipped, and only when the main thread is the only one
    (a plugin's thread still running is waited for by the normal exit) and the status is a
    number. ``DRIVETRAIN_SLOW_EXIT=1`` keeps the normal exit.
    """
    import atexit
    import os
    import sys
    import threading

    if code is None:
        code = 0
    if not isinstance(code, int) or threading.active_count() > 1 or os.environ.get("DRIVETRAIN_SLOW_EXIT"):
        return
    try:
        atexit._run_exitfuncs()  # what a normal exit runs first (it runs them once: they are cleared)
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:  # noqa: BLE001 - a stream closed early (a pipe): the normal exit reports it
        return
    if threading.active_count() > 1:  # an atexit handler started a thread: let the normal exit wait for it
        return
    os._exit(code)
