"""The one reading of an ``s3://`` URI (``s3.parse_s3_uri``), used by image reading, the gallery, its
operator, lineage and the demo: what is an object's URI and what is not."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cogvideo.s3 import parse_s3_uri, s3_uri


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("s3://bucket/key.mp4", ("bucket", "key.mp4")),
        ("s3://bucket/videos/a b/c.mp4", ("bucket", "videos/a b/c.mp4")),
        ("s3://bucket/a?b#c", ("bucket", "a?b#c")),  # '?' and '#' are key characters, not a query
        ("s3://bucket//double", ("bucket", "/double")),  # the key as written
        ("s3://AKIA:secret@bucket/key", ("bucket", "key")),  # credentials are no part of a bucket's name
    ],
)
def test_an_objects_uri_is_its_bucket_and_key(uri: str, parsed: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri", ["s3://", "s3://bucket", "s3://bucket/", "s3:///key", "S3://b/k", "https://b/k", "bucket/key", None, 3]
)
def test_anything_else_is_none(uri: Any) -> None:
    assert parse_s3_uri(uri) is None


def test_written_and_read_back() -> None:
    assert parse_s3_uri(s3_uri("product-videos", "videos/sku-1.mp4")) == ("product-videos", "videos/sku-1.mp4")
