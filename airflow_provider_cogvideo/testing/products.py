"""Sample products for the demo and the tests: pictures drawn with Pillow, ``<name>.json`` sidecars, S3 seeding.

* :class:`SampleProduct` / :data:`SAMPLE_PRODUCTS` / :func:`sample_products`: six product designs
  (one a WebP, which ingestion re-encodes), repeated with new ids and colours for larger runs;
* :func:`render_product_image`: a small studio picture of one product; :func:`corrupt_image`: a
  truncated JPEG that ingestion must reject;
* :func:`seed_products`: the images and sidecars in S3, where the pipeline DAG reads them.

Importing this module imports neither Airflow nor Pillow nor boto3 (they load when used).
"""

from __future__ import annotations

import colorsys
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

SOURCE_BUCKET = "products"
SOURCE_PREFIX = "incoming/"
CORRUPT_PRODUCT_ID = "broken-upload"


@dataclass(frozen=True)
class SampleProduct:
    """One sample product: what its sidecar says and how its picture is drawn."""

    product_id: str
    title: str
    selling_points: tuple[str, ...]
    style: str
    shape: str  # mug, bottle, sneaker, lamp, headphones or watch (what _draw_shape draws)
    hue: float  # 0..1, the product colour; the background is drawn from the opposite hue
    image_format: str = "PNG"  # PNG / JPEG are sent as they are; WEBP is re-encoded by ingestion

    @property
    def extension(self) -> str:
        return {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[self.image_format]

    def sidecar(self) -> dict[str, Any]:
        return {"title": self.title, "selling_points": list(self.selling_points), "style": self.style}


SAMPLE_PRODUCTS: tuple[SampleProduct, ...] = (
    SampleProduct(
        "aurora-mug", "Aurora Ceramic Mug", ("hand-glazed", "keeps coffee warm", "dishwasher safe"), "cozy", "mug", 0.58
    ),
    SampleProduct(
        "glacier-bottle",
        "Glacier Steel Bottle",
        ("24 h cold", "leak-proof lid", "750 ml"),
        "fresh outdoor",
        "bottle",
        0.5,
    ),
    SampleProduct(
        "stride-runner", "Stride Runner Sneaker", ("featherlight foam", "recycled knit"), "sporty", "sneaker", 0.02
    ),
    SampleProduct(
        "lumen-lamp",
        "Lumen Desk Lamp",
        ("dimmable warm light", "USB-C charging port"),
        "minimal Scandinavian",
        "lamp",
        0.12,
        image_format="JPEG",
    ),
    SampleProduct(
        "echo-headphones",
        "Echo Wireless Headphones",
        ("40 h battery", "active noise cancelling"),
        "sleek tech",
        "headphones",
        0.75,
        image_format="WEBP",
    ),
    SampleProduct(
        "tempo-watch", "Tempo Smart Watch", ("heart-rate tracking", "7-day battery"), "premium", "watch", 0.9
    ),
)

IMAGE_SIZE = (640, 480)


def sample_products(count: int = len(SAMPLE_PRODUCTS)) -> list[SampleProduct]:
    """``count`` products: the six designs in turn; later rounds get an id suffix and another colour."""
    products = []
    for n in range(count):
        base = SAMPLE_PRODUCTS[n % len(SAMPLE_PRODUCTS)]
        rounds = n // len(SAMPLE_PRODUCTS)
        if rounds:
            base = replace(base, product_id=f"{base.product_id}-{rounds + 1}", hue=(base.hue + 0.17 * rounds) % 1.0)
        products.append(base)
    return products


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _draw_shape(draw: Any, shape: str, box: tuple[int, int, int, int], hue: float) -> None:
    """A simple studio render of the product: body in its colour, a darker trim, a highlight."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    body, trim, shine = _rgb(hue, 0.55, 0.85), _rgb(hue, 0.7, 0.45), _rgb(hue, 0.15, 1.0)
    cx = left + w // 2
    if shape == "mug":
        draw.rounded_rectangle((left + w * 0.2, top + h * 0.2, left + w * 0.72, bottom), 18, fill=body)
        draw.ellipse((left + w * 0.6, top + h * 0.35, left + w * 0.92, top + h * 0.75), outline=body, width=18)
        draw.ellipse((left + w * 0.2, top + h * 0.14, left + w * 0.72, top + h * 0.26), fill=trim)
        draw.rounded_rectangle((left + w * 0.27, top + h * 0.32, left + w * 0.33, bottom - h * 0.12), 6, fill=shine)
    elif shape == "bottle":
        draw.rounded_rectangle((cx - w * 0.18, top + h * 0.28, cx + w * 0.18, bottom), 30, fill=body)
        draw.rectangle((cx - w * 0.08, top + h * 0.1, cx + w * 0.08, top + h * 0.3), fill=body)
        draw.rounded_rectangle((cx - w * 0.1, top, cx + w * 0.1, top + h * 0.12), 8, fill=trim)
        draw.rounded_rectangle((cx - w * 0.12, top + h * 0.36, cx - w * 0.07, bottom - h * 0.08), 6, fill=shine)
    elif shape == "sneaker":
        upper = [
            (left, bottom - h * 0.25),
            (left + w * 0.1, top + h * 0.35),
            (left + w * 0.45, top + h * 0.3),
            (left + w * 0.6, top + h * 0.5),
            (right, bottom - h * 0.35),
            (right, bottom - h * 0.18),
            (left, bottom - h * 0.18),
        ]
        draw.polygon(upper, fill=body)
        draw.rounded_rectangle((left - 4, bottom - h * 0.2, right + 4, bottom), 14, fill=(245, 245, 245))
        for i in range(4):
            x = left + w * (0.2 + 0.08 * i)
            draw.line((x, top + h * 0.42, x + w * 0.06, top + h * 0.5), fill=shine, width=6)
    elif shape == "lamp":
        draw.polygon(
            [
                (cx - w * 0.12, top),
                (cx + w * 0.12, top),
                (cx + w * 0.3, top + h * 0.35),
                (cx - w * 0.3, top + h * 0.35),
            ],
            fill=body,
        )
        draw.ellipse((cx - w * 0.08, top + h * 0.3, cx + w * 0.08, top + h * 0.42), fill=(255, 244, 200))
        draw.rectangle((cx - 6, top + h * 0.35, cx + 6, bottom - h * 0.08), fill=trim)
        draw.ellipse((cx - w * 0.25, bottom - h * 0.12, cx + w * 0.25, bottom), fill=trim)
    elif shape == "headphones":
        draw.arc((left + w * 0.15, top, right - w * 0.15, bottom - h * 0.1), 180, 360, fill=trim, width=22)
        for x0 in (left + w * 0.05, right - w * 0.3):
            draw.rounded_rectangle((x0, top + h * 0.42, x0 + w * 0.25, bottom), 36, fill=body)
            draw.ellipse((x0 + w * 0.06, top + h * 0.55, x0 + w * 0.19, bottom - h * 0.15), fill=shine)
    elif shape == "watch":
        draw.rounded_rectangle((cx - w * 0.14, top, cx + w * 0.14, bottom), 20, fill=trim)
        draw.ellipse((cx - w * 0.3, top + h * 0.2, cx + w * 0.3, bottom - h * 0.2), fill=body)
        draw.ellipse((cx - w * 0.24, top + h * 0.26, cx + w * 0.24, bottom - h * 0.26), fill=(25, 25, 35))
        draw.line((cx, top + h * 0.5, cx, top + h * 0.34), fill=shine, width=6)
        draw.line((cx, top + h * 0.5, cx + w * 0.12, top + h * 0.55), fill=shine, width=6)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_product_image(product: SampleProduct, size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    """A small product picture: gradient backdrop, soft floor shadow, the product, its name."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    width, height = size
    top, bottom = _rgb(product.hue + 0.5, 0.12, 0.98), _rgb(product.hue + 0.5, 0.35, 0.7)
    column = Image.linear_gradient("L").resize((1, height))
    image = Image.composite(Image.new("RGB", (1, height), bottom), Image.new("RGB", (1, height), top), column)
    image = image.resize(size)
    shadow = Image.new("L", size, 0)
    ImageDraw.Draw(shadow).ellipse((width * 0.25, height * 0.7, width * 0.75, height * 0.8), fill=110)
    image.paste((0, 0, 0), mask=shadow.filter(ImageFilter.GaussianBlur(14)))
    draw = ImageDraw.Draw(image)
    _draw_shape(
        draw, product.shape, (int(width * 0.3), int(height * 0.12), int(width * 0.7), int(height * 0.76)), product.hue
    )
    font = ImageFont.load_default(size=34)
    band_top = int(height * 0.84)
    draw.rectangle((0, band_top, width, height), fill=_rgb(product.hue, 0.6, 0.3))
    draw.text((width / 2, (band_top + height) / 2), product.title, fill=(255, 255, 255), font=font, anchor="mm")
    out = io.BytesIO()
    options = {"quality": 88} if product.image_format in ("JPEG", "WEBP") else {"optimize": True}
    image.save(out, format=product.image_format, **options)
    return out.getvalue()


def corrupt_image() -> bytes:
    """A JPEG cut off after its first third: looks like an image by name and magic bytes, cannot decode."""
    data = render_product_image(replace(SAMPLE_PRODUCTS[0], image_format="JPEG"))
    return data[: len(data) // 3]


@dataclass(frozen=True)
class SeededProducts:
    """What :func:`seed_products` put into S3, and what ingestion should make of it."""

    bucket: str
    prefix: str
    product_ids: tuple[str, ...]  # every decodable image: one video each
    reencoded: tuple[str, ...]  # product ids whose image ingestion must re-encode (WebP)
    rejected_keys: tuple[str, ...]  # keys ingestion must reject (corrupt)
    image_keys: tuple[str, ...] = ()  # every image uploaded, the rejected ones included


def seed_products(
    s3_client: Any,
    products: Sequence[SampleProduct],
    *,
    bucket: str = SOURCE_BUCKET,
    prefix: str = SOURCE_PREFIX,
    corrupt: bool = True,
) -> SeededProducts:
    """Create ``bucket`` (if needed) and upload each product's image and ``<name>.json`` sidecar;
    with ``corrupt``, also a truncated JPEG (with a sidecar) that ingestion must reject."""
    ensure_bucket(s3_client, bucket)
    rejected, images = [], []
    for product in products:
        key = f"{prefix}{product.product_id}{product.extension}"
        images.append(key)
        content_type = f"image/{product.image_format.lower()}"
        s3_client.put_object(Bucket=bucket, Key=key, Body=render_product_image(product), ContentType=content_type)
        sidecar = json.dumps(product.sidecar(), ensure_ascii=False).encode()
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{product.product_id}.json", Body=sidecar)
    if corrupt:
        key = f"{prefix}{CORRUPT_PRODUCT_ID}.jpg"
        s3_client.put_object(Bucket=bucket, Key=key, Body=corrupt_image(), ContentType="image/jpeg")
        sidecar = {"title": "Broken Upload", "selling_points": ["never rendered"], "style": "none"}
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{CORRUPT_PRODUCT_ID}.json", Body=json.dumps(sidecar).encode())
        rejected.append(key)
        images.append(key)
    return SeededProducts(
        bucket=bucket,
        prefix=prefix,
        product_ids=tuple(p.product_id for p in products),
        reencoded=tuple(p.product_id for p in products if p.image_format not in ("PNG", "JPEG")),
        rejected_keys=tuple(rejected),
        image_keys=tuple(images),
    )


def ensure_bucket(s3_client: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists (a rerun against the same server is fine)."""
    from botocore.exceptions import ClientError

    try:
        s3_client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


__all__ = [
    "CORRUPT_PRODUCT_ID",
    "IMAGE_SIZE",
    "SAMPLE_PRODUCTS",
    "SOURCE_BUCKET",
    "SOURCE_PREFIX",
    "SampleProduct",
    "SeededProducts",
    "corrupt_image",
    "ensure_bucket",
    "render_product_image",
    "sample_products",
    "seed_products",
]
