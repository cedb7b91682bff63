"""Start contenders for one window (tests/sdk/race_child.py) and release them together."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

RACE_CHILD = Path(__file__).with_name("race_child.py")
READY_TIMEOUT = 120.0


def race(command: list[str], folder: Path, start: str, sync: Path, contenders: int = 2,
         timeout: float = 180.0) -> tuple[list[int], list[str], dict[str, str]]:
    """Run ``contenders`` children of ``command + [race_child args]``, say go once all are ready.

    Returns their sorted exit codes, their stderr tails, and the ``held-*`` / ``refused-*``
    reports they wrote (file name -> text).
    """
    sync.mkdir(parents=True)
    procs = [
        subprocess.Popen([*command, str(RACE_CHILD), str(folder), start, str(sync), f"c{i}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(contenders)
    ]
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while len(list(sync.glob("ready-*"))) < contenders and all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "the contenders did not get ready"
            time.sleep(0.01)
        (sync / "go").write_text("")
        outputs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    reports = {p.name: p.read_text() for p in sorted(sync.iterdir()) if p.name.startswith(("held-", "refused-"))}
    return sorted(p.returncode for p in procs), [o[1][-3000:] for o in outputs], reports


def assert_one_ran_while_the_other_was_refused(codes: list[int], errors: list[str], reports: dict[str, str], label: str) -> None:
    assert codes == [0, 3], f"{label}: exit codes {codes}: {errors}"
    held = {k: v for k, v in reports.items() if k.startswith("held-")}
    refused = [k for k in reports if k.startswith("refused-")]
    # the two overlapped: the loser was refused while the winner held the window
    assert list(held.values()) == ["saw a refusal"] and len(refused) == 1, f"{label}: {reports}"
    assert held.keys().isdisjoint({"held-" + k.removeprefix("refused-") for k in refused}), f"{label}: {reports}"
    assert "not starting a second run" in next(v for k, v in reports.items() if k.startswith("refused-")), reports
