"""New pipelines and the contrib pipelines publish after the audit: the gate is the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivetrain import Pipeline, RunStatus
from drivetrain.cli import _templates as templates
from drivetrain.cli.scaffold import scaffold
from drivetrain.config import load_config
from drivetrain.phases.publish import gated

CONTRIB = Path(__file__).resolve().parents[2] / "contrib_pipelines"


@pytest.mark.parametrize("name", sorted(p.name for p in CONTRIB.iterdir() if (p / "config.json").is_file()))
def test_every_contrib_pipeline_uses_the_gate(name: str) -> None:
    assert gated(load_config(CONTRIB / name / "config.json"))


def test_a_new_pipeline_publishes_after_its_audit(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    folder = tmp_path / "orders"
    scaffold(folder, "orders", "files")
    with Pipeline.load(folder) as pipeline:
        assert gated(pipeline.config)
        start = datetime.fromisoformat(templates.SAMPLE_DAY).replace(tzinfo=UTC)
        record = pipeline.runner().run(pipeline.grid.window_starting(start))
    assert record.pipeline_status is RunStatus.SUCCESS
    assert record.phases["publish"].phase_specific_details["rows_published"] == record.phases["target_count"].phase_specific_details["count"]
