"""The files source: JSONL, CSV and Parquet, streamed and filtered to the window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.files import FilesSource
from drivetrain.errors import PermanentError
from drivetrain.window import Window

START = datetime(2025, 11, 15, 10, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))


def rows(n=100):
    return [{"id": i, "name": f"n{i}", "at": (START + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")} for i in range(n)]


def source(tmp_path: Path, path: str, **options) -> FilesSource:
    section = {"type": "files", "path": path, "query_field": "at", "batch_size": 7, **options}
    return FilesSource(SystemConfig.from_section("source_system", section, base_dir=tmp_path))


def write_jsonl(path: Path, items) -> None:
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in items))


class TestFormats:
    def test_jsonl_count_and_extract_agree_and_are_half_open(self, tmp_path):
        write_jsonl(tmp_path / "a.jsonl", rows())
        src = source(tmp_path, "a.jsonl")
        got = [r for b in src.extract(WINDOW) for r in b.to_pylist()]
        assert src.count(WINDOW) == len(got) == 60
        assert [r["id"] for r in got] == list(range(60))

    def test_batches_never_exceed_batch_size(self, tmp_path):
        write_jsonl(tmp_path / "a.jsonl", rows())
        assert max(b.num_rows for b in source(tmp_path, "a.jsonl").extract(WINDOW)) == 7

    def test_csv(self, tmp_path):
        lines = ["id,name,at"] + [f"{r['id']},{r['name']},{r['at']}" for r in rows()]
        (tmp_path / "a.csv").write_text("\n".join(lines) + "\n")
        assert source(tmp_path, "a.csv").count(WINDOW) == 60

    def test_parquet(self, tmp_path):
        table = pa.Table.from_pylist(rows())
        pq.write_table(table, tmp_path / "a.parquet")
        assert source(tmp_path, "a.parquet").count(WINDOW) == 60

    def test_a_folder_and_a_glob_read_every_file(self, tmp_path):
        (tmp_path / "d").mkdir()
        write_jsonl(tmp_path / "d" / "1.jsonl", rows()[:30])
        write_jsonl(tmp_path / "d" / "2.jsonl", rows()[30:])
        assert source(tmp_path, "d").count(WINDOW) == source(tmp_path, "d/*.jsonl").count(WINDOW) == 60


class TestBadInput:
    def test_mixed_types_in_a_column_are_kept_as_text(self, tmp_path):
        items = rows(5)
        items[2]["name"] = 42
        write_jsonl(tmp_path / "a.jsonl", items)
        batch = next(source(tmp_path, "a.jsonl", batch_size=100).extract(WINDOW))
        assert batch.column("name").to_pylist()[2] == "42"

    @pytest.mark.parametrize("outside", ["before", "after"])
    def test_a_text_value_in_another_window_leaves_this_windows_numbers_numbers(self, tmp_path, outside):
        """The file is read in chunks that span windows; a field's type comes from the window's records."""
        other = {"id": "about", "name": "x", "at": (START + timedelta(hours=-1 if outside == "before" else 2)).isoformat()}
        items = rows(60)
        items[3]["id"] = 3.5
        write_jsonl(tmp_path / "a.jsonl", [other, *items] if outside == "before" else [*items, other])
        src = source(tmp_path, "a.jsonl", batch_size=100)
        got = pa.Table.from_batches(list(src.extract(WINDOW)))
        assert got.schema.field("id").type == pa.float64()
        assert got.column("id").to_pylist()[:4] == [0, 1, 2, 3.5] and got.num_rows == 60
        at = datetime.fromisoformat(other["at"])
        assert [r["id"] for b in src.extract(Window(at, at + timedelta(minutes=1))) for r in b.to_pylist()] == ["about"]

    def test_records_without_any_field_are_counted_as_belonging_to_no_window(self, tmp_path):
        write_jsonl(tmp_path / "a.jsonl", ["{}", "{}", '{"id": 1, "at": 5}', '{"id": "x", "at": "2025-11-15T10:00:00Z"}'])
        src = source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 1
        assert src.unplaceable().records == 3

    def test_unparseable_lines_are_counted_not_loaded(self, tmp_path):
        write_jsonl(tmp_path / "a.jsonl", [*rows(5), "{not json", "[1, 2]"])
        src = source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 5
        assert src.unreadable_lines == 2

    def test_no_matching_files_is_a_permanent_error_naming_the_path(self, tmp_path):
        with pytest.raises(PermanentError, match="no files match"):
            source(tmp_path, "missing/*.jsonl").count(WINDOW)

    def test_check_reports_a_missing_query_field(self, tmp_path):
        write_jsonl(tmp_path / "a.jsonl", [{"id": 1}])
        with pytest.raises(PermanentError, match="query_field"):
            source(tmp_path, "a.jsonl").check()

    def test_check_samples_the_first_batch_and_finds_a_query_field_that_starts_later(self, tmp_path):
        """check() parses only the first batch's lines; a query field absent from them is looked
        for in the whole first chunk, as before, instead of failing the check."""
        later = [{"id": n, "at": f"2025-11-15T10:{n:02d}:00Z"} for n in range(5)]
        write_jsonl(tmp_path / "a.jsonl", [{"id": n} for n in range(3)] + later)
        lines = source(tmp_path, "a.jsonl", batch_size=2).check()
        assert "a.jsonl has the query field 'at'" in lines
        write_jsonl(tmp_path / "b.jsonl", later + [{"id": 9, "at": 12}])
        assert "b.jsonl has the query field 'at'" in source(tmp_path, "b.jsonl", batch_size=2).check()
