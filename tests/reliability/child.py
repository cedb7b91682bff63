"""Runs one window in a child process and misbehaves at a chosen point (see the reliability tests).

Usage: python child.py FOLDER WINDOW_START [--point POINT] [--arrow] [--fail PHASE]
                       [--lease SECONDS] [--heartbeat SECONDS] [--now TIME]

POINT adds to the points of tests/sdk/crash_child.py:

- ``loaded:source_to_stage_transfer``: SIGKILL once the whole window is in the load table,
  before the commit that swaps it into stage begins;
- ``committed:PHASE``: SIGKILL right after the phase's commit returned, before the runner
  writes the phase's state to the drive table;
- ``pause:PHASE``: SIGSTOP this process as the phase starts (the test sends SIGCONT), after
  writing its lease's expiry and holder to ``FOLDER/paused.json``;
- ``before:PHASE`` / ``after:PHASE`` / ``batch:N``: as crash_child.py (for resumed runs);
- ``commit:PHASE``: SIGKILL inside the phase's commit transaction (as crash_child.py);
- ``s2t_batch:N``: with ``--arrow``, SIGKILL as the stage-to-target transfer transforms batch N.

``committed:publish`` kills once the publish transaction committed, before the drive row says so.

``--fail PHASE`` makes that phase fail once before committing (a failed attempt to resume).
Prints ``{"status": ..., "run_id": ...}``; exits 3 when the window's lease is held or lost.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivetrain import (  # noqa: E402
    LeaseError,
    Pipeline,
    SourceToStageTransfer,
    StageCleaning,
    StageToTargetTransfer,
    hookimpl,
    parse_timestamp,
)
from drivetrain.base import Source  # noqa: E402
from drivetrain.phases import Publish  # noqa: E402
from drivetrain.testing import FaultPlugin, FaultySource  # noqa: E402

#: The phase after whose commit ``committed:PHASE`` kills the process.
KILL_AFTER_COMMIT: set[str] = set()


def _kill_if_committed(phase: str) -> None:
    if phase in KILL_AFTER_COMMIT:
        os.kill(os.getpid(), signal.SIGKILL)


class CommittingSourceToStage(SourceToStageTransfer):
    def run(self, ctx: Any) -> Any:
        result = super().run(ctx)
        _kill_if_committed(self.name)
        return result


class CommittingStageToTarget(StageToTargetTransfer):
    def run(self, ctx: Any) -> Any:
        result = super().run(ctx)
        _kill_if_committed(self.name)
        return result


class ArrowStageToTarget(CommittingStageToTarget):
    """Overriding transform() sends stage to target through Arrow instead of push-down SQL."""

    kill_at: int | None = None
    seen = 0

    def transform(self, batch: Any, ctx: Any) -> Any:
        if ArrowStageToTarget.kill_at is not None and ArrowStageToTarget.seen == ArrowStageToTarget.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        ArrowStageToTarget.seen += 1
        return batch


class CommittingStageCleaning(StageCleaning):
    def run(self, ctx: Any) -> Any:
        result = super().run(ctx)
        _kill_if_committed(self.name)
        return result


class CommittingPublish(Publish):
    def run(self, ctx: Any) -> Any:
        result = super().run(ctx)
        _kill_if_committed(self.name)
        return result


class ChildPipeline(Pipeline):
    phase_classes = {
        "source_to_stage_transfer": CommittingSourceToStage,
        "stage_to_target_transfer": CommittingStageToTarget,
        "stage_cleaning": CommittingStageCleaning,
        "publish": CommittingPublish,
    }


class ArrowChildPipeline(ChildPipeline):
    phase_classes = {**ChildPipeline.phase_classes, "stage_to_target_transfer": ArrowStageToTarget}


class KillWhenLoaded(Source):
    """Passes the inner source's batches through, then SIGKILLs once the last one was taken."""

    type_name = "kill-when-loaded"

    def __init__(self, inner: Source) -> None:
        super().__init__(inner.config, inner.credentials)
        self.inner = inner

    def count(self, window: Any) -> int:
        return self.inner.count(window)

    def fingerprint(self, window: Any) -> str | None:
        return self.inner.fingerprint(window)

    def unplaceable(self) -> Any:
        return self.inner.unplaceable()

    def extract(self, window: Any) -> Iterator[Any]:
        yield from self.inner.extract(window)
        os.kill(os.getpid(), signal.SIGKILL)


class Pause:
    """SIGSTOPs this process as a phase starts, after writing when its lease expires."""

    def __init__(self, phase: str, runner: Any, note: Path) -> None:
        self.phase = phase
        self.runner = runner
        self.note = note

    @hookimpl
    def drivetrain_phase_started(self, phase: str) -> None:
        if phase == self.phase:
            self.note.write_text(json.dumps({"expires_at": self.runner.lease.expires_at.isoformat(), "holder": self.runner.holder}))
            os.kill(os.getpid(), signal.SIGSTOP)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("start")
    parser.add_argument("--point", default="none")
    parser.add_argument("--arrow", action="store_true")
    parser.add_argument("--fail", action="append", default=[])
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--heartbeat", type=float, default=0.1)
    parser.add_argument("--now", help="the runner's clock stands at this time (a simulated clock)")
    args = parser.parse_args()
    kind, _, arg = args.point.partition(":")
    pipeline = (ArrowChildPipeline if args.arrow else ChildPipeline)(args.folder / "config.json")
    faults = FaultPlugin(
        fail={phase: 1 for phase in args.fail},
        kill_before=[arg] if kind == "before" else [],
        kill_after=[arg] if kind == "after" else [],
        kill_before_commit=[arg] if kind == "commit" else [],
    )
    if kind == "committed":
        KILL_AFTER_COMMIT.add(arg)
    if kind == "loaded":
        pipeline.use(source=KillWhenLoaded(pipeline.source()))
    if kind == "batch":
        pipeline.use(source=FaultySource(pipeline.source(), kill_at_batch=int(arg)))
    if kind == "s2t_batch":
        ArrowStageToTarget.kill_at = int(arg)
    window = pipeline.grid.window_starting(parse_timestamp(args.start))
    clock = {"clock": lambda: parse_timestamp(args.now)} if args.now else {}
    runner = pipeline.runner(heartbeat_seconds=args.heartbeat, lease_seconds=args.lease, **clock)
    try:
        with faults.installed():
            if kind == "pause":
                from drivetrain.plugins import get_plugin_manager

                get_plugin_manager().register(Pause(arg, runner, args.folder / "paused.json"))
            record = runner.run(window)
    except LeaseError as exc:
        print(json.dumps({"status": "LEASE", "error": str(exc)}))
        return 3
    finally:
        pipeline.close()
    print(json.dumps({"status": record.pipeline_status.value, "run_id": record.pipeline_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
