"""CogVideoToS3Operator against a real S3 server (SeaweedFS) and a local result-file server with faults."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.header import decode_header
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import AssetAlias

from airflow_provider_cogvideo.errors import CogVideoDownloadError, CogVideoValidationError
from airflow_provider_cogvideo.s3_multipart import part_size_for
from airflow_provider_cogvideo.sizes import MiB
from airflow_provider_cogvideo.testing.result_files import ResultFileServer, synthetic_chunks
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.video_index import IndexLocation, load_index
from tests.s3.helpers import (
    AWS_CONN_ID,
    COGVIDEO_CONN_ID,
    STREAM_CONN_ID,
    GzipFileServer,
    make_context,
    object_keys,
    pending_uploads,
)

VIDEO_SIZE = 12 * MiB + 12345  # three 5 MiB parts, the last one short
COVER = b"\x89PNG\r\n\x1a\n fake cover bytes"


def synthetic_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in synthetic_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def job(result_server: ResultFileServer) -> dict[str, Any]:
    """A fresh generation result whose files the local server serves."""
    job_id = str(uuid.uuid4().int)[:19]
    video = result_server.add(f"{job_id}.mp4", size=VIDEO_SIZE)
    cover = result_server.add(f"{job_id}.png", COVER, content_type="image/png")
    return {
        "id": job_id,
        "model": "cogvideox-3",
        "request_id": f"af-{job_id}",
        "task_status": "SUCCESS",
        "video_url": video,
        "cover_image_url": cover,
        "metadata": {"product_id": f"sku-{job_id[:6]}", "title": "Red mug", "selling_points": ["ceramic", "350 ml"]},
        "price": 1.0,
        "price_currency": "CNY",
        "prompt": "A red mug turns slowly",
        "request": {"model": "cogvideox-3", "prompt": "A red mug turns slowly"},
    }


def transfer(bucket: str, result: Any, **kwargs: Any) -> CogVideoToS3Operator:
    args: dict[str, Any] = {
        "task_id": "to_s3",
        "result": result,
        "s3_bucket": bucket,
        "s3_key": "videos/{metadata[product_id]}.mp4",
        "aws_conn_id": AWS_CONN_ID,
        "cogvideo_conn_id": COGVIDEO_CONN_ID,
        "part_size": 5 * MiB,
        **kwargs,
    }
    return CogVideoToS3Operator(**args)


def downloads(server: ResultFileServer, name: str) -> int:
    return server.requests[f"/files/{name}"]


def test_streams_video_and_cover(s3: Any, bucket: str, job: dict[str, Any], result_server: ResultFileServer) -> None:
    context = make_context()
    out = transfer(bucket, job).execute(context)

    key = f"videos/{job['metadata']['product_id']}.mp4"
    expected_sha = synthetic_sha256(VIDEO_SIZE)
    assert out["s3_uri"] == f"s3://{bucket}/{key}"
    assert out["cover_s3_uri"] == f"s3://{bucket}/videos/{job['metadata']['product_id']}.png"
    assert out["size"] == VIDEO_SIZE
    assert out["sha256"] == expected_sha
    assert out["already_present"] is False
    # The generation fields ride along, so a manifest can be built from this result alone.
    for field in ("id", "model", "request_id", "metadata", "prompt", "price", "price_currency"):
        assert out[field] == job[field]

    stored = s3.get_object(Bucket=bucket, Key=key)
    assert hashlib.sha256(stored["Body"].read()).hexdigest() == expected_sha
    assert stored["ContentType"] == "video/mp4"
    meta = stored["Metadata"]
    assert meta["cogvideo-job-id"] == job["id"]
    assert meta["cogvideo-model"] == "cogvideox-3"
    assert meta["cogvideo-request-id"] == job["request_id"]
    assert meta["cogvideo-prompt-sha256"] == hashlib.sha256(job["prompt"].encode()).hexdigest()
    assert meta["product-selling-points"] == "ceramic, 350 ml"
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    assert tags == {"sha256": expected_sha}

    cover = s3.get_object(Bucket=bucket, Key=f"videos/{job['metadata']['product_id']}.png")
    assert cover["Body"].read() == COVER
    assert cover["ContentType"] == "image/png"
    assert cover["Metadata"]["cogvideo-video-key"] == key
    assert pending_uploads(s3, bucket) == []

    # The asset event for downstream DAGs, through the alias outlet.
    accessor = context["outlet_events"][AssetAlias(name="cogvideo-videos")]
    (event,) = accessor.asset_alias_events
    assert event.dest_asset_key.uri == f"s3://{bucket}/{key}"
    assert event.extra == {"sha256": expected_sha, "size": VIDEO_SIZE, "job_id": job["id"]}

    # Idempotent: a rerun finds the recorded job + sha256 and downloads nothing.
    before = downloads(result_server, f"{job['id']}.mp4"), downloads(result_server, f"{job['id']}.png")
    again = transfer(bucket, job).execute(make_context())
    assert again["already_present"] is True
    assert again["sha256"] == expected_sha
    assert again["size"] == VIDEO_SIZE
    assert (downloads(result_server, f"{job['id']}.mp4"), downloads(result_server, f"{job['id']}.png")) == before


def test_alias_outlet_is_declared() -> None:
    op = CogVideoToS3Operator(task_id="t", result="http://x/a.mp4", s3_bucket="b", s3_key="k.mp4")
    assert AssetAlias(name="cogvideo-videos") in op.outlets
    quiet = CogVideoToS3Operator(task_id="t2", result="http://x/a.mp4", s3_bucket="b", s3_key="k", asset_alias=None)
    assert quiet.outlets == []


def test_mid_stream_failure_leaves_nothing_then_retry_succeeds(
    s3: Any, bucket: str, job: dict[str, Any], result_server: ResultFileServer
) -> None:
    result_server.files[f"{job['id']}.mp4"].faults = [f"truncate:{7 * MiB}"]
    with pytest.raises(CogVideoDownloadError) as exc_info:
        transfer(bucket, job).execute(make_context())
    assert exc_info.value.retryable
    assert job["id"] in str(exc_info.value)
    assert object_keys(s3, bucket) == []  # no partial object
    assert pending_uploads(s3, bucket) == []  # the multipart upload was aborted

    out = transfer(bucket, job).execute(make_context())  # Airflow's retry
    assert out["sha256"] == synthetic_sha256(VIDEO_SIZE)
    assert len(object_keys(s3, bucket)) == 2


def test_replace_semantics(s3: Any, bucket: str, job: dict[str, Any], result_server: ResultFileServer) -> None:
    key = f"videos/{job['metadata']['product_id']}.mp4"
    s3.put_object(Bucket=bucket, Key=key, Body=b"someone else's video", Metadata={"cogvideo-job-id": "111"})

    with pytest.raises(AirflowFailException, match=r"job 111.*replace=False"):
        transfer(bucket, job).execute(make_context())
    assert downloads(result_server, f"{job['id']}.mp4") == 0  # refused before downloading anything
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"someone else's video"

    out = transfer(bucket, job, replace=True).execute(make_context())
    assert out["already_present"] is False
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == VIDEO_SIZE


def test_foreign_cover_blocks_before_download(
    s3: Any, bucket: str, job: dict[str, Any], result_server: ResultFileServer
) -> None:
    s3.put_object(Bucket=bucket, Key=f"videos/{job['metadata']['product_id']}.png", Body=b"other")
    with pytest.raises(AirflowFailException, match="refusing to overwrite"):
        transfer(bucket, job).execute(make_context())
    assert downloads(result_server, f"{job['id']}.mp4") == 0
    out = transfer(bucket, job, cover_s3_key=None).execute(make_context())
    assert out["cover_s3_uri"] is None


def test_own_object_without_checksum_is_transferred_again(s3: Any, bucket: str, job: dict[str, Any]) -> None:
    """A crash between completing the upload and tagging it: the same job's object is redone."""
    key = f"videos/{job['metadata']['product_id']}.mp4"
    s3.put_object(Bucket=bucket, Key=key, Body=b"half", Metadata={"cogvideo-job-id": job["id"]})
    out = transfer(bucket, job, cover_s3_key=None).execute(make_context())
    assert out["already_present"] is False
    assert out["size"] == VIDEO_SIZE


def test_truncated_download_detected_without_transport_error(s3: Any, bucket: str, job: dict[str, Any]) -> None:
    """A body that just ends early (no exception from httpx) is caught by the byte count."""

    class ShortResponse:
        headers = httpx.Headers({"content-length": str(VIDEO_SIZE), "content-type": "video/mp4"})

        def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
            yield from synthetic_chunks(6 * MiB)

    class ShortHook:
        @contextlib.contextmanager
        def stream_download(self, url: str, max_bytes: int) -> Iterator[ShortResponse]:
            yield ShortResponse()

    op = transfer(bucket, job, cover_s3_key=None)
    op.hook = ShortHook()  # type: ignore[assignment]
    with pytest.raises(CogVideoDownloadError, match=rf"truncated: received {6 * MiB} of {VIDEO_SIZE} bytes"):
        op.execute(make_context())
    assert object_keys(s3, bucket) == []
    assert pending_uploads(s3, bucket) == []


def test_expired_url_is_refreshed_via_get_task(
    s3: Any, bucket: str, job: dict[str, Any], result_server: ResultFileServer
) -> None:
    result_server.files[f"{job['id']}.mp4"].faults = ["status:403"]
    result_server.files[f"{job['id']}.png"].faults = ["status:403"]
    fresh_video = result_server.add(f"{job['id']}-fresh.mp4", size=VIDEO_SIZE)
    result_server.add(f"{job['id']}-fresh.png", COVER, content_type="image/png")
    result_server.add_task(job["id"], f"{job['id']}-fresh.mp4", f"{job['id']}-fresh.png")

    out = transfer(bucket, job).execute(make_context())
    assert out["sha256"] == synthetic_sha256(VIDEO_SIZE)
    assert result_server.requests[f"/api/paas/v4/async-result/{job['id']}"] == 1  # one query for both URLs
    assert downloads(result_server, f"{job['id']}-fresh.mp4") == 1
    assert downloads(result_server, f"{job['id']}-fresh.png") == 1
    assert fresh_video not in out.values()  # the stale result is returned as given; only the bytes are new


def test_expired_url_still_refused_after_refresh_names_the_job(
    s3: Any, bucket: str, job: dict[str, Any], result_server: ResultFileServer
) -> None:
    result_server.files[f"{job['id']}.mp4"].faults = ["status:410", "status:410"]
    result_server.add_task(job["id"], f"{job['id']}.mp4")
    with pytest.raises(AirflowFailException, match=rf"job {job['id']}: the video URL is refused \(HTTP 410\)"):
        transfer(bucket, job).execute(make_context())
    assert object_keys(s3, bucket) == []
    assert pending_uploads(s3, bucket) == []


def test_plain_url_and_verify_by_checksum(s3: Any, bucket: str, result_server: ResultFileServer) -> None:
    name = f"{uuid.uuid4().hex}.mp4"
    url = result_server.add(name, b"v" * 1000)
    op = transfer(bucket, url, s3_key="plain/{url_stem}.mp4", cover_s3_key=None)
    first = op.execute(make_context())
    assert first["s3_uri"] == f"s3://{bucket}/plain/{name}"
    assert first["already_present"] is False

    # No job id to compare: the download is hashed (not uploaded) and matches the recorded sha256.
    second = transfer(bucket, url, s3_key="plain/{url_stem}.mp4", cover_s3_key=None).execute(make_context())
    assert second["already_present"] is True
    assert second["sha256"] == first["sha256"]

    result_server.add(name, b"w" * 1000)  # different content at the same URL
    with pytest.raises(AirflowFailException, match="refusing to overwrite"):
        transfer(bucket, url, s3_key="plain/{url_stem}.mp4", cover_s3_key=None).execute(make_context())
    assert s3.get_object(Bucket=bucket, Key=f"plain/{name}")["Body"].read() == b"v" * 1000


def test_key_placeholder_errors_are_clear(bucket: str, job: dict[str, Any]) -> None:
    with pytest.raises(AirflowFailException, match=r"s3_key 'videos/\{sku\}.mp4' cannot be filled.*available fields"):
        transfer(bucket, job, s3_key="videos/{sku}.mp4").execute(make_context())


def test_failed_job_and_templated_string_result(bucket: str, job: dict[str, Any]) -> None:
    with pytest.raises(AirflowFailException, match="task_status is FAIL"):
        transfer(bucket, {**job, "task_status": "FAIL"}).execute(make_context())
    # A result rendered by a non-native Jinja template arrives as its Python repr: refused with the fix,
    # not parsed back (a repr is not a data format), and nothing is written.
    with pytest.raises(AirflowFailException, match=r"result=generate.output.*render_template_as_native_obj"):
        transfer(bucket, repr(job), cover_s3_key=None, s3_key="videos/{id}.mp4").execute(make_context())
    assert transfer(bucket, job, cover_s3_key=None, s3_key="videos/{id}.mp4").execute(make_context())["s3_uri"] == (
        f"s3://{bucket}/videos/{job['id']}.mp4"
    )


def test_non_ascii_metadata_is_rfc2047_encoded(s3: Any, bucket: str, job: dict[str, Any]) -> None:
    job["metadata"]["title"] = "红色马克杯"
    transfer(bucket, job, cover_s3_key=None).execute(make_context())
    raw = s3.head_object(Bucket=bucket, Key=f"videos/{job['metadata']['product_id']}.mp4")["Metadata"]["product-title"]
    ((decoded, charset),) = decode_header(raw)
    assert decoded.decode(charset) == "红色马克杯"


def test_s3_failure_mid_upload_aborts(s3: Any, bucket: str, job: dict[str, Any]) -> None:
    """An upload_part error stops the download early and aborts the multipart upload."""
    op = transfer(bucket, job, cover_s3_key=None)
    real = op.s3_client

    class FailingClient:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def upload_part(self, **kwargs: Any) -> Any:
            if kwargs["PartNumber"] == 2:
                raise OSError("S3 went away")
            return real.upload_part(**kwargs)

    op.s3_client = FailingClient()
    with pytest.raises(OSError, match="S3 went away"):
        op.execute(make_context())
    assert object_keys(s3, bucket) == []
    assert pending_uploads(s3, bucket) == []


def test_import_is_cheap() -> None:
    """DAG files import these modules at parse time: boto3 and Pillow wait for execute()."""
    import subprocess
    import sys

    code = (
        "import sys; import airflow_provider_cogvideo.transfers.cogvideo_to_s3, "
        "airflow_provider_cogvideo.operators.product_images; "
        "print(sorted(m for m in ('boto3', 'botocore', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# ------------------------------------------------------------------ sizes capped as they stream
class CountingClient:
    """The real S3 client, with the multipart calls counted."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        if name in ("create_multipart_upload", "upload_part", "abort_multipart_upload", "put_object"):
            self.calls[name] += 1
        return getattr(self.real, name)


def test_video_over_max_video_bytes_by_content_length_is_refused_before_an_upload_exists(
    s3: Any, bucket: str, job: dict[str, Any]
) -> None:
    op = transfer(bucket, job, cover_s3_key=None, max_video_bytes=6 * MiB)
    op.s3_client = client = CountingClient(op.s3_client)
    with pytest.raises(AirflowFailException, match=rf"over its cap of {6 * MiB} bytes \(Content-Length {VIDEO_SIZE}\)"):
        op.execute(make_context())
    assert client.calls["create_multipart_upload"] == 0
    assert object_keys(s3, bucket) == [] and pending_uploads(s3, bucket) == []


def test_compressed_video_is_refused_before_an_upload_exists(
    s3: Any, bucket: str, job: dict[str, Any], gzip_server: GzipFileServer
) -> None:
    """20 MiB of zeros as ~20 KB of gzip: httpx would inflate a whole network read at once before any
    count saw it. Downloads ask for identity; an encoded body is refused when its headers arrive,
    and the task fails without Airflow's retries (trying again cannot change the answer); no
    multipart upload is started."""
    job["video_url"] = gzip_server.add(f"{job['id']}-bomb.mp4", 20 * MiB)
    op = transfer(bucket, job, cover_s3_key=None, max_video_bytes=6 * MiB, cogvideo_conn_id=STREAM_CONN_ID)
    op.s3_client = client = CountingClient(op.s3_client)
    with pytest.raises(AirflowFailException, match="Content-Encoding 'gzip', which was not asked for") as exc:
        op.execute(make_context())
    assert isinstance(exc.value.__cause__, CogVideoDownloadError) and not exc.value.__cause__.retryable
    assert client.calls["create_multipart_upload"] == 0
    assert object_keys(s3, bucket) == [] and pending_uploads(s3, bucket) == []


def test_chunked_video_is_cut_off_at_the_cap_and_aborted(
    s3: Any, bucket: str, job: dict[str, Any], gzip_server: GzipFileServer
) -> None:
    """No Content-Length to trust: the hook's reader counts every network read and stops the body on
    the read that passes 6 MiB; the multipart upload is aborted, nothing is visible."""
    job["video_url"] = gzip_server.add(f"{job['id']}-long.mp4", 20 * MiB, gzip=False)
    op = transfer(bucket, job, cover_s3_key=None, max_video_bytes=6 * MiB, cogvideo_conn_id=STREAM_CONN_ID)
    op.s3_client = client = CountingClient(op.s3_client)
    with pytest.raises(AirflowFailException, match=r"video \(max_video_bytes\) is over its cap of 6291456") as exc:
        op.execute(make_context())
    stopped = re.search(r"\((\d+) bytes received when the download was stopped\)", str(exc.value))
    received = int(stopped[1]) if stopped else 0
    assert 6 * MiB < received <= 6 * MiB + 64 * 1024, "stopped on the network read that passed the cap"
    assert client.calls["abort_multipart_upload"] == 1
    assert object_keys(s3, bucket) == [] and pending_uploads(s3, bucket) == []

    # Within the cap, the same kind of body is stored, with its checksum.
    job["video_url"] = gzip_server.add(f"{job['id']}-small.mp4", 5 * MiB + 17, gzip=False)
    op = transfer(bucket, job, cover_s3_key=None, max_video_bytes=6 * MiB, cogvideo_conn_id=STREAM_CONN_ID)
    out = op.execute(make_context())
    assert out["size"] == 5 * MiB + 17
    assert out["sha256"] == hashlib.sha256(bytes(5 * MiB + 17)).hexdigest()


@pytest.mark.parametrize("gzip", [True, False])
def test_cover_is_capped_as_it_streams_and_never_read_compressed(
    s3: Any, bucket: str, job: dict[str, Any], gzip_server: GzipFileServer, gzip: bool
) -> None:
    """The cover's cap (50 MiB) once held only against Content-Length: ~60 KB of gzip became 60 MiB in
    memory. Now a compressed cover is refused, and a chunked one stops at its cap as it streams."""
    job["video_url"] = gzip_server.add(f"{job['id']}.mp4", 1 * MiB, gzip=False)
    job["cover_image_url"] = gzip_server.add(f"{job['id']}-cover.png", 60 * MiB, content_type="image/png", gzip=gzip)
    refusal = (
        "Content-Encoding 'gzip', which was not asked for"
        if gzip
        else rf"cover image is over its cap of {50 * MiB} bytes"
    )
    with pytest.raises(AirflowFailException, match=refusal):
        transfer(bucket, job, cogvideo_conn_id=STREAM_CONN_ID).execute(make_context())
    assert object_keys(s3, bucket) == [f"videos/{job['metadata']['product_id']}.mp4"], "no cover stored"
    assert pending_uploads(s3, bucket) == []


# ------------------------------------------------------------------ where downloads go, what is shown
def test_a_refused_download_target_fails_the_task_without_retry(s3: Any, bucket: str, job: dict[str, Any]) -> None:
    """A result URL on the cloud metadata service is refused by the hook; before, the refusal escaped
    as a plain error and Airflow retried it, to be refused again."""
    job["video_url"] = "http://169.254.169.254/latest/meta-data/iam"
    with pytest.raises(AirflowFailException, match=r"169\.254\.169\.254 is a link-local address") as exc:
        transfer(bucket, job).execute(make_context())
    assert "not retried" in str(exc.value)
    assert object_keys(s3, bucket) == [] and pending_uploads(s3, bucket) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"video_url": "file:///etc/passwd"}, "video_url"),
        ({"video_url": "http://"}, "video_url"),
        ({"video_url": "https:///no-host.mp4"}, "video_url"),
        ({"video_url": "https://cdn.test/a b.mp4"}, "video_url"),
        ({"cover_image_url": "ftp://cdn.test/c.png?X-Amz-Signature=sig123"}, "cover_image_url"),
    ],
)
def test_only_http_urls_are_downloaded(
    bucket: str, job: dict[str, Any], result_server: ResultFileServer, change: dict[str, str], field: str
) -> None:
    with pytest.raises(AirflowFailException, match=rf"^{field} must be an http\(s\) URL") as exc_info:
        transfer(bucket, {**job, **change}).execute(make_context())
    assert "sig123" not in str(exc_info.value)
    assert downloads(result_server, f"{job['id']}.mp4") == 0


@pytest.mark.parametrize("result", ["http://", "https://:80/x.mp4", "http://cdn.test/x.mp4\n?next"])
def test_plain_url_result_must_be_an_http_url(bucket: str, result: str) -> None:
    with pytest.raises(AirflowFailException, match=r"^result must be an http\(s\) URL"):
        transfer(bucket, result, s3_key="plain/{url_stem}.mp4", cover_s3_key=None).execute(make_context())


def test_signed_urls_stay_out_of_logs_results_and_metadata(
    s3: Any, bucket: str, job: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    signature = "?X-Amz-Signature=sig123&X-Amz-Security-Token=tok456"
    job["video_url"] += signature
    job["cover_image_url"] += signature
    job["metadata"]["reference"] = "https://cdn.test/ref.jpg" + signature
    caplog.set_level("DEBUG")
    context = make_context()
    out = transfer(bucket, job).execute(context)
    assert out["video_url"] == job["video_url"].split("?")[0] + "?<redacted>"
    assert out["cover_image_url"] == job["cover_image_url"].split("?")[0] + "?<redacted>"
    stored = s3.head_object(Bucket=bucket, Key=f"videos/{job['metadata']['product_id']}.mp4")["Metadata"]
    assert stored["product-reference"] == "https://cdn.test/ref.jpg?<redacted>"
    assert out["metadata"] == job["metadata"], "the caller's metadata is passed through as given"
    returned = {k: v for k, v in out.items() if k != "metadata"}
    shown = json.dumps(returned) + caplog.text + repr(context["ti"].mock_calls) + json.dumps(stored)
    assert "sig123" not in shown and "tok456" not in shown


# ------------------------------------------------------------------ keys stay under their prefix
@pytest.mark.parametrize("product_id", ["../../etc/cron", "a/b", "a\\b", "..", "v1..2", ""])
def test_placeholder_values_cannot_leave_the_prefix(
    bucket: str, job: dict[str, Any], result_server: ResultFileServer, product_id: str
) -> None:
    job["metadata"]["product_id"] = product_id
    with pytest.raises(AirflowFailException) as exc_info:
        transfer(bucket, job).execute(make_context())
    message = str(exc_info.value)
    assert message.startswith("s3_key 'videos/{metadata[product_id]}.mp4': placeholder {metadata[product_id]} is ")
    assert repr(product_id) in message and "without '/', '\\' or '..'" in message
    assert downloads(result_server, f"{job['id']}.mp4") == 0


@pytest.mark.parametrize(
    ("template", "written"),
    [
        ("videos/{metadata.__class__}.mp4", "{metadata.__class__}"),
        ("videos/{metadata[product_id].__class__}.mp4", "{metadata[product_id].__class__}"),
        ("videos/{id!r}.mp4", "{id!r}"),
        ("videos/{id:>30}.mp4", "{id:>30}"),
        ("videos/{}.mp4", "{}"),
    ],
)
def test_attribute_access_conversions_and_format_specs_are_refused(
    bucket: str, job: dict[str, Any], template: str, written: str
) -> None:
    with pytest.raises(AirflowFailException, match=rf"^s3_key '.*': placeholder {re.escape(written)} is not allowed"):
        transfer(bucket, job, s3_key=template).execute(make_context())
    with pytest.raises(AirflowFailException, match=rf"^cover_s3_key '.*': placeholder {re.escape(written)} is not"):
        transfer(bucket, job, s3_key="videos/{id}.mp4", cover_s3_key=template).execute(make_context())


def test_indexing_and_url_stem_stay_allowed(bucket: str, job: dict[str, Any]) -> None:
    out = transfer(bucket, job, s3_key="v/{metadata[product_id]}/{url_stem}-{{raw}}.mp4").execute(make_context())
    assert out["s3_uri"] == f"s3://{bucket}/v/{job['metadata']['product_id']}/{job['id']}-{{raw}}.mp4"


# ------------------------------------------------------------------ every number has bounds
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("part_size", 1 * MiB),
        ("part_size", 6 * 1024 * MiB),
        ("max_parts_in_flight", 0),
        ("max_parts_in_flight", 33),
        ("upload_workers", 0),
        ("upload_workers", 11),
        ("upload_workers", 2.5),
        ("max_video_bytes", 0),
        ("max_video_bytes", 6 * 1024 * 1024 * MiB),
        ("max_video_bytes", True),
    ],
)
def test_numeric_parameters_are_bounded(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: ") as exc_info:
        CogVideoToS3Operator(task_id="t", result="http://x/a.mp4", s3_bucket="b", s3_key="k.mp4", **{name: value})
    assert repr(value) in str(exc_info.value) and " to " in str(exc_info.value), "the value and the range"


def test_unknown_length_sizes_parts_for_the_largest_allowed_video() -> None:
    """Without Content-Length, parts must still fit max_video_bytes into S3's 10,000 parts."""
    op = CogVideoToS3Operator(
        task_id="t", result="http://x/a.mp4", s3_bucket="b", s3_key="k.mp4", max_video_bytes=200 * 1024 * MiB
    )
    assert part_size_for(op.max_video_bytes, op.part_size) * 10_000 >= 200 * 1024 * MiB
    assert part_size_for(12 * MiB, op.part_size) == 8 * MiB


# ------------------------------------------------------------------ with a video index
FINGERPRINT = hashlib.sha256(b"the mug's video").hexdigest()
INPUTS = {
    "image": {"key": "incoming/mug.png", "size": 2048, "etag": "etag-image", "sha256": "a" * 64},
    "sidecar": {"key": "incoming/mug.json", "size": 40, "etag": "etag-sidecar", "fields": {"title": "Red mug"}},
}
VIDEO = b"a small indexed video" * 50
RUN_ID = "scheduled__2025-03-01T00:00:00+00:00"


@pytest.fixture
def indexed_job(result_server: ResultFileServer) -> dict[str, Any]:
    """A result as ingestion with a video index plans it: product, variant, fingerprint and inputs."""
    job_id = str(uuid.uuid4().int)[:19]
    return {
        "id": job_id,
        "model": "cogvideox-3",
        "request_id": f"af-{job_id}",
        "task_status": "SUCCESS",
        "video_url": result_server.add(f"{job_id}.mp4", VIDEO),
        "cover_image_url": result_server.add(f"{job_id}.png", COVER, content_type="image/png"),
        "metadata": {
            "product_id": "mug",
            "title": "Red mug",
            "source_image": "s3://catalog/incoming/mug.png",
            "variant": "default",
            "fingerprint": FINGERPRINT,
            "index_inputs": INPUTS,
        },
        "price": 1.0,
        "price_currency": "CNY",
        "prompt": "A red mug turns slowly",
    }


def indexed_transfer(bucket: str, result: Any, **kwargs: Any) -> CogVideoToS3Operator:
    return transfer(bucket, result, s3_key=None, video_index=f"s3://{bucket}/videos/", **kwargs)


def written(client: Any) -> list[tuple[str, str]]:
    """The writes the client sends, in order: (operation, key)."""
    writes: list[tuple[str, str]] = []
    kinds = {"PutObject", "CreateMultipartUpload", "CompleteMultipartUpload"}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in kinds:
            writes.append((model.name, params["Key"]))

    client.meta.events.register("before-parameter-build.s3", record)
    return writes


def test_an_indexed_video_is_stored_under_the_index_then_its_entry(
    s3: Any, bucket: str, indexed_job: dict[str, Any]
) -> None:
    job_id = indexed_job["id"]
    video_key = f"videos/mug/default/{FINGERPRINT[:16]}-{job_id}.mp4"
    cover_key = f"videos/mug/default/{FINGERPRINT[:16]}-{job_id}.png"
    entry_key = f"videos/.index/entries/mug/default/{FINGERPRINT}.json"
    op = indexed_transfer(bucket, indexed_job)
    writes = written(op.s3_client)
    out = op.execute(make_context(run_id=RUN_ID))

    assert out["s3_uri"] == f"s3://{bucket}/{video_key}"
    assert out["cover_s3_uri"] == f"s3://{bucket}/{cover_key}"
    assert writes == [
        ("CreateMultipartUpload", video_key),
        ("CompleteMultipartUpload", video_key),
        ("PutObject", cover_key),
        ("PutObject", entry_key),
    ], "the entry is written once the video and the cover are stored, never before"

    video_head = s3.head_object(Bucket=bucket, Key=video_key)
    cover_head = s3.head_object(Bucket=bucket, Key=cover_key)
    stored = s3.get_object(Bucket=bucket, Key=entry_key)
    body = json.loads(stored["Body"].read())
    paid_at = body.pop("paid_at")
    assert body == {
        "version": 1,
        "product_id": "mug",
        "variant": "default",
        "fingerprint": FINGERPRINT,
        "bucket": bucket,
        "video": {
            "key": video_key,
            "size": video_head["ContentLength"],
            "etag": video_head["ETag"].strip('"'),
            "sha256": hashlib.sha256(VIDEO).hexdigest(),
        },
        "cover": {
            "key": cover_key,
            "size": len(COVER),
            "etag": cover_head["ETag"].strip('"'),
            "sha256": hashlib.sha256(COVER).hexdigest(),
        },
        "job_id": job_id,
        "model": "cogvideox-3",
        "price": 1.0,
        "currency": "CNY",
        "paid_by_run": RUN_ID,
        "prompt": "A red mug turns slowly",
        "inputs": INPUTS,
        "review": None,
        "writing": None,  # no prompt writer
    }
    assert video_head["ContentLength"] == len(VIDEO)
    tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=video_key)["TagSet"]}
    assert body["video"]["sha256"] == tags["sha256"] == out["sha256"]
    assert datetime.fromisoformat(paid_at).utcoffset() == timedelta(0)
    assert out["index_entry"] == {
        "key": entry_key,
        "etag": stored["ETag"].strip('"'),
        "body": {**body, "paid_at": paid_at},
    }

    index = load_index(s3, IndexLocation(bucket, "videos/"))
    entry = index.find("mug", "default", FINGERPRINT)
    assert entry is not None and index.trusted(entry)

    # What the index records never travels as object metadata (anyone who may HEAD the video reads it).
    for head in (video_head, cover_head):
        assert not [name for name in head["Metadata"] if "index" in name or "inputs" in name]
        assert head["Metadata"]["product-fingerprint"] == FINGERPRINT
        assert head["Metadata"]["cogvideo-job-id"] == job_id


def test_a_retry_finds_the_video_and_writes_the_same_entry(
    s3: Any, bucket: str, indexed_job: dict[str, Any], result_server: ResultFileServer
) -> None:
    """A crash after the video was stored, before the entry: the retry downloads nothing and writes
    the entry, naming the same objects."""
    job_id = indexed_job["id"]
    entry_key = f"videos/.index/entries/mug/default/{FINGERPRINT}.json"
    op = indexed_transfer(bucket, indexed_job)
    real = op.s3_client

    class CrashBeforeTheEntry:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def put_object(self, **kwargs: Any) -> Any:
            if "/.index/" in kwargs["Key"]:
                raise OSError("worker killed")
            return real.put_object(**kwargs)

    op.s3_client = CrashBeforeTheEntry()
    with pytest.raises(OSError, match="worker killed"):
        op.execute(make_context(run_id=RUN_ID))
    video_key = f"videos/mug/default/{FINGERPRINT[:16]}-{job_id}.mp4"
    assert object_keys(s3, bucket) == [video_key, video_key.removesuffix(".mp4") + ".png"], "a video, no entry"
    assert load_index(s3, IndexLocation(bucket, "videos/")).entries == {}

    before = downloads(result_server, f"{job_id}.mp4"), downloads(result_server, f"{job_id}.png")
    first = indexed_transfer(bucket, indexed_job).execute(make_context(run_id=RUN_ID))
    second = indexed_transfer(bucket, indexed_job).execute(make_context(run_id=RUN_ID))
    assert (downloads(result_server, f"{job_id}.mp4"), downloads(result_server, f"{job_id}.png")) == before
    assert first["already_present"] is second["already_present"] is True
    assert first["index_entry"]["key"] == second["index_entry"]["key"] == entry_key

    def without_time(body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k != "paid_at"}

    assert without_time(first["index_entry"]["body"]) == without_time(second["index_entry"]["body"])
    assert first["index_entry"]["body"]["video"]["sha256"] == hashlib.sha256(VIDEO).hexdigest()
    index = load_index(s3, IndexLocation(bucket, "videos/"))
    assert index.trusted(index.find("mug", "default", FINGERPRINT))  # type: ignore[arg-type]


def test_a_failed_download_writes_no_entry(
    s3: Any, bucket: str, indexed_job: dict[str, Any], result_server: ResultFileServer
) -> None:
    result_server.files[f"{indexed_job['id']}.mp4"].faults = ["truncate:100"]
    with pytest.raises(CogVideoDownloadError):
        indexed_transfer(bucket, indexed_job).execute(make_context(run_id=RUN_ID))
    assert object_keys(s3, bucket) == []
    assert pending_uploads(s3, bucket) == []


@pytest.mark.parametrize(
    "keys",
    [
        {"s3_key": "videos/{id}.mp4", "video_index": "s3://b/videos/"},
        {"s3_key": None, "video_index": None},
        {"s3_key": "", "video_index": "None"},
    ],
    ids=["both", "neither", "neither, rendered"],
)
def test_either_s3_key_or_video_index(keys: dict[str, Any]) -> None:
    with pytest.raises(CogVideoValidationError, match=r"^s3_key: give either s3_key or video_index") as raised:
        CogVideoToS3Operator(task_id="t", result="http://x/a.mp4", s3_bucket="b", **keys)
    assert raised.value.field == "s3_key"
    assert CogVideoToS3Operator(task_id="t", result="http://x/a.mp4", s3_bucket="b", video_index="s3://b/v/")


def test_a_video_index_that_rendered_empty_is_refused(bucket: str, indexed_job: dict[str, Any]) -> None:
    op = indexed_transfer(bucket, indexed_job)
    op.video_index = "None"  # as a template of an unset param renders
    with pytest.raises(AirflowFailException, match=r"video_index rendered as 'None' and no s3_key is given"):
        op.execute(make_context(run_id=RUN_ID))


def test_the_index_lives_in_the_videos_bucket(
    s3: Any, bucket: str, indexed_job: dict[str, Any], result_server: ResultFileServer
) -> None:
    op = transfer(bucket, indexed_job, s3_key=None, video_index="s3://another-bucket/videos/")
    with pytest.raises(AirflowFailException, match=r"video_index s3://another-bucket/videos/ is in bucket 'another"):
        op.execute(make_context(run_id=RUN_ID))
    with pytest.raises(AirflowFailException, match=r"^video_index: "):
        transfer(bucket, indexed_job, s3_key=None, video_index="videos/").execute(make_context(run_id=RUN_ID))
    assert downloads(result_server, f"{indexed_job['id']}.mp4") == 0
    assert object_keys(s3, bucket) == []


@pytest.mark.parametrize(
    ("metadata", "missing"),
    [
        ({"product_id": "mug", "variant": "default"}, "fingerprint"),
        ({"variant": "default", "fingerprint": FINGERPRINT}, "product_id"),
        ({"product_id": "mug", "variant": 3, "fingerprint": FINGERPRINT}, "variant"),
    ],
)
def test_a_result_not_planned_against_an_index_fails_without_retry(
    s3: Any,
    bucket: str,
    indexed_job: dict[str, Any],
    result_server: ResultFileServer,
    metadata: dict[str, Any],
    missing: str,
) -> None:
    indexed_job["metadata"] = metadata
    context = make_context(run_id=RUN_ID)
    with pytest.raises(AirflowFailException) as raised:
        indexed_transfer(bucket, indexed_job).execute(context)
    message = str(raised.value)
    assert message.startswith(f"result.metadata: has no text {missing}: not an item planned against a video index")
    assert "not retried" in message
    assert downloads(result_server, f"{indexed_job['id']}.mp4") == 0
    assert object_keys(s3, bucket) == []
    (record,) = [c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list if c.kwargs["key"] == "error"]
    assert record["type"] == "CogVideoValidationError"
    assert record.get("product_id") == metadata.get("product_id")


def test_an_upload_error_record_names_the_product(bucket: str, indexed_job: dict[str, Any]) -> None:
    """A manifest reads every mapped upload's error record in one call, without map indexes: the
    record itself must say which product (and variant) it is about."""
    indexed_job["video_url"] = "file:///etc/passwd"
    context = make_context(run_id=RUN_ID)
    with pytest.raises(AirflowFailException):
        indexed_transfer(bucket, indexed_job).execute(context)
    (record,) = [c.kwargs["value"] for c in context["ti"].xcom_push.call_args_list if c.kwargs["key"] == "error"]
    assert (record["product_id"], record["variant"]) == ("mug", "default")
