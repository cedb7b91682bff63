"""docs/configuration.md is generated from the JSON Schema and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from drivetrain.config.reference import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_reference_page_matches_the_schema():
    assert DOC.read_text() == render(), "regenerate: python -m drivetrain.config.reference > docs/configuration.md"


def test_every_key_is_explained():
    undocumented = [line.split("|")[1].strip() for line in render().splitlines() if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert undocumented == []


def test_the_connector_page_matches_the_connectors():
    from drivetrain.config.reference import render_connectors

    page = DOC.with_name("connectors.md")
    assert page.read_text() == render_connectors(), "regenerate: python -m drivetrain.config.reference connectors > docs/connectors.md"
