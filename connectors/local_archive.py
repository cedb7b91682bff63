"""The default archive: Parquet (zstd) files in a local folder, verified after writing.

Layout: ``<root>/pipeline_name=<name>/target_date=<YYYY-MM-DD>/part-<hash>.parquet``, the hash
naming the runs that loaded the rows (see :func:`part_name`).
A file is written under a temporary name, fsynced, renamed into place, then read back: the
receipt's row count comes from the file's own metadata, so a partial or corrupt write shows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from drivetrain._user_path import user_path
from drivetrain.base import Archive, ArchiveReceipt
from drivetrain.errors import PermanentError, TransientError

if TYPE_CHECKING:
    import pyarrow as pa

    from drivetrain.config import Credentials, SystemConfig


def _loaders(batch: pa.RecordBatch) -> list[str]:
    import pyarrow.compute as pc

    if "_drivetrain_pipeline_id" not in batch.schema.names:
        return []
    return [v for v in pc.unique(batch.column("_drivetrain_pipeline_id")).to_pylist() if v]


def part_name(loaders: set[str], run_id: str) -> str:
    """The archive file's name, derived from the runs that loaded its rows.

    Archiving the same rows again (a cleaning run killed between archive and delete, then
    retried) yields the same name, so the file is replaced rather than duplicated.
    """
    key = ",".join(sorted(loaders)) if loaders else run_id
    return f"part-{hashlib.sha256(key.encode()).hexdigest()[:16]}.parquet"


class LocalArchive(Archive):
    """``archive_location`` is a local folder (or ``file://`` URL)."""

    type_name = "local"
    #: A local folder takes no archive_options: any given would be silently ignored.
    options_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {}, "additionalProperties": False}

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        location = str(config.require("location"))
        if location.startswith("file://"):
            location = location[len("file://"):]
        root = user_path(location)
        self.root = root if root.is_absolute() else (config.base_dir / root)

    def describe(self) -> str:
        return f"file://{self.root}"

    def location(self) -> str:
        return str(self.root)

    def check(self) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermanentError(f"archive folder {self.root} is not writable")
        return [f"archive folder {self.root} is writable"]

    def write(self, pipeline_name: str, target_date: date, run_id: str, batches: Iterator[pa.RecordBatch]) -> ArchiveReceipt:
        import pyarrow.parquet as pq

        folder = self.root / f"pipeline_name={pipeline_name}" / f"target_date={target_date.isoformat()}"
        tmp = folder / f".part-{run_id}.parquet.tmp"
        rows = 0
        loaders: set[str] = set()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            writer = None
            try:
                for batch in batches:
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, batch.schema, compression="zstd")
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    loaders.update(_loaders(batch))
            finally:
                if writer is not None:
                    writer.close()
            if rows == 0:
                tmp.unlink(missing_ok=True)
                return ArchiveReceipt([], 0)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            final = folder / part_name(loaders, run_id)
            os.replace(tmp, final)
            verified = pq.ParquetFile(final).metadata.num_rows
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TransientError(f"archive {folder}: write failed: {exc}") from exc
        if verified != rows:
            raise PermanentError(f"archive {final}: wrote {rows} rows but the file holds {verified}")
        return ArchiveReceipt([final.as_uri()], verified)
