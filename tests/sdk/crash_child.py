"""Runs one window in a child process and kills itself at a chosen point (see test_crash.py).

Usage: python crash_child.py FOLDER WINDOW_START POINT [--arrow]
POINT: none | before:PHASE | after:PHASE | commit:PHASE | batch:N | s2t_batch:N | published
(published: SIGKILL once the publish transaction committed, before the drive row records it)
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivetrain import Pipeline, StageToTargetTransfer, parse_timestamp  # noqa: E402
from drivetrain.phases import Publish  # noqa: E402
from drivetrain.testing import FaultPlugin, FaultySource  # noqa: E402


class KillingTransfer(StageToTargetTransfer):
    """Arrow-path transfer that can SIGKILL the process after some batches."""

    kill_at: int | None = None
    seen = 0

    def transform(self, batch, ctx):
        if self.kill_at is not None and KillingTransfer.seen == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        KillingTransfer.seen += 1
        return batch


class KillAfterPublish(Publish):
    """Publish, then SIGKILL before the runner records that it did."""

    def run(self, ctx):
        super().run(ctx)
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    folder, start, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    arrow = "--arrow" in sys.argv
    kind, _, arg = point.partition(":")
    classes = {"stage_to_target_transfer": KillingTransfer} if arrow else {}
    if kind == "published":
        classes["publish"] = KillAfterPublish
    pipeline = type("CrashPipeline", (Pipeline,), {"phase_classes": classes})(folder / "config.json")
    plugin = FaultPlugin(
        kill_before=[arg] if kind == "before" else [],
        kill_after=[arg] if kind == "after" else [],
        kill_before_commit=[arg] if kind == "commit" else [],
    )
    if kind == "batch":
        pipeline.use(source=FaultySource(pipeline.source(), kill_at_batch=int(arg)))
    if kind == "s2t_batch":
        KillingTransfer.kill_at = int(arg)
    window = pipeline.grid.window_starting(parse_timestamp(start))
    with plugin.installed():
        record = pipeline.runner(heartbeat_seconds=0.1).run(window)
    pipeline.close()
    print(json.dumps({"status": record.pipeline_status.value, "run_id": record.pipeline_id}))


if __name__ == "__main__":
    main()
