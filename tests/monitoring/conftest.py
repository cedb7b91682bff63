"""Fixtures for the monitoring tests: a drive table with a known history, local alert servers.

``history`` runs a real pipeline (files source -> DuckDB) through five runs once per session:

====  ======  =========================================================  ========
run   window  what happens                                               status
====  ======  =========================================================  ========
1     00:00   the extract hits one transient error, retried in-phase     SUCCESS
2     01:00   the stage -> target commit is refused (fault plugin)       FAILED
3     01:00   resumes the failed window                                  SUCCESS
4     03:00   the window is empty and ``on_empty_window`` is ``skip``    SKIPPED
5     02:00   audit tolerance 0%, rows were rejected: the audit fails    FAILED
====  ======  =========================================================  ========

The load phase sleeps 20 ms against an expected 5 ms, so every load is over 2x expected.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from drivetrain import Pipeline, RunRecord
from drivetrain.plugins import get_plugin_manager
from drivetrain.testing import FaultPlugin, FaultySource
from tests.sdk.factory import make_pipeline_dir, make_rows

from .servers import SmtpServer, WebhookServer

#: A pipeline.py whose load phase always takes at least 20 ms.
SLOW_LOAD = '''
import time

from drivetrain import Pipeline, SourceToStageTransfer


class SlowLoad(SourceToStageTransfer):
    def run(self, ctx):
        time.sleep(0.02)
        return super().run(ctx)


class Lab(Pipeline):
    phase_classes = {"source_to_stage_transfer": SlowLoad}
'''

CONFIG = {
    "pipeline_metadata__notification_emails": ["oncall@example.com", "owner@example.com"],
    "pipeline_metadata__slack_channel": "#data-alerts",
    "phases__source_to_stage_transfer__expected_run_duration": "5ms",
    "phases__audit__expected_run_duration": "1h",
    "phases__audit__count_tolerances": {"source_to_stage_tolerance_percent": 50.0, "stage_to_target_tolerance_percent": 50.0},
    "monitoring__freshness_threshold": "1h",
    "monitoring__alert_on_stale_data": True,
}


def make_folder(root: Path, **changes: object) -> Path:
    """The lab pipeline folder: 60 rows over 3 hours, every 10th invalid, the slow load phase."""
    folder = make_pipeline_dir(root, make_rows(60, hours=3, invalid_every=10, duplicates=2), **{**CONFIG, **changes})
    (folder / "pipeline.py").write_text(SLOW_LOAD)
    return folder


@attrs.frozen
class History:
    folder: Path
    runs: list[RunRecord]

    def pipeline(self) -> Pipeline:
        return Pipeline.load(self.folder)


def _run(folder: Path, window_index: int, *, overrides: dict | None = None, faults: FaultPlugin | None = None,
         transient_extract: bool = False) -> RunRecord:
    with Pipeline.load(folder, overrides=overrides) as pipeline:
        window = pipeline.grid.first()
        for _ in range(window_index):
            window = pipeline.grid.next(window)
        if transient_extract:
            pipeline.use(source=FaultySource(pipeline.source(), fail_at_batch=0, times=1))
        runner = pipeline.runner(heartbeat_seconds=0.2)
        if faults is None:
            return runner.run(window)
        with faults.installed():
            return runner.run(window)


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    folder = make_folder(tmp_path_factory.mktemp("history") / "lab")
    runs = [
        _run(folder, 0, transient_extract=True),
        _run(folder, 1, faults=FaultPlugin(fail={"stage_to_target_transfer": 1})),
        _run(folder, 1),
        _run(folder, 3, overrides={"phases.source_count.on_empty_window": "skip"}),
        _run(folder, 2, overrides={"phases.audit.count_tolerances.source_to_stage_tolerance_percent": 0.0}),
    ]
    assert [r.pipeline_status.value for r in runs] == ["SUCCESS", "FAILED", "SUCCESS", "SKIPPED", "FAILED"], [
        (r.pipeline_status.value, r.phase_failed) for r in runs
    ]
    return History(folder, runs)


@pytest.fixture
def history_copy(history: History, tmp_path: Path) -> History:
    """The history in a folder of this test's own, to change freely."""
    folder = tmp_path / "lab"
    shutil.copytree(history.folder, folder, ignore=shutil.ignore_patterns("*.locks"))
    return History(folder, history.runs)


@pytest.fixture
def alerting() -> Iterator[None]:
    """The built-in alerting plugin registered (as DEFAULT_PLUGINS will do)."""
    from drivetrain.monitoring import plugin

    pm = get_plugin_manager()
    if not pm.is_registered(plugin):
        pm.register(plugin, name="drivetrain.monitoring.plugin")
    yield


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No notifier settings from the machine leak into a test."""
    for name in ("DRIVETRAIN_SMTP_HOST", "DRIVETRAIN_SMTP_PORT", "DRIVETRAIN_SMTP_SENDER", "DRIVETRAIN_SMTP_USER",
                 "DRIVETRAIN_SMTP_PASSWORD", "DRIVETRAIN_SMTP_SECURITY", "DRIVETRAIN_SLACK_WEBHOOK_URL", "DRIVETRAIN_NOTIFY_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _start(kind: str, make):  # type: ignore[no-untyped-def]
    try:
        return make()
    except OSError as exc:
        pytest.fail(f"could not start the local {kind} server the alert tests need: {exc}")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = _start("SMTP", SmtpServer)
    yield server
    server.close()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = _start("webhook", WebhookServer)
    yield server
    server.close()


@pytest.fixture
def notify_env(clean_env: pytest.MonkeyPatch, smtp: SmtpServer, webhook: WebhookServer) -> pytest.MonkeyPatch:
    """Email and Slack notifiers pointed at the local servers."""
    clean_env.setenv("DRIVETRAIN_SMTP_HOST", "127.0.0.1")
    clean_env.setenv("DRIVETRAIN_SMTP_PORT", str(smtp.port))
    clean_env.setenv("DRIVETRAIN_SMTP_SENDER", "drivetrain@example.com")
    clean_env.setenv("DRIVETRAIN_SLACK_WEBHOOK_URL", webhook.url())
    clean_env.setenv("DRIVETRAIN_NOTIFY_TIMEOUT", "5")
    return clean_env
