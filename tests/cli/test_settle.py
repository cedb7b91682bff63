"""``drivetrain run`` settling late data and ``--accept-shrink``, and how status, history and the
report show reloads. Runs the installed script on a files pipeline whose windows ended just now.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import pytest

from tests.sdk.factory import make_pipeline_dir, query

from .conftest import Cli

HOUR = timedelta(hours=1)


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(i: int, when: datetime, prefix: str = "T") -> dict[str, Any]:
    return {"test_id": f"{prefix}{i:05d}", "age": 40, "result": "positive", "reported_at": stamp(when)}


def append(folder: Path, records: list[dict[str, Any]]) -> None:
    with open(folder / "data" / "records.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def count(folder: Path, start: datetime, end: datetime) -> int:
    return int(query(folder, "SELECT count(*) FROM tests WHERE reported_at >= ? AND reported_at < ?", [start, end])[0][0])


@pytest.fixture
def recent(cli: Cli) -> tuple[Path, datetime]:
    """A pipeline whose three hourly windows before the current hour are loaded, 4 records each."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    first = hour - 3 * HOUR
    rows = [record(w * 10 + i, first + w * HOUR + timedelta(minutes=5 * i)) for w in range(3) for i in range(4)]
    folder = make_pipeline_dir(cli.cwd / "lab", rows, query_window__settle_horizon="6h",
                               dag_schedule__start_date=first.date().isoformat())
    loaded = cli("run", "./lab", "--from", stamp(first), "--to", stamp(hour))
    assert loaded.returncode == 0, loaded
    return folder, first


class TestSettleFromTheCli:
    def test_a_plain_run_reloads_the_window_that_received_late_records(self, cli: Cli, recent: tuple[Path, datetime]) -> None:
        folder, first = recent
        late = first + HOUR
        append(folder, [record(900 + i, late + timedelta(minutes=30 + i), prefix="L") for i in range(3)])
        result = cli("run", "./lab")
        assert result.returncode == 0, result
        reason = f"source count 4 -> 7 since the run of lab_{late:%Y%m%dT%H%M%SZ}_run1"
        assert f"{reason}: reloading the window" in result.stderr
        assert f"SUCCESS  lab_{late:%Y%m%dT%H%M%SZ}_run2" in result.stdout
        assert count(folder, late, late + HOUR) == 7
        history = cli("history", "./lab")
        assert f"reload: {reason}" in history.stdout, history
        status = cli("status", "./lab")
        assert "late data: settle_horizon 6h: " in status.stdout and "loaded window(s) still settling" in status.stdout, status
        assert f"lab_{late:%Y%m%dT%H%M%SZ}_run2: {reason}" in status.stdout
        report = cli("report", "./lab")
        assert "windows reloaded for late data" in report.stdout and reason in report.stdout, report
        data = cli("report", "./lab", "--json").json()
        (reload,) = data["reloads"]
        assert reload["previous_count"] == 4 and reload["source_count"] == 7 and reload["reason"] == reason
        assert data["dashboards"]["data_quality"]["reloads"][0]["run_id"] == f"lab_{late:%Y%m%dT%H%M%SZ}_run2"
        html = cli.cwd / "report.html"
        assert cli("report", "./lab", "--html", str(html)).returncode == 0
        page = html.read_text()
        assert "Windows reloaded for late data" in page and escape(reason) in page

    def test_a_plain_run_with_nothing_late_only_counts(self, cli: Cli, recent: tuple[Path, datetime]) -> None:
        result = cli("run", "./lab")
        assert result.returncode == 0, result
        assert "settle: 3 window(s) inside settle_horizon 6h re-counted: no change" in result.stderr
        assert "_run2" not in result.stdout
        assert "reloaded after their source records changed: none" in cli("status", "./lab").stdout

    def test_a_plain_dry_run_shows_the_reload_and_changes_nothing(self, cli: Cli, recent: tuple[Path, datetime]) -> None:
        folder, first = recent
        append(folder, [record(900, first + timedelta(minutes=50), prefix="L")])
        result = cli("run", "./lab", "--dry-run")
        assert result.returncode == 0, result
        assert "source count 4 -> 5 since the run of" in result.stderr
        assert f"lab {first:%Y-%m-%d %H:%M} -> " in result.stdout, result
        assert count(folder, first, first + HOUR) == 4
        assert "_run2" not in cli("history", "./lab").stdout

    def test_a_run_of_one_window_does_not_settle_others(self, cli: Cli, recent: tuple[Path, datetime]) -> None:
        folder, first = recent
        append(folder, [record(900, first + HOUR + timedelta(minutes=45), prefix="L")])
        result = cli("run", "./lab", "--window-start", stamp(first))
        assert result.returncode == 0, result
        assert "settle:" not in result.stderr
        assert count(folder, first + HOUR, first + 2 * HOUR) == 4


class TestAcceptShrink:
    def test_the_guard_stops_the_cli_run_and_accept_shrink_lets_it_through(self, cli: Cli, recent: tuple[Path, datetime]) -> None:
        folder, first = recent
        (folder / "data" / "records.jsonl").write_text(json.dumps(record(0, first)) + "\n")
        stopped = cli("run", "./lab", "--window-start", stamp(first))
        assert stopped.returncode == 1, stopped
        assert "shrink guard: the window's last successful load" in stopped.stdout and "--accept-shrink" in stopped.stdout
        assert count(folder, first, first + HOUR) == 4
        accepted = cli("run", "./lab", "--window-start", stamp(first), "--accept-shrink", "--json")
        assert accepted.returncode == 0, accepted
        (row,) = accepted.json()
        assert row["config_snapshot"]["phases"]["stage_to_target_transfer"]["accept_shrink"] is True
        assert row["stage_to_target_transfer_phase"]["phase_specific_details"]["shrink_guard"]["accepted"] is True
        assert count(folder, first, first + HOUR) == 1


class TestRecountFailure:
    def test_a_recount_the_source_refuses_is_reported_and_the_run_goes_on(
            self, cli: Cli, mariadb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from tests.reliability.proxy import ProxyProcess
        from tests.reliability.sources import mysql_pipeline

        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        first = hour - 3 * HOUR
        rows = [record(w * 10 + i, first + w * HOUR + timedelta(minutes=5 * i)) for w in range(3) for i in range(4)]
        proxy = ProxyProcess(mariadb.host, mariadb.port)
        try:
            folder = mysql_pipeline(cli.cwd / "lab", mariadb, rows, monkeypatch, port=proxy.port,
                                    query_window__settle_horizon="6h", dag_schedule__start_date=first.date().isoformat(),
                                    retry={"max_retries": 2, "backoff_strategy": "none"})
            loaded = cli("run", "./lab", "--from", stamp(first), "--to", stamp(first + 2 * HOUR))
            assert loaded.returncode == 0, loaded
            proxy.arm(after_bytes=0, times=3)  # the first re-count's three tries (max_retries 2) are reset at once
            result = cli("run", "./lab")
        finally:
            proxy.stop()
        assert result.returncode == 0, result
        assert "not checked for late records this time (the run goes on; the next plain run counts again): " \
               "could not re-count the source: MySQL" in result.stderr, result
        assert "not counted: the source failed for an earlier window" in result.stderr
        assert "SUCCESS  lab_" in result.stdout and "_run1" in result.stdout, result
        assert count(folder, first, first + 2 * HOUR) == 8
