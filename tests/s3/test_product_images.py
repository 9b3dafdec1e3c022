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

from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.products import truncate_prompt
from airflow_provider_cogvideo.sizes import MiB
from tests.conftest import BOMB_SIDE
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
        "variant": "default",
        "reencoded": True,
    }
    assert all(p["metadata"]["variant"] == "default" for p in products.values())
    assert not any("fingerprint" in p["metadata"] or "index_inputs" in p["metadata"] for p in products.values())

    rejected = {r["image"].rsplit("/", 1)[1]: r for r in pushed(context, "rejected")}
    assert sorted(rejected) == ["broken.jpg", "cut.png"]
    assert [rejected[name]["product_id"] for name in sorted(rejected)] == ["broken", "cut"]
    assert all("not a decodable image" in r["reason"] for r in rejected.values())
    assert pushed(context, "catalog") == []
    assert pushed(context, "catalog_reads") == {"list": 1, "get_index": 0, "images": 6, "sidecars": 3, "catalog": 0}
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


# ------------------------------------------------------------------ memory bombs and caps
def test_png_bomb_is_rejected_before_it_is_decoded(
    s3: Any, bucket: str, png_bomb: bytes, pixel_loads: list[tuple[int, int]]
) -> None:
    put(s3, bucket, "incoming/bomb.png", png_bomb)
    put(s3, bucket, "incoming/mug.png", image_bytes("PNG"))
    context = make_context()
    assert sorted(by_product(operator(bucket).execute(context))) == ["mug"]
    (rejected,) = pushed(context, "rejected")
    assert rejected["image"].endswith("/incoming/bomb.png")
    assert f"{BOMB_SIDE}x{BOMB_SIDE} is 41.0 megapixels, over the 40-megapixel budget" in rejected["reason"]
    assert (BOMB_SIDE, BOMB_SIDE) not in pixel_loads, "the bomb's pixels are never decoded"


def test_pillow_bomb_warning_and_error_are_rejections(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Pillow's threshold lowered by a deployment, its warning and error reject the image
    (before, the warning let it be decoded and re-encoded in full)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    put(s3, bucket, "incoming/warned.png", image_bytes("PNG", (120, 100)))  # over 1x: Pillow warns
    put(s3, bucket, "incoming/refused.png", image_bytes("PNG", (150, 150)))  # over 2x: Pillow raises
    put(s3, bucket, "incoming/small.png", image_bytes("PNG", (64, 48)))
    context = make_context()
    assert sorted(by_product(operator(bucket).execute(context))) == ["small"]
    reasons = {r["image"].rsplit("/", 1)[1]: r["reason"] for r in pushed(context, "rejected")}
    assert sorted(reasons) == ["refused.png", "warned.png"]
    assert all(reason.startswith("image too large to decode safely") for reason in reasons.values())


def test_image_that_grew_after_listing_is_read_only_up_to_the_cap(
    s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_cogvideo.operators import product_images

    monkeypatch.setattr(product_images, "MAX_SOURCE_BYTES", 1 * MiB)
    put(s3, bucket, "incoming/grows.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/mug.png", image_bytes("PNG"))
    listed = S3ProductImagesOperator._list_candidates

    def list_then_grow(self: S3ProductImagesOperator, context: Any) -> Any:
        found = listed(self, context)
        put(s3, bucket, "incoming/grows.png", image_bytes("PNG", (800, 800), noise=True))  # ~1.9 MB now
        return found

    monkeypatch.setattr(S3ProductImagesOperator, "_list_candidates", list_then_grow)
    context = make_context()
    assert sorted(by_product(operator(bucket).execute(context))) == ["mug"]
    (rejected,) = pushed(context, "rejected")
    assert rejected["reason"].startswith(f"too big to be a product photo: s3://{bucket}/incoming/grows.png holds")
    assert rejected["reason"].endswith(f"over the limit of {MiB} bytes")


def test_oversized_sidecar_and_catalog_are_refused(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_cogvideo.operators import product_images

    put(s3, bucket, "incoming/a.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/a.json", sidecar("A", notes="x" * (1 * MiB)))  # just over 1 MiB
    put(s3, bucket, "incoming/b.png", image_bytes("PNG"))
    context = make_context()
    assert sorted(by_product(operator(bucket).execute(context))) == ["b"]
    (rejected,) = pushed(context, "rejected")
    assert rejected["reason"].startswith(f"sidecar s3://{bucket}/incoming/a.json holds")
    assert rejected["reason"].endswith(f"over the limit of {MiB} bytes")

    monkeypatch.setattr(product_images, "_MAX_CATALOG_BYTES", 1024)
    put(s3, bucket, "incoming/catalog.csv", "product_id,title\n" + "b,Kettle\n" * 200)
    with pytest.raises(AirflowFailException, match=r"catalog .*catalog\.csv is unreadable: .* over the limit of 1024"):
        operator(bucket, catalog_key="incoming/catalog.csv").execute(make_context())


def test_signed_urls_in_product_fields_are_redacted(s3: Any, bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    signed = "https://cdn.test/ref/mug.jpg?X-Amz-Signature=sig123&X-Amz-Security-Token=tok456"
    put(s3, bucket, "incoming/mug.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/mug.json", sidecar("Mug", reference=signed, gallery=[signed, "plain"]))
    caplog.set_level("DEBUG")
    context = make_context()
    (product,) = operator(bucket, prompt_template="{title} like {reference}").execute(context)
    shown = "https://cdn.test/ref/mug.jpg?<redacted>"
    assert product["metadata"]["reference"] == shown
    assert product["metadata"]["gallery"] == [shown, "plain"]
    assert product["prompt"] == f"Mug like {shown}"
    everything = json.dumps(product) + caplog.text + repr(context["ti"].mock_calls)
    assert "sig123" not in everything and "tok456" not in everything


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"image_max_bytes": 0}, "image_max_bytes"),
        ({"image_max_bytes": 10**12}, "image_max_bytes"),
        ({"image_max_bytes": True}, "image_max_bytes"),
        ({"max_prompt_chars": 0}, "max_prompt_chars"),
        ({"max_prompt_chars": 513}, "max_prompt_chars"),
        ({"max_products": 0}, "max_products"),
        ({"max_products": 10**6}, "max_products"),
        ({"max_products": 2.5}, "max_products"),
    ],
)
def test_numeric_parameters_are_bounded(kwargs: dict[str, Any], name: str) -> None:
    (value,) = kwargs.values()
    with pytest.raises(ValueError, match=rf"^{name}: ") as exc_info:
        operator("b", **kwargs)
    assert repr(value) in str(exc_info.value) and " to " in str(exc_info.value), "the value and the range"
    assert operator("b", max_products=None).max_products is None
