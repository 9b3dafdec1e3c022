"""S3ProductImagesOperator against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from PIL import Image

from airflow_provider_cogvideo.capabilities import MiB
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator, truncate_prompt
from tests.s3.helpers import AWS_CONN_ID, make_context, object_keys, pushed

TEMPLATE = "{title}: {selling_points}. Style: {style}. Product {product_id} turns slowly."


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48), *, noise: bool = False, mode: str = "RGB") -> bytes:
    if noise:
        img = Image.frombytes(mode, size, random.Random(1).randbytes(size[0] * size[1] * len(mode)))
    else:
        img = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 128)
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def put(s3: Any, bucket: str, key: str, body: bytes | str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def sidecar(title: str, **fields: Any) -> str:
    return json.dumps({"title": title, **fields})


def operator(bucket: str, **kwargs: Any) -> S3ProductImagesOperator:
    args: dict[str, Any] = {
        "task_id": "ingest",
        "s3_bucket": bucket,
        "prefix": "incoming/",
        "prompt_template": TEMPLATE,
        "staging_prefix": "incoming/_staged",
        "aws_conn_id": AWS_CONN_ID,
        **kwargs,
    }
    return S3ProductImagesOperator(**args)


def by_product(products: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["product_id"]: p for p in products}


def test_mixed_folder(s3: Any, bucket: str) -> None:
    """Good, oversized, WebP, corrupt and sidecar-less images in one run, as a user's folder would be."""
    put(s3, bucket, "incoming/mug.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/mug.json", sidecar("Red mug", selling_points=["ceramic", "350 ml"], style="studio"))
    put(s3, bucket, "incoming/lamp.jpg", image_bytes("JPEG"))
    put(s3, bucket, "incoming/lamp.json", sidecar("Desk lamp", selling_points="warm light", style="cozy"))
    big = image_bytes("PNG", (1400, 1400), noise=True)
    assert len(big) > 5 * MiB
    put(s3, bucket, "incoming/poster.png", big)
    put(s3, bucket, "incoming/shoe.webp", image_bytes("WEBP"))
    put(s3, bucket, "incoming/shoe.json", sidecar("Running shoe", style="dynamic"))
    put(s3, bucket, "incoming/broken.jpg", b"\xff\xd8\xff\xe0 this is not really a jpeg")
    put(s3, bucket, "incoming/cut.png", image_bytes("PNG", (200, 200), noise=True)[:3000])
    put(s3, bucket, "incoming/readme.txt", "not an image")

    context = make_context()
    products = by_product(operator(bucket).execute(context))

    assert sorted(products) == ["lamp", "mug", "poster", "shoe"]
    mug = products["mug"]
    assert mug["image"] == f"s3://{bucket}/incoming/mug.png"  # kept as is
    assert mug["prompt"] == "Red mug: ceramic, 350 ml. Style: studio. Product mug turns slowly."
    assert mug["metadata"]["title"] == "Red mug"
    assert mug["metadata"]["selling_points"] == ["ceramic", "350 ml"]
    assert products["lamp"]["image"] == f"s3://{bucket}/incoming/lamp.jpg"

    # Oversized and WebP: re-encoded JPEGs within the limit, in the staging prefix.
    for pid in ("poster", "shoe"):
        assert products[pid]["image"] == f"s3://{bucket}/incoming/_staged/{pid}.jpg"
        assert products[pid]["metadata"]["reencoded"] is True
        staged = s3.get_object(Bucket=bucket, Key=f"incoming/_staged/{pid}.jpg")
        assert staged["ContentType"] == "image/jpeg"
        body = staged["Body"].read()
        assert len(body) <= 5 * MiB
        assert Image.open(io.BytesIO(body)).format == "JPEG"

    # No sidecar: placeholders render empty, whitespace is normalised, the prompt is still usable.
    assert products["poster"]["prompt"] == ": . Style: . Product poster turns slowly."
    assert products["poster"]["metadata"] == {
        "product_id": "poster",
        "source_image": f"s3://{bucket}/incoming/poster.png",
        "reencoded": True,
    }

    rejected = {r["image"].rsplit("/", 1)[1]: r["reason"] for r in pushed(context, "rejected")}
    assert sorted(rejected) == ["broken.jpg", "cut.png"]
    assert all("not a decodable image" in reason for reason in rejected.values())
    # Nothing is sent as base64 through XCom: only s3:// URIs.
    assert all(p["image"].startswith("s3://") for p in products.values())

    # The staged copies are not picked up as new products on the next run.
    again = by_product(operator(bucket).execute(make_context()))
    assert sorted(again) == ["lamp", "mug", "poster", "shoe"]


def test_all_rejected_fails_and_reports(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/a.png", b"garbage")
    put(s3, bucket, "incoming/b.jpg", b"")
    context = make_context()
    with pytest.raises(AirflowFailException, match="all 2 image"):
        operator(bucket).execute(context)
    assert len(pushed(context, "rejected")) == 2


def test_bad_sidecar_and_duplicate_ids_are_rejected(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/a.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/a.json", "{not json")
    put(s3, bucket, "incoming/b.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/sub/b.jpg", image_bytes("JPEG"))
    context = make_context()
    products = by_product(operator(bucket).execute(context))
    assert sorted(products) == ["b"]
    reasons = sorted(r["reason"] for r in pushed(context, "rejected"))
    assert reasons[0].startswith("duplicate product_id 'b'")
    assert "not valid JSON" in reasons[1]


def test_long_prompt_is_cut_at_a_word_boundary(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/p1.png", image_bytes("PNG"))
    points = [f"feature number {i} is great" for i in range(60)]
    put(s3, bucket, "incoming/p1.json", sidecar("Long", selling_points=points, style="plain"))
    (product,) = operator(bucket).execute(make_context())
    prompt = product["prompt"]
    assert len(prompt) <= 512
    assert prompt.startswith("Long: feature number 0 is great, feature number 1")
    assert " ".join(TEMPLATE.split()) not in prompt
    assert prompt.split()[-1] in {"feature", "number", "is", "great"} or prompt.split()[-1].isdigit()
    assert not prompt.endswith((",", " "))


def test_truncate_prompt_without_spaces_cuts_hard() -> None:
    text = "产品" * 400
    assert truncate_prompt(text) == text[:512]


def test_catalog_and_filters(s3: Any, bucket: str) -> None:
    """A CSV catalog supplies fields; processed products and old images are skipped."""
    put(s3, bucket, "incoming/catalog.csv", "product_id,title,style\nx1,Kettle,retro\nx2,Toaster,modern\n")
    put(s3, bucket, "incoming/x1.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/x2.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/x3.png", image_bytes("PNG"))
    put(s3, bucket, "videos/x2.mp4", b"already made")

    op = operator(
        bucket,
        prompt_template="{title} in {style} style",
        catalog_key="incoming/catalog.csv",
        processed_key_template="videos/{product_id}.mp4",
    )
    products = by_product(op.execute(make_context()))
    assert sorted(products) == ["x1", "x3"]
    assert products["x1"]["prompt"] == "Kettle in retro style"
    assert products["x1"]["metadata"]["title"] == "Kettle"
    assert products["x3"]["prompt"] == "in style"

    now = datetime.now(UTC)
    op = operator(bucket, only_new_in_data_interval=True)
    past = make_context(data_interval_start=now - timedelta(days=2), data_interval_end=now - timedelta(days=1))
    assert op.execute(past) == []
    current = make_context(data_interval_start=now - timedelta(hours=1), data_interval_end=now + timedelta(hours=1))
    assert sorted(by_product(op.execute(current))) == ["x1", "x2", "x3"]
    assert object_keys(s3, bucket)  # nothing was deleted


def test_cmyk_jpeg_is_reencoded(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/c.jpg", image_bytes("JPEG", mode="CMYK"))
    (product,) = operator(bucket).execute(make_context())
    assert product["image"].endswith("/incoming/_staged/c.jpg")
    staged = s3.get_object(Bucket=bucket, Key="incoming/_staged/c.jpg")["Body"].read()
    assert Image.open(io.BytesIO(staged)).mode == "RGB"
