"""``--json`` output is the standard library's indented text, written by the C encoder.

``json.dumps(..., indent=2)`` runs in pure Python: for ``status --json`` of 500 pipelines it was
about 1 s of the command. :func:`pretty_json` must give the very same text for every value a
command prints (drive rows: nested objects, lists, non-ASCII text, datetimes through
``default=str``, big integers, floats, NaN).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivetrain.cli import _output
from drivetrain.cli._output import pretty_json

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                    st.datetimes(timezones=st.just(UTC)), st.dates())
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=VALUES)
def test_the_same_text_as_the_standard_library(value, monkeypatch_small):
    assert pretty_json(value) == json.dumps(value, indent=2, default=str)


@pytest.fixture(scope="module")
def monkeypatch_small():
    """Every generated value through msgspec (they are shorter than a real ``status --json``)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_output, "SMALL_JSON", 0)
        yield


def test_a_drive_row_and_not_json_numbers(monkeypatch_small):
    row = {"pipeline_id": "lab_20251115T130000Z_run1", "note": "d\u00e9j\u00e0 vu \u2713\n",
           "pipeline_start_timestamp": datetime(2025, 11, 15, 13, tzinfo=UTC), "phases_completed": [],
           "audit_phase": {"phase_specific_details": {}, "retry_number": 0, "ratio": 0.1 + 0.2},
           "lost": math.nan, "huge": 10**30}
    assert pretty_json([row, row]) == json.dumps([row, row], indent=2, default=str)


def test_a_fleet_sized_output_is_the_same_text():
    rows = [{"pipeline_name": f"fleet_{i:04d}", "audit_phase": {"status": "COMPLETED", "retry_number": 0}} for i in range(2000)]
    assert len(json.dumps(rows)) > _output.SMALL_JSON
    assert pretty_json(rows) == json.dumps(rows, indent=2, default=str)
