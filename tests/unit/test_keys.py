"""Object keys stay under their prefix and within S3's rules: one check (``s3.checked_key``), applied
to every key the provider writes or looks up, and to a key template's fixed text when the DAG is parsed."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.operators.gallery import S3VideoGalleryOperator, write_gallery
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.products import product_id_of
from airflow_provider_cogvideo.s3 import MAX_KEY_BYTES, checked_key, checked_key_template
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.transfers.keys import format_key

from .conftest import FakeTI

BAD_KEYS = {
    "videos/../etc/cron.mp4": "has a '..' path segment",
    "../videos/a.mp4": "has a '..' path segment",
    "videos/..": "has a '..' path segment",
    "videos/./a.mp4": "has a '.' path segment",
    "./a.mp4": "has a '.' path segment",
    "videos\\a.mp4": "has '\\' at position 6",
    "videos/a\x00.mp4": "has control character U+0000 at position 8",
    "videos/a\n.mp4": "has control character U+000A at position 8",
    "videos/a\t.mp4": "has control character U+0009 at position 8",
    "videos/\x7f.mp4": "has control character U+007F at position 7",
    "videos/\ud800.mp4": "has U+D800 at position 7, which is not UTF-8 text",
    "v/" + "x" * (MAX_KEY_BYTES - 1): f"is {MAX_KEY_BYTES + 1} UTF-8 bytes, over S3's limit of {MAX_KEY_BYTES}",
    "v/" + "é" * 512: f"is {2 + 1024} UTF-8 bytes, over S3's limit of {MAX_KEY_BYTES}",
    "": "is empty",
    "/": "is empty",
    "videos/": "ends with '/'",
}


@pytest.mark.parametrize(("key", "problem"), BAD_KEYS.items(), ids=[repr(k)[:40] for k in BAD_KEYS])
def test_checked_key_refuses_naming_the_parameter_the_value_and_the_rules(key: str, problem: str) -> None:
    with pytest.raises(CogVideoValidationError) as exc:
        checked_key(key, "s3_key")
    message = str(exc.value)
    assert exc.value.field == "s3_key"
    assert message.startswith(f"s3_key: {repr(key)[:200]}")
    assert problem in message
    assert "at most 1,024 UTF-8 bytes" in message and "'..' path segment" in message


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("/videos/a.mp4", "videos/a.mp4"),  # S3 keys have no root: the leading '/' is dropped
        ("videos/..a/b...mp4", "videos/..a/b...mp4"),  # dots inside a name are no path segment
        ("v/" + "x" * (MAX_KEY_BYTES - 2), "v/" + "x" * (MAX_KEY_BYTES - 2)),
        ("视频/红色马克杯.mp4", "视频/红色马克杯.mp4"),
        ("videos//a.mp4", "videos//a.mp4"),
    ],
)
def test_checked_key_accepts_what_s3_and_every_tool_agree_on(key: str, expected: str) -> None:
    assert checked_key(key, "s3_key") == expected


# ------------------------------------------------------------------ the transfer, when the key is made
@pytest.mark.parametrize(
    ("template", "fields", "problem"),
    [
        ("videos/../{id}.mp4", {"id": "1"}, "has a '..' path segment"),
        ("videos/./{id}.mp4", {"id": "1"}, "has a '.' path segment"),
        ("videos/{id}/a.mp4", {"id": "."}, "has a '.' path segment"),
        ("videos/{id}.mp4", {"id": "a\nb"}, "has control character U+000A at position 8"),
        ("videos/{id}.mp4", {"id": "x" * 1100}, "over S3's limit of 1024"),
    ],
)
def test_formatted_keys_are_checked_whole(template: str, fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(AirflowFailException) as exc:
        format_key(template, fields, "s3_key")
    message = str(exc.value)
    assert message.startswith(f"s3_key {template!r} rendered to ")
    assert problem in message


def test_a_bad_value_is_refused_before_anything_is_downloaded() -> None:
    result = {"id": ".", "task_status": "SUCCESS", "video_url": "https://cdn.test/v.mp4", "metadata": {}}
    op = CogVideoToS3Operator(task_id="upload", result=result, s3_bucket="b", s3_key="videos/{id}/v.mp4")
    with pytest.raises(AirflowFailException, match=r"'\.' path segment"):
        op.execute({"ti": FakeTI()})
    assert "s3_client" not in op.__dict__


# ------------------------------------------------------------------ the fixed text, when the DAG is parsed
@pytest.mark.parametrize(
    ("parameter", "value", "problem"),
    [
        ("s3_key", "videos/../{id}.mp4", "has a '..' path segment"),
        ("s3_key", "../{{ ds }}/{id}.mp4", "has a '..' path segment"),
        ("s3_key", "videos/./{id}.mp4", "has a '.' path segment"),
        ("s3_key", "videos\\{id}.mp4", "has '\\'"),
        ("s3_key", "videos/{id}\n.mp4", "has control character U+000A"),
        ("s3_key", "videos/", "ends with '/'"),
        ("s3_key", "v/" + "x" * 1100 + "{id}", "UTF-8 bytes before its values, over S3's limit of 1024"),
        ("cover_s3_key", "covers/../{id}.png", "has a '..' path segment"),
    ],
)
def test_transfer_refuses_a_bad_key_template_when_built(parameter: str, value: str, problem: str) -> None:
    keys = {"s3_key": "videos/{id}.mp4", parameter: value}
    with pytest.raises(CogVideoValidationError) as exc:
        CogVideoToS3Operator(task_id="upload", result={}, s3_bucket="b", **keys)
    assert exc.value.field == parameter
    assert str(exc.value).startswith(f"{parameter}: {value!r}"[:80])
    assert problem in str(exc.value)


@pytest.mark.parametrize(
    "s3_key",
    [
        "videos/{{ ds }}/{metadata[product_id]}.mp4",
        "videos/{{ params.prefix }}/{id}.mp4",  # Jinja is rendered later: its text is no key yet
        "v/{metadata[product_id]}/{url_stem}-{{raw}}.mp4",
        "/videos/{id}.mp4",
        "videos/{id",  # a malformed placeholder is reported with the result's fields, when the key is made
    ],
)
def test_transfer_key_templates_that_may_be_fine_are_left_to_run_time(s3_key: str) -> None:
    op = CogVideoToS3Operator(task_id="upload", result={}, s3_bucket="b", s3_key=s3_key, cover_s3_key="")
    assert (op.s3_key, op.cover_s3_key) == (s3_key, "")


@pytest.mark.parametrize(
    ("cover_s3_key", "expected"),
    [
        ("auto", "videos/1.jpg"),  # the video key with the cover URL's extension
        ("covers/{id}.png", "covers/1.png"),
        *[(unset, None) for unset in (None, "", "None", "null", " NULL ")],  # validation.is_unset: no cover
    ],
)
def test_cover_key_is_auto_a_template_or_unset(cover_s3_key: Any, expected: str | None) -> None:
    op = CogVideoToS3Operator(
        task_id="upload", result={}, s3_bucket="b", s3_key="videos/{id}.mp4", cover_s3_key=cover_s3_key
    )
    op._urls = {"video": "https://cdn.test/v.mp4", "cover": "https://cdn.test/c.JPG?X-Amz-Signature=s"}
    assert op._cover_key({"id": "1"}, "videos/1.mp4") == expected


def test_gallery_key_is_checked_when_built_and_when_written() -> None:
    with pytest.raises(CogVideoValidationError, match=r"^s3_key: 'gallery/\.\./x\.html' .*'\.\.' path segment"):
        S3VideoGalleryOperator(task_id="gallery", manifest={}, s3_bucket="b", s3_key="gallery/../x.html")
    assert S3VideoGalleryOperator(task_id="g", manifest={}, s3_bucket="b", s3_key="g/{{ ds }}/{x}.html").s3_key

    class NoS3:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("S3 must not be touched")

    with pytest.raises(AirflowFailException, match=r"s3_key: 'gallery/a\\x00\.html' .*control character U\+0000"):
        write_gallery({"products": []}, s3_bucket="b", s3_key="gallery/a\x00.html", s3_hook=NoS3())


@pytest.mark.parametrize(
    ("parameter", "value", "problem"),
    [
        ("staging_prefix", "../staging/", "has a '..' path segment"),
        ("staging_prefix", "staging\\", "has '\\'"),
        ("staging_prefix", "/", "is empty"),
        ("processed_key_template", "videos/../{product_id}.mp4", "has a '..' path segment"),
    ],
)
def test_ingestion_keys_are_checked_when_built(parameter: str, value: str, problem: str) -> None:
    kwargs = {"staging_prefix": "staging/", parameter: value}
    with pytest.raises(CogVideoValidationError) as exc:
        S3ProductImagesOperator(task_id="ingest", s3_bucket="b", prefix="in/", prompt_template="{title}", **kwargs)
    assert exc.value.field == parameter and problem in str(exc.value)


@pytest.mark.parametrize(
    ("key", "product"),
    [("incoming/sku-1.jpg", "sku-1"), ("s3://products/in/sku.v2.png", "sku.v2"), ("flat.heic", "flat"), ("a.b/c", "c")],
)
def test_a_product_id_is_its_image_file_name_without_the_extension(key: str, product: str) -> None:
    assert product_id_of(key) == product


def test_a_prefix_may_end_with_a_slash_and_be_templated() -> None:
    assert checked_key_template("staging/{{ ds }}/", "staging_prefix", placeholders=False, prefix=True)
    assert checked_key_template(None, "processed_key_template") is None


def test_ingestion_rejects_a_product_whose_processed_key_breaks_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listed file name is S3's to allow, not this provider's to write under: ``in/a\\b.png`` gives
    the product id ``a\\b``, whose output key would hold a '\\'. Rejected with the reason; the others go on."""
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", '{"conn_type": "aws", "extra": {"region_name": "us-east-1"}}')
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="ingest")
        for key in ("in/a\\b.png", "in/done.png", "videos/done.mp4"):
            client.put_object(Bucket="ingest", Key=key, Body=b"x")
        op = S3ProductImagesOperator(
            task_id="ingest",
            s3_bucket="ingest",
            prefix="in/",
            prompt_template="{product_id}",
            staging_prefix="staging/",
            aws_conn_id="aws_test",
            processed_key_template="videos/{product_id}.mp4",
        )
        ti = FakeTI()
        with pytest.raises(AirflowFailException, match="were rejected"):
            op.execute({"ti": ti})
    (rejected,) = ti.xcom["rejected"]
    assert rejected["image"] == "s3://ingest/in/a\\b.png"
    reason = "processed_key_template: 'videos/a\\\\b.mp4' is not an object key: it has '\\'"
    assert rejected["reason"].startswith(reason)
