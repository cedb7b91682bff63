"""The files source answers a window no file's remembered range meets without opening a file.

Each file read whole leaves its query field's range, its record count and its unplaceable
records in the cache folder, keyed by the file's stat (connectors/files_ranges.py). Each test
here makes a shortcut that would be wrong visible: a count, an extract or an unplaceable tally
that differs from a fresh read with remembering off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.connectors import files_ranges
from drivetrain.connectors.files import FilesSource
from drivetrain.window import Window
from tests.connectors.test_files import START, WINDOW, source, write_jsonl

#: The day before the window: a file of it never meets WINDOW.
DAY_BEFORE = [{"id": n, "at": f"2025-11-14T{n:02d}:30:00Z"} for n in range(10)]
REPO = Path(__file__).resolve().parents[3]


class Opened(FilesSource):
    """The real source, listing the files it parses."""

    opened: list[str] = []

    def _read(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        Opened.opened.append(Path(path).name)
        yield from super()._read(path, *args, **kwargs)


def write(path: Path, items: list[object]) -> None:
    """``write_jsonl``, then wait until the file counts as left alone (files_ranges.SETTLED_NS):
    a file changed within a clock tick of its read is not remembered."""
    write_jsonl(path, items)
    settle()


def settle() -> None:
    time.sleep(files_ranges.SETTLED_NS / 1e9 + 0.02)


def opened_source(tmp_path: Path, pattern: str, **options: object) -> FilesSource:
    Opened.opened = []
    return Opened(source(tmp_path, pattern, **options).config)


def report(src: FilesSource) -> tuple[object, ...]:
    lost = src.unplaceable()
    return lost.records, dict(lost.reasons), list(lost.sample), src.unreadable_lines


def fresh(tmp_path: Path, pattern: str, window: Window, monkeypatch: pytest.MonkeyPatch,
          **options: object) -> tuple[int, list[object], tuple[object, ...]]:
    """Count, extracted ids and unplaceable tally of a read with remembering off."""
    with monkeypatch.context() as patch:
        patch.setenv("DRIVETRAIN_CONFIG_CACHE", "off")
        src = source(tmp_path, pattern, **options)
        count = src.count(window)
        tally = report(src)
        ids = [row.get("id") for b in source(tmp_path, pattern, **options).extract(window) for row in b.to_pylist()]
    return count, ids, tally


def answer(src: FilesSource, window: Window) -> tuple[int, list[object], tuple[object, ...]]:
    count = src.count(window)
    tally = report(src)
    return count, [row.get("id") for b in src.extract(window) for row in b.to_pylist()], tally


def keep_times(path: Path, before: os.stat_result) -> None:
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


class TestShortcut:
    def test_a_window_no_file_meets_opens_no_file_in_the_next_process(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [*DAY_BEFORE, {"id": 99}, "{cut off"])
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0 and Opened.opened == ["a.jsonl"]
        later = opened_source(tmp_path, "a.jsonl")  # a new source object: what a new run makes
        assert later.count(WINDOW) == 0 and list(later.extract(WINDOW)) == []
        assert Opened.opened == []
        assert report(later) == (2, {"line is not valid JSON": 1, "at: missing or empty": 1},
                                 [f"{tmp_path}/a.jsonl line 12: line is not valid JSON ('{{cut off')",
                                  f"{tmp_path}/a.jsonl record 11: at: missing or empty"], 1)

    def test_the_remembered_tally_keeps_the_first_examples_in_reading_order(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("a", "b"):
            write(tmp_path / f"{name}.jsonl", [*DAY_BEFORE, *({"id": n} for n in range(4)), "{cut"])
        expected = fresh(tmp_path, "*.jsonl", WINDOW, monkeypatch)
        assert answer(source(tmp_path, "*.jsonl"), WINDOW) == expected
        assert answer(source(tmp_path, "*.jsonl"), WINDOW) == expected  # every file remembered now
        assert expected[2][0] == 10 and len(expected[2][2]) == 5

    def test_the_empty_count_imports_no_pyarrow(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", DAY_BEFORE)
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 0
        code = ("import sys\nfrom datetime import datetime, UTC\nfrom pathlib import Path\n"
                "from drivetrain.config import SystemConfig\nfrom drivetrain.connectors.files import FilesSource\n"
                "from drivetrain.window import Window\n"
                "WINDOW = Window(datetime(2025, 11, 15, 10, tzinfo=UTC), datetime(2025, 11, 15, 11, tzinfo=UTC))\n"
                "section = {'type': 'files', 'path': 'a.jsonl', 'query_field': 'at', 'batch_size': 7}\n"
                f"src = FilesSource(SystemConfig.from_section('source_system', section, base_dir=Path({str(tmp_path)!r})))\n"
                "assert src.count(WINDOW) == 0 and list(src.extract(WINDOW)) == [], 'not empty'\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyarrow', 'drivetrain') "
                "and m.split('.')[-1] in ('pyarrow', 'compute', 'validation')))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.stdout.strip() == "[]", done.stderr

    def test_only_the_files_that_meet_the_window_are_read(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", DAY_BEFORE)
        write(tmp_path / "b.jsonl", [{"id": 7, "at": "2025-11-15T10:05:00Z"}])
        assert opened_source(tmp_path, "*.jsonl").count(WINDOW) == 1
        later = opened_source(tmp_path, "*.jsonl")
        assert later.count(WINDOW) == 1 and Opened.opened == ["b.jsonl"]

    def test_a_range_that_meets_the_window_is_read_again(self, tmp_path: Path) -> None:
        """The day around the window: its range covers the window although no record is in it."""
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T09:00:00Z"}, {"id": 2, "at": "2025-11-15T12:00:00Z"}])
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0 and Opened.opened == ["a.jsonl"]


class TestFormats:
    @pytest.mark.parametrize("fmt", ["csv", "parquet"])
    def test_csv_and_parquet_files_are_remembered_too(self, tmp_path: Path, fmt: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        table = pa.table({"id": [1, 2, 3], "at": ["2025-11-14T10:00:00Z", "2025-11-15T10:30:00Z", None]})
        if fmt == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, tmp_path / "a.csv")
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp_path / "a.parquet")
        settle()
        name = f"a.{fmt}"
        before = Window(START - timedelta(days=1), START - timedelta(days=1) + timedelta(hours=1))
        assert opened_source(tmp_path, name).count(WINDOW) == 1
        for window in (before, WINDOW, Window(WINDOW.end, WINDOW.end + timedelta(hours=1))):
            expected = fresh(tmp_path, name, window, monkeypatch)
            assert answer(opened_source(tmp_path, name), window) == expected
        assert opened_source(tmp_path, name).count(Window(WINDOW.end, WINDOW.end + timedelta(hours=1))) == 0
        assert Opened.opened == []


class TestCheck:
    """pre_validation's check of the first file is remembered like its range."""

    def test_a_remembered_check_says_what_the_read_said(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [{"id": 1, "at": 1763200000}, {"id": 2}])
        first = opened_source(tmp_path, "a.jsonl").check()
        assert Opened.opened == ["a.jsonl"] and any("holds numbers" in line for line in first)
        again = opened_source(tmp_path, "a.jsonl")
        assert again.check() == first and Opened.opened == []

    def test_a_file_rewritten_without_the_query_field_fails_the_check(self, tmp_path: Path) -> None:
        from drivetrain.errors import PermanentError

        path = tmp_path / "a.jsonl"
        write(path, [{"id": 1, "at": "2025-11-15T10:00:00Z"}])
        source(tmp_path, "a.jsonl").check()
        before = path.stat()
        write(path, [{"id": 1, "xx": "2025-11-15T10:00:00Z"}])
        keep_times(path, before)
        with pytest.raises(PermanentError, match="no column 'at'"):
            source(tmp_path, "a.jsonl").check()


class TestBounds:
    """Windows are half-open: a record at the start is in, one at the end is out."""

    def test_a_file_ending_at_the_window_start_is_read(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T09:00:00Z"}, {"id": 2, "at": "2025-11-15T10:00:00Z"}])
        earlier = Window(START - timedelta(hours=1), START)
        assert source(tmp_path, "a.jsonl").count(earlier) == 1  # remembers the range 09:00 .. 10:00
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 1

    def test_a_file_starting_at_the_window_end_is_not_in_it(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T11:00:00Z"}, {"id": 2, "at": "2025-11-15T12:00:00Z"}])
        later = Window(WINDOW.end, WINDOW.end + timedelta(hours=1))
        assert opened_source(tmp_path, "a.jsonl").count(later) == 1
        src = opened_source(tmp_path, "a.jsonl")
        assert src.count(WINDOW) == 0 and Opened.opened == []
        assert src.count(later) == 1 and Opened.opened == ["a.jsonl"]

    def test_a_microsecond_inside_either_bound_is_read(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T08:00:00Z"},
                                           {"id": 2, "at": "2025-11-15T10:59:59.999999Z"}])
        assert source(tmp_path, "a.jsonl").count(Window(START - timedelta(hours=2), START - timedelta(hours=1))) == 1
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 1


class TestTimezones:
    def test_naive_times_are_placed_in_the_source_zone(self, tmp_path: Path) -> None:
        """05:30 in New York is 10:30 UTC: a range kept as if naive times were UTC would skip it."""
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T05:30:00"}])
        five = Window(START - timedelta(hours=5), START - timedelta(hours=4))
        assert source(tmp_path, "a.jsonl", source_timezone="America/New_York").count(five) == 0
        assert source(tmp_path, "a.jsonl", source_timezone="America/New_York").count(WINDOW) == 1

    def test_another_zone_does_not_use_the_ranges_of_the_first(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T05:30:00"}])
        five = Window(START - timedelta(hours=5), START - timedelta(hours=4))
        assert source(tmp_path, "a.jsonl").count(five) == 1  # read as UTC
        assert source(tmp_path, "a.jsonl", source_timezone="America/New_York").count(five) == 0
        assert source(tmp_path, "a.jsonl", source_timezone="America/New_York").count(WINDOW) == 1
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 0

    def test_offsets_in_the_values_are_kept(self, tmp_path: Path) -> None:
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T12:30:00+02:00"}])
        assert source(tmp_path, "a.jsonl").count(Window(START + timedelta(hours=2), START + timedelta(hours=3))) == 0
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 1


class TestChangedFiles:
    """A file is known by path, inode, size, modification and change times: any rewrite is read."""

    def write_then_count(self, tmp_path: Path) -> Path:
        """A file of the day before, counted and remembered (a second count opens nothing)."""
        path = tmp_path / "a.jsonl"
        write(path, [{"id": 1, "at": "2025-11-14T10:00:00Z"}])
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0 and Opened.opened == []
        return path

    def count_again(self, tmp_path: Path, pattern: str = "a.jsonl") -> int:
        src = opened_source(tmp_path, pattern)
        found = src.count(WINDOW)
        assert Opened.opened, "the changed file was not read"
        return found

    def test_same_size_new_modification_time(self, tmp_path: Path) -> None:
        path = self.write_then_count(tmp_path)
        size = path.stat().st_size
        write_jsonl(path, [{"id": 1, "at": "2025-11-15T10:00:00Z"}])
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
        assert path.stat().st_size == size
        assert self.count_again(tmp_path) == 1

    def test_same_modification_time_new_size(self, tmp_path: Path) -> None:
        path = self.write_then_count(tmp_path)
        before = path.stat()
        write_jsonl(path, [{"id": 10, "at": "2025-11-15T10:00:00Z"}])
        keep_times(path, before)
        assert path.stat().st_size != before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
        assert self.count_again(tmp_path) == 1

    def test_same_size_and_modification_time(self, tmp_path: Path) -> None:
        path = self.write_then_count(tmp_path)
        before = path.stat()
        write_jsonl(path, [{"id": 1, "at": "2025-11-15T10:00:00Z"}])
        keep_times(path, before)
        assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert self.count_again(tmp_path) == 1

    def test_a_file_added(self, tmp_path: Path) -> None:
        (tmp_path / "in").mkdir()
        write(tmp_path / "in" / "a.jsonl", DAY_BEFORE)
        assert opened_source(tmp_path, "in/*.jsonl").count(WINDOW) == 0
        write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": 7, "at": "2025-11-15T10:05:00Z"}])
        assert opened_source(tmp_path, "in/*.jsonl").count(WINDOW) == 1 and Opened.opened == ["b.jsonl"]

    def test_a_file_removed_takes_its_unplaceable_records_with_it(self, tmp_path: Path) -> None:
        (tmp_path / "in").mkdir()
        write(tmp_path / "in" / "a.jsonl", DAY_BEFORE)
        write(tmp_path / "in" / "b.jsonl", [{"id": 8}])
        src = opened_source(tmp_path, "in/*.jsonl")
        assert src.count(WINDOW) == 0 and src.unplaceable().records == 1
        (tmp_path / "in" / "b.jsonl").unlink()
        later = opened_source(tmp_path, "in/*.jsonl")
        assert later.count(WINDOW) == 0 and later.unplaceable().records == 0 and Opened.opened == []

    def test_a_file_changed_within_the_settling_time_is_not_remembered(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two writes in one clock tick can leave the same size and times: a fresh file is read again."""
        write(tmp_path / "a.jsonl", DAY_BEFORE)  # settled for the default
        monkeypatch.setattr(files_ranges, "SETTLED_NS", 3_600 * 10**9)  # an hour: the file is fresh
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0 and Opened.opened == ["a.jsonl"]
        assert opened_source(tmp_path, "a.jsonl").check() and Opened.opened == ["a.jsonl"]
        assert opened_source(tmp_path, "a.jsonl").check() and Opened.opened == ["a.jsonl"]

    def test_a_file_replaced_by_another_of_the_same_size_and_times(self, tmp_path: Path) -> None:
        path = self.write_then_count(tmp_path)
        before = path.stat()
        other = tmp_path / "other.jsonl"
        write_jsonl(other, [{"id": 1, "at": "2025-11-15T10:00:00Z"}])
        keep_times(other, before)
        other.replace(path)  # a new inode under the old name
        assert self.count_again(tmp_path) == 1


class TestDamagedCache:
    def cache_files(self) -> list[Path]:
        return sorted((Path(os.environ["DRIVETRAIN_CACHE_DIR"]) / "files").glob("*.json"))

    def remembered(self, tmp_path: Path) -> Path:
        """The cache file of a source that counted a file of the window's day."""
        write(tmp_path / "a.jsonl", [{"id": 1, "at": "2025-11-15T10:30:00Z"}])
        before = set(self.cache_files())
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 1
        (made,) = set(self.cache_files()) - before
        return made

    @pytest.mark.parametrize("damage", ["", "{", "[]", "null", '{"layout": 1}', "\x00" * 64])
    def test_an_unreadable_cache_is_ignored(self, tmp_path: Path, damage: str) -> None:
        self.remembered(tmp_path).write_text(damage)
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 1

    def test_a_moved_range_is_not_trusted(self, tmp_path: Path) -> None:
        """An edit that keeps the file valid JSON (a range moved off the window) is caught by the digest."""
        made = self.remembered(tmp_path)
        kept = json.loads(made.read_text())
        entry = next(iter(kept["files"].values()))
        entry[2] = entry[3] = entry[2] - 86_400_000_000  # a day earlier: it would miss the window
        made.write_text(json.dumps(kept))
        assert source(tmp_path, "a.jsonl").count(WINDOW) == 1

    def test_a_cache_that_cannot_be_written_only_costs_a_read(self, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
        blocked = tmp_path / "not-a-folder"
        blocked.write_text("")
        monkeypatch.setenv("DRIVETRAIN_CACHE_DIR", str(blocked))
        write(tmp_path / "a.jsonl", DAY_BEFORE)
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0
        assert opened_source(tmp_path, "a.jsonl").count(WINDOW) == 0 and Opened.opened == ["a.jsonl"]


#: Times around the window (minutes from START): before, at the bounds, inside, after; None: no time.
_minutes = st.one_of(st.none(), st.sampled_from([-1440, -61, -60, -1, 0, 1, 59, 60, 61, 1440]),
                     st.integers(-180, 240))
_file = st.lists(st.tuples(_minutes, st.booleans()), max_size=6)


def _records(spec: list[tuple[int | None, bool]], first_id: int) -> list[object]:
    out: list[object] = []
    for n, (minutes, naive) in enumerate(spec, first_id):
        if minutes is None:
            out.append({"id": n} if n % 2 else "{not json")
            continue
        at = START + timedelta(minutes=minutes)
        out.append({"id": n, "at": at.replace(tzinfo=None).isoformat() if naive else at.isoformat()})
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(_file, min_size=1, max_size=3), windows=st.lists(st.integers(-3, 3), min_size=1, max_size=4),
       zone=st.sampled_from(["UTC", "Europe/Paris"]))
def test_remembered_answers_equal_a_fresh_read(tmp_path_factory: pytest.TempPathFactory,
                                               monkeypatch: pytest.MonkeyPatch, files: list[list[tuple[int | None, bool]]],
                                               windows: list[int], zone: str) -> None:
    """Over generated files and a sequence of hourly windows (each warming the cache for the next),
    the count, the extracted records and the unplaceable tally equal a read with remembering off."""
    folder = tmp_path_factory.mktemp("ranges")
    for n, spec in enumerate(files):
        write_jsonl(folder / f"f{n}.jsonl", _records(spec, 100 * n) or [{"id": -n, "at": "2024-01-01T00:00:00Z"}])
    settle()
    for hours in windows:
        window = Window(START + timedelta(hours=hours), START + timedelta(hours=hours + 1))
        expected = fresh(folder, "*.jsonl", window, monkeypatch, source_timezone=zone)
        assert answer(source(folder, "*.jsonl", source_timezone=zone), window) == expected


def test_the_window_bounds_are_exact_microseconds() -> None:
    from drivetrain.connectors.files_ranges import microseconds

    instant = datetime(2025, 11, 15, 10, 59, 59, 999_999, tzinfo=UTC)
    assert microseconds(instant) == pa.scalar(instant, pa.timestamp("us", tz="UTC")).value
