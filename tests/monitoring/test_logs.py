"""Log output: JSON lines with the run's context from a real run, plain lines, secrets masked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from drivetrain import Pipeline
from drivetrain.monitoring.logs import JsonFormatter, configure_logging
from drivetrain.secrets import register_secret
from tests.sdk.factory import make_pipeline_dir, make_rows


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def json_lines(restore_logging):
    stream = io.StringIO()
    configure_logging("INFO", json=True, stream=stream)

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    return lines


def record(message, *args, **extra):
    rec = logging.LogRecord("drivetrain.run", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


class TestJsonFormatter:
    def test_one_object_with_time_level_logger_and_message(self):
        data = json.loads(JsonFormatter().format(record("loaded %d rows", 5)))
        assert data["level"] == "INFO" and data["logger"] == "drivetrain.run" and data["message"] == "loaded 5 rows"
        assert data["time"].endswith("Z") and "T" in data["time"]

    def test_context_fields_come_from_extra(self):
        data = json.loads(JsonFormatter().format(record("x", pipeline="lab", run_id="lab_r1", window="[a, b)", phase="audit")))
        assert (data["pipeline"], data["run_id"], data["window"], data["phase"]) == ("lab", "lab_r1", "[a, b)", "audit")

    def test_the_runners_bracket_prefix_is_dropped(self):
        data = json.loads(JsonFormatter().format(record("[lab lab_r1 [a, b) audit] audit COMPLETED", run_id="lab_r1")))
        assert data["message"] == "audit COMPLETED"

    def test_other_extras_are_kept(self):
        assert json.loads(JsonFormatter().format(record("x", rows=12)))["rows"] == 12

    def test_exceptions_are_a_field(self):
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
        data = json.loads(JsonFormatter().format(rec))
        assert "ValueError: boom" in data["exception"]

    def test_secrets_are_masked(self):
        register_secret("hunter2-very-secret")
        line = JsonFormatter().format(record("password is hunter2-very-secret", detail="hunter2-very-secret"))
        assert "hunter2-very-secret" not in line and "<SECRET>" in line


class TestConfigureLogging:
    def test_a_real_run_logs_every_phase_with_its_context(self, tmp_path, json_lines):
        folder = make_pipeline_dir(tmp_path / "lab", make_rows(40, hours=1, invalid_every=0, duplicates=0))
        with Pipeline.load(folder) as pipeline:
            run = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
        lines = [line for line in json_lines() if line.get("run_id") == run.pipeline_id]
        audit = [line for line in lines if line.get("phase") == "audit"]
        assert audit and audit[0]["pipeline"] == "lab" and audit[0]["window"] == "[2025-11-15T00:00:00Z, 2025-11-15T01:00:00Z)"
        assert audit[0]["message"].startswith("audit COMPLETED in ")
        assert any(line["message"].startswith("run SUCCESS") for line in lines)

    def test_plain_lines_keep_the_runners_prefix(self, restore_logging):
        stream = io.StringIO()
        configure_logging(logging.INFO, stream=stream)
        logging.getLogger("drivetrain.test").info("[lab lab_r1 [a, b) audit] done")
        assert " INFO drivetrain.test: [lab lab_r1 [a, b) audit] done" in stream.getvalue()

    def test_a_second_call_replaces_the_first_handler(self, restore_logging):
        first, second = io.StringIO(), io.StringIO()
        configure_logging(stream=first)
        configure_logging(json=True, stream=second)
        logging.getLogger("drivetrain.test").warning("once")
        assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "once"

    def test_the_level_is_applied(self, json_lines):
        configure_logging("WARNING", json=True)
        assert logging.getLogger().level == logging.WARNING

    def test_an_unknown_level_is_refused(self, restore_logging):
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging("LOUD")
