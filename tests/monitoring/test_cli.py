"""``drivetrain report``: the command as the CLI group will mount it, run with click's runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from drivetrain.monitoring.cli import report_command


def report(*args: str):
    result = CliRunner().invoke(report_command, list(args), catch_exceptions=False)
    return result


class TestReport:
    def test_prints_the_health_of_a_pipeline(self, history):
        result = report(str(history.folder))
        assert result.exit_code == 0, result.output
        assert "pipeline health since" in result.stdout
        line = next(line for line in result.stdout.splitlines() if line.startswith("lab "))
        assert "ALERT" in line and history.runs[-1].pipeline_id in line and "audit" in line and "60.0%" in line

    def test_lists_failed_runs_and_slow_phases(self, history):
        out = report(str(history.folder)).stdout
        assert "failed runs, newest first" in out and "injected failure in stage_to_target_transfer" in out
        assert "phases over their expected duration" in out and "3 of 3" in out

    def test_json_has_every_metric_and_dashboard(self, history):
        data = json.loads(report(str(history.folder), "--json").stdout)
        assert data["success_rates"][0]["pipeline"] == "lab"
        assert data["dashboards"]["pipeline_health"][0]["level"] == "alert"
        assert data["gaps"][0]["pipeline"] == "lab"

    def test_html_writes_the_report_file(self, history, tmp_path):
        target = tmp_path / "report.html"
        result = report(str(history.folder), "--html", str(target))
        assert result.exit_code == 0 and f"wrote {target}" in result.stderr
        assert "1. Pipeline health" in target.read_text()

    def test_the_period_follows_days(self, history):
        data = json.loads(report(str(history.folder), "--json", "--days", "0.5").stdout)
        assert data["since"] < data["generated_at"]
        assert data["success_rates"][0]["runs"] == 5

    def test_pipelines_are_found_in_the_dir_folder(self, history):
        result = report("--dir", str(history.folder), "--json")
        assert "looked at:" in result.stderr
        assert [h["pipeline"] for h in json.loads(result.stdout)["dashboards"]["pipeline_health"]] == ["lab"]

    def test_an_unknown_pipeline_is_a_usage_error(self):
        result = CliRunner().invoke(report_command, ["no_such_pipeline"])
        assert result.exit_code == 2 and "no pipeline 'no_such_pipeline'" in result.output

    def test_send_alerts_sends_stale_data_alerts(self, history_copy, notify_env, alerting, webhook):
        config = json.loads((history_copy.folder / "config.json").read_text())
        config["monitoring"]["freshness_threshold"] = "1ms"
        (history_copy.folder / "config.json").write_text(json.dumps(config))
        result = report(str(history_copy.folder), "--send-alerts")
        assert "sent: lab: data is stale" in result.stderr
        assert "data is stale" in webhook.payloads()[0]["text"]

    @pytest.mark.parametrize("days", ["0", "-1"])
    def test_days_must_be_positive(self, history, days):
        assert CliRunner().invoke(report_command, [str(history.folder), "--days", days]).exit_code == 2
