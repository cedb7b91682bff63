"""Measures how much a PostgreSQL extract raises the peak resident memory of this process.

Usage: python memory_child.py SETTINGS_JSON; prints one JSON line ``{"rows": n, "growth": bytes}``.

As for MySQL (tests/connectors/mysql_memory_child.py): after a warm-up extract the kernel's
peak-RSS mark (VmHWM) is reset through /proc/self/clear_refs, the window is extracted batch by
batch, and the new peak less the resident size at the reset is the growth the extract caused,
Arrow buffers and the driver's own included.
"""

from __future__ import annotations

import gc
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from drivetrain.config import SystemConfig  # noqa: E402
from drivetrain.connectors.postgres import PostgresSource  # noqa: E402
from drivetrain.secrets import resolve_credentials  # noqa: E402
from drivetrain.window import Window  # noqa: E402

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def main() -> None:
    settings = json.loads(sys.argv[1])
    section = {"type": "postgres", "credentials_ref": "mem", **settings["section"]}
    config = SystemConfig.from_section("source_system", section, source_file="config.json")
    credentials = resolve_credentials(
        "mem", environ={"MEM_USER": settings["user"], "MEM_PASSWORD": settings["password"]}
    )
    start, end = (T0 + timedelta(seconds=s) for s in settings["window"])
    with PostgresSource(config, credentials) as source:
        assert source.extract_reader() == settings["section"]["reader"], source.extract_reader()
        for batch in source.extract(Window(T0, T0 + timedelta(seconds=3))):
            del batch
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # the peak-RSS mark restarts from now
        resident = status_kib("VmRSS")
        rows = 0
        for batch in source.extract(Window(start, end)):
            rows += batch.num_rows
            del batch
        peak = status_kib("VmHWM")
    print(json.dumps({"rows": rows, "growth": (peak - resident) * 1024}))


if __name__ == "__main__":
    main()
