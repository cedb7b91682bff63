"""Helpers for testing pipelines: an in-memory source, a fault-injecting source, and a fault plugin.

Give a pipeline a source with :meth:`Pipeline.use` (or ``Pipeline(config, connectors=...)``)::

    from drivetrain import Pipeline
    from drivetrain.testing import FaultPlugin, FaultySource, MemorySource

    source = MemorySource.from_rows(rows, query_field="updated_at", batch_size=100)
    with Pipeline.load("./lab").use(source=source) as pipeline:
        faults = FaultPlugin(fail={"stage_to_target_transfer": 1})   # fail that phase once
        with faults.installed():
            record = pipeline.runner().run(window)

    with Pipeline.load("./lab") as pipeline:   # the configured source, failing after 2 batches
        pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=2))
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from drivetrain.base import Source
from drivetrain.errors import PermanentError, TransientError
from drivetrain.fingerprints import of_batches
from drivetrain.plugins import get_plugin_manager, hookimpl
from drivetrain.validation import convert_column

if TYPE_CHECKING:
    from drivetrain.config import Credentials, SystemConfig
    from drivetrain.record import PhaseState, RunRecord
    from drivetrain.unplaceable import Unplaceable
    from drivetrain.window import Window


class MemorySource(Source):
    """Rows held in memory; ``{"type": "memory", "query_field": ...}`` with rows given in Python.

    Rows are dicts; the query field may be an aware datetime or an ISO string.
    """

    type_name = "memory"
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object"}
    #: Rows by ``name`` option, for configs that say ``{"type": "memory", "name": "x"}``.
    registry: ClassVar[dict[str, list[dict[str, Any]]]] = {}

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None, rows: Sequence[dict[str, Any]] | None = None) -> None:
        super().__init__(config, credentials)
        self.query_field = config.get("query_field")
        self.batch_size = int(config.get("batch_size", 10_000))
        self.rows = list(rows if rows is not None else self.registry.get(config.get("name", "default"), []))

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]], *, query_field: str, batch_size: int = 10_000) -> MemorySource:
        from drivetrain.config import SystemConfig

        section = SystemConfig.from_section("source_system", {"type": "memory", "query_field": query_field, "batch_size": batch_size})
        return cls(section, None, rows)

    def _selected(self, window: Window) -> list[dict[str, Any]]:
        if not self.rows:
            return []
        table = pa.Table.from_pylist(self.rows)
        ts, _ = convert_column(table.column(self.query_field), pa.timestamp("us", tz="UTC"))
        return [row for row, t in zip(self.rows, ts.to_pylist(), strict=True) if t is not None and window.start <= t < window.end]

    def count(self, window: Window) -> int:
        return len(self._selected(window))

    def fingerprint(self, window: Window) -> str:
        return of_batches(self.extract(window))

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        rows = self._selected(window)
        for i in range(0, len(rows), self.batch_size):
            yield pa.RecordBatch.from_pylist(rows[i : i + self.batch_size])


class FaultySource(Source):
    """Wraps a source and misbehaves on purpose during extract; counts are the inner source's.

    ``pipeline.use(source=FaultySource(pipeline.source(), ...))`` wraps the configured source;
    the pipeline still closes that one, since it built it.

    :param fail_at_batch: raise after yielding this many batches...
    :param times: ...on this many extracts (then behave).
    :param transient: raise TransientError (retried) rather than PermanentError.
    :param kill_at_batch: SIGKILL this process after yielding this many batches.
    :param truncate_at_batch: stop quietly after this many batches (a silently short stream).
    """

    type_name = "faulty"

    def __init__(self, inner: Source, *, fail_at_batch: int | None = None, times: int = 1, transient: bool = True,
                 kill_at_batch: int | None = None, truncate_at_batch: int | None = None) -> None:
        super().__init__(inner.config, inner.credentials)
        self.inner = inner
        self.fail_at_batch = fail_at_batch
        self.remaining = times
        self.transient = transient
        self.kill_at_batch = kill_at_batch
        self.truncate_at_batch = truncate_at_batch

    def check(self) -> list[str]:
        return self.inner.check()

    def count(self, window: Window) -> int:
        return self.inner.count(window)

    def fingerprint(self, window: Window) -> str | None:
        return self.inner.fingerprint(window)

    def unplaceable(self) -> Unplaceable | None:
        return self.inner.unplaceable()

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        for n, batch in enumerate(self.inner.extract(window)):
            if self.kill_at_batch is not None and n == self.kill_at_batch:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.truncate_at_batch is not None and n == self.truncate_at_batch:
                return
            if self.fail_at_batch is not None and n == self.fail_at_batch and self.remaining > 0:
                self.remaining -= 1
                error = TransientError if self.transient else PermanentError
                raise error(f"injected fault: connection reset after {n} batch(es)")
            yield batch


class FaultPlugin:
    """A plugin that fails or kills a run at chosen points.

    :param fail: phase name -> how many times that phase fails (before doing its work).
    :param kill_before: phase names: SIGKILL this process as the phase starts.
    :param kill_after: phase names: SIGKILL this process once the phase's state is recorded.
    :param kill_before_commit: phase names: SIGKILL inside the phase's commit transaction.
    """

    def __init__(self, *, fail: Mapping[str, int] | None = None, kill_before: Sequence[str] = (),
                 kill_after: Sequence[str] = (), kill_before_commit: Sequence[str] = (),
                 message: str = "injected failure") -> None:
        self.fail = dict(fail or {})
        self.kill_before = set(kill_before)
        self.kill_after = set(kill_after)
        self.kill_before_commit = set(kill_before_commit)
        self.message = message

    @hookimpl
    def drivetrain_phase_started(self, record: RunRecord, phase: str) -> None:
        if phase in self.kill_before:
            os.kill(os.getpid(), signal.SIGKILL)

    @hookimpl
    def drivetrain_before_commit(self, record: RunRecord, phase: str) -> None:
        if phase in self.kill_before_commit:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fail.get(phase, 0) > 0:
            self.fail[phase] -= 1
            raise PermanentError(f"{self.message} in {phase}")

    @hookimpl
    def drivetrain_phase_finished(self, record: RunRecord, phase: str, state: PhaseState) -> None:
        if phase in self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    @contextmanager
    def installed(self) -> Iterator[FaultPlugin]:
        pm = get_plugin_manager()
        pm.register(self)
        try:
            yield self
        finally:
            pm.unregister(self)

