"""Where an S3 archive writes and how it talks to S3: the location, the options, the client.

The archive section is built by ``Pipeline.archive()`` from ``phases.stage_cleaning``:
``{"type": "s3", "location": "s3://bucket/prefix/", "credentials_ref": ...}``. The optional
keys in :data:`OPTIONS_SCHEMA` tune encryption, storage class, multipart sizes and timeouts.

Credentials come from ``credentials_ref`` (keys ``access_key_id``, ``secret_access_key``,
``session_token``, and the non-secret ``endpoint`` and ``region``) or, when the section has
none, from the default AWS chain (environment, shared files, instance role). The endpoint can
also come from the standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables, which
boto3 reads itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from drivetrain.config.hosts import CREDENTIALS_IN_URL, credentials_in_url
from drivetrain.errors import MissingExtraError

if TYPE_CHECKING:
    from drivetrain.config import Credentials, SystemConfig

MIB = 1024 * 1024
#: S3 refuses parts under 5 MiB (except the last) and uploads of more than 10,000 parts.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000
#: Storage classes whose objects can be read back at once, which verification needs.
#: GLACIER and DEEP_ARCHIVE need a restore first: move objects there with a lifecycle rule.
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")

OPTIONS_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "S3 archive",
    "description": "Archives stage rows as Parquet (zstd) objects under s3://bucket/prefix/, "
    "partitioned by pipeline_name and target_date, and reads each one back before anything "
    "is deleted from stage.",
    "type": "object",
    "required": ["location"],
    "properties": {
        "type": {"const": "s3"},
        "location": {
            "type": "string",
            "pattern": "^s3://[a-z0-9][a-z0-9.\\-]{1,61}[a-z0-9](/.*)?$",
            "description": "s3://bucket/prefix/ (the prefix is optional).",
        },
        "credentials_ref": {
            "type": "string",
            "description": "REF_ACCESS_KEY_ID + REF_SECRET_ACCESS_KEY (+ REF_SESSION_TOKEN), "
            "optionally REF_ENDPOINT and REF_REGION. Without it the default AWS chain is used.",
        },
        "endpoint_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "An S3-compatible endpoint (MinIO, a VPC endpoint...). Default: AWS, "
            "or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set.",
        },
        "region": {"type": "string", "minLength": 1, "description": "The bucket's region."},
        "storage_class": {
            "enum": list(STORAGE_CLASSES),
            "description": "Storage class of new objects. GLACIER and DEEP_ARCHIVE are not "
            "allowed: an archive is read back to verify it, which they do not allow; move "
            "objects there with a lifecycle rule instead.",
        },
        "sse": {
            "enum": ["AES256", "aws:kms"],
            "description": "Server-side encryption of new objects.",
        },
        "sse_kms_key_id": {
            "type": "string",
            "minLength": 1,
            "description": "KMS key id or ARN, with sse aws:kms (default: the account's S3 key).",
        },
        "multipart_threshold_mib": {
            "type": "integer",
            "minimum": 5,
            "default": 64,
            "description": "Files at least this large are uploaded in parts.",
        },
        "multipart_chunk_mib": {
            "type": "integer",
            "minimum": 5,
            "maximum": 5120,
            "default": 16,
            "description": "Part size; grown automatically when a file would need over 10,000.",
        },
        "max_concurrency": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "default": 4,
            "description": "Parts uploaded at once (memory: this many parts).",
        },
        "connect_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10},
        "read_timeout": {"type": "number", "exclusiveMinimum": 0, "default": 60},
        "max_attempts": {
            "type": "integer",
            "minimum": 1,
            "maximum": 20,
            "description": "Attempts per S3 request by the client (default: AWS_MAX_ATTEMPTS, "
            "else boto3's own).",
        },
        "addressing_style": {"enum": ["auto", "path", "virtual"], "default": "auto"},
    },
    "patternProperties": {"^(_comment|//)": {}},
    "dependentRequired": {"sse_kms_key_id": ["sse"]},
    "additionalProperties": False,
}


@attrs.frozen
class S3Location:
    """A bucket and a key prefix, parsed from ``s3://bucket/prefix/``."""

    bucket: str
    """The bucket name."""
    prefix: str = ""
    """Key prefix, empty or ending with ``/``."""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Split ``s3://bucket/some/prefix`` (trailing slash optional).

        :raises ValueError: not an ``s3://`` URL with a valid bucket name.
        """
        if not isinstance(url, str) or not url.startswith("s3://"):
            raise ValueError(f"{url!r} is not an s3://bucket/prefix location")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"{url!r}: '.' and '..' are not allowed in the prefix")
        return cls(bucket, "".join(p + "/" for p in parts))

    def key(self, pipeline_name: str, target_date: str, name: str) -> str:
        """The object key of one archive file."""
        return f"{self.prefix}pipeline_name={pipeline_name}/target_date={target_date}/{name}"

    def uri(self, key: str = "") -> str:
        """``s3://bucket/key`` (the location itself when ``key`` is empty)."""
        return f"s3://{self.bucket}/{key or self.prefix}"


@attrs.frozen
class S3Settings:
    """The parsed options of an S3 archive section (no secrets: credentials stay apart)."""

    location: S3Location
    """Where archive objects go."""
    endpoint_url: str | None = None
    """Endpoint override; None lets boto3 choose (AWS, or AWS_ENDPOINT_URL_S3 / _URL)."""
    region: str | None = None
    """Bucket region; None lets boto3 resolve it."""
    storage_class: str | None = None
    """StorageClass for new objects, or the bucket's default."""
    sse: str | None = None
    """ServerSideEncryption for new objects: AES256 or aws:kms."""
    sse_kms_key_id: str | None = None
    """KMS key for aws:kms."""
    multipart_threshold: int = 64 * MIB
    """Files at least this many bytes go up in parts."""
    multipart_chunk_size: int = 16 * MIB
    """Bytes per part."""
    max_concurrency: int = 4
    """Parts in flight at once."""
    connect_timeout: float = 10.0
    """Seconds to open a connection."""
    read_timeout: float = 60.0
    """Seconds to wait for a response."""
    max_attempts: int | None = None
    """Attempts per request by botocore; None keeps its default (or AWS_MAX_ATTEMPTS)."""
    addressing_style: str = "auto"
    """Bucket in the host name (virtual) or in the path (path); auto lets botocore pick."""

    @classmethod
    def from_config(cls, config: SystemConfig, credentials: Credentials | None = None) -> S3Settings:
        """Read the section's options; endpoint and region fall back to the credentials'."""
        try:
            location = S3Location.parse(str(config.require("location")))
        except ValueError as exc:
            raise config.error("location", str(exc)) from None

        def opt(key: str, default: Any = None) -> Any:
            value = config.get(key)
            return default if value is None else value

        creds_endpoint = credentials.reveal("endpoint") if credentials is not None else None
        creds_region = credentials.reveal("region") if credentials is not None else None
        if isinstance(opt("endpoint_url"), str) and credentials_in_url(opt("endpoint_url")):
            raise config.error("endpoint_url", CREDENTIALS_IN_URL)
        if credentials is not None and isinstance(creds_endpoint, str) and credentials_in_url(creds_endpoint):
            raise config.error("credentials_ref", f"the ENDPOINT of credentials {credentials.ref!r} "
                               f"{CREDENTIALS_IN_URL.replace('credentials_ref', 'their ACCESS_KEY_ID and SECRET_ACCESS_KEY')}")
        if opt("sse_kms_key_id") and opt("sse") != "aws:kms":
            raise config.error("sse_kms_key_id", "only used with sse 'aws:kms'")
        return cls(
            location=location,
            endpoint_url=opt("endpoint_url") or creds_endpoint or None,
            region=opt("region") or creds_region or None,
            storage_class=opt("storage_class"),
            sse=opt("sse"),
            sse_kms_key_id=opt("sse_kms_key_id"),
            multipart_threshold=int(opt("multipart_threshold_mib", 64)) * MIB,
            multipart_chunk_size=int(opt("multipart_chunk_mib", 16)) * MIB,
            max_concurrency=int(opt("max_concurrency", 4)),
            connect_timeout=float(opt("connect_timeout", 10.0)),
            read_timeout=float(opt("read_timeout", 60.0)),
            max_attempts=opt("max_attempts"),
            addressing_style=str(opt("addressing_style", "auto")),
        )

    def object_args(self) -> dict[str, str]:
        """Encryption and storage-class arguments for PutObject / CreateMultipartUpload."""
        args: dict[str, str] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        return args

    def part_size(self, size: int) -> int:
        """The part size for a file of ``size`` bytes: the chunk size, grown to fit 10,000 parts."""
        part = max(self.multipart_chunk_size, MIN_PART_SIZE)
        while part * MAX_PARTS < size:
            part *= 2
        return part


def key_pair(config: SystemConfig, credentials: Credentials | None) -> dict[str, str]:
    """boto3 session arguments from the credentials; empty for the default AWS chain.

    :raises ConfigError: only one of the access key id and the secret key is set.
    """
    if credentials is None:
        return {}
    key_id = credentials.reveal("access_key_id")
    secret = credentials.reveal("secret_access_key")
    token = credentials.reveal("session_token")
    if not key_id and not secret:
        if token:
            raise config.error("credentials_ref", f"credentials {credentials.ref!r} have a SESSION_TOKEN but no ACCESS_KEY_ID and SECRET_ACCESS_KEY")
        return {}
    if not key_id or not secret:
        missing = "SECRET_ACCESS_KEY" if key_id else "ACCESS_KEY_ID"
        raise config.error("credentials_ref", f"credentials {credentials.ref!r} need both ACCESS_KEY_ID and SECRET_ACCESS_KEY; {missing} is missing")
    pair = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    if token:
        pair["aws_session_token"] = token
    return pair


def make_client(settings: S3Settings, keys: Mapping[str, str]) -> Any:
    """A boto3 S3 client for these settings (boto3 imported here, not at module import).

    :raises MissingExtraError: boto3 is not installed.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise MissingExtraError("boto3", "s3") from exc
    config_args: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
        "max_pool_connections": max(10, settings.max_concurrency + 2),
        "user_agent_extra": "drivetrain",
        "s3": {"addressing_style": settings.addressing_style},
    }
    if settings.max_attempts is not None:
        config_args["retries"] = {"total_max_attempts": settings.max_attempts, "mode": "standard"}
    session = boto3.session.Session(region_name=settings.region, **keys)
    return session.client("s3", endpoint_url=settings.endpoint_url, config=Config(**config_args))
