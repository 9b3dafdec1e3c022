"""S3ProductImagesOperator against a real S3 server (SeaweedFS)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import posixpath
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from PIL import Image

from airflow_provider_cogvideo.fingerprint import video_fingerprint
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.products import truncate_prompt
from airflow_provider_cogvideo.sizes import MiB
from airflow_provider_cogvideo.testing.result_files import ResultFileServer
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.video_index import (
    Hold,
    IndexLocation,
    compact,
    load_index,
    write_entry,
    write_hold,
)
from tests.conftest import BOMB_SIDE
from tests.s3.helpers import AWS_CONN_ID, COGVIDEO_CONN_ID, make_context, object_keys, pushed

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
    from airflow_provider_cogvideo.operators import catalog_reads, product_images

    monkeypatch.setattr(product_images, "MAX_SOURCE_BYTES", 1 * MiB)
    monkeypatch.setattr(catalog_reads, "MAX_SOURCE_BYTES", 1 * MiB)
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
    from airflow_provider_cogvideo.operators import catalog_reads

    put(s3, bucket, "incoming/a.png", image_bytes("PNG"))
    put(s3, bucket, "incoming/a.json", sidecar("A", notes="x" * (1 * MiB)))  # just over 1 MiB
    put(s3, bucket, "incoming/b.png", image_bytes("PNG"))
    context = make_context()
    assert sorted(by_product(operator(bucket).execute(context))) == ["b"]
    (rejected,) = pushed(context, "rejected")
    assert rejected["reason"].startswith(f"sidecar s3://{bucket}/incoming/a.json holds")
    assert rejected["reason"].endswith(f"over the limit of {MiB} bytes")

    monkeypatch.setattr(catalog_reads, "_MAX_CATALOG_BYTES", 1024)
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


# ------------------------------------------------------------------ a catalog over time: the video index
GENERATION = {"model": "cogvideox-3", "quality": "speed", "duration": 5}


def photo(color: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    """A small photo of its own: each product's image has other bytes (and another sha256)."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, format=fmt)
    return out.getvalue()


def put_etag(s3: Any, bucket: str, key: str, body: bytes | str) -> str:
    data = body.encode() if isinstance(body, str) else body
    return s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')


@pytest.fixture
def videos(s3: Any) -> str:
    """The output bucket: the videos, and the index with them."""
    name = f"v-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def index_uri(videos: str) -> str:
    return f"s3://{videos}/videos/"


def indexed(bucket: str, videos: str, **kwargs: Any) -> S3ProductImagesOperator:
    return operator(bucket, video_index=index_uri(videos), generation=GENERATION, **kwargs)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None, str | None]]:
    """Every S3 operation sent by a client S3Hook gives (the operators'), as (operation, bucket, key),
    seen by botocore's own event hook, not counted by the code under test."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    calls: list[tuple[str, str | None, str | None]] = []
    real = S3Hook.get_conn

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params.get("Bucket"), params.get("Key")))

    def instrumented(self: S3Hook) -> Any:
        client = real(self)
        client.meta.events.register("before-parameter-build.s3", record, unique_id="test-sent-requests")
        return client

    monkeypatch.setattr(S3Hook, "get_conn", instrumented)
    return calls


def pay(
    s3: Any, videos: str, items: list[dict[str, Any]], result_server: ResultFileServer, run_id: str
) -> dict[str, dict[str, Any]]:
    """What the rest of a run does with the items: generate (a job and its files on the local result
    server), the real transfer with the index (video, cover, then the entry), and the run record's
    compaction of the entries the uploads returned. The uploads' results by product id."""
    uploads = {}
    for item in items:
        job_id = str(uuid.uuid4().int)[:19]
        result = {
            "id": job_id,
            "model": "cogvideox-3",
            "request_id": f"af-{job_id}",
            "task_status": "SUCCESS",
            "video_url": result_server.add(f"{job_id}.mp4", f"video of job {job_id}".encode()),
            "cover_image_url": result_server.add(f"{job_id}.png", b"\x89PNG cover", content_type="image/png"),
            "prompt": item["prompt"],
            "metadata": item["metadata"],
            "price": 1.0,
            "price_currency": "CNY",
        }
        transfer = CogVideoToS3Operator(
            task_id="to_s3",
            result=result,
            s3_bucket=videos,
            video_index=index_uri(videos),
            aws_conn_id=AWS_CONN_ID,
            cogvideo_conn_id=COGVIDEO_CONN_ID,
        )
        uploads[item["metadata"]["product_id"]] = transfer.execute(make_context(run_id=run_id))
    known = [(u["index_entry"]["key"], u["index_entry"]["etag"], u["index_entry"]["body"]) for u in uploads.values()]
    compact(s3, IndexLocation.parse(index_uri(videos)), known=known)
    return uploads


def expected_fingerprint(prompt: str, image: bytes, variant: str = "default") -> str:
    return video_fingerprint(
        model="cogvideox-3",
        options={"quality": "speed", "duration": 5},
        prompt=prompt,
        image_digests=[hashlib.sha256(image).hexdigest()],
        variant=variant,
    )


def reused(bucket: str, upload: dict[str, Any], item: dict[str, Any], title: str | None, run_id: str) -> dict[str, Any]:
    """The catalog row of a product reused from the upload of ``item`` by run ``run_id``."""
    metadata = item["metadata"]
    return {
        "product_id": metadata["product_id"],
        "variant": "default",
        "status": "reused",
        "title": title,
        "image": metadata["source_image"],
        "video": upload["s3_uri"],
        "cover": upload["cover_s3_uri"],
        "sha256": upload["sha256"],
        "size": upload["size"],
        "job_id": upload["id"],
        "model": "cogvideox-3",
        "prompt": item["prompt"],
        "price": 0.0,
        "paid_price": 1.0,
        "currency": "CNY",
        "paid_by_run": run_id,
        "paid_at": upload["index_entry"]["body"]["paid_at"],
        "fingerprint": metadata["fingerprint"],
        "review": None,
    }


def catalog_gets(calls: list[tuple[str, str | None, str | None]], bucket: str) -> list[str]:
    return sorted(key or "" for op, b, key in calls if op == "GetObject" and b == bucket)


def test_a_catalog_run_three_times_pays_only_for_what_changed(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer, sent: list[Any]
) -> None:
    images = {
        "lamp.jpg": photo((250, 200, 90), "JPEG"),
        "mug.png": photo((200, 30, 30)),
        "shoe.png": photo((30, 30, 200)),
        "vase.png": photo((30, 160, 60)),
    }
    etags = {name: put_etag(s3, bucket, f"incoming/{name}", data) for name, data in images.items()}
    sidecars = {
        "lamp": sidecar("Desk lamp", selling_points="warm light", style="cozy"),
        "mug": sidecar("Red mug", selling_points=["ceramic", "350 ml"], style="studio"),
        "shoe": sidecar("Running shoe", selling_points="light", style="dynamic"),
    }
    sidecar_etags = {pid: put_etag(s3, bucket, f"incoming/{pid}.json", text) for pid, text in sidecars.items()}

    # Run 1: every product is handed on, each with its fingerprint and what the entry will record.
    first = make_context()
    items = indexed(bucket, videos).execute(first)
    assert [i["metadata"]["product_id"] for i in items] == ["lamp", "mug", "shoe", "vase"]
    mug = by_product(items)["mug"]
    assert mug["prompt"] == "Red mug: ceramic, 350 ml. Style: studio. Product mug turns slowly."
    assert mug["metadata"]["fingerprint"] == expected_fingerprint(mug["prompt"], images["mug.png"])
    assert mug["metadata"]["index_inputs"] == {
        "image": {
            "key": "incoming/mug.png",
            "size": len(images["mug.png"]),
            "etag": etags["mug.png"],
            "sha256": hashlib.sha256(images["mug.png"]).hexdigest(),
        },
        "sidecar": {
            "key": "incoming/mug.json",
            "size": len(sidecars["mug"]),
            "etag": sidecar_etags["mug"],
            "fields": {"title": "Red mug", "selling_points": ["ceramic", "350 ml"], "style": "studio"},
        },
    }
    vase = by_product(items)["vase"]
    assert vase["metadata"]["fingerprint"] == expected_fingerprint(vase["prompt"], images["vase.png"])
    assert vase["metadata"]["index_inputs"]["sidecar"] is None
    assert [i["metadata"]["index_inputs"]["image"]["key"] for i in items] == [f"incoming/{n}" for n in images]
    assert pushed(first, "catalog") == []
    assert pushed(first, "catalog_reads") == {"list": 2, "get_index": 1, "images": 4, "sidecars": 3, "catalog": 0}
    uploads = pay(s3, videos, items, result_server, "run-1")
    assert uploads["mug"]["s3_uri"].startswith(f"s3://{videos}/videos/mug/default/")

    # Run 2, nothing changed: nothing is handed on, every product is reused, no image or sidecar is read.
    sent.clear()
    second = make_context()
    assert indexed(bucket, videos).execute(second) == []
    titles = {"lamp": "Desk lamp", "mug": "Red mug", "shoe": "Running shoe", "vase": None}
    assert pushed(second, "catalog") == [
        reused(videos, uploads[pid], by_product(items)[pid], titles[pid], "run-1") for pid in titles
    ]
    assert pushed(second, "catalog_reads") == {"list": 2, "get_index": 1, "images": 0, "sidecars": 0, "catalog": 0}
    assert sent == [
        ("ListObjectsV2", bucket, None),
        ("GetObject", videos, "videos/.index/index.json"),
        ("ListObjectsV2", videos, None),
    ], "one listing of the catalog, one GET of the index document and one listing of the index"

    # Run 3: one image replaced, one sidecar changed, one product added: exactly those are handed on.
    images["vase.png"] = photo((90, 90, 90))
    put(s3, bucket, "incoming/vase.png", images["vase.png"])
    put(s3, bucket, "incoming/mug.json", sidecar("Blue mug", selling_points=["ceramic", "350 ml"], style="studio"))
    put(s3, bucket, "incoming/kettle.png", photo((10, 10, 10)))
    put(s3, bucket, "incoming/kettle.json", sidecar("Kettle", selling_points="1.7 l", style="retro"))
    sent.clear()
    third = make_context()
    changed = by_product(indexed(bucket, videos).execute(third))
    assert sorted(changed) == ["kettle", "mug", "vase"]
    assert changed["mug"]["prompt"] == "Blue mug: ceramic, 350 ml. Style: studio. Product mug turns slowly."
    assert changed["vase"]["metadata"]["fingerprint"] == expected_fingerprint(vase["prompt"], images["vase.png"])
    assert [row["product_id"] for row in pushed(third, "catalog")] == ["lamp", "shoe"]
    assert pushed(third, "catalog_reads") == {"list": 2, "get_index": 1, "images": 3, "sidecars": 2, "catalog": 0}
    assert catalog_gets(sent, bucket) == [
        "incoming/kettle.json",
        "incoming/kettle.png",
        "incoming/mug.json",
        "incoming/mug.png",
        "incoming/vase.png",
    ]


def paid_catalog(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer, names: dict[str, str | None]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Products (image name -> sidecar title or None) put in the catalog and paid by run ``run-1``:
    the items and the uploads, by product id."""
    for n, (name, title) in enumerate(names.items()):
        put(s3, bucket, f"incoming/{name}", photo((40 * n, 100, 200 - 40 * n)))
        if title is not None:
            put(s3, bucket, f"incoming/{posixpath.splitext(name)[0]}.json", sidecar(title, style="studio"))
    items = indexed(bucket, videos).execute(make_context())
    return by_product(items), pay(s3, videos, items, result_server, "run-1")


def test_an_image_put_back_as_it_was_is_reused_after_reading(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer, sent: list[Any]
) -> None:
    """Same bytes, new ETag (a multipart upload; a sidecar rewritten with the same fields): the
    listing cannot tell, so they are read, and the video is reused, not paid again."""
    items, uploads = paid_catalog(s3, bucket, videos, result_server, {"lamp.png": "Desk lamp", "mug.png": "Red mug"})
    data = s3.get_object(Bucket=bucket, Key="incoming/lamp.png")["Body"].read()
    before = s3.head_object(Bucket=bucket, Key="incoming/lamp.png")["ETag"]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="incoming/lamp.png")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="incoming/lamp.png", UploadId=upload_id, PartNumber=1, Body=data)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="incoming/lamp.png",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert s3.head_object(Bucket=bucket, Key="incoming/lamp.png")["ETag"] != before
    put(s3, bucket, "incoming/mug.json", json.dumps({"style": "studio", "title": "Red mug"}, indent=2))

    sent.clear()
    context = make_context()
    assert indexed(bucket, videos).execute(context) == []
    assert pushed(context, "catalog") == [
        reused(videos, uploads["lamp"], items["lamp"], "Desk lamp", "run-1"),
        reused(videos, uploads["mug"], items["mug"], "Red mug", "run-1"),
    ]
    assert pushed(context, "catalog_reads") == {"list": 2, "get_index": 1, "images": 2, "sidecars": 2, "catalog": 0}
    assert catalog_gets(sent, bucket) == [
        "incoming/lamp.json",
        "incoming/lamp.png",
        "incoming/mug.json",
        "incoming/mug.png",
    ]


def test_a_video_rejected_by_review_is_neither_reused_nor_paid_again(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer
) -> None:
    """A rejection recorded on the entry, for its job: listed as rejected_by_review, unread, unpaid;
    read after all (same bytes, new ETag), still unpaid; paid again only when regenerate names it. An
    approval rides along on the reused row."""
    items, uploads = paid_catalog(s3, bucket, videos, result_server, {"lamp.png": "Desk lamp", "mug.png": "Red mug"})
    location = IndexLocation.parse(index_uri(videos))
    index = load_index(s3, location)
    decisions = {"lamp": "approved", "mug": "rejected_by_review"}
    for pid, state in decisions.items():
        entry = index.find(pid, "default", items[pid]["metadata"]["fingerprint"])
        assert entry is not None
        note = [{"round": 1, "answer": "Reject", "state": state, "note": "too dark", "job_id": entry.job_id}]
        review = {"state": state, "job_id": entry.job_id, "run_id": "review-1", "decisions": note, "published": None}
        write_entry(s3, location, dataclasses.replace(entry, review=review))

    context = make_context()
    assert indexed(bucket, videos).execute(context) == []
    lamp, mug = pushed(context, "catalog")
    assert lamp == {**reused(videos, uploads["lamp"], items["lamp"], "Desk lamp", "run-1"), "review": lamp["review"]}
    assert lamp["review"]["state"] == "approved"
    reason = mug.pop("reason")
    assert mug == {
        **reused(videos, uploads["mug"], items["mug"], "Red mug", "run-1"),
        "status": "rejected_by_review",
        "review": mug["review"],
    }
    assert mug["review"]["state"] == "rejected_by_review" and "too dark" in reason and "review-1" in reason
    assert pushed(context, "catalog_reads")["images"] == 0

    put(s3, bucket, "incoming/mug.json", json.dumps({"style": "studio", "title": "Red mug"}, indent=2))
    read = make_context()
    assert indexed(bucket, videos).execute(read) == [], "read (a new sidecar ETag), found rejected, not paid"
    assert [row["status"] for row in pushed(read, "catalog")] == ["reused", "rejected_by_review"]
    assert pushed(read, "catalog_reads")["images"] == 1

    regenerated = make_context()
    (again,) = indexed(bucket, videos, regenerate="mug").execute(regenerated)
    assert again["metadata"]["fingerprint"] == items["mug"]["metadata"]["fingerprint"]
    assert [row["product_id"] for row in pushed(regenerated, "catalog")] == ["lamp"]


def test_regenerate_pays_again_for_the_products_named(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer
) -> None:
    items, _ = paid_catalog(s3, bucket, videos, result_server, {"lamp.png": "Desk lamp", "mug.png": "Red mug"})
    context = make_context()
    (again,) = indexed(bucket, videos, regenerate=["mug"]).execute(context)
    assert again["metadata"]["product_id"] == "mug"
    assert again["metadata"]["fingerprint"] == items["mug"]["metadata"]["fingerprint"], "the same video, paid again"
    assert [row["product_id"] for row in pushed(context, "catalog")] == ["lamp"]

    rendered = indexed(bucket, videos, regenerate="['lamp', 'mug']").execute(make_context())
    assert sorted(by_product(rendered)) == ["lamp", "mug"]
    assert sorted(by_product(indexed(bucket, videos, regenerate="all").execute(make_context()))) == ["lamp", "mug"]
    with pytest.raises(AirflowFailException, match=r"^regenerate: must be a list of product ids"):
        indexed(bucket, videos, regenerate=5).execute(make_context())


def test_a_held_product_waits_for_a_person_or_release_held(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer
) -> None:
    """A product whose submit was ambiguous is held, matching entry or not, until released."""
    items, uploads = paid_catalog(s3, bucket, videos, result_server, {"lamp.png": "Desk lamp", "mug.png": "Red mug"})
    put(s3, bucket, "incoming/kettle.png", photo((10, 10, 10)))  # new, and its first submit was ambiguous
    location = IndexLocation.parse(index_uri(videos))
    for pid in ("kettle", "mug"):
        write_hold(s3, location, Hold(pid, "default", f"req-{pid}", "run-2", "2025-03-02T08:00:00+00:00", None, "x"))

    context = make_context()
    assert indexed(bucket, videos).execute(context) == []
    rows = {row["product_id"]: row for row in pushed(context, "catalog")}
    assert {pid: row["status"] for pid, row in rows.items()} == {"lamp": "reused", "kettle": "held", "mug": "held"}
    kettle = dict(rows["kettle"])
    assert "release_held" in kettle.pop("check")
    assert kettle == {
        "product_id": "kettle",
        "variant": "default",
        "status": "held",
        "title": None,
        "image": f"s3://{bucket}/incoming/kettle.png",
        "request_id": "req-kettle",
        "held_by_run": "run-2",
        "held_at": "2025-03-02T08:00:00+00:00",
    }
    assert rows["mug"]["title"] == "Red mug", "known from what the entry recorded, unread"
    assert pushed(context, "catalog_reads")["images"] == 0

    released = make_context()
    (kettle_item,) = indexed(bucket, videos, release_held="kettle").execute(released)
    assert kettle_item["metadata"]["product_id"] == "kettle"
    assert {row["product_id"]: row["status"] for row in pushed(released, "catalog")} == {
        "lamp": "reused",
        "mug": "held",
    }

    everything = make_context()
    assert [i["metadata"]["product_id"] for i in indexed(bucket, videos, release_held="all").execute(everything)] == [
        "kettle"
    ]
    assert pushed(everything, "catalog")[-1] == reused(videos, uploads["mug"], items["mug"], "Red mug", "run-1")


def test_the_cap_leaves_the_rest_waiting_unread(
    s3: Any, bucket: str, videos: str, sent: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    put(s3, bucket, "incoming/catalog.csv", "product_id,title\n" + "".join(f"p{n},Product {n}\n" for n in range(5)))
    for n in range(5):
        put(s3, bucket, f"incoming/p{n}.png", photo((n * 40, 0, 0)))

    context = make_context()
    items = indexed(bucket, videos, max_products=2, catalog_key="incoming/catalog.csv").execute(context)
    assert [i["metadata"]["product_id"] for i in items] == ["p0", "p1"]
    assert pushed(context, "catalog") == [
        {
            "product_id": f"p{n}",
            "variant": "default",
            "status": "waiting",
            "title": f"Product {n}",
            "image": f"s3://{bucket}/incoming/p{n}.png",
            "reason": "over this run's cap of 2 paid item(s) ([core] max_map_length or max_products): "
            "taken by the next run",
        }
        for n in (2, 3, 4)
    ]
    assert pushed(context, "catalog_reads") == {"list": 2, "get_index": 1, "images": 2, "sidecars": 0, "catalog": 1}
    assert catalog_gets(sent, bucket) == ["incoming/catalog.csv", "incoming/p0.png", "incoming/p1.png"]

    # Airflow's [core] max_map_length caps it too, read when the task runs.
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "3")
    capped = make_context()
    assert len(indexed(bucket, videos).execute(capped)) == 3
    assert [row["product_id"] for row in pushed(capped, "catalog")] == ["p3", "p4"]
    assert "cap of 3 paid item(s)" in pushed(capped, "catalog")[0]["reason"]


def test_a_refused_image_carries_its_product_id(s3: Any, bucket: str, videos: str) -> None:
    put(s3, bucket, "incoming/broken.png", b"\x89PNG not really")
    put(s3, bucket, "incoming/mug.png", photo((200, 30, 30)))
    context = make_context()
    assert [i["metadata"]["product_id"] for i in indexed(bucket, videos).execute(context)] == ["mug"]
    (refused,) = pushed(context, "rejected")
    assert refused["product_id"] == "broken"
    assert refused["image"] == f"s3://{bucket}/incoming/broken.png"
    assert "not a decodable image" in refused["reason"]


def test_variants_are_items_and_rows_of_their_own(
    s3: Any, bucket: str, videos: str, result_server: ResultFileServer
) -> None:
    image = photo((200, 30, 30))
    put(s3, bucket, "incoming/mug.png", image)
    items = indexed(bucket, videos, variants=["default", "douyin"]).execute(make_context())
    assert [(i["metadata"]["product_id"], i["metadata"]["variant"]) for i in items] == [
        ("mug", "default"),
        ("mug", "douyin"),
    ]
    prompt = items[0]["prompt"]
    assert [i["metadata"]["fingerprint"] for i in items] == [
        expected_fingerprint(prompt, image, "default"),
        expected_fingerprint(prompt, image, "douyin"),
    ]
    pay(s3, videos, items[:1], result_server, "run-1")  # the douyin video failed
    context = make_context()
    (again,) = indexed(bucket, videos, variants=["default", "douyin"]).execute(context)
    assert again["metadata"]["variant"] == "douyin"
    assert [(r["product_id"], r["variant"], r["status"]) for r in pushed(context, "catalog")] == [
        ("mug", "default", "reused")
    ]


def test_the_index_must_not_overlap_the_images(s3: Any, bucket: str) -> None:
    """Covers are images: an index under the listed prefix would make them products, paid every run."""
    put(s3, bucket, "incoming/mug.png", photo((200, 30, 30)))
    for uri in (f"s3://{bucket}/incoming/videos/", f"s3://{bucket}/", f"s3://{bucket}/incoming"):
        with pytest.raises(AirflowFailException, match="overlaps the images listed under"):
            operator(bucket, video_index=uri, generation=GENERATION).execute(make_context())
    items = operator(bucket, video_index=f"s3://{bucket}/inc", generation=GENERATION).execute(make_context())
    assert [i["metadata"]["product_id"] for i in items] == ["mug"]


def test_an_index_needs_the_generation_settings() -> None:
    with pytest.raises(ValueError, match=r"^generation: is required with video_index"):
        operator("b", video_index="s3://v/videos/")
    with pytest.raises(ValueError, match=r"^generation: must be a dict .* with 'model'"):
        operator("b", video_index="s3://v/videos/", generation={"duration": 5})
    with pytest.raises(AirflowFailException, match=r"^video_index: "):
        operator("b", video_index="videos/", generation=GENERATION).execute(make_context())
