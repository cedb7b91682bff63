"""Bulk loads: Arrow batches -> Parquet (zstd) -> PUT to an internal stage -> COPY INTO a load table.

Each table being loaded for a window gets a transient load table ``<TABLE>__LOAD_<KEY>``.
Batches are written to a local Parquet file; when it reaches :data:`FILE_BYTES` (and at
commit) the file is PUT under a fresh path of the stage and copied into the load table with
``MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE``, then purged. The load table is committed as it
grows, so memory stays bounded. :meth:`SnowflakeWindowLoad.commit` then replaces the window in
each real table in one short transaction (DELETE window + INSERT ... SELECT from the load
table) and drops the load tables afterwards (DDL outside the transaction). A crash leaves the
real tables untouched; the next load of the window drops the leftovers first. No row is ever
INSERTed one by one.
"""

from __future__ import annotations

import hashlib
import shutil
import string
import tempfile
import uuid
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivetrain.errors import PermanentError
from drivetrain.warehouse import Fence, TableRef, WindowLoad

from .sql import col, obj

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from drivetrain.window import Window

    from .connection import Session, SnowflakeHome

#: Local Parquet file size at which it is sent (Snowflake loads 100-250 MB files best).
FILE_BYTES = 128 * 1024 * 1024
TEMP_STAGE = "DRIVETRAIN_LOAD"
_KEY_CHARS = set(string.ascii_letters + string.digits + "_")
COPY_OPTIONS = (
    "FILE_FORMAT = (TYPE = PARQUET USE_LOGICAL_TYPE = TRUE BINARY_AS_TEXT = FALSE) "
    "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE PURGE = TRUE"
)


def load_key(key: str) -> str:
    """``key`` as a name suffix: ASCII letters, digits and ``_``, short enough for any table."""
    safe = "".join(c if c in _KEY_CHARS else "_" for c in key)
    if len(safe) > 120:
        safe = f"{safe[:60]}_{hashlib.sha1(key.encode()).hexdigest()[:16]}"
    return safe


class _PendingFile:
    """A local Parquet file being written for one table."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.schema = schema
        self.rows = 0
        self.writer: pq.ParquetWriter = pq.ParquetWriter(str(path), schema, compression="zstd")

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        self.writer.close()


class SnowflakeWindowLoad(WindowLoad):
    """Load tables for one window, swapped into the real tables by one transaction."""

    def __init__(self, warehouse: SnowflakeHome, window: Window, key: str) -> None:
        self.wh = warehouse
        self.window = window
        self.key = load_key(key)
        self.loads: dict[TableRef, TableRef] = {}
        self.rows: dict[TableRef, int] = {}
        self._columns: dict[TableRef, set[str]] = {}
        self._files: dict[TableRef, _PendingFile] = {}
        self._folder = Path(tempfile.mkdtemp(prefix="drivetrain-snowflake-"))

    def _load_ref(self, table: TableRef) -> TableRef:
        return table.sibling(f"__LOAD_{self.key}")

    def append(self, table: TableRef, batch: pa.RecordBatch) -> None:
        wh = self.wh
        batch = _parquet_ready(batch)
        if table not in self.loads:
            wh.claim_table(table)  # before any row changes: another pipeline's table is refused
            wh.ensure_table(table, batch.schema)
            load = self._load_ref(table)
            session = wh.pool.session()
            session.execute(f"DROP TABLE IF EXISTS {wh.qualified(load)}", what=wh.where(load, "drop the leftover load table"))
            session.execute(f"CREATE TRANSIENT TABLE {wh.qualified(load)} LIKE {wh.qualified(table)}", what=wh.where(load, "create load table"))
            self.loads[table] = load
            self.rows[table] = 0
            self._columns[table] = set(wh.table_columns(table))
        elif not set(batch.schema.names) <= self._columns[table]:
            self._flush(table)
            wh.ensure_table(table, batch.schema)
            self._sync_columns(table)
        if not batch.num_rows:
            return
        pending = self._files.get(table)
        if pending is not None and not pending.schema.equals(batch.schema):
            self._flush(table)
            pending = None
        if pending is None:
            pending = self._files[table] = _PendingFile(self._folder / f"{uuid.uuid4().hex}.parquet", batch.schema)
        pending.write(batch)
        self.rows[table] += batch.num_rows
        if pending.path.stat().st_size >= FILE_BYTES:
            self._flush(table)

    def _sync_columns(self, table: TableRef) -> None:
        """Give the load table the columns the real table gained."""
        wh = self.wh
        load = self.loads[table]
        real = wh.table_columns(table)
        have = wh.table_columns(load)
        for name, sql_type in real.items():
            if name not in have:
                wh.pool.session().execute(
                    f"ALTER TABLE {wh.qualified(load)} ADD COLUMN {col(name)} {sql_type}", what=wh.where(load, "add a column to"),
                )
        self._columns[table] = set(real)

    def _stage(self, session: Session, table: TableRef) -> str:
        """The internal stage files go through: ``load_stage`` or a temporary one per session."""
        opts = self.wh.options
        database, schema = table.database or opts.database, table.schema or opts.schema
        name = opts.load_stage or TEMP_STAGE
        stage = f"{obj(database)}.{obj(schema)}.{obj(name)}"
        if opts.load_stage is None and stage not in session.stages:
            session.execute(f"CREATE TEMPORARY STAGE IF NOT EXISTS {stage}", what=self.wh.where(table, "create a temporary stage for"))
            session.stages.add(stage)
        return stage

    def _flush(self, table: TableRef) -> None:
        """Send the table's pending file: PUT, COPY INTO the load table, check the row count."""
        pending = self._files.pop(table, None)
        if pending is None:
            return
        pending.close()
        wh = self.wh
        what = wh.where(self.loads[table], "bulk load")
        try:
            if pending.rows:
                session = wh.pool.session()
                stage = self._stage(session, table)
                prefix = f"{self.key[:60]}/{uuid.uuid4().hex}/"
                path = pending.path.resolve().as_posix()
                if "'" in path:
                    raise PermanentError(f"cannot PUT {path!r}: the temporary folder's path holds a quote")
                session.execute(f"PUT 'file://{path}' @{stage}/{prefix} AUTO_COMPRESS = FALSE OVERWRITE = TRUE", what=what)
                results = session.rows(f"COPY INTO {wh.qualified(self.loads[table])} FROM @{stage}/{prefix} {COPY_OPTIONS}", what=what)
                _check_copy(results, pending.rows, what)
        finally:
            with suppress(OSError):
                pending.path.unlink()

    def commit(self, tables: Sequence[TableRef], *, fence: Fence | None = None) -> dict[str, int]:
        wh = self.wh
        for table in tables:
            if table not in self.loads:
                wh.claim_table(table)  # emptying another pipeline's window is writing it too
        for table in list(self._files):
            self._flush(table)
        existing = {t: t in self.loads or wh.table_exists(t) for t in tables}
        columns = {t: list(wh.table_columns(self.loads[t])) for t in tables if t in self.loads}
        counts: dict[str, int] = {}
        what = f"replace the window {self.window} ({wh.describe()})"
        with wh.pool.session().transaction(what) as session:
            for table in tables:
                target = wh.qualified(table)
                if existing[table]:
                    session.execute(f"DELETE FROM {target} WHERE {wh.window_sql(table)}", [self.window.start, self.window.end],
                                    what=wh.where(table, "delete the window from"))
                if table in self.loads:
                    names = ", ".join(col(c) for c in columns[table])
                    inserted = session.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {wh.qualified(self.loads[table])}",
                                               what=wh.where(table, "insert the window into")).rowcount
                    counts[str(table)] = int(inserted or 0)
                else:
                    counts[str(table)] = 0
            if fence is not None:
                fence()
        self.abort()
        return counts

    def abort(self) -> None:
        for pending in self._files.values():
            with suppress(Exception):
                pending.close()
        self._files.clear()
        shutil.rmtree(self._folder, ignore_errors=True)
        if not self.loads:
            return
        wh = self.wh
        try:
            session = wh.pool.session()
            for load in self.loads.values():
                session.execute(f"DROP TABLE IF EXISTS {wh.qualified(load)}", what=wh.where(load, "drop load table"))
        except Exception:  # noqa: BLE001 - best effort; the next load of the window drops leftovers
            pass
        self.loads.clear()


def _parquet_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Columns of Arrow's null type (all values missing) become strings: Parquet has no such type."""
    import pyarrow as pa

    if not any(pa.types.is_null(f.type) for f in batch.schema):
        return batch
    schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in batch.schema])
    return batch.cast(schema)


def _check_copy(results: list[tuple[Any, ...]], expected: int, what: str) -> None:
    """COPY reports one row per file; every file must be LOADED with all its rows."""
    loaded = 0
    for row in results:
        if len(row) < 4:
            continue  # "Copy executed with 0 files processed."
        status = str(row[1]).upper()
        if status != "LOADED":
            raise PermanentError(f"Snowflake: {what}: file {row[0]} was {status}: {row[6] if len(row) > 6 else ''}")
        loaded += int(row[3] or 0)
    if loaded != expected:
        raise PermanentError(f"Snowflake: {what}: COPY loaded {loaded} rows of the {expected} written; nothing was committed")
