"""Tests and docs give a pipeline its connectors the public way (``Pipeline.use``, ``connectors=``).

Nothing reaches into a pipeline's private connector caches: what a test needs a user needs too,
and the documented way (docs/writing-a-pipeline.md, executed by tests/sdk/test_docs_examples.py)
is the one the suite uses.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE = {"_connectors", "_given", "_retired"}


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE]


class TestPublicConnectorSeam:
    def test_no_test_reaches_into_a_pipeline_s_connector_caches(self) -> None:
        found = [use for path in sorted((ROOT / "tests").rglob("*.py")) for use in private_uses(path)]
        assert found == []

    def test_the_docs_show_no_private_connector_access(self) -> None:
        found = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").rglob("*.md"))
                 if any(f".{name}" in p.read_text() for name in PRIVATE)]
        assert found == []

    def test_the_testing_guide_attaches_the_faulty_source_with_use(self) -> None:
        guide = (ROOT / "docs" / "writing-a-pipeline.md").read_text()
        assert "pipeline.use(source=broken)" in guide and "FaultySource(pipeline.source()" in guide
