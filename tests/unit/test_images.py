"""Input images: bytes capped as they are read, pixels budgeted before they are decoded.

Every file here is made by the test with Pillow. The "bomb" is a PNG of a few KB whose header
announces just over :data:`MAX_IMAGE_PIXELS`: refused from its header, it must never be decoded.
"""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from airflow_provider_cogvideo import image_sources
from airflow_provider_cogvideo.capabilities import capabilities_for
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.image_pixels import MAX_IMAGE_PIXELS, inspect_image
from airflow_provider_cogvideo.prepare import prepare_images
from airflow_provider_cogvideo.s3 import ObjectTooLargeError, read_capped
from airflow_provider_cogvideo.sizes import MiB
from tests.conftest import BOMB_SIDE

COGVIDEOX = capabilities_for("cogvideox-3")  # 5 MB images, PNG/JPEG


def encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def noise(size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(3).randbytes(size[0] * size[1] * 3))


# ---------------------------------------------------------------------------------------------- pixels
def test_png_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(
    png_bomb: bytes, pixel_loads: list[tuple[int, int]]
) -> None:
    with pytest.raises(CogVideoValidationError) as exc_info:
        inspect_image(png_bomb, label="image[1]")
    assert exc_info.value.field == "image[1]"
    assert f"{BOMB_SIDE}x{BOMB_SIDE} is 41.0 megapixels, over the 40-megapixel budget" in str(exc_info.value)
    assert pixel_loads == [], "not one pixel may be decoded"


def test_png_bomb_as_operator_input_fails_naming_the_field(png_bomb: bytes, tmp_path: Path) -> None:
    path = tmp_path / "product.png"
    path.write_bytes(png_bomb)
    with pytest.raises(CogVideoValidationError, match=r"^image: .*megapixel budget"):
        prepare_images(str(path), COGVIDEOX, aws_conn_id=None)


def test_pixel_budget_sits_well_below_pillows_thresholds() -> None:
    """Pillow decodes everything below its error threshold (2x ``MAX_IMAGE_PIXELS``), with only a
    warning above 1x: our budget must refuse that whole range first."""
    assert MAX_IMAGE_PIXELS <= Image.MAX_IMAGE_PIXELS // 2


def test_pillows_bomb_warning_and_error_never_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment may lower Pillow's threshold below our budget: its warning (an image decoded in
    full with a warning, before) and its error both become a validation error naming the field."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    warned = encoded(Image.new("RGB", (120, 100)), "PNG")  # 12,000 px: over 1x, Pillow warns
    refused = encoded(Image.new("RGB", (150, 150)), "PNG")  # 22,500 px: over 2x, Pillow raises
    for data in (warned, refused):
        with pytest.raises(CogVideoValidationError, match=r"^image: image too large to decode safely"):
            inspect_image(data, label="image")


def test_jpeg_integrity_is_decoded_at_one_eighth_scale(pixel_loads: list[tuple[int, int]]) -> None:
    data = encoded(noise((800, 600)), "JPEG")
    info = inspect_image(data)
    assert (info.format, info.width, info.height) == ("jpeg", 800, 600), "the header's size is reported"
    assert pixel_loads == [(100, 75)], "decoded at 1/64 of the pixels"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_is_still_refused(fmt: str) -> None:
    data = encoded(noise((400, 300)), fmt)
    with pytest.raises(CogVideoValidationError, match=r"not a decodable image \(OSError: image file is truncated"):
        inspect_image(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------- bytes
OVER_LIMIT = 5 * MiB + 1


def test_local_file_over_the_limit_is_refused_from_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(OVER_LIMIT)  # sparse: costs no disk
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file must not be read"))
    with pytest.raises(CogVideoValidationError, match=r"huge\.png: 5\.0 MB is over the 5\.0 MB limit of 'cogvideox-3'"):
        prepare_images(str(path), COGVIDEOX, aws_conn_id=None)


@pytest.mark.parametrize("prefix", ["", "data:image/png;base64,"])
def test_base64_over_the_limit_is_refused_before_decoding(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    longest_allowed = 4 * -(-(5 * MiB) // 3)  # base64 characters of 5 MiB, padding included
    text = prefix + "A" * (longest_allowed + 4)
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: pytest.fail("must not be decoded"))
    with pytest.raises(CogVideoValidationError, match=r"^image: .* is over the 5\.0 MB limit of 'cogvideox-3'"):
        prepare_images(text, COGVIDEOX, aws_conn_id=None)


def test_base64_at_the_limit_is_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoded-length bound is exact: base64 of exactly the limit is not refused for its length."""
    limit = image_sources.ByteLimit(3 * 1000, "of the test")
    text = base64.b64encode(b"\0" * limit.max_bytes).decode()
    assert image_sources._decode_base64(text, "image", limit, "base64") == b"\0" * limit.max_bytes


class _Body:
    """A botocore StreamingBody stand-in that counts what is read from it."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.served = 0
        self.closed = False

    def read(self, amt: int) -> bytes:
        chunk = b"\0" * min(amt, self.left)
        self.left -= len(chunk)
        self.served += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


class _Client:
    def __init__(self, body: _Body, content_length: int | None) -> None:
        self.body = body
        self.content_length = content_length

    def get_object(self, **_: Any) -> dict[str, Any]:
        answer: dict[str, Any] = {"Body": self.body}
        if self.content_length is not None:
            answer["ContentLength"] = self.content_length
        return answer


def test_read_capped_refuses_from_content_length_without_reading() -> None:
    body = _Body(10 * MiB)
    with pytest.raises(ObjectTooLargeError, match=r"s3://b/k holds 10485760 bytes, over the limit of 1048576"):
        read_capped(_Client(body, 10 * MiB), "b", "k", 1 * MiB)
    assert body.served == 0 and body.closed


@pytest.mark.parametrize("stated", [None, 100], ids=["no-length", "understated-length"])
def test_read_capped_stops_one_byte_past_the_cap(stated: int | None) -> None:
    body = _Body(10 * MiB)
    with pytest.raises(ObjectTooLargeError, match="more than 1048576 bytes"):
        read_capped(_Client(body, stated), "b", "k", 1 * MiB)
    assert body.served == 1 * MiB + 1 and body.closed
    small = _Body(1000)
    assert read_capped(_Client(small, None), "b", "k", 1 * MiB) == b"\0" * 1000


@pytest.fixture
def s3_bucket(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket="products")
    return moto_s3


def test_s3_object_over_the_limit_is_refused_before_its_body_is_read(
    s3_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.response import StreamingBody

    s3_bucket.put_object(Bucket="products", Key="big.png", Body=b"\0" * OVER_LIMIT)
    s3_bucket.put_object(Bucket="products", Key="ok.png", Body=encoded(Image.new("RGB", (64, 48)), "PNG"))
    read_sizes: list[int | None] = []
    real = StreamingBody.read

    def spy(self: StreamingBody, amt: int | None = None) -> bytes:
        read_sizes.append(amt)
        return real(self, amt)

    monkeypatch.setattr(StreamingBody, "read", spy)
    with pytest.raises(CogVideoValidationError, match=r"s3://products/big\.png: 5\.0 MB is over the 5\.0 MB limit"):
        prepare_images("s3://products/big.png", COGVIDEOX, aws_conn_id="aws_test")
    assert read_sizes == []
    (ok,) = prepare_images("s3://products/ok.png", COGVIDEOX, aws_conn_id="aws_test")
    assert ok.info is not None and ok.info.width == 64
    assert None not in read_sizes, "the body is never read without a bound"


def test_model_limits_above_the_provider_ceiling_are_capped() -> None:
    huge = COGVIDEOX.with_overrides({"image_max_bytes": 10 * image_sources.MAX_SOURCE_BYTES})
    limit = image_sources.ByteLimit.for_model(huge)
    assert limit.max_bytes == image_sources.MAX_SOURCE_BYTES


# ---------------------------------------------------------------------------------------------- shown
def test_url_images_are_summarised_without_their_signature() -> None:
    signed = "https://cdn.test/p.png?X-Amz-Signature=abc123&X-Amz-Security-Token=tok456"
    (image,) = prepare_images(signed, COGVIDEOX, aws_conn_id=None)
    assert image.wire == signed, "the service still gets the URL it can fetch"
    assert image.source == "https://cdn.test/p.png?<redacted>"
    assert "abc123" not in image.source and "tok456" not in image.source
