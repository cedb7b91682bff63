"""Readers and other pipelines never wait for a run whose drive table is a SQLite file.

A real run in another process is held inside its extract by the Elasticsearch emulator's
stalled search (as in tests/fleet/test_readers_never_wait.py); its drive table is a SQLite
file that a second pipeline, with a warehouse file of its own, shares.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.emulators.elasticsearch import EsEmulator
from tests.fleet.test_readers_never_wait import SCRIPT, STALL_SECONDS, WINDOW, drivetrain, wait_for
from tests.reliability.sources import es_pipeline
from tests.sdk.factory import make_pipeline_dir, make_rows


@pytest.mark.slow
def test_readers_and_a_second_pipeline_go_on_while_a_run_is_inside_its_extract(tmp_path: Path, es: EsEmulator) -> None:
    drive = {"type": "sqlite", "path": str(tmp_path / "fleet" / "drive.sqlite")}
    folder = es_pipeline(tmp_path / "lab", es, make_rows(n=120, hours=1), drive_table=drive)
    other = make_pipeline_dir(tmp_path / "other", make_rows(n=40, hours=1, duplicates=0, invalid_every=0), drive_table=drive,
                              pipeline_metadata__pipeline_name="other")
    es.stall_next(1, seconds=STALL_SECONDS, path="/_search")
    run = subprocess.Popen([str(SCRIPT), "run", str(folder), "--window-start", WINDOW, "--json"], cwd=folder,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: es.requests_to("/_search") or run.poll() is not None, "the run's first search")
        assert run.poll() is None, run.communicate()
        status = drivetrain(folder, "status", str(folder), "--json")
        assert status.returncode == 0, status.stderr
        (latest,) = json.loads(status.stdout)
        assert latest["pipeline_status"] == "RUNNING"
        assert latest["source_to_stage_transfer_phase"]["status"] == "RUNNING"  # still inside the stalled phase
        show = drivetrain(folder, "show", latest["pipeline_id"], "--pipeline", str(folder), "--json")
        assert show.returncode == 0 and json.loads(show.stdout)["pipeline_id"] == latest["pipeline_id"], show.stderr
        ran = drivetrain(other, "run", str(other), "--window-start", WINDOW, "--json")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)[-1]["pipeline_status"] == "SUCCESS"
        assert run.poll() is None  # all of it while the first run's phase went on
        history = drivetrain(other, "history", str(other), "--json")
        assert [r["pipeline_name"] for r in json.loads(history.stdout)] == ["other"], history.stderr
    finally:
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert json.loads(out)[-1]["pipeline_status"] == "SUCCESS"
    assert not (folder / "drive.duckdb").exists() and not (other / "drive.duckdb").exists()
