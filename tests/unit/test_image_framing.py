"""A product photo framed to a video's shape: padded with its border's colour, or cropped to cover."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.image_framing import DEFAULT_FIT, FIT_MODES, already_framed, border_colour, framed_jpeg
from airflow_provider_cogvideo.sizes import MiB

RED = (220, 20, 20)
BLUE = (20, 20, 220)
DARK, LIGHT = (100, 100, 100), (160, 160, 160)
BORDER_MEAN = (130, 130, 130)
"""The mean of the backdrop below: left half DARK, right half LIGHT. It appears nowhere in the photo,
so a bar of it can only come from the border's mean (not a corner pixel, not a fixed colour)."""


def encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def product_photo(width: int = 400, height: int = 300) -> Image.Image:
    """A 4:3 product shot: a red product in the middle half of a two-tone studio backdrop."""
    img = Image.new("RGB", (width, height), DARK)
    img.paste(LIGHT, (width // 2, 0, width, height))
    img.paste(RED, (width // 4, height // 4, width * 3 // 4, height * 3 // 4))
    return img


def framed(data: bytes, width: int = 1080, height: int = 1920, *, fit: str = DEFAULT_FIT) -> Image.Image:
    jpeg = framed_jpeg(data, width, height, fit=fit, max_bytes=5 * MiB, label="image_url[0]")
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return img.convert("RGB")


def assert_close(actual: object, expected: tuple[int, ...], tolerance: int = 8) -> None:
    assert isinstance(actual, tuple) and len(actual) == len(expected), actual
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


def is_red(pixel: object) -> bool:
    assert isinstance(pixel, tuple)
    r, g, b = pixel[:3]
    return r > 180 and g < 70 and b < 70


def test_the_border_colour_is_the_mean_of_all_four_sides() -> None:
    assert border_colour(product_photo()) == BORDER_MEAN


def test_pad_keeps_the_whole_photo_between_bars_of_its_border_colour() -> None:
    img = framed(encoded(product_photo(), "PNG"))
    assert img.size == (1080, 1920)
    # 400x300 fits as 1080x810, centred: bars above y=555 and below y=1365.
    for bar in ((540, 200), (100, 100), (980, 1800), (540, 1700)):
        assert_close(img.getpixel(bar), BORDER_MEAN)
    assert is_red(img.getpixel((540, 960)))
    # The photo's own backdrop reaches the frame's sides: the product is whole, nothing cut.
    assert_close(img.getpixel((5, 960)), DARK)
    assert_close(img.getpixel((1074, 960)), LIGHT)
    assert not is_red(img.getpixel((540, 700))), "above the product: still the backdrop"


def test_crop_covers_the_frame_with_the_centre_of_the_photo() -> None:
    img = framed(encoded(product_photo(), "PNG"), fit="crop")
    assert img.size == (1080, 1920)
    # 400x300 covers as 2560x1920: the middle 1080 columns are all product at mid-height.
    assert is_red(img.getpixel((5, 960))) and is_red(img.getpixel((1074, 960))), "no bars at the sides"
    for top_and_bottom in ((540, 100), (540, 1820)):
        pixel = img.getpixel(top_and_bottom)
        assert not is_red(pixel)
        assert_close(pixel, BORDER_MEAN, tolerance=40)  # the backdrop itself (DARK or LIGHT), no bar


def test_a_landscape_frame_pads_at_the_sides() -> None:
    img = framed(encoded(product_photo(300, 400), "PNG"), 1920, 1080)
    assert img.size == (1920, 1080)
    assert_close(img.getpixel((100, 540)), border_colour(product_photo(300, 400)))
    assert is_red(img.getpixel((960, 540)))


def test_exif_rotation_is_applied_before_framing() -> None:
    """Stored landscape (left red, right blue) with EXIF orientation 6: shown upright it is portrait,
    red on top. Framed unrotated, the middle column would be bars above and below a landscape strip."""
    stored = Image.new("RGB", (200, 100), RED)
    stored.paste(BLUE, (100, 0, 200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6
    img = framed(encoded(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert img.size == (1080, 1920)
    assert img.getexif().get(0x0112) is None
    assert is_red(img.getpixel((540, 400)))
    assert_close(img.getpixel((540, 1500)), BLUE, tolerance=40)


def test_transparency_is_flattened_on_white_and_the_bars_follow() -> None:
    rgba = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    rgba.paste((*RED, 255), (75, 75, 225, 225))
    img = framed(encoded(rgba, "PNG"), 1080, 1920)
    assert img.size == (1080, 1920)
    assert_close(img.getpixel((540, 200)), (255, 255, 255))
    assert is_red(img.getpixel((540, 960)))


def test_the_same_bytes_give_the_same_jpeg() -> None:
    data = encoded(product_photo(), "PNG")
    for fit in FIT_MODES:
        first = framed_jpeg(data, 720, 1280, fit=fit, max_bytes=5 * MiB, label="image")
        assert framed_jpeg(data, 720, 1280, fit=fit, max_bytes=5 * MiB, label="image") == first


def test_the_byte_limit_is_kept_at_the_exact_frame() -> None:
    rng = random.Random(7)
    noise = Image.frombytes("RGB", (320, 240), bytes(rng.randrange(256) for _ in range(320 * 240 * 3)))
    data = encoded(noise, "PNG")
    best = framed_jpeg(data, 720, 1280, fit="crop", max_bytes=50 * MiB, label="image")
    capped = framed_jpeg(data, 720, 1280, fit="crop", max_bytes=len(best) - 1, label="image")
    assert len(capped) < len(best)
    assert Image.open(io.BytesIO(capped)).size == (720, 1280)
    with pytest.raises(CogVideoValidationError, match="cannot be framed to 720x1280") as caught:
        framed_jpeg(data, 720, 1280, fit="crop", max_bytes=2000, label="image_url[0]")
    assert caught.value.field == "image_url[0]"


@pytest.mark.parametrize("fit", ["stretch", "", None])
def test_an_unknown_fit_is_refused(fit: object) -> None:
    with pytest.raises(CogVideoValidationError) as caught:
        framed_jpeg(encoded(product_photo(), "PNG"), 1080, 1920, fit=fit, max_bytes=MiB, label="image")  # type: ignore[arg-type]
    assert caught.value.field == "fit"
    assert "pad, crop" in str(caught.value)


def test_an_undecodable_image_is_refused_as_inspection_refuses_it() -> None:
    with pytest.raises(CogVideoValidationError, match="not a decodable image") as caught:
        framed_jpeg(b"not an image at all", 1080, 1920, fit="pad", max_bytes=MiB, label="image_url[0]")
    assert caught.value.field == "image_url[0]"


@pytest.mark.parametrize(
    ("source", "frame", "expected"),
    [
        ((1080, 1920), (1080, 1920), True),
        ((720, 1280), (1080, 1920), True),
        ((1000, 1778), (1080, 1920), True),  # 9:16 rounded by a camera: within 1 %
        ((1010, 1000), (1, 1), True),
        ((1011, 1000), (1, 1), False),
        ((400, 300), (1080, 1920), False),
        ((1920, 1080), (1080, 1920), False),
        ((0, 100), (1, 1), False),
    ],
)
def test_already_framed_compares_ratios_within_one_percent(
    source: tuple[int, int], frame: tuple[int, int], expected: bool
) -> None:
    assert already_framed(*source, *frame) is expected


@pytest.mark.parametrize(
    ("stored", "orientation", "frame", "fit", "decoded"),
    [
        ((3000, 4000), 1, (1080, 1920), "pad", (1500, 2000)),  # scale 0.36: 1/2 still covers it
        ((3000, 4000), 1, (1080, 1920), "crop", (1500, 2000)),  # scale 0.48
        ((6000, 8000), 1, (1080, 1920), "pad", (1500, 2000)),  # scale 0.18: 1/4
        ((4000, 3000), 6, (1080, 1920), "pad", (2000, 1500)),  # stored sideways, shown 3000x4000
        ((1200, 1200), 1, (1080, 1920), "pad", (1200, 1200)),  # scale 0.9: decoded whole
    ],
)
def test_a_large_jpeg_decodes_at_the_smallest_scale_covering_the_frame(
    stored: tuple[int, int], orientation: int, frame: tuple[int, int], fit: str, decoded: tuple[int, int]
) -> None:
    from airflow_provider_cogvideo.image_framing import decode_at_frame_scale

    out = io.BytesIO()
    Image.new("RGB", stored, (120, 120, 120)).save(out, format="JPEG")
    with Image.open(io.BytesIO(out.getvalue())) as img:
        decode_at_frame_scale(img, *frame, fit, orientation)
        assert img.size == decoded
    png = io.BytesIO()
    Image.new("RGB", stored, (120, 120, 120)).save(png, format="PNG")
    with Image.open(io.BytesIO(png.getvalue())) as img:
        decode_at_frame_scale(img, *frame, fit, orientation)
        assert img.size == stored, "only JPEG decodes at a reduced scale"
