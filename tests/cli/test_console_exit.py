"""The ``drivetrain`` console script ends its process without the interpreter's teardown.

What a normal exit owes is still done: the ``atexit`` handlers run, everything written to
stdout and stderr arrives, the exit status is the command's, and a thread still running is
waited for (the normal exit is kept then).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: A command line run through the console script's function, with an atexit handler and,
#: optionally, a thread that outlives the command.
_SCRIPT = """
import atexit, sys, threading, time
atexit.register(lambda: print("atexit ran", flush=False))
class Kept:
    def __del__(self):
        print("torn down", flush=True)
kept = Kept()  # collected only by the interpreter's teardown
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=False))).start()
sys.argv = ["drivetrain", *sys.argv[2:]]
from drivetrain.cli import console
console()
"""


def console(*args: str, thread: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _SCRIPT, "thread" if thread else "-", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120, check=False)


class TestConsoleExit:
    def test_the_output_and_the_atexit_handlers_are_all_there(self) -> None:
        done = console("docs", "configuration")
        slow = console("docs", "configuration", DRIVETRAIN_SLOW_EXIT="1")
        assert done.returncode == slow.returncode == 0
        assert done.stdout == slow.stdout.replace("torn down\n", "") and done.stdout.endswith("atexit ran\n")
        assert len(done.stdout) > 10_000

    def test_the_interpreters_teardown_is_skipped(self) -> None:
        assert "torn down" not in console("--version").stdout
        assert "torn down" in console("--version", DRIVETRAIN_SLOW_EXIT="1").stdout

    @pytest.mark.parametrize(("args", "status"), [(["run", "no/such/folder"], 2), (["--version"], 0), (["nope"], 2)])
    def test_the_exit_status_is_the_commands(self, args: list[str], status: int) -> None:
        done = console(*args)
        assert done.returncode == status == console(*args, DRIVETRAIN_SLOW_EXIT="1").returncode
        assert "atexit ran" in done.stdout
        if status:
            assert done.stderr.strip()

    def test_a_thread_still_running_is_waited_for(self) -> None:
        done = console("--version", thread=True)
        assert done.returncode == 0
        assert "thread finished" in done.stdout and "atexit ran" in done.stdout

    def test_a_run_through_the_console_script_records_its_row(self, tmp_path: Path) -> None:
        from drivetrain.demo import demo_overrides, demo_paths, generate_source, write_folder_config
        from drivetrain.pipeline import Pipeline

        folder = tmp_path / "demo"
        generate_source(demo_paths(folder)["source"])
        write_folder_config(Pipeline.load("demo", overrides=demo_overrides(folder)), folder)
        done = console("run", str(folder), "--window-start", "2025-11-17T03:00:00Z", "--json")
        assert done.returncode == 0, done.stderr
        assert '"pipeline_status": "SUCCESS"' in done.stdout
        with Pipeline.load(folder) as pipeline:
            rows = pipeline.drive_store().history(pipeline.name)
        assert [r.pipeline_status.value for r in rows] == ["SUCCESS"]
