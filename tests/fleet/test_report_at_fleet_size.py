"""The HTML report of 500 pipelines, written by ``drivetrain report --html`` and opened in a real
headless Chromium: the fleet summary comes first and every pipeline is one click from it.

The fleet is the fleet benchmark's (``benchmarks/fleet_history.py``): 500 hourly pipelines
sharing one drive file, two days of history written through the drive store's bulk insert, one
pipeline in 20 with an open failure. Chromium is Debian's ``chromium`` package (installed by
``scripts/install-test-servers``); without it this test fails with the install command. The page,
its DOM and a screenshot of its top are kept under
``test-artifacts/fleet/``. How long Chromium takes is measured by the benchmark
(``report_browser``), not here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import fleet_history
from drivetrain import Pipeline

PIPELINES, DAYS = 500, 2
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "fleet"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed to check the fleet's HTML report: install it with: "
                "sudo apt-get install -y chromium (or run scripts/install-test-servers)")


def browse(page: str, profile: Path, *args: str) -> str:
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_five_hundred_pipelines_summary_first_each_one_click_away(tmp_path: Path) -> None:
    now = fleet_history.fleet_now()
    drive = {"type": "duckdb", "drive_path": str(tmp_path / "drive.duckdb")}
    folders = fleet_history.write_fleet(tmp_path, PIPELINES, DAYS, now, drive)
    with Pipeline.load(folders[0]) as pipeline:
        pipeline.drive_store().insert_many(fleet_history.fleet_history(PIPELINES, DAYS, now), chunk=10_000)  # type: ignore[attr-defined]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / "report-500.html"
    env = {**os.environ, "DRIVETRAIN_PIPELINES_HOME": str(tmp_path / "pipelines"), "DRIVETRAIN_CACHE_DIR": str(tmp_path / "cache"),
           "NO_COLOR": "1"}
    done = subprocess.run([str(Path(sys.executable).with_name("drivetrain")), "report", "--html", str(page)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert page.exists(), done.stderr[-2000:]

    dom = browse(page.as_uri(), tmp_path / "profile", "--dump-dom")
    (ARTIFACTS / "report-500.dom.html").write_text(dom)
    shot = ARTIFACTS / "report-500.png"
    shot.unlink(missing_ok=True)
    browse(page.as_uri(), tmp_path / "profile", "--window-size=1400,1800", f"--screenshot={shot}")
    print(f"\nfleet report artifacts: {page} {shot} {ARTIFACTS / 'report-500.dom.html'}")
    assert shot.stat().st_size > 0

    # the fleet summary comes before every dashboard, right after the headline numbers
    sections = re.findall(r'<section (?:class|id)="([a-z]+)"', dom)
    assert sections[:3] == ["cards", "fleet", "health"], sections
    summary = dom[dom.index('<section id="fleet">'):dom.index('<section id="health">')]
    assert f"Every pipeline ({PIPELINES})" in summary
    # every pipeline: one link in the summary, to its own row of the health table
    names = [fleet_history.name_of(i) for i in range(PIPELINES)]
    links = re.findall(r'<a href="#pipeline-([a-z0-9_]+)">', summary)
    rows = re.findall(r'<tr id="pipeline-([a-z0-9_]+)">', dom)
    assert sorted(set(links)) == names and sorted(rows) == names
    # what needs attention is listed first: the pipelines left with an open failure are the alerts
    alerts = summary[:summary.index("<details")]
    failing = sorted(name for name in names if int(name.split("_")[1]) % 20 == 7)
    assert re.findall(r'href="#pipeline-([a-z0-9_]+)"', alerts) == failing
    assert f"Needs attention: {len(failing)} alert(s)" in summary
    # charts stay readable: at most 30 pipelines' bars, the rest in the tables
    assert "the lowest 30 of 500 pipelines" in dom
