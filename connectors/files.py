"""A source reading JSONL, CSV or Parquet files that carry a timestamp field.

Files are streamed in chunks of ``batch_size`` rows; each chunk is filtered to the window
(half-open) on the query field. Count and extract share the same reader and filter, so they
agree. Timestamps without an offset are wall-clock time in ``source_timezone``, read by the
rule of :mod:`drivetrain.window` (the repeated hour as its earlier instant); numbers are read by
``timestamp_unit``.

Every record is accounted for. A JSONL line that cannot be read (not UTF-8, not JSON, nested
too deeply, cut off) is passed on as a record to reject, with the reason, when its query field
can still be found in the text. Otherwise, and for records whose query field is missing, empty
or not a time, the record belongs to no window: it is counted with its reason and a few
examples (file and line or record number) in :meth:`FilesSource.unplaceable`, which the
``source_count`` phase stores in the drive table (see :mod:`drivetrain.unplaceable`). A CSV
or Parquet file without the query field column is an error naming the file; a CSV whose
header reads as one column holding ``;``, tab or ``|`` names the ``delimiter`` to set.
"""

from __future__ import annotations

import copy
import functools
import glob
import io
import itertools
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain._lazy import lazy_module
from drivetrain.base import Source
from drivetrain.config.loader import zone_problem
from drivetrain.connectors.files_ranges import (
    FileRange,
    RangeCache,
    Tracker,
    merge_lost,
    microseconds,
    settled,
    stat_key,
)
from drivetrain.errors import PermanentError
from drivetrain.fingerprints import of_batches
from drivetrain.unplaceable import Unplaceable

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

    from drivetrain import validation
    from drivetrain.config import Credentials, SystemConfig
    from drivetrain.window import Window
else:  # a window no remembered file range meets reads no file: pyarrow is imported on first use
    pa = lazy_module("pyarrow")
    pc = lazy_module("pyarrow.compute")
    validation = lazy_module("drivetrain.validation")

log = logging.getLogger(__name__)
FORMATS = ("jsonl", "csv", "parquet")
_SEPARATORS = (";", "\t", "|")
# An integer literal too long for 64 bits (Arrow's JSON reader would turn it into a rounded double):
# 19 digits or more after one of these bytes (the regex ``[-:\[,\s]\d{19,}``)
_BEFORE_WIDE_INTEGER = frozenset(b"-:[, \t\n\r\f\v")
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_NINETEEN_DIGITS = b"9" * 19
_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def has_wide_integer(chunk: bytes) -> bool:
    """Whether ``chunk`` holds an integer literal of 19 digits or more (after ``-:[,`` or a space).

    The same answer as ``re.search(rb"[-:\\[,\\s]\\d{19,}", chunk)``, found by a byte translation and
    a substring search: ten times faster than the regex on a 4 MB chunk, which it scanned on
    every read of a file (validate, the count, the extract), in windows with nothing to load too.
    """
    digits = chunk.translate(_DIGITS_AS_NINES)
    at = digits.find(_NINETEEN_DIGITS)
    while at != -1:
        if at > 0 and chunk[at - 1] in _BEFORE_WIDE_INTEGER:
            return True
        at = digits.find(_NINETEEN_DIGITS, at + 19)  # inside the same run a digit comes before: no match
    return False


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
            "source_timezone": {"type": "string", "description": "Zone of timestamps written without an offset. Default UTC. A time of the hour repeated when clocks go back is read as its earlier instant; a time the clocks skipped as the instant they jumped."},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "description": "CSV field separator, such as ';' or a tab. Default ','. A header that reads as one column holding ';', tab or '|' is an error naming this key."},
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
        self.delimiter = config.get("delimiter", ",")
        self.timestamp_unit = config.get("timestamp_unit")
        self.unreadable_lines = 0
        self._lost = Unplaceable()
        self._nothing_in: tuple[Window, tuple[tuple[Any, ...], ...] | None, Unplaceable, int] | None = None
        """The window the last count found no record in, the files as they were then, and what
        that count found unplaceable: :meth:`extract` of the same window over the same bytes has
        nothing to read again."""
        self._ranges = RangeCache(self.pattern, (type(self).__module__, type(self).__qualname__, self.format,
                                                 self.query_field, self.naive_tz, self.timestamp_unit,
                                                 self.delimiter, self.batch_size))
        """Each file's query field range as its last whole read found it (files_ranges)."""
        self._tracker: Tracker | None = None

    def unplaceable(self) -> Unplaceable:
        """The records the last count or extract found in no window (see the module docstring)."""
        return self._lost

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
            began = time.time_ns()
            key = stat_key(path)
            kept = self._ranges.known_check(path, key)
            if kept is not None:  # the file is as it was when these lines were found
                checks += kept
                continue
            batch = next(self._read(path, sample=True), None)
            if batch is None or self.query_field not in batch.schema.names:
                batch = next(self._read(path), None)  # not in the first lines: the whole first chunk decides
            if batch is not None:
                self._require_query_field(path, batch)
            lines = [f"{path.name} has the query field {self.query_field!r}"]
            if batch is not None:
                lines += self._sample_lines(path, batch)
            checks += lines
            if key is not None and stat_key(path) == key and settled(key, began):
                self._ranges.remember_check(path, key, lines)
                self._ranges.save(files)
        return checks

    def _sample_lines(self, path: Path, batch: pa.RecordBatch) -> list[str]:
        """Warnings from the first batch of the first file: how its query field reads."""
        values = batch.column(self.query_field)
        ts, failed = validation.convert_column(values, pa.timestamp("us", tz="UTC"), self.naive_tz, self.timestamp_unit)
        lines = []
        numbers = validation.numbers_without_unit(values, failed, self.timestamp_unit)
        if pc.any(numbers).as_py():
            example = values.filter(numbers)[0].as_py()
            lines.append(f"warning: {path.name}: {self.query_field} holds numbers such as {example!r}; set "
                         f"{self.config.role}.timestamp_unit to s, ms, us or ns to read them as times since 1970, "
                         "else those records belong to no window")
        elif self.timestamp_unit is not None and pc.any(pc.invert(pc.is_null(ts))).as_py():
            first = ts.filter(pc.is_valid(ts))[0].as_py()
            lines.append(f"{self.query_field} read with timestamp_unit {self.timestamp_unit!r}: the first value is "
                         f"{first.isoformat()}")
        lost = self._lost
        self._lost = Unplaceable()
        self._count_unplaced(values, failed, path, 1)
        sampled, self._lost = self._lost, lost
        if sampled.records:
            lines.append(f"warning: {path.name}: {sampled.records} of the first {batch.num_rows} records belong "
                         f"to no window ({'; '.join(sampled.reasons)}), e.g. {sampled.sample[0]}")
        return lines

    def count(self, window: Window) -> int:
        self._nothing_in = None
        if type(self).extract is not FilesSource.extract:  # a subclass's extract decides what counts
            return sum(batch.num_rows for batch in self.extract(window))
        files = self.files()
        before = _stats(files)
        found = sum(batch.num_rows for batch in self._extract(window, files))
        kept = found == 0 and before is not None and _stats(files) == before  # not changed while it was read
        self._nothing_in = (window, before, copy.deepcopy(self._lost), self.unreadable_lines) if kept else None
        return found

    def fingerprint(self, window: Window) -> str:
        """The window's records, each hashed whole (see :func:`drivetrain.fingerprints.of_batches`)."""
        return of_batches(self.extract(window))

    def extract(self, window: Window) -> Iterator[pa.RecordBatch]:
        files = self.files()
        known = self._nothing_in
        if known is not None and known[0] == window and known[1] is not None and known[1] == _stats(files):
            # the count just read these very files (same size, times and inode) and found nothing
            self._lost, self.unreadable_lines = copy.deepcopy(known[2]), known[3]
            if self._lost.records:
                log.warning("%s: %s", self.pattern, self._lost.summary())
            return
        yield from self._extract(window, files)

    def _extract(self, window: Window, files: list[Path]) -> Iterator[pa.RecordBatch]:
        """The window's records from ``files``; a file whose remembered range misses the window is
        not opened (its unplaceable records are those it had)."""
        self.unreadable_lines = 0
        self._lost = total = Unplaceable()
        unreadable = 0
        start, end = microseconds(window.start), microseconds(window.end)
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for path in files:
            began = time.time_ns()
            key = stat_key(path)
            known = self._ranges.known(path, key)
            if known is not None and not known.meets(start, end):
                merge_lost(total, known.lost)
                unreadable += known.unreadable
                continue
            self._lost, self.unreadable_lines, self._tracker = Unplaceable(), 0, Tracker()
            first = 1  # record number in the file of the batch's first record
            whole = False
            try:
                for batch in self._read(path, window):
                    selected = self._in_window(batch, window, path, first)
                    first += batch.num_rows
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
                whole = True
            finally:
                read, tracker = self._lost, self._tracker
                merge_lost(total, read)
                unreadable += self.unreadable_lines
                if whole and tracker is not None and key is not None and stat_key(path) == key and settled(key, began):
                    self._ranges.remember(path, FileRange(key, tracker.rows, tracker.low, tracker.high, read,
                                                          self.unreadable_lines))
                self._lost, self.unreadable_lines, self._tracker = total, unreadable, None
        self.unreadable_lines = unreadable
        self._ranges.save(files)
        if pending_rows:
            yield pa.Table.from_batches(_unify(pending)).combine_chunks().to_batches()[0]
        if self._lost.records:
            log.warning("%s: %s", self.pattern, self._lost.summary())

    def _require_query_field(self, path: Path, batch: pa.RecordBatch) -> None:
        if self.query_field in batch.schema.names:
            return
        names = batch.schema.names
        if self._format(path) == "csv" and len(names) == 1:
            for separator in _SEPARATORS:
                if separator in names[0] and separator != self.delimiter:
                    shown = "\\t" if separator == "\t" else separator
                    raise PermanentError(
                        f"{path}: the header reads as the single column {names[0][:80]!r}: the file looks "
                        f"{shown!r}-separated; set {self.config.role}.delimiter to \"{shown}\""
                    )
        raise PermanentError(
            f"{path}: no column {self.query_field!r} (the query_field); the file has "
            f"{', '.join(repr(n) for n in names[:10]) or 'no columns'}"
        )

    def _in_window(self, batch: pa.RecordBatch, window: Window, path: Path, first: int) -> pa.RecordBatch:
        if self.query_field not in batch.schema.names:
            if self._format(path) != "jsonl":
                self._require_query_field(path, batch)
            self._lost.add(f"{self.query_field}: missing or empty", f"{path} record {first}", n=batch.num_rows)
            if self._tracker is not None:
                self._tracker.add(batch.num_rows, None, None)
            return batch.slice(0, 0)
        values = batch.column(self.query_field)
        mask, ts, failed = self._window_mask(values, window)
        if self._tracker is not None:
            bounds = pc.min_max(ts.cast(pa.int64()))
            self._tracker.add(batch.num_rows, bounds["min"].as_py(), bounds["max"].as_py())
        if ts.null_count:
            self._count_unplaced(values, failed, path, first)
        return batch.filter(mask)

    def _window_mask(self, values: pa.Array, window: Window) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(inside the window, the values as times, the values that are no time) for query field values."""
        ts, failed = validation.convert_column(values, pa.timestamp("us", tz="UTC"), self.naive_tz, self.timestamp_unit)
        start = pa.scalar(window.start, pa.timestamp("us", tz="UTC"))
        end = pa.scalar(window.end, pa.timestamp("us", tz="UTC"))
        return pc.fill_null(pc.and_(pc.greater_equal(ts, start), pc.less(ts, end)), False), ts, failed

    def _count_unplaced(self, values: pa.Array, failed: pa.Array, path: Path, first: int) -> None:
        numbers = validation.numbers_without_unit(values, failed, self.timestamp_unit)
        empty = pc.is_null(values)
        field = self.query_field
        for mask, reason in ((numbers, validation.number_reason(field)),
                             (pc.and_(failed, pc.invert(numbers)), f"{field}: not a timestamp"),
                             (empty, f"{field}: missing or empty")):
            total = pc.sum(mask.cast(pa.int64())).as_py() or 0
            if not total:
                continue
            shown = pc.indices_nonzero(mask).to_pylist()[: max(self._lost.room, 0)]
            for index in shown:
                value = None if reason.endswith("missing or empty") else values[index].as_py()
                self._lost.add(reason, f"{path} record {first + index}", value)
            self._lost.tally(reason, total - len(shown))

    def _read(self, path: Path, window: Window | None = None, *, sample: bool = False) -> Iterator[pa.RecordBatch]:
        """The file's records in batches; ``window`` only decides the types of mixed JSONL fields.

        ``sample``: only the first batch is wanted (:meth:`check`); a JSONL file then parses its
        first ``batch_size`` lines, not its first 4 MB.
        """
        fmt = self._format(path)
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                yield from pq.ParquetFile(path).iter_batches(batch_size=self.batch_size)
            elif fmt == "csv":
                import pyarrow.csv as pacsv

                reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22),
                                        parse_options=pacsv.ParseOptions(delimiter=self.delimiter),
                                        convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
                yield from reader
            else:
                yield from self._read_jsonl(path, window, sample=sample)
        except (OSError, pa.ArrowException, OverflowError) as exc:
            hint = f"; if its fields are not separated by {self.delimiter!r}, set {self.config.role}.delimiter" if fmt == "csv" else ""
            raise PermanentError(f"{path}: cannot read as {fmt}: {exc}{hint}") from exc

    def _read_jsonl(self, path: Path, window: Window | None, *, sample: bool = False) -> Iterator[pa.RecordBatch]:
        with open(path, "rb") as fh:
            if sample:
                yield from self._parse_chunk(list(itertools.islice(fh, self.batch_size)), path, 1, window)
                return
            line = 1
            while True:
                lines = fh.readlines(1 << 22)
                if not lines:
                    return
                yield from self._parse_chunk(lines, path, line, window)
                line += len(lines)

    def _parse_chunk(self, lines: list[bytes], path: Path, first_line: int,
                     window: Window | None) -> Iterator[pa.RecordBatch]:
        """The chunk's records; a field whose type differs between lines is typed from the window's lines.

        A value of another type in a record of another window (a text where this window has
        numbers) must not turn this window's numbers into text: the chunk is one table, so the
        records outside ``window`` give that field no type and keep only their query field,
        which :meth:`_in_window` needs to account for them.
        """
        import pyarrow.json as pajson

        chunk = b"".join(lines)
        if not has_wide_integer(chunk):  # else Arrow would round it: read line by line
            try:
                chunk.decode("utf-8")  # Arrow's JSON reader lets invalid UTF-8 through; the warehouse would not
                table = pajson.read_json(io.BytesIO(chunk))
                if window is not None:
                    table = self._typed_by_window(table, lines, path, first_line, window)
                yield from table.to_batches(max_chunksize=self.batch_size)
                return
            except (pa.ArrowInvalid, UnicodeDecodeError):
                pass  # mixed types or a bad line: fall back to one line at a time
        rows = [row for n, line in enumerate(lines, first_line)
                if (row := self._parse_line(line, f"{path} line {n}")) is not None]
        if not rows:
            return
        inside = None
        if window is not None and any(self.query_field in row for row in rows):
            stamps = _column([row.get(self.query_field) for row in rows])
            inside = self._window_mask(stamps, window)[0].to_pylist()
        yield from _rows_to_table(rows, inside, keep=self.query_field).to_batches(max_chunksize=self.batch_size)

    def _typed_by_window(self, table: pa.Table, lines: list[bytes], path: Path, first_line: int,
                         window: Window) -> pa.Table:
        """``table`` (the whole chunk) with the window's records typed as they would be alone.

        Arrow types a column from the whole chunk: an integer field becomes a double when a record
        of another window holds 0.5. The window's lines are read again on their own; the other
        records keep only their query field (for :meth:`_in_window` to account for them).
        """
        if self.query_field not in table.column_names:
            return table
        inside = self._window_mask(table.column(self.query_field), window)[0].to_pylist()
        chosen = sum(inside)
        nonblank = [line for line in lines if line.strip()]
        if chosen in (0, table.num_rows) or len(nonblank) != table.num_rows:
            return table  # nothing of another window to type it, or lines and rows do not pair up
        own = pa.Table.from_batches(list(self._parse_chunk(
            [line for line, keep in zip(nonblank, inside, strict=True) if keep], path, first_line, None)))
        if own.num_rows != chosen:
            return table
        positions, seen = [], 0
        for keep in inside:
            positions.append(seen if keep else None)
            seen += keep
        take = pa.array(positions, pa.int64())
        columns = {name: table.column(name) if name == self.query_field else own.column(name).take(take)
                   for name in own.column_names}
        columns.setdefault(self.query_field, table.column(self.query_field))
        return pa.table(columns)

    def _parse_line(self, line: bytes, where: str = "") -> dict[str, Any] | None:
        """One JSONL line as a record; one that cannot be read becomes a record to reject.

        A line that is not valid UTF-8, not JSON, or nested too deeply to parse is kept as a
        record carrying only its query field (when one can be found in the text), the reason
        (``_drivetrain_error``) and the text (``_drivetrain_raw``), so validation rejects it
        with that reason instead of it vanishing. Without a findable query field it can belong
        to no window: it is counted in ``unreadable_lines`` and in :meth:`unplaceable`, with
        ``where`` (file and line) as an example.
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
        problem = problem or "not a JSON object"
        found = self._stamp_in(text)
        if found is None:
            self.unreadable_lines += 1
            self._lost.add(f"line is {problem.split(' (')[0]}", where, text.strip())
            return None
        record = value if isinstance(value, dict) else {self.query_field: found}
        return {**record, validation.ERROR_COLUMN: f"{problem} ({where})" if where else problem, validation.RAW_COLUMN: text.strip()}

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


def _stats(files: list[Path]) -> tuple[tuple[Any, ...], ...] | None:
    """What tells a file's bytes changed (a rewrite changes its ctime even when size and mtime
    are kept); None when a file cannot be looked at (reading it will say why)."""
    found = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            return None
        found.append((str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))
    return tuple(found)


@functools.cache
def _stamp_pattern(field: str) -> re.Pattern[str]:
    return re.compile('"' + re.escape(field) + r'"\s*:\s*"((?:[^"\\]|\\.){1,64})"')


def _rows_to_table(rows: list[dict[str, Any]], inside: list[bool] | None = None, keep: str = "") -> pa.Table:
    """Build a table from dicts whose values may differ in type: mixed columns become text.

    With ``inside``, only those rows give the columns their names, values and types; the other
    rows keep only the field ``keep`` (they are filtered out afterwards).
    """
    chosen = rows if inside is None else [row for row, keep_row in zip(rows, inside, strict=True) if keep_row]
    names: dict[str, None] = {}
    for row in chosen:
        names.update(dict.fromkeys(row))
    if keep and any(keep in row for row in rows):
        names[keep] = None
    arrays = {}
    for name in names:
        if inside is None or name == keep:
            arrays[name] = _column([row.get(name) for row in rows])
        else:
            arrays[name] = _column([row.get(name) if keep_row else None for row, keep_row in zip(rows, inside, strict=True)])
    return pa.table(arrays) if arrays else pa.table({keep or "_": pa.nulls(len(rows))})


def _column(values: list[Any]) -> pa.Array:
    """Values as one Arrow array; mixed types, or integers too wide for Arrow, become exact text."""
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], type=pa.string())


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
