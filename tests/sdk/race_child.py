"""Starts one run of a window at an agreed instant (see test_race.py).

Usage: python race_child.py FOLDER WINDOW_START START_AT_EPOCH
Exit 0 after a run, 3 when another run held the window.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivetrain import LeaseError, Pipeline, parse_timestamp  # noqa: E402


def main() -> int:
    folder, start, at = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    pipeline = Pipeline.load(folder)
    window = pipeline.grid.window_starting(parse_timestamp(start))
    pipeline.drive_store().ensure()
    time.sleep(max(0.0, at - time.time()))
    try:
        pipeline.runner().run(window)
    except LeaseError as exc:
        print(f"locked: {exc}")
        return 3
    finally:
        pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
