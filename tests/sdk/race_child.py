"""One contender for a window (see test_race.py): starts when the test says go, reports how it ended.

Usage: python race_child.py FOLDER WINDOW_START SYNC_DIR NAME

The contenders meet at a barrier made of files in SYNC_DIR, not at an agreed time on the clock,
so a loaded machine cannot make them miss each other:

1. each loads its pipeline, then writes ``ready-NAME`` and waits for the test to write ``go``;
2. each then runs the window. A contender refused the window (LeaseError) writes ``refused-NAME``
   and exits 3. The one that got it holds it, inside its ``drivetrain_run_started`` hook, until a
   ``refused-*`` file appears, then writes ``held-NAME`` saying whether it saw one, runs, exits 0.

So a refusal happens while the winner holds the window: the two really overlapped, and a loser
can never arrive after the winner finished (and rightly run the window a second time).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivetrain import LeaseError, Pipeline, hookimpl, parse_timestamp  # noqa: E402
from drivetrain.plugins import get_plugin_manager  # noqa: E402

TIMEOUT = 60.0


def wait_for(condition: Callable[[], bool], seconds: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


class HoldUntilRefused:
    """The winner keeps the window until another contender has been refused it."""

    def __init__(self, sync: Path, name: str) -> None:
        self.sync, self.name = sync, name

    @hookimpl
    def drivetrain_run_started(self) -> None:
        saw = wait_for(lambda: any(self.sync.glob("refused-*")))
        (self.sync / f"held-{self.name}").write_text("saw a refusal" if saw else "no refusal came")


def main() -> int:
    folder, start, sync, name = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    get_plugin_manager().register(HoldUntilRefused(sync, name))
    pipeline = Pipeline.load(folder)
    window = pipeline.grid.window_starting(parse_timestamp(start))
    pipeline.drive_store().ensure()
    (sync / f"ready-{name}").write_text("")
    if not wait_for((sync / "go").exists):
        print("no go from the test")
        return 5
    try:
        pipeline.runner().run(window)
    except LeaseError as exc:
        (sync / f"refused-{name}").write_text(str(exc))
        print(f"locked: {exc}")
        return 3
    finally:
        pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
