"""Progress while windows run: a rich bar on a terminal, periodic log lines elsewhere.

The runner reports rows moved through its ``progress`` callback; which phase is running comes
from the ``drivetrain_phase_started`` hook, through a small plugin registered for the
duration of the command.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from drivetrain.plugins import get_plugin_manager, hookimpl

from ._output import Output

log = logging.getLogger("drivetrain.cli")

#: Without a terminal, a progress line at most this often (seconds) during a transfer.
LOG_EVERY = 5.0


class _PhaseWatcher:
    """Plugin that tells the progress display which phase started."""

    def __init__(self, progress: RunProgress) -> None:
        self.progress = progress

    @hookimpl
    def drivetrain_phase_started(self, record: Any, phase: str) -> None:
        self.progress.phase(phase)


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")

    return RowsPerSecond()


class RunProgress:
    """Use as a context manager around the runs; pass :meth:`advance` as the runner's progress."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.enabled = out.terminal and not out.quiet
        self._bar: Any = None
        self._task: Any = None
        self._label = ""
        self._phase = ""
        self._rows = 0
        self._started = 0.0
        self._logged = 0.0
        self._watcher = _PhaseWatcher(self)

    def __enter__(self) -> RunProgress:
        get_plugin_manager().register(self._watcher)
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=None, pulse_style="cyan"),
                TextColumn("{task.completed:,.0f} rows moved"),
                _rate_column(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        pm = get_plugin_manager()
        if pm.is_registered(self._watcher):
            pm.unregister(self._watcher)
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def start(self, label: str) -> None:
        """A window begins."""
        self._label, self._phase, self._rows = label, "", 0
        self._started = self._logged = time.monotonic()
        if self._bar is not None:
            self._task = self._bar.add_task(label, total=None)

    def phase(self, name: str) -> None:
        self._phase = name
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=f"{self._label} [dim]{name}[/dim]")

    def advance(self, rows: int) -> None:
        """The runner's progress callback: ``rows`` more rows moved."""
        self._rows += rows
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, rows)
            return
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            elapsed = now - self._started
            log.info("%s %s: %d rows, %.0f rows/s, %.0fs elapsed", self._label, self._phase, self._rows,
                     self._rows / elapsed if elapsed else 0.0, elapsed)

    def finish(self) -> None:
        """The window ended (either way)."""
        if self._bar is not None and self._task is not None:
            self._bar.remove_task(self._task)
        self._task = None
