"""Exit statuses, errors, logging set-up and output helpers shared by every command.

On a terminal the commands draw rich tables and a progress bar; otherwise they print plain,
aligned text and log lines, so output stays readable in CI logs and cron mail. ``--json``
output goes to stdout alone; messages and logs go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import IO, Any

import attrs
import click

from drivetrain.secrets import install_redaction, redact

#: The command worked (also: ``run`` found no window due, see ``drivetrain run --help``).
EXIT_OK = 0
#: A run ended FAILED, or ``validate`` could not use a configured system.
EXIT_FAILED = 1
#: Bad usage or bad configuration (click's own usage errors use 2 as well).
EXIT_USAGE = 2
#: Another process holds the window's lease: it is running that window now.
EXIT_LOCKED = 3


#: ``kind`` of an error in ``--json`` output, by exit status (see :func:`json_error`).
ERROR_KINDS = {EXIT_FAILED: "failed", EXIT_USAGE: "usage", EXIT_LOCKED: "locked"}


class CliError(click.ClickException):
    """Ends the command with a message on stderr and a chosen exit status.

    ``kind`` names the class of error for ``--json`` output (``usage``, ``config``, ``failed``,
    ``locked``, ``internal``); ``extra`` adds keys to that object (e.g. the runs done before).
    """

    def __init__(self, message: str, code: int = EXIT_FAILED, *, kind: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(redact(message))
        self.exit_code = code  # type: ignore[misc]  # click reads it per instance
        self.kind = kind or ERROR_KINDS.get(code, "failed")
        self.extra = extra or {}
        self.as_json = False
        """Set by the command group when the command was given ``--json``."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)
        if self.as_json:
            click.echo(json_error(self.format_message(), self.exit_code, self.kind, self.extra))


class JsonUsageError(click.UsageError):
    """A usage error of a command given ``--json``: click's message on stderr, a JSON object on stdout."""

    def __init__(self, original: click.UsageError) -> None:
        super().__init__(original.message, original.ctx)
        self.exit_code = original.exit_code  # type: ignore[misc]  # click reads it per instance

    def show(self, file: IO[Any] | None = None) -> None:
        super().show(file)
        click.echo(json_error(self.format_message(), self.exit_code, "usage"))


def json_error(message: str, exit_code: int, kind: str, extra: dict[str, Any] | None = None) -> str:
    """``{"error": {"message", "exit_code", "kind", ...}}``: what ``--json`` prints on stdout for an error."""
    body = {"message": redact(message), "exit_code": exit_code, "kind": kind, **(extra or {})}
    return redact(json.dumps({"error": body}, indent=2, default=str))


def is_terminal(stream: IO[Any] | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def setup_logging(verbosity: int, terminal: bool) -> None:
    """Log to stderr at a level set by ``-v``/``-q``; secrets are masked in every line.

    A terminal shows progress bars, so its default is warnings only; elsewhere the default is
    info, which gives one line per phase (the plain replacement for the progress bar).
    """
    levels = [logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG]
    index = max(0, min(len(levels) - 1, verbosity + (1 if terminal else 2)))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_drivetrain_cli", False):
            root.removeHandler(old)
    handler: logging.Handler
    if terminal:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    setattr(handler, "_drivetrain_cli", True)  # noqa: B010 - marks our handler for the next call
    root.addHandler(handler)
    root.setLevel(levels[index])
    logging.captureWarnings(True)
    install_redaction(root)


@attrs.define
class Output:
    """Where a command writes: tables and JSON to stdout, notes to stderr."""

    terminal: bool
    verbosity: int = 0

    @property
    def quiet(self) -> bool:
        return self.verbosity < 0

    def console(self, *, stderr: bool = False) -> Any:
        from rich.console import Console

        return Console(stderr=stderr, highlight=False, soft_wrap=not self.terminal)

    def line(self, text: str = "") -> None:
        """A line of the command's result (stdout)."""
        click.echo(redact(text))

    def note(self, text: str) -> None:
        """A remark about what the command did (stderr); hidden by ``-q``."""
        if not self.quiet:
            click.echo(redact(text), err=True)

    def json(self, value: Any) -> None:
        click.echo(redact(pretty_json(value)))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
        """Rows under headers: a rich table on a terminal, aligned plain text elsewhere."""
        cells = [[redact("" if v is None else str(v)) for v in row] for row in rows]
        if self.terminal:
            from rich.table import Table

            table = Table(title=title, title_justify="left", header_style="bold")
            for name in columns:
                table.add_column(name, overflow="fold")
            for row in cells:
                table.add_row(*(_style(v) for v in row))
            self.console().print(table)
            return
        if title:
            click.echo(title)
        click.echo(plain_table(columns, cells))


#: Compact JSON text shorter than this is indented by the standard library.
SMALL_JSON = 64 * 1024


def pretty_json(value: Any) -> str:
    """``json.dumps(value, indent=2, default=str)``, the same text, about 20x faster: the standard
    library encodes with indentation in pure Python (500 status rows took 1 s), so the C encoder
    writes it compactly and msgspec indents the text, token for token. Small outputs (where
    importing msgspec costs more than it saves), NaN (not JSON, which msgspec refuses) and a
    missing msgspec take the standard library's way."""
    text = json.dumps(value, default=str)
    if len(text) < SMALL_JSON:
        return json.dumps(value, indent=2, default=str)
    try:
        import msgspec
    except ImportError:  # pragma: no cover - a dependency; kept working without it
        return json.dumps(value, indent=2, default=str)
    try:
        return msgspec.json.format(text, indent=2)
    except msgspec.DecodeError:
        return json.dumps(value, indent=2, default=str)


_STATUS_STYLE = {"SUCCESS": "green", "COMPLETED": "green", "FAILED": "bold red", "RUNNING": "yellow",
                 "SKIPPED": "dim", "PENDING": "dim"}


def _style(value: str) -> Any:
    style = _STATUS_STYLE.get(value)
    if style is None:
        from rich.text import Text

        return Text(value)
    from rich.text import Text

    return Text(value, style=style)


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last one is not padded."""
    widths = [len(c) for c in columns]
    for row in rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = []
    for row in [list(columns), *rows]:
        parts = [value.ljust(widths[i]) if i < len(row) - 1 else value for i, value in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def output(ctx: click.Context | None = None) -> Output:
    """The Output of the running command (a default one outside the group, e.g. in tests)."""
    ctx = ctx or click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, Output):
        return root.obj
    return Output(terminal=is_terminal())
