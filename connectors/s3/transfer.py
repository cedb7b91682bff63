"""Moving one local file to S3 and proving it arrived: upload, then HEAD and footer read-back.

Small files go up in one PutObject; files past the multipart threshold go up in parts, a few
at a time, each read from disk only when its turn comes (memory stays at ``max_concurrency``
parts). Every request carries the body's MD5 (``Content-MD5``), so S3 rejects a body damaged on
the way. A multipart upload that fails is aborted, so no invisible parts are left to pay for.

:func:`verify` then checks the stored object: its size, its ETag against the MD5 computed here
(unless SSE-KMS, whose ETags are not MD5s), the row count in its metadata, and the row count in
the Parquet footer, read back with ranged GETs pinned to that ETag.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from drivetrain.errors import PermanentError, TransientError

from .settings import S3Settings

log = logging.getLogger(__name__)

_READ_BLOCK = 1024 * 1024


@attrs.frozen
class Uploaded:
    """What was sent: where, how many bytes, and the ETag S3 should report for them."""

    key: str
    """Object key."""
    size: int
    """Bytes uploaded."""
    etag: str
    """Expected ETag (no quotes): the MD5, or MD5-of-part-MD5s ``-N`` for multipart."""
    version_id: str | None = None
    """The version written, in a versioned bucket."""


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _file_md5(path: Path) -> bytes:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            digest.update(block)
    return digest.digest()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _version(response: dict[str, Any]) -> str | None:
    """The version id a write returned; "null" (an unversioned bucket) counts as none."""
    version = response.get("VersionId")
    return None if not version or version == "null" else str(version)


def upload(client: Any, settings: S3Settings, key: str, path: Path, extra: dict[str, Any]) -> Uploaded:
    """Upload ``path`` to ``key`` (one request, or in parts past the threshold)."""
    size = path.stat().st_size
    args = {**settings.object_args(), **extra}
    bucket = settings.location.bucket
    if size < settings.multipart_threshold:
        digest = _file_md5(path)
        with open(path, "rb") as body:
            response = client.put_object(Bucket=bucket, Key=key, Body=body, ContentLength=size, ContentMD5=_b64(digest), **args)
        return Uploaded(key, size, digest.hex(), _version(response))
    return _upload_parts(client, settings, key, path, size, args)


def _upload_parts(client: Any, settings: S3Settings, key: str, path: Path, size: int, args: dict[str, Any]) -> Uploaded:
    bucket = settings.location.bucket
    part_size = settings.part_size(size)
    offsets = list(range(0, size, part_size))
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **args)["UploadId"]
    failed = threading.Event()

    def send(number: int) -> tuple[bytes, str]:
        if failed.is_set():  # another part failed: the upload is lost, send no more
            raise TransientError(f"part {number} not sent: an earlier part failed")
        with open(path, "rb") as fh:
            fh.seek(offsets[number - 1])
            data = fh.read(part_size)
        digest = _md5(data)
        try:
            response = client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=_b64(digest)
            )
        except BaseException:
            failed.set()
            raise
        return digest, response["ETag"]

    try:
        with ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="drivetrain-s3") as pool:
            results = list(pool.map(send, range(1, len(offsets) + 1)))
        parts = [{"PartNumber": n, "ETag": etag} for n, (_, etag) in enumerate(results, start=1)]
        response = client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        with contextlib.suppress(Exception):  # the upload's own error is the one to report
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            log.info("aborted multipart upload of s3://%s/%s after a failure", bucket, key)
        raise
    combined = hashlib.md5(b"".join(digest for digest, _ in results), usedforsecurity=False).hexdigest()
    return Uploaded(key, size, f"{combined}-{len(results)}", _version(response))


class RangeReader(io.RawIOBase):
    """A read-only, seekable view of one S3 object, each read a ranged GET.

    Pinned to an ETag (and version): if the object changes underneath, S3 answers 412 and the
    read fails instead of mixing two objects' bytes.
    """

    def __init__(self, client: Any, bucket: str, key: str, size: int, etag: str, version_id: str | None = None) -> None:
        super().__init__()
        self._client = client
        self._args: dict[str, Any] = {"Bucket": bucket, "Key": key, "IfMatch": f'"{etag}"'}
        if version_id:
            self._args["VersionId"] = version_id
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        end = self._pos + want - 1
        response = self._client.get_object(Range=f"bytes={self._pos}-{end}", **self._args)
        data = response["Body"].read()
        if len(data) != want:
            raise TransientError(f"s3://{self._args['Bucket']}/{self._args['Key']}: asked for {want} bytes at {self._pos}, got {len(data)}")
        buffer[:want] = data
        self._pos += want
        return want


def verify(client: Any, settings: S3Settings, sent: Uploaded, rows: int) -> int:
    """Check the stored object against what was sent; return the row count in its footer.

    :raises TransientError: the object is missing, or differs from what was sent (another
        writer, or damage): writing it again may fix it.
    :raises PermanentError: the object is what was sent but its footer disagrees on rows.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    bucket = settings.location.bucket
    uri = settings.location.uri(sent.key)
    version = {"VersionId": sent.version_id} if sent.version_id else {}
    head = client.head_object(Bucket=bucket, Key=sent.key, **version)
    size = int(head["ContentLength"])
    etag = str(head.get("ETag", "")).strip('"')
    if size != sent.size:
        raise TransientError(f"{uri}: verify failed: S3 holds {size} bytes where {sent.size} were uploaded; the object was replaced or damaged. Retrying writes it again.")
    if settings.sse != "aws:kms" and etag != sent.etag:
        raise TransientError(f"{uri}: verify failed: ETag {etag} does not match the uploaded bytes ({sent.etag}); the object was replaced or damaged. Retrying writes it again.")
    declared = (head.get("Metadata") or {}).get("drivetrain-rows")
    if declared is not None and declared != str(rows):
        raise TransientError(f"{uri}: verify failed: the object says it holds {declared} rows, this run wrote {rows}; another writer replaced it. Retrying writes it again.")
    reader = RangeReader(client, bucket, sent.key, size, etag, sent.version_id)
    try:
        footer_rows = pq.ParquetFile(reader).metadata.num_rows
    except pa.ArrowException as exc:
        raise TransientError(f"{uri}: verify failed: the stored object is not a readable Parquet file ({exc}). Retrying writes it again.") from exc
    if footer_rows != rows:
        raise PermanentError(f"{uri}: verify failed: wrote {rows} rows but the stored file's footer says {footer_rows}")
    return int(footer_rows)
