"""Ingestion of real product photos against a real S3 server (SeaweedFS).

Phone portraits (EXIF orientation 6), wide-gamut colour profiles, CMYK exports, cut-outs with
transparency, 16-bit scans and iPhone HEICs, each made by the test, put into S3 and read back from
the staging prefix the way the service reads them: pixels only.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

from airflow_provider_cogvideo.extras import install_line
from tests.s3.helpers import make_context, pushed
from tests.s3.test_product_images import by_product, operator, put
from tests.unit.test_images_photos import (
    BLUE,
    P3_COLOUR,
    RED,
    WHITE,
    assert_close,
    assert_upright_portrait,
    cmyk_jpeg,
    encoded,
    exif_rotated_jpeg,
    gray16_png,
    heic_photo,
    p3_in_srgb,
    p3_jpeg,
    palette_png_with_transparency,
    rgb16_png,
    sideways,
    srgb_profile,
)

ROOT = Path(__file__).resolve().parents[2]


def staged(s3: Any, bucket: str, product: dict[str, Any]) -> Image.Image:
    assert product["metadata"]["reencoded"] is True
    key = product["image"].removeprefix(f"s3://{bucket}/")
    assert key.startswith("incoming/_staged/") and key.endswith(".jpg")
    answer = s3.get_object(Bucket=bucket, Key=key)
    assert answer["ContentType"] == "image/jpeg"
    img = Image.open(io.BytesIO(answer["Body"].read()))
    img.load()
    assert (img.format, img.mode) == ("JPEG", "RGB")
    return img


def test_a_phone_portrait_arrives_upright(s3: Any, bucket: str) -> None:
    """A JPEG whose EXIF orientation is 6 is a PNG/JPEG within the size limit, which used to go as it
    is: the service ignores EXIF, so the video would start sideways. It is re-encoded upright."""
    put(s3, bucket, "incoming/portrait.jpg", exif_rotated_jpeg())
    put(s3, bucket, "incoming/flat.jpg", exif_rotated_jpeg(orientation=1))
    products = by_product(operator(bucket).execute(make_context()))
    img = staged(s3, bucket, products["portrait"])
    assert_upright_portrait(img)
    assert img.getexif().get(0x0112) is None
    assert products["flat"]["image"] == f"s3://{bucket}/incoming/flat.jpg", "upright JPEGs still go as they are"


def test_colour_profiles_survive_as_colour(s3: Any, bucket: str) -> None:
    """A Display P3 photo is converted to the sRGB numbers of the same colour and tagged sRGB; a photo
    already tagged sRGB goes as it is; a re-encoded one keeps its sRGB profile byte for byte."""
    profile = srgb_profile()
    put(s3, bucket, "incoming/p3.jpg", p3_jpeg())
    put(s3, bucket, "incoming/srgb.jpg", encoded(sideways(), "JPEG", icc_profile=profile))
    put(
        s3,
        bucket,
        "incoming/srgb-webp.webp",
        encoded(Image.new("RGB", (64, 64), P3_COLOUR), "WEBP", icc_profile=profile),
    )
    products = by_product(operator(bucket).execute(make_context()))

    p3 = staged(s3, bucket, products["p3"])
    assert_close(p3.getpixel((32, 32)), p3_in_srgb(P3_COLOUR), tolerance=4)
    description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(p3.info["icc_profile"])))
    assert "sRGB" in description

    assert products["srgb"]["image"] == f"s3://{bucket}/incoming/srgb.jpg"
    assert staged(s3, bucket, products["srgb-webp"]).info["icc_profile"] == profile


def test_cmyk_palette_alpha_and_16_bit_become_correct_rgb_jpegs(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/print.jpg", cmyk_jpeg())
    put(s3, bucket, "incoming/cutout.png", palette_png_with_transparency())
    put(s3, bucket, "incoming/scan.png", gray16_png())
    put(s3, bucket, "incoming/deep.png", rgb16_png())
    products = by_product(operator(bucket).execute(make_context()))
    assert sorted(products) == ["cutout", "deep", "print", "scan"]

    assert_close(staged(s3, bucket, products["print"]).getpixel((32, 24)), RED, tolerance=10)
    cutout = staged(s3, bucket, products["cutout"])
    assert_close(cutout.getpixel((8, 16)), RED, tolerance=10)
    assert_close(cutout.getpixel((56, 16)), WHITE, tolerance=3)
    scan = staged(s3, bucket, products["scan"])
    assert_close(scan.getpixel((8, 8)), (128, 128, 128), tolerance=3)
    assert_close(scan.getpixel((56, 8)), (64, 64, 64), tolerance=3)
    assert_close(staged(s3, bucket, products["deep"]).getpixel((16, 8)), (128, 64, 192), tolerance=4)


def test_an_iphone_heic_arrives_as_an_upright_jpeg(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/iphone.heic", heic_photo())
    put(s3, bucket, "incoming/iphone.json", json.dumps({"title": "Phone photo"}))
    (product,) = operator(bucket, prompt_template="{title}").execute(make_context())
    assert product["prompt"] == "Phone photo"
    img = staged(s3, bucket, product)
    assert_upright_portrait(img)
    assert_close(img.getpixel((16, 52)), BLUE)


_INGEST_WITHOUT_PILLOW_HEIF = """
import json, sys
sys.modules["pillow_heif"] = None  # an install without the heif extra
from tests.s3.helpers import make_context, pushed
from tests.s3.test_product_images import operator
context = make_context()
products = operator(sys.argv[1]).execute(context)
print(json.dumps({"products": products, "rejected": pushed(context, "rejected")}))
"""


def test_without_the_extra_a_heic_is_rejected_naming_it(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/iphone.heic", heic_photo())
    put(s3, bucket, "incoming/mug.png", encoded(sideways(), "PNG"))
    run = subprocess.run(
        [sys.executable, "-c", _INGEST_WITHOUT_PILLOW_HEIF, bucket],
        cwd=ROOT,
        env=os.environ.copy(),  # the aws connection of the session (AIRFLOW_CONN_AWS_S3TEST)
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert [p["metadata"]["product_id"] for p in answer["products"]] == ["mug"]
    (rejected,) = answer["rejected"]
    assert rejected["image"] == f"s3://{bucket}/incoming/iphone.heic"
    assert install_line("heif") in rejected["reason"] and "HEIC/HEIF" in rejected["reason"]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_every_rotation_is_undone(s3: Any, bucket: str, orientation: int) -> None:
    """Orientations 3 (upside down), 6 and 8 (either way up on its side) all show red first."""
    put(s3, bucket, "incoming/p.jpg", exif_rotated_jpeg(orientation))
    (product,) = operator(bucket).execute(make_context())
    img = staged(s3, bucket, product)
    if orientation == 3:
        assert img.size == (64, 32)
        assert_close(img.getpixel((8, 16)), BLUE)  # turned half a turn: blue now on the left
    else:
        assert img.size == (32, 64)
        top, bottom = img.getpixel((16, 12)), img.getpixel((16, 52))
        assert_close(top if orientation == 6 else bottom, RED)
        assert_close(bottom if orientation == 6 else top, BLUE)


def test_rejected_reasons_still_reach_xcom(s3: Any, bucket: str) -> None:
    put(s3, bucket, "incoming/cut.jpg", exif_rotated_jpeg()[:300])
    put(s3, bucket, "incoming/ok.jpg", exif_rotated_jpeg())
    context = make_context()
    (product,) = operator(bucket).execute(context)
    assert product["metadata"]["product_id"] == "ok"
    (rejected,) = pushed(context, "rejected")
    assert "not a decodable image" in rejected["reason"]
