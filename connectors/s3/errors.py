"""Turn boto3 / botocore exceptions into drivetrain's Transient/Permanent errors.

Every S3 call of the archive runs inside :func:`s3_errors`, so nothing above the connector sees
a botocore exception. Worth a retry: throttling (SlowDown, 429), server errors (5xx), timeouts,
refused or dropped connections, a multipart upload that vanished, a body damaged in transit.
Not worth one: missing bucket, denied access, bad or expired credentials, a wrong region, KMS
key problems, TLS failures, invalid arguments. Messages name the object and what to do; every
secret value known to :mod:`drivetrain.secrets` is blanked out of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from drivetrain.errors import ConnectorError, DrivetrainError, PermanentError, TransientError
from drivetrain.secrets import redact

#: Error codes S3 documents as worth retrying (besides every 5xx status and 429).
TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestTimeout", "RequestTimeoutException", "InternalError",
    "ServiceUnavailable", "BadDigest", "IncompleteBody", "NoSuchUpload", "OperationAborted",
    "PriorRequestNotComplete", "PreconditionFailed", "XAmzContentSHA256Mismatch",
})
_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
    "TokenRefreshRequired", "InvalidSecurity", "AuthFailure",
})
_REGION_CODES = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"})

_PERMISSIONS = (
    "s3:PutObject, s3:GetObject, s3:DeleteObject and s3:AbortMultipartUpload on the prefix "
    "(and kms:GenerateDataKey / kms:Decrypt on the key with sse aws:kms)"
)


def _client_error(exc: object, head: str, bucket: str) -> ConnectorError:
    response = getattr(exc, "response", {}) or {}
    error = response.get("Error", {}) or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "").strip()
    status = int((response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
    label = f"{code} (HTTP {status})" if code and code != str(status) else f"HTTP {status}"
    detail = label + (f": {message}" if message and message != code else "")
    if code == "NoSuchBucket":
        return PermanentError(f"{head}: bucket {bucket!r} does not exist ({detail}). Check archive_location, or create the bucket.")
    if code in _CREDENTIAL_CODES:
        return PermanentError(f"{head}: S3 rejected the credentials ({detail}). Check the keys behind the archive's credentials_ref (or the default AWS credentials).")
    if code in _REGION_CODES:
        return PermanentError(f"{head}: the bucket is in another region ({detail}). Set the region (REF_REGION in the credentials, or AWS_REGION).")
    if code.startswith("KMS.") or code == "KMSKeyNotFound":
        return PermanentError(f"{head}: the KMS key cannot be used ({detail}). Check sse_kms_key_id and the key's policy.")
    if code == "InvalidObjectState":
        return PermanentError(f"{head}: the object is in an archive storage class and cannot be read back ({detail}). Use a readable storage_class.")
    if code == "PreconditionFailed":
        return TransientError(f"{head}: the object changed while it was read back ({detail}); another writer may have replaced it. Retrying writes it again.")
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return TransientError(f"{head}: S3 is busy or failed ({detail}). Retrying later should help.")
    if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
        return PermanentError(f"{head}: access denied ({detail}). The archive needs {_PERMISSIONS}.")
    if code in ("NoSuchKey", "404") or status == 404:
        return TransientError(f"{head}: the object is missing ({detail}); it may have been deleted meanwhile. Retrying writes it again.")
    return PermanentError(f"{head}: S3 refused the request ({detail}).")


def translate(exc: BaseException, head: str, bucket: str) -> ConnectorError | None:
    """The drivetrain error for a boto3/botocore exception, or None when ``exc`` is not one."""
    try:
        from botocore import exceptions as bce
    except ImportError:  # pragma: no cover - the archive imports boto3 first
        return None
    if isinstance(exc, bce.ClientError):
        return _client_error(exc, head, bucket)
    if isinstance(exc, bce.NoCredentialsError):
        return PermanentError(
            f"{head}: no AWS credentials found. Set the archive's credentials_ref "
            "(REF_ACCESS_KEY_ID and REF_SECRET_ACCESS_KEY) or configure the default AWS chain."
        )
    if isinstance(exc, bce.PartialCredentialsError | bce.NoRegionError | bce.ParamValidationError):
        return PermanentError(f"{head}: {exc}")
    if isinstance(exc, bce.SSLError):
        return PermanentError(f"{head}: TLS failed ({exc}). Check the endpoint and its certificate.")
    if isinstance(exc, bce.ConnectTimeoutError | bce.ReadTimeoutError):
        return TransientError(f"{head}: no answer in time ({exc}). Retrying later should help.")
    if isinstance(exc, bce.EndpointConnectionError):
        return TransientError(f"{head}: cannot reach S3 ({exc}). Check the endpoint and the network; retrying later may help.")
    if isinstance(exc, bce.HTTPClientError | bce.ResponseStreamingError | bce.IncompleteReadError):
        return TransientError(f"{head}: the connection failed mid-request ({exc}). Retrying later should help.")
    if isinstance(exc, bce.BotoCoreError):
        return PermanentError(f"{head}: {exc}")
    return None


@contextmanager
def s3_errors(action: str, uri: str, bucket: str) -> Iterator[None]:
    """Translate boto3 exceptions raised inside the block; others pass through unchanged.

    :param action: what was being done ("upload", "verify"...), for the message.
    :param uri: the object or location, for the message (never with credentials).
    :param bucket: the bucket name, for a NoSuchBucket message.
    """
    try:
        yield
    except DrivetrainError:
        raise
    except Exception as exc:
        error = translate(exc, f"{uri}: {action} failed", bucket)
        if error is None:
            raise
        raise type(error)(redact(str(error))) from exc
