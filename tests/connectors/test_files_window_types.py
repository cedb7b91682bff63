"""Property: a window's records read from a file shared with other windows come out exactly as
they do from a file holding only that window's records (values and types).

The files source reads JSONL in chunks that span windows; nothing another window's records hold
(a text where this window has numbers, a field this window lacks) may change what this window
gets, or the schema contract would see changes the window's data does not have.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.config import SystemConfig
from drivetrain.connectors.files import FilesSource
from drivetrain.validation import convert_column
from drivetrain.window import Window

START = datetime(2025, 11, 15, tzinfo=UTC)
HOUR = timedelta(hours=1)
VALUES = st.one_of(st.none(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.text(max_size=5), st.booleans())
RECORD = st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3)
HOURS = st.lists(st.tuples(st.integers(0, 2), RECORD), min_size=1, max_size=12)


def extracted(folder: Path, records: list[tuple[int, dict]], hour: int) -> pa.Table | None:
    seen: dict[int, int] = {}
    lines = []
    for h, record in records:  # the n-th record of an hour is at minute n, in either file
        seen[h] = seen.get(h, -1) + 1
        lines.append(json.dumps({**record, "at": (START + h * HOUR + timedelta(minutes=seen[h])).isoformat()}) + "\n")
    (folder / "f.jsonl").write_text("".join(lines))
    section = {"type": "files", "path": "f.jsonl", "query_field": "at"}
    batches = list(FilesSource(SystemConfig.from_section("source_system", section, base_dir=folder)).extract(
        Window(START + hour * HOUR, START + (hour + 1) * HOUR)))
    return pa.Table.from_batches(batches) if batches else None


def columns(table: pa.Table | None) -> dict[str, tuple[pa.DataType | str, list]]:
    """Each column holding a value: its type and values (all-null columns say nothing of the window).

    The query field is compared by the instants it names: it also carries other windows' values
    (text that is no time, say) for the source to account for them, so it may arrive as text.
    """
    if table is None:
        return {}
    out: dict[str, tuple[pa.DataType | str, list]] = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if column.null_count == len(column):
            continue
        if name == "at":
            out[name] = ("instants", convert_column(column, pa.timestamp("us", tz="UTC"), "UTC", None)[0].to_pylist())
        else:
            out[name] = (column.type, column.to_pylist())
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=HOURS, hour=st.integers(0, 2))
def test_a_windows_records_read_the_same_beside_other_windows(tmp_path: Path, records: list[tuple[int, dict]],
                                                              hour: int) -> None:
    (tmp_path / "shared").mkdir(exist_ok=True)
    (tmp_path / "alone").mkdir(exist_ok=True)
    shared = extracted(tmp_path / "shared", records, hour)
    alone = extracted(tmp_path / "alone", [(h, r) for h, r in records if h == hour], hour)
    assert columns(shared) == columns(alone)
