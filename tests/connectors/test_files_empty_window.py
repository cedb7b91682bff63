"""A window the count found empty is not read again by the extract, unless a file changed.

The run counts the source (source_count) and then extracts it (the transfer) in one process;
for a window with no record the second full read of every file found nothing new. What the
extract reports (records, unplaceable records, unreadable lines) must be what a fresh read
would report, and any change to the files in between must be read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from drivetrain.connectors.files import FilesSource
from tests.connectors.test_files import WINDOW, source, write_jsonl

#: Records of another day, one without a time and one line that is not JSON.
OUTSIDE = [{"id": 1, "at": "2025-11-14T10:00:00Z"}, {"id": 2, "at": "2025-11-16T10:00:00Z"}, {"id": 3}, "{broken"]


def extracted(src: FilesSource) -> list[dict[str, object]]:
    return pa.Table.from_batches(list(src.extract(WINDOW))).to_pylist()


def report(src: FilesSource) -> tuple[object, ...]:
    lost = src.unplaceable()
    return lost.records, dict(lost.reasons), list(lost.sample), src.unreadable_lines


class Counted(FilesSource):
    """The real source, counting the files it opens."""

    opened = 0

    def _read(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        Counted.opened += 1
        yield from super()._read(*args, **kwargs)


class TestEmptyWindow:
    def test_the_extract_after_an_empty_count_opens_no_file(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "a.jsonl", OUTSIDE)
        src = Counted(source(tmp_path, "a.jsonl").config)
        Counted.opened = 0
        assert src.count(WINDOW) == 0 and Counted.opened == 1
        assert list(src.extract(WINDOW)) == [] and Counted.opened == 1
        assert src.count(WINDOW) == 0 and Counted.opened == 2  # a count always reads

    def test_the_extract_after_an_empty_count_reports_what_a_fresh_read_reports(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "a.jsonl", OUTSIDE)
        counted = source(tmp_path, "a.jsonl")
        assert counted.count(WINDOW) == 0
        after_count = report(counted)
        assert list(counted.extract(WINDOW)) == []
        fresh = source(tmp_path, "a.jsonl")
        assert list(fresh.extract(WINDOW)) == []
        assert report(counted) == report(fresh) == after_count
        assert report(fresh)[0] == 2 and report(fresh)[3] == 1

    def test_a_record_appended_after_the_count_is_extracted(self, tmp_path: Path) -> None:
        path = tmp_path / "a.jsonl"
        write_jsonl(path, OUTSIDE)
        src = source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 0
        with path.open("a") as fh:
            fh.write(json.dumps({"id": 9, "at": "2025-11-15T10:30:00Z"}) + "\n")
        assert [row["id"] for row in extracted(src)] == [9]

    def test_a_file_rewritten_to_the_same_size_and_time_is_read_again(self, tmp_path: Path) -> None:
        path = tmp_path / "a.jsonl"
        write_jsonl(path, [{"id": 1, "at": "2025-11-14T10:00:00Z"}])
        src = source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 0
        before = path.stat()
        write_jsonl(path, [{"id": 1, "at": "2025-11-15T10:00:00Z"}])  # same length, in the window
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
        assert [row["id"] for row in extracted(src)] == [1]

    def test_a_file_added_after_the_count_is_extracted(self, tmp_path: Path) -> None:
        (tmp_path / "in").mkdir()
        write_jsonl(tmp_path / "in" / "a.jsonl", OUTSIDE)
        src = source(tmp_path, "in/*.jsonl")
        assert src.count(WINDOW) == 0
        write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": 7, "at": "2025-11-15T10:05:00Z"}])
        assert [row["id"] for row in extracted(src)] == [7]

    def test_another_window_is_read(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T11:30:00Z"}])
        src = source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 0
        later = type(WINDOW)(WINDOW.end, WINDOW.end + (WINDOW.end - WINDOW.start))
        assert pa.Table.from_batches(list(src.extract(later))).num_rows == 1

    def test_a_window_with_records_is_extracted_as_before(self, tmp_path: Path) -> None:
        write_jsonl(tmp_path / "a.jsonl", [{"id": n, "at": f"2025-11-15T10:{n:02d}:00Z"} for n in range(3)])
        src = source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 3
        assert [row["id"] for row in extracted(src)] == [0, 1, 2]

    def test_a_subclass_extract_still_decides_the_count(self, tmp_path: Path) -> None:
        class EvenIds(FilesSource):
            def extract(self, window):  # type: ignore[no-untyped-def]
                for batch in super().extract(window):
                    yield batch.filter(pa.array([n % 2 == 0 for n in batch.column("id").to_pylist()]))

        write_jsonl(tmp_path / "a.jsonl", [{"id": n, "at": f"2025-11-15T10:{n:02d}:00Z"} for n in range(5)])
        src = EvenIds(source(tmp_path, "a.jsonl").config)
        assert src.count(WINDOW) == 3 == sum(b.num_rows for b in src.extract(WINDOW))
