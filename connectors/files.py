"""A source reading JSONL, CSV or Parquet files that carry a timestamp field.

Files are streamed in chunks of ``batch_size`` rows; each chunk is filtered to the window
(half-open) on the query field. Count and extract share the same reader and filter, so they
agree. A JSONL line that cannot be read (not UTF-8, not JSON, nested too deeply) is passed on
as a record to reject, with the reason, when its query field can still be found in the text;
otherwise it cannot be placed in a window: it is skipped by both, counted and logged, as are
records whose query field is missing or not a timestamp.
"""

from __future__ import annotations

import functools
import glob
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from drivetrain.base import Source
from drivetrain.config.loader import zone_problem
from drivetrain.errors import PermanentError
from drivetrain.validation import ERROR_COLUMN, RAW_COLUMN, convert_column

if TYPE_CHECKING:
    from drivetrain.config import Credentials, SystemConfig
    from drivetrain.window import Window

log = logging.getLogger(__name__)
FORMATS = ("jsonl", "csv", "parquet")
_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class FilesSource(Source):
    """Local files: ``{"type": "files", "path": "data/*.jsonl", "query_field": "updated_at"}``."""

    type_name = "files"
    options_schema: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "type": {"const": "files", "description": "Files on the local disk."},
            "path": {"type": "string", "description": "A file, a folder, or a glob pattern; relative to the config's folder."},
            "format": {"enum": list(FORMATS), "description": "Default: from the file suffix."},
            "query_field": {"type": "string", "description": "The timestamp field that places a record in a window. Records whose value cannot be read belong to no window."},
            "batch_size": {"type": "integer", "minimum": 1, "description": "Rows per batch. Default 10000."},
            "source_timezone": {"type": "string", "description": "Zone of timestamps written without an offset. Default UTC."},
            "credentials_ref": {"type": "string", "description": "Unused by local files; allowed for symmetry."},
        },
        "required": ["type", "path", "query_field"],
        "additionalProperties": False,
    }

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.pattern = str(config.path("path"))
        self.query_field = config.require("query_field")
        self.batch_size = int(config.get("batch_size", 10_000))
        self.format = config.get("format")
        self.naive_tz = config.get("source_timezone", "UTC")
        problem = zone_problem(self.naive_tz)
        if problem is not None:
            raise config.error("source_timezone", problem)
        self.unreadable_lines = 0

    def describe(self) -> str:
        return f"files:{self.pattern}"

    def files(self) -> list[Path]:
        path = Path(self.pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in _SUFFIX)
        else:
            found = sorted(Path(p) for p in glob.glob(self.pattern))
        if not found:
            raise PermanentError(f"{self.config.role}.path: no files match {self.pattern}")
        return found

    def _format(self, path: Path) -> str:
        fmt = self.format or _SUFFIX.get(path.suffix.lower())
        if fmt not in FORMATS:
            raise PermanentError(f"{path}: cannot tell the format from the suffix; set {self.config.role}.format")
        return fmt

    def check(self) -> list[str]:
        files = self.files()
        checks = [f"{len(files)} file(s) match {self.pattern}"]
        for path in files[:1]:
            batch = next(self._read(path), None)
            if batch is not None and self.query_field not in batch.schema.names:
                raise PermanentError(f"{path}: no column {self.query_field!r} (the query_field)")
            checks.append(f"{path.name} has the query field {self.query_field!r}")
        return checks

    def count(self, window: Window) -> int:
        return sum(batch.num_rows for batch in self.extract(window))

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        self.unreadable_lines = 0
        self.unplaced_records = 0
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for path in self.files():
            for batch in self._read(path):
                selected = self._in_window(batch, window)
                if selected.num_rows == 0:
                    continue
                pending.append(selected)
                pending_rows += selected.num_rows
                while pending_rows >= self.batch_size:
                    table = pa.Table.from_batches(_unify(pending)).combine_chunks()
                    yield table.slice(0, self.batch_size).to_batches()[0]
                    rest = table.slice(self.batch_size)
                    pending = rest.to_batches() if rest.num_rows else []
                    pending_rows = rest.num_rows
        if pending_rows:
            yield pa.Table.from_batches(_unify(pending)).combine_chunks().to_batches()[0]
        if self.unreadable_lines:
            log.warning("%s: %d line(s) could not be read as a JSON record naming its %r, and belong to no window",
                        self.pattern, self.unreadable_lines, self.query_field)
        if self.unplaced_records:
            log.warning("%s: %d record(s) have no query field %r that reads as a timestamp, and belong to no window",
                        self.pattern, self.unplaced_records, self.query_field)

    def _in_window(self, batch: pa.RecordBatch, window: Window) -> pa.RecordBatch:
        if self.query_field not in batch.schema.names:
            self.unplaced_records += batch.num_rows
            return batch.slice(0, 0)
        ts, _ = convert_column(batch.column(self.query_field), pa.timestamp("us", tz="UTC"), self.naive_tz)
        self.unplaced_records += ts.null_count
        start = pa.scalar(window.start, pa.timestamp("us", tz="UTC"))
        end = pa.scalar(window.end, pa.timestamp("us", tz="UTC"))
        mask = pc.fill_null(pc.and_(pc.greater_equal(ts, start), pc.less(ts, end)), False)
        return batch.filter(mask)

    def _read(self, path: Path) -> Iterator[pa.RecordBatch]:
        fmt = self._format(path)
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                yield from pq.ParquetFile(path).iter_batches(batch_size=self.batch_size)
            elif fmt == "csv":
                import pyarrow.csv as pacsv

                reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22), convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
                yield from reader
            else:
                yield from self._read_jsonl(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise PermanentError(f"{path}: cannot read as {fmt}: {exc}") from exc

    def _read_jsonl(self, path: Path) -> Iterator[pa.RecordBatch]:
        with open(path, "rb") as fh:
            while True:
                lines = fh.readlines(1 << 22)
                if not lines:
                    return
                yield from self._parse_chunk(lines)

    def _parse_chunk(self, lines: list[bytes]) -> Iterator[pa.RecordBatch]:
        import pyarrow.json as pajson

        chunk = b"".join(lines)
        try:
            chunk.decode("utf-8")  # Arrow's JSON reader lets invalid UTF-8 through; the warehouse would not
            table = pajson.read_json(io.BytesIO(chunk))
            yield from table.to_batches(max_chunksize=self.batch_size)
            return
        except (pa.ArrowInvalid, UnicodeDecodeError):
            pass  # mixed types or a bad line: fall back to one line at a time
        rows = [row for row in map(self._parse_line, lines) if row is not None]
        if rows:
            yield from _rows_to_table(rows).to_batches(max_chunksize=self.batch_size)

    def _parse_line(self, line: bytes) -> dict[str, Any] | None:
        """One JSONL line as a record; one that cannot be read becomes a record to reject.

        A line that is not valid UTF-8, not JSON, or nested too deeply to parse is kept as a
        record carrying only its query field (when one can be found in the text), the reason
        (``_drivetrain_error``) and the text (``_drivetrain_raw``), so validation rejects it
        with that reason instead of it vanishing. Without a findable query field it can belong
        to no window: it is counted in ``unreadable_lines`` and logged.
        """
        if not line.strip():
            return None
        problem = None
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = line.decode("utf-8", "replace")
            problem = f"not valid UTF-8 (byte {exc.start} of the line; shown as U+FFFD in the raw record)"
        try:
            value = json.loads(text)
        except RecursionError:
            value, problem = None, problem or "nested too deeply to parse"
        except ValueError as exc:
            value, problem = None, problem or f"not valid JSON ({exc})"
        if problem is None and isinstance(value, dict):
            return value
        found = self._stamp_in(text)
        if found is None:
            self.unreadable_lines += 1
            return None
        record = value if isinstance(value, dict) else {self.query_field: found}
        return {**record, ERROR_COLUMN: problem or "not a JSON object", RAW_COLUMN: text.strip()}

    def _stamp_in(self, text: str) -> str | None:
        """The query field's string value, found in text that does not parse as JSON."""
        pattern = _stamp_pattern(self.query_field)
        match = pattern.search(text)
        if match is None:
            return None
        try:
            return str(json.loads(f'"{match.group(1)}"'))
        except ValueError:
            return None


@functools.cache
def _stamp_pattern(field: str) -> re.Pattern[str]:
    return re.compile('"' + re.escape(field) + r'"\s*:\s*"((?:[^"\\]|\\.){1,64})"')


def _rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Build a table from dicts whose values may differ in type: mixed columns become text."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    arrays = {}
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[name] = pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], type=pa.string())
    return pa.table(arrays)


def _unify(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """Give batches from different chunks one schema (types widened to text where they differ)."""
    if len({b.schema for b in batches}) <= 1:
        return batches
    tables = [pa.Table.from_batches([b]) for b in batches]
    try:
        merged = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        merged = pa.concat_tables([_as_text(t) for t in tables], promote_options="permissive")
    return merged.to_batches()


def _as_text(table: pa.Table) -> pa.Table:
    cols = []
    for col in table.columns:
        if pa.types.is_nested(col.type):
            cols.append(pa.array([None if v is None else json.dumps(v, default=str) for v in col.to_pylist()], type=pa.string()))
        else:
            cols.append(pc.cast(col, pa.string()))
    return pa.table(cols, names=table.column_names)
