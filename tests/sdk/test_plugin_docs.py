"""docs/plugins.md for plugin authors: the Window table is complete and the phase example runs."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import duckdb

from drivetrain import Pipeline, Window
from drivetrain.plugins.builtins import CONNECTORS

from .factory import make_pipeline_dir, make_rows

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()


def _section(title: str) -> str:
    return DOC.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_window_table_lists_every_public_attribute() -> None:
    table = _section("What a source is given: the `Window`")
    public = {f.name for f in attrs.fields(Window)} | {n for n in vars(Window) if not n.startswith("_")}
    public -= {"evolve"}
    missing = [name for name in sorted(public) if f"window.{name}" not in table]
    assert missing == []


def test_the_phase_example_runs_and_uses_the_source_as_a_method(tmp_path: Path) -> None:
    code = re.findall(r"```python\n(.*?)```", _section("Writing a phase"), flags=re.S)[0]
    assert "ctx.pipeline.source()" in code
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)  # noqa: S102 - the documented example
    folder = make_pipeline_dir(tmp_path / "lab", make_rows(20, hours=1, invalid_every=0, duplicates=0))

    class Lab(Pipeline):
        config_path = folder / "config.json"
        phase_classes = {"stage_to_target_transfer": namespace["WindowKeyTransfer"]}  # type: ignore[dict-item]

    with Lab() as pipeline:
        record = pipeline.runner(heartbeat_seconds=0.2).run(pipeline.grid.first())
    assert record.pipeline_status.value == "SUCCESS", record.phase_failed
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT DISTINCT loaded_window FROM tests").fetchall() == [("20251115T000000Z",)]


def test_built_in_connectors_use_the_documented_role_type_keys() -> None:
    assert all(key.partition(":")[0] in ("source", "warehouse", "archive") for key in CONNECTORS)
    assert '"source:orders_api"' in _section("Connector keys: `role:type`")
