"""The S3 archive, through real boto3 against a moto server on localhost.

Faults are injected on the wire by the proxy in tests/servers/moto_server.py: connections cut
mid-upload, S3 error answers, an object replaced between upload and verification.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import traceback
from collections.abc import Iterator
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from drivetrain.config import SystemConfig
from drivetrain.connectors.s3 import S3Archive, S3Location
from drivetrain.errors import ConfigError, MissingExtraError, PermanentError, TransientError
from tests.servers.moto_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Fault, S3Env

DAY = date(2025, 11, 15)
PREFIX = "stage-archive/"
PARTITION = f"{PREFIX}pipeline_name=lab/target_date=2025-11-15/"
DATA_KEY = r"/stage-archive/pipeline_name=lab/target_date=2025-11-15/part-[0-9a-f]{16}\.parquet"
MIB = 1024 * 1024
#: The object name of rows loaded by run "run-a": sha256("run-a")[:16], written out so that a change of the
#: naming scheme shows here (archives written before it would no longer be replaced when archived again).
RUN_A_PART = "part-66b1eb530fb748a4.parquet"
#: Rows loaded by "run-a" and "run-b", in either order: sha256("run-a,run-b")[:16].
RUN_AB_PART = "part-38af720cba51eb69.parquet"


def make_archive(s3: S3Env, *, environ: dict[str, str] | None = None, ref: str | None = "test_s3", **options: Any) -> S3Archive:
    """An archive as Pipeline.archive() builds it, talking to the proxy through REF_ENDPOINT."""
    section: dict[str, Any] = {"type": "s3", "location": f"s3://{s3.bucket}/{PREFIX}", **options}
    if ref:
        section["credentials_ref"] = ref
    config = SystemConfig.from_section("archive", section)
    config.validate_against(S3Archive.options_schema)
    if environ is None:
        environ = {
            "TEST_S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "TEST_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "TEST_S3_ENDPOINT": s3.proxy.url,
            "TEST_S3_REGION": "us-east-1",
        }
    return S3Archive(config, config.credentials(environ) if ref else None)


def stage_batches(n: int = 300, *, loaders: tuple[str, ...] = ("run-a",), size: int = 100) -> Iterator[pa.RecordBatch]:
    """Stage-like rows: an id, a value, and the lineage columns the archive names files by."""
    for start in range(0, n, size):
        count = min(size, n - start)
        yield pa.record_batch({
            "test_id": [f"T{i:06d}" for i in range(start, start + count)],
            "age": list(range(start, start + count)),
            "_drivetrain_pipeline_id": [loaders[i % len(loaders)] for i in range(start, start + count)],
            "_drivetrain_target_date": [DAY] * count,
        })


def big_batches(mib: int = 11) -> Iterator[pa.RecordBatch]:
    """About ``mib`` MiB of incompressible bytes, so the Parquet file needs several parts."""
    yield pa.record_batch({
        "blob": [os.urandom(MIB) for _ in range(mib)],
        "_drivetrain_pipeline_id": ["run-big"] * mib,
    })


def stored_table(s3: S3Env, key: str) -> pa.Table:
    return pq.read_table(io.BytesIO(s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()))


def key_of(uri: str, s3: S3Env) -> str:
    return uri.removeprefix(f"s3://{s3.bucket}/")


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class TestWrite:
    def test_rows_are_written_as_zstd_parquet_and_read_back(self, s3):
        receipt = make_archive(s3).write("lab", DAY, "run-x", stage_batches(300))
        assert receipt.rows == 300
        table = stored_table(s3, key_of(receipt.uris[0], s3))
        assert table.column("test_id").to_pylist() == [f"T{i:06d}" for i in range(300)]
        meta = pq.ParquetFile(io.BytesIO(s3.client.get_object(Bucket=s3.bucket, Key=key_of(receipt.uris[0], s3))["Body"].read())).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"

    def test_objects_are_partitioned_by_pipeline_and_target_date(self, s3):
        archive = make_archive(s3)
        archive.write("lab", DAY, "run-x", stage_batches(10))
        archive.write("lab", date(2025, 11, 16), "run-x", stage_batches(10))
        archive.write("other", DAY, "run-x", stage_batches(10))
        assert s3.keys() == [
            f"{PREFIX}pipeline_name=lab/target_date=2025-11-15/{RUN_A_PART}",
            f"{PREFIX}pipeline_name=lab/target_date=2025-11-16/{RUN_A_PART}",
            f"{PREFIX}pipeline_name=other/target_date=2025-11-15/{RUN_A_PART}",
        ]

    def test_receipt_names_the_object_uri(self, s3):
        receipt = make_archive(s3).write("lab", DAY, "run-x", stage_batches(5))
        assert receipt.uris == [f"s3://{s3.bucket}/{PARTITION}{RUN_A_PART}"]

    def test_object_carries_content_type_and_row_count_metadata(self, s3):
        receipt = make_archive(s3).write("lab", DAY, "run-x", stage_batches(42))
        head = s3.client.head_object(Bucket=s3.bucket, Key=key_of(receipt.uris[0], s3))
        assert head["ContentType"] == "application/vnd.apache.parquet"
        assert head["Metadata"]["drivetrain-rows"] == "42"
        assert head["Metadata"]["drivetrain-run-id"] == "run-x"

    def test_no_rows_writes_no_object(self, s3):
        receipt = make_archive(s3).write("lab", DAY, "run-x", iter([]))
        assert (receipt.uris, receipt.rows) == ([], 0)
        assert s3.keys() == []

    def test_verification_reads_the_footer_back_with_a_ranged_get(self, s3):
        make_archive(s3).write("lab", DAY, "run-x", stage_batches(5))
        methods = [m for m, path in s3.proxy.requests if "target_date=" in path]
        assert methods == ["PUT", "HEAD", "GET"]


class TestIdempotence:
    def test_archiving_the_same_rows_again_replaces_the_object(self, s3):
        archive = make_archive(s3)
        first = archive.write("lab", DAY, "run-1", stage_batches(50))
        second = archive.write("lab", DAY, "run-2", stage_batches(50))
        assert first.uris == second.uris
        assert len(s3.keys(PARTITION)) == 1
        assert stored_table(s3, key_of(second.uris[0], s3)).num_rows == 50

    def test_rows_from_other_loaders_get_another_object(self, s3):
        archive = make_archive(s3)
        archive.write("lab", DAY, "run-1", stage_batches(50, loaders=("run-a",)))
        archive.write("lab", DAY, "run-1", stage_batches(50, loaders=("run-a", "run-b")))
        assert s3.keys(PARTITION) == [f"{PARTITION}{RUN_AB_PART}", f"{PARTITION}{RUN_A_PART}"]

    def test_the_order_the_loaders_come_in_does_not_change_the_name(self, s3):
        receipt = make_archive(s3).write("lab", DAY, "run-1", stage_batches(50, loaders=("run-b", "run-a")))
        assert receipt.uris == [f"s3://{s3.bucket}/{PARTITION}{RUN_AB_PART}"]


class TestMultipart:
    def test_a_large_file_goes_up_in_parts_and_verifies(self, s3):
        archive = make_archive(s3, multipart_threshold_mib=5, multipart_chunk_mib=5)
        receipt = archive.write("lab", DAY, "run-x", big_batches(11))
        assert receipt.rows == 11
        parts = [path for method, path in s3.proxy.requests if method == "PUT" and "partNumber=" in path]
        assert len(parts) == 3
        assert s3.client.head_object(Bucket=s3.bucket, Key=key_of(receipt.uris[0], s3))["ETag"].endswith('-3"')

    def test_a_part_cut_off_mid_body_raises_and_aborts_the_upload(self, s3):
        fault = s3.proxy.add(Fault("PUT", r"partNumber=2", after_bytes=MIB))
        archive = make_archive(s3, multipart_threshold_mib=5, multipart_chunk_mib=5, max_concurrency=1)
        with pytest.raises(TransientError, match="upload failed: the connection failed mid-request"):
            archive.write("lab", DAY, "run-x", big_batches(11))
        assert fault.hits == 1
        assert s3.keys() == []
        assert s3.pending_uploads() == []
        sent = [path for method, path in s3.proxy.requests if method in ("PUT", "DELETE")]
        assert [p.rsplit("&", 1)[-1] if "partNumber" in p else "abort" for p in sent] == ["partNumber=1", "partNumber=2", "abort"]

    def test_a_lost_completion_raises_and_leaves_no_object(self, s3):
        s3.proxy.add(Fault("POST", r"\?uploadId="))
        archive = make_archive(s3, multipart_threshold_mib=5, multipart_chunk_mib=5)
        with pytest.raises(TransientError):
            archive.write("lab", DAY, "run-x", big_batches(11))
        assert s3.keys() == []
        assert s3.pending_uploads() == []


class TestFailures:
    def test_a_single_upload_cut_part_way_raises_transient_and_stores_nothing(self, s3):
        s3.proxy.add(Fault("PUT", DATA_KEY, after_bytes=512))
        with pytest.raises(TransientError) as caught:
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(300))
        assert f"s3://{s3.bucket}/{PARTITION}part-" in str(caught.value)
        assert s3.keys() == []

    def test_throttling_is_transient(self, s3):
        s3.proxy.add(Fault("PUT", DATA_KEY, action="error", status=503, code="SlowDown"))
        with pytest.raises(TransientError, match=r"SlowDown \(HTTP 503\)"):
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(5))

    def test_a_server_error_is_transient(self, s3):
        s3.proxy.add(Fault("PUT", DATA_KEY, action="error", status=500, code="InternalError"))
        with pytest.raises(TransientError, match="S3 is busy or failed"):
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(5))

    def test_access_denied_is_permanent_and_names_the_permissions(self, s3):
        s3.proxy.add(Fault("PUT", DATA_KEY, action="error", status=403, code="AccessDenied"))
        with pytest.raises(PermanentError, match="access denied .* s3:PutObject"):
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(5))

    def test_a_missing_bucket_is_permanent(self, s3):
        archive = make_archive(s3)
        s3.client.delete_bucket(Bucket=s3.bucket)
        with pytest.raises(PermanentError, match=f"bucket '{s3.bucket}' does not exist"):
            archive.write("lab", DAY, "run-x", stage_batches(5))

    def test_an_unreachable_endpoint_is_transient(self, s3):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        environ = {"TEST_S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "TEST_S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                   "TEST_S3_ENDPOINT": f"http://127.0.0.1:{port}"}
        with pytest.raises(TransientError, match="cannot reach S3"):
            make_archive(s3, environ=environ).write("lab", DAY, "run-x", stage_batches(5))

    def test_no_credentials_anywhere_is_permanent_and_says_where_to_put_them(self, s3, monkeypatch):
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.proxy.url)
        with pytest.raises(PermanentError, match="no AWS credentials found.*credentials_ref"):
            make_archive(s3, ref=None).write("lab", DAY, "run-x", stage_batches(5))

    def test_secrets_appear_in_no_error_message_or_traceback(self, s3):
        s3.proxy.add(Fault("PUT", DATA_KEY, action="error", status=403, code="AccessDenied"))
        archive = make_archive(s3)
        with pytest.raises(PermanentError) as caught:
            archive.write("lab", DAY, "run-x", stage_batches(5))
        for text in (full_text(caught.value), repr(archive), archive.describe(), repr(archive.settings), repr(archive.credentials)):
            assert SECRET_ACCESS_KEY not in text
            assert ACCESS_KEY_ID not in text

    def test_a_missing_boto3_names_the_extra(self, s3, monkeypatch):
        monkeypatch.setitem(sys.modules, "boto3", None)
        with pytest.raises(MissingExtraError, match=r"drivetrain\[s3\]"):
            make_archive(s3).check()


class TestVerification:
    def test_an_object_replaced_before_the_head_fails_verification(self, s3):
        def replace() -> None:
            key = s3.keys(PARTITION)[0]
            s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"not the archive")

        s3.proxy.add(Fault("HEAD", DATA_KEY, action="hook", hook=replace))
        with pytest.raises(TransientError, match="verify failed: S3 holds 15 bytes"):
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(50))

    def test_an_object_replaced_before_the_footer_read_fails_verification(self, s3):
        def replace() -> None:
            key = s3.keys(PARTITION)[0]
            s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"x" * 64)

        s3.proxy.add(Fault("GET", DATA_KEY, action="hook", hook=replace))
        with pytest.raises(TransientError, match="verify failed: the object changed while it was read back"):
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(50))

    def test_a_failed_footer_read_is_transient(self, s3):
        s3.proxy.add(Fault("GET", DATA_KEY, action="error", status=500, code="InternalError"))
        with pytest.raises(TransientError, match="verify failed: S3 is busy"):
            make_archive(s3).write("lab", DAY, "run-x", stage_batches(50))


class TestCheck:
    def test_check_writes_and_removes_a_marker(self, s3):
        lines = make_archive(s3).check()
        assert lines[0] == f"bucket {s3.bucket} is reachable"
        assert s3.keys() == []
        assert [m for m, path in s3.proxy.requests if "_drivetrain_check/" in path] == ["PUT", "DELETE"]

    def test_check_of_a_missing_bucket_is_permanent(self, s3):
        s3.client.delete_bucket(Bucket=s3.bucket)
        with pytest.raises(PermanentError, match="does not exist"):
            make_archive(s3).check()

    def test_check_without_write_permission_is_permanent(self, s3):
        s3.proxy.add(Fault("PUT", "_drivetrain_check/", action="error", status=403, code="AccessDenied"))
        with pytest.raises(PermanentError, match="write check failed: access denied"):
            make_archive(s3).check()


class TestEndpointsAndCredentials:
    def test_endpoint_from_the_standard_aws_variable_with_the_default_chain(self, s3, monkeypatch):
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.proxy.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        receipt = make_archive(s3, ref=None).write("lab", DAY, "run-x", stage_batches(5))
        assert receipt.rows == 5
        assert any("target_date=" in path for _, path in s3.proxy.requests)

    def test_endpoint_url_option_wins_over_the_credentials_endpoint(self, s3):
        archive = make_archive(s3, endpoint_url=s3.moto.url)
        archive.write("lab", DAY, "run-x", stage_batches(5))
        assert s3.proxy.requests == []
        assert archive.describe() == f"s3://{s3.bucket}/{PREFIX} (endpoint {s3.moto.url})"

    def test_a_key_id_without_its_secret_is_a_config_error(self, s3):
        with pytest.raises(ConfigError, match="SECRET_ACCESS_KEY is missing"):
            make_archive(s3, environ={"TEST_S3_ACCESS_KEY_ID": ACCESS_KEY_ID})

    def test_encryption_and_storage_class_reach_the_object(self, s3):
        receipt = make_archive(s3, sse="AES256", storage_class="STANDARD_IA").write("lab", DAY, "run-x", stage_batches(5))
        head = s3.client.head_object(Bucket=s3.bucket, Key=key_of(receipt.uris[0], s3))
        assert head["ServerSideEncryption"] == "AES256"
        assert head["StorageClass"] == "STANDARD_IA"


class TestOptions:
    @pytest.mark.parametrize(("url", "bucket", "prefix"), [
        ("s3://bkt", "bkt", ""),
        ("s3://bkt/", "bkt", ""),
        ("s3://bkt/a/b", "bkt", "a/b/"),
        ("s3://bkt//a//b/", "bkt", "a/b/"),
    ])
    def test_location_is_split_into_bucket_and_normalised_prefix(self, url, bucket, prefix):
        assert S3Location.parse(url) == S3Location(bucket, prefix)

    @pytest.mark.parametrize("url", ["bkt/a", "s3://B_ad/a", "s3://bkt/../a", "s3://ab/"])
    def test_a_bad_location_is_rejected(self, url):
        with pytest.raises(ValueError):
            S3Location.parse(url)

    def test_a_glacier_storage_class_is_a_config_error(self, s3):
        with pytest.raises(ConfigError, match="storage_class"):
            make_archive(s3, storage_class="GLACIER")

    def test_an_unknown_option_is_a_config_error(self, s3):
        with pytest.raises(ConfigError, match="multipart_treshold_mib"):
            make_archive(s3, multipart_treshold_mib=8)

    def test_a_kms_key_without_kms_encryption_is_a_config_error(self, s3):
        with pytest.raises(ConfigError, match="sse_kms_key_id"):
            make_archive(s3, sse="AES256", sse_kms_key_id="alias/archive")
