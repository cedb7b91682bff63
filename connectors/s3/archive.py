"""The S3 archive: stage rows as Parquet (zstd) objects, verified before stage deletes them.

Layout: ``s3://bucket/prefix/pipeline_name=<name>/target_date=<YYYY-MM-DD>/part-<hash>.parquet``,
the file name derived from the runs that loaded the rows (:func:`part_name`, shared with the
local archive), so archiving the same rows again replaces the object instead of adding one.

One write: the batches go to a Parquet file in a local temporary folder (memory bounded by a
batch), the file goes up (in parts when large), and :func:`~.transfer.verify` checks what S3
stored (size, ETag, row count in the footer) before the receipt is returned. Stage cleaning
deletes rows only after a receipt, so a failed or unverified upload leaves the stage as it was.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from drivetrain.base import Archive, ArchiveReceipt
from drivetrain.connectors.local_archive import part_name
from drivetrain.errors import TransientError

from .errors import s3_errors
from .settings import OPTIONS_SCHEMA, S3Settings, key_pair, make_client
from .transfer import upload, verify

if TYPE_CHECKING:
    from drivetrain.config import Credentials, SystemConfig

#: Parquet's registered media type, set as the objects' Content-Type.
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
#: Where :meth:`S3Archive.check` puts (and removes) its marker, under the prefix.
CHECK_FOLDER = "_drivetrain_check"


def write_parquet(path: Path, batches: Iterator[pa.RecordBatch]) -> tuple[int, set[str]]:
    """Stream ``batches`` into a zstd Parquet file; return (rows, pipeline ids that loaded them).

    No file is left behind when there are no rows.
    """
    rows = 0
    loaders: set[str] = set()
    writer = None
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(path, batch.schema, compression="zstd")
            writer.write_batch(batch)
            rows += batch.num_rows
            if "_drivetrain_pipeline_id" in batch.schema.names:
                loaders.update(v for v in pc.unique(batch.column("_drivetrain_pipeline_id")).to_pylist() if v)
    finally:
        if writer is not None:
            writer.close()
    return rows, loaders


class S3Archive(Archive):
    """``archive_location`` is ``s3://bucket/prefix/``; needs the ``s3`` extra (boto3)."""

    type_name = "s3"
    options_schema: ClassVar[Mapping[str, Any]] = OPTIONS_SCHEMA

    def __init__(self, config: SystemConfig, credentials: Credentials | None = None) -> None:
        super().__init__(config, credentials)
        self.settings = S3Settings.from_config(config, credentials)
        self._keys = key_pair(config, credentials)
        self._client: Any = None

    # -- identity ---------------------------------------------------------------------------

    def describe(self) -> str:
        where = self.settings.location.uri()
        return f"{where} (endpoint {self.settings.endpoint_url})" if self.settings.endpoint_url else where

    def location(self) -> str:
        return self.settings.location.uri()

    def __repr__(self) -> str:
        return f"<S3Archive {self.describe()}>"

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client is None:
            self._client = make_client(self.settings, self._keys)
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def check(self) -> list[str]:
        """Put and delete a small marker object under the prefix: reachable and writable."""
        location = self.settings.location
        key = f"{location.prefix}{CHECK_FOLDER}/{uuid.uuid4().hex}.txt"
        uri = location.uri(key)
        with s3_errors("write check", uri, location.bucket):
            self.client.put_object(Bucket=location.bucket, Key=key, Body=b"drivetrain archive write check\n", **self.settings.object_args())
        with s3_errors("write check (delete marker)", uri, location.bucket):
            self.client.delete_object(Bucket=location.bucket, Key=key)
        return [f"bucket {location.bucket} is reachable", f"wrote and deleted a marker under {location.uri()}"]

    # -- writing ----------------------------------------------------------------------------

    def write(self, pipeline_name: str, target_date: date, run_id: str, batches: Iterator[pa.RecordBatch]) -> ArchiveReceipt:
        location = self.settings.location
        folder = location.uri(location.key(pipeline_name, target_date.isoformat(), ""))
        with tempfile.TemporaryDirectory(prefix="drivetrain-s3-") as tmp:
            path = Path(tmp) / "part.parquet"
            try:
                rows, loaders = write_parquet(path, batches)
            except OSError as exc:
                raise TransientError(f"{folder}: writing the local Parquet file failed: {exc}") from exc
            if rows == 0:
                return ArchiveReceipt([], 0)
            key = location.key(pipeline_name, target_date.isoformat(), part_name(loaders, run_id))
            uri = location.uri(key)
            metadata = {
                "drivetrain-rows": str(rows),
                "drivetrain-pipeline": pipeline_name,
                "drivetrain-target-date": target_date.isoformat(),
                "drivetrain-run-id": run_id,
            }
            with s3_errors("upload", uri, location.bucket):
                sent = upload(self.client, self.settings, key, path, {"ContentType": PARQUET_MEDIA_TYPE, "Metadata": metadata})
        with s3_errors("verify", uri, location.bucket):
            verified = verify(self.client, self.settings, sent, rows)
        return ArchiveReceipt([uri], verified)
