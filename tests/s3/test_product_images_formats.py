"""S3ProductImagesOperator with ad formats and a prompt writer, against a real S3 server (SeaweedFS):
one item per (product, format), each with its size, its own framed image and fingerprint."""

from __future__ import annotations

import io
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from PIL import Image

from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.product_variants import ProductVariants
from airflow_provider_cogvideo.prompt_writer import PromptWriter
from tests.s3.helpers import make_context
from tests.s3.test_product_images import operator as ingest

TEMPLATE = "{title}: a product video of {product_id}."
GENERATION = {"model": "cogvideox-3"}


def jpeg(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


def operator(bucket: str, **kwargs: Any) -> S3ProductImagesOperator:
    """test_product_images' ingestion, with a video index, generation settings and its own template."""
    settings = {"prompt_template": TEMPLATE, "staging_prefix": "staged/", "generation": GENERATION}
    return ingest(bucket, video_index=f"s3://{bucket}/videos/", **{**settings, **kwargs})


def test_one_item_per_product_and_format_each_framed_and_sized(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="incoming/mug.jpg", Body=jpeg((640, 480)))
    s3.put_object(Bucket=bucket, Key="incoming/mug.json", Body=b'{"title": "Mug"}')
    s3.put_object(Bucket=bucket, Key="incoming/tv.jpg", Body=jpeg((1280, 720)))  # already 16:9
    items = operator(bucket, formats="9:16, 16:9").execute(make_context())
    got = {(i["metadata"]["product_id"], i["metadata"]["variant"]): i for i in items}
    assert sorted(got) == [("mug", "16x9"), ("mug", "9x16"), ("tv", "16x9"), ("tv", "9x16")]
    assert got["mug", "9x16"]["options"] == {"size": "1080x1920"}
    assert got["mug", "16x9"]["options"] == {"size": "1920x1080"}
    assert got["tv", "16x9"]["image"] == f"s3://{bucket}/incoming/tv.jpg", "already the format's shape: sent as is"
    for pid, variant, size in (
        ("mug", "9x16", (1080, 1920)),
        ("mug", "16x9", (1920, 1080)),
        ("tv", "9x16", (1080, 1920)),
    ):
        assert got[pid, variant]["image"] == f"s3://{bucket}/staged/{pid}/{variant}.jpg"
        body = s3.get_object(Bucket=bucket, Key=f"staged/{pid}/{variant}.jpg")["Body"].read()
        assert Image.open(io.BytesIO(body)).size == size
    mug = got["mug", "9x16"]["metadata"]
    assert (mug["format"], mug["format_text"]) == (
        "9:16",
        "9:16 vertical (1080x1920), for TikTok, Douyin, Reels, Shorts",
    )
    assert mug["index_inputs"]["format"] == {
        "name": "9:16",
        "options": {"size": "1080x1920"},
        "fit": "pad",
        "text": mug["format_text"],
    }
    assert len({i["metadata"]["fingerprint"] for i in items}) == 4
    assert all(
        i["prompt"] == f"{i['metadata'].get('title', '')}: a product video of {i['metadata']['product_id']}."
        for i in items
    )


def test_fit_and_the_writer_are_in_the_fingerprint(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="incoming/mug.jpg", Body=jpeg((640, 480)))
    pad = operator(bucket, formats=["1:1"]).execute(make_context())[0]["metadata"]
    crop = operator(bucket, formats=["1:1"], fit="crop").execute(make_context())[0]["metadata"]
    written = operator(bucket, formats=["1:1"], prompt_writer={}).execute(make_context())[0]["metadata"]
    assert len({pad["fingerprint"], crop["fingerprint"], written["fingerprint"]}) == 3
    assert "prompt_writer" not in pad
    variants = ProductVariants.build(generation=GENERATION, formats=["1:1"], writer=PromptWriter())
    fields = {k: v for k, v in written.items() if k in ("product_id",)}
    sha256 = written["index_inputs"]["image"]["sha256"]
    prompt = ": a product video of mug."
    assert written["prompt_writer"] == variants.writer_key("1x1", prompt, sha256, fields)
    assert written["fingerprint"] == variants.fingerprint("1x1", prompt, sha256, fields)


def test_a_format_the_model_cannot_render_fails_before_anything_is_read(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="incoming/mug.jpg", Body=jpeg((640, 480)))
    op = operator(bucket, formats="{{ params.formats }}", generation={"model": "viduq1-image"})
    op.formats = "9:16"  # as rendered
    with pytest.raises(AirflowFailException, match=r"cannot be rendered by 'viduq1-image': its sizes are 1920x1080"):
        op.execute(make_context())
    with pytest.raises(ValueError, match="formats"):
        operator(bucket, formats=["9:16"], generation={"model": "viduq1-image"})
    with pytest.raises(ValueError, match="variants"):
        operator(bucket, formats=["9:16"], variants=["a", "b"])
