"""Runs tests/sdk/crash_child.py or race_child.py with the Snowflake warehouse registered.

Usage: python child.py SCRIPT ARGS...  (the script sees ARGS as its own arguments)
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.connectors.snowflake.scenario import register_snowflake  # noqa: E402

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = [script, *sys.argv[2:]]
    register_snowflake()
    runpy.run_path(script, run_name="__main__")
