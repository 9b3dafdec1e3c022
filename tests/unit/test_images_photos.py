"""Real product photos: EXIF orientation, colour profiles, CMYK, palettes, 16-bit, HEIC.

Every file is made here, by Pillow, pillow-heif or by hand (a 16-bit RGB PNG, a Display P3 ICC
profile), then read back the way the service would: pixels only, metadata ignored. The helpers are
shared with the ingestion tests against S3 (``tests/s3/test_product_images_photos.py``).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from airflow_provider_cogvideo.capabilities import capabilities_for
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import install_line
from airflow_provider_cogvideo.image_pixels import inspect_image, normalized_jpeg
from airflow_provider_cogvideo.prepare import prepare_images

COGVIDEOX = capabilities_for("cogvideox-3")
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
P3_COLOUR = (200, 80, 60)
"""A warm red well inside both gamuts: in sRGB the same colour needs visibly different numbers."""


# ------------------------------------------------------------------------------------------ makers
def encoded(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def sideways(width: int = 64, height: int = 32) -> Image.Image:
    """Stored landscape: left half red, right half blue."""
    img = Image.new("RGB", (width, height), RED)
    img.paste(BLUE, (width // 2, 0, width, height))
    return img


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """What a phone held upright writes: pixels stored sideways, EXIF orientation 6 ("rotate 90°
    clockwise to show"). Shown upright it is portrait, red on top and blue below."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(sideways(), "JPEG", quality=95, exif=exif.tobytes())


def assert_upright_portrait(img: Image.Image) -> None:
    """``sideways()`` turned by EXIF orientation 6: 32x64, red on top, blue below."""
    assert img.size == (32, 64)
    assert_close(img.convert("RGB").getpixel((16, 12)), RED)
    assert_close(img.convert("RGB").getpixel((16, 52)), BLUE)


def assert_close(actual: object, expected: tuple[int, ...], tolerance: int = 6) -> None:
    assert isinstance(actual, tuple) and len(actual) == len(expected), actual
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


def _s15f16(*values: float) -> bytes:
    return b"".join(struct.pack(">i", round(v * 65536)) for v in values)


P3_COLORANTS = ((0.51512, 0.24120, -0.00105), (0.29198, 0.69225, 0.04189), (0.15710, 0.06657, 0.78407))
"""Display P3's red, green and blue, adapted to D50 (the ICC connection space), as in Apple's profile."""
P3_GAMMA = 2.2
D50 = (0.9642, 1.0, 0.8249)


def display_p3_profile(description: str = "Display P3 (test, gamma 2.2)") -> bytes:
    """An ICC v2 matrix/TRC display profile built byte by byte: P3 primaries, D50, gamma 2.2."""

    def xyz(values: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + _s15f16(*values)

    text = description.encode("ascii")
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(P3_GAMMA * 256))
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(D50)),
        (b"rXYZ", xyz(P3_COLORANTS[0])),
        (b"gXYZ", xyz(P3_COLORANTS[1])),
        (b"bXYZ", xyz(P3_COLORANTS[2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0No copyright, test profile\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = (
        struct.pack(">II", size, 0)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2026, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + _s15f16(*D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


def _srgb_encode(linear: float) -> float:
    linear = min(max(linear, 0.0), 1.0)
    return 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


SRGB_D50 = ((0.4360747, 0.2225045, 0.0139322), (0.3850649, 0.7168786, 0.0971045), (0.1430804, 0.0606169, 0.7141733))
"""sRGB's primaries adapted to D50 (Bradford), as LittleCMS builds its sRGB profile."""


def _solve(columns: tuple[tuple[float, float, float], ...], target: list[float]) -> list[float]:
    """x with sum(x[i] * columns[i]) == target (Cramer's rule on a 3x3 matrix)."""

    def det(c: tuple[tuple[float, float, float], ...]) -> float:
        (a, d, g), (b, e, h), (c_, f, i) = c
        return a * (e * i - f * h) - b * (d * i - f * g) + c_ * (d * h - e * g)

    whole = det(columns)
    return [det(tuple(tuple(target) if j == k else columns[j] for j in range(3))) / whole for k in range(3)]


def p3_in_srgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """The same colour in sRGB numbers, by the colorimetry (not by LittleCMS): P3 → XYZ D50 → sRGB."""
    linear = [(v / 255) ** P3_GAMMA for v in rgb]
    xyz = [sum(linear[k] * P3_COLORANTS[k][axis] for k in range(3)) for axis in range(3)]
    srgb_linear = _solve(SRGB_D50, xyz)
    return tuple(round(_srgb_encode(v) * 255) for v in srgb_linear)  # type: ignore[return-value]


def p3_jpeg() -> bytes:
    return encoded(Image.new("RGB", (64, 64), P3_COLOUR), "JPEG", quality=95, icc_profile=display_p3_profile())


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_jpeg() -> bytes:
    """Pure process red (no cyan, full magenta and yellow, no black), as a print shop exports it."""
    return encoded(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG", quality=95)


def palette_png_with_transparency() -> bytes:
    """A palette PNG whose right half uses a fully transparent entry (a cut-out product shot)."""
    img = Image.new("P", (64, 32), 0)
    img.putpalette([*RED, 0, 0, 0])
    img.paste(1, (32, 0, 64, 32))
    return encoded(img, "PNG", transparency=1)


def gray16_png() -> bytes:
    """16-bit grey: left half 0x8000 (mid grey), right half 0x4000 (dark grey)."""
    row = struct.pack("<32H", *[0x8000] * 32) + struct.pack("<32H", *[0x4000] * 32)
    return encoded(Image.frombytes("I;16", (64, 16), row * 16), "PNG")


RGB16 = (0x8000, 0x4000, 0xC000)
"""A 16-bit colour and, in 8 bits, about (128, 64, 192)."""


def rgb16_png(width: int = 32, height: int = 16) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow only writes 16-bit grey)."""
    pixel = struct.pack(">HHH", *RGB16)
    rows = b"".join(b"\0" + pixel * width for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def heic_photo() -> bytes:
    """An iPhone-style HEIC: pixels stored sideways with EXIF orientation 6 (pillow-heif writes it as
    the HEIF rotation that iPhones use)."""
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    pillow_heif.from_pillow(sideways()).save(out, format="HEIF", quality=95, exif=exif.tobytes())
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def wire_bytes(wire: str) -> bytes:
    head, _, payload = wire.partition(",")
    assert head.endswith(";base64")
    return base64.b64decode(payload)


# ------------------------------------------------------------------------------------------ inspection
def test_inspection_reads_what_the_service_would_ignore_or_misread() -> None:
    assert inspect_image(exif_rotated_jpeg()).reencode_reasons() == ["EXIF orientation 6"]
    assert inspect_image(encoded(sideways(), "JPEG")).reencode_reasons() == []
    assert inspect_image(p3_jpeg()).reencode_reasons() == ["ICC profile 'Display P3 (test, gamma 2.2)'"]
    srgb = encoded(sideways(), "JPEG", icc_profile=srgb_profile())
    assert inspect_image(srgb).srgb and inspect_image(srgb).reencode_reasons() == []
    assert inspect_image(cmyk_jpeg()).reencode_reasons() == ["CMYK pixels"]
    assert inspect_image(palette_png_with_transparency()).reencode_reasons() == ["transparency"]
    assert inspect_image(gray16_png()).reencode_reasons() == ["16-bit", "I;16 pixels"]
    rgb16 = inspect_image(rgb16_png())
    assert (rgb16.mode, rgb16.bits, rgb16.reencode_reasons()) == ("RGB", 16, ["16-bit"])
    opaque_rgba = encoded(Image.new("RGBA", (8, 8), (*RED, 255)), "PNG")
    assert inspect_image(opaque_rgba).reencode_reasons() == ["RGBA pixels"]


# ------------------------------------------------------------------------------------------ re-encoding
def test_exif_orientation_is_applied_and_dropped() -> None:
    jpeg, info = normalized_jpeg(exif_rotated_jpeg(), 5 * 1024 * 1024, label="image")
    img = opened(jpeg)
    assert_upright_portrait(img)
    assert img.getexif().get(0x0112) is None, "no orientation left for a viewer to apply twice"
    assert (info.format, info.width, info.height, info.orientation) == ("jpeg", 32, 64, 1)


def test_a_display_p3_photo_is_converted_to_srgb_numbers_and_says_so() -> None:
    """The service ignores profiles: only sRGB numbers look right to it. The colour, not the tag,
    must survive; the result carries the sRGB profile so colour-managed viewers agree."""
    expected = p3_in_srgb(P3_COLOUR)
    assert all(5 < v < 250 for v in expected), "inside sRGB: nothing clipped"
    assert max(abs(a - b) for a, b in zip(expected, P3_COLOUR, strict=True)) > 10, "a difference one can see"
    jpeg, info = normalized_jpeg(p3_jpeg(), 5 * 1024 * 1024, label="image")
    img = opened(jpeg)
    assert_close(img.getpixel((32, 32)), expected, tolerance=4)
    assert info.icc is not None and "sRGB" in info.icc
    assert "sRGB" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"])))


def test_an_srgb_profile_is_kept_as_it_is() -> None:
    profile = srgb_profile()
    webp = encoded(Image.new("RGB", (64, 64), P3_COLOUR), "WEBP", quality=100, icc_profile=profile)
    jpeg, _ = normalized_jpeg(webp, 5 * 1024 * 1024, label="image")
    img = opened(jpeg)
    assert img.info["icc_profile"] == profile
    assert_close(img.getpixel((32, 32)), P3_COLOUR)


def test_cmyk_palette_transparency_and_16_bit_become_the_rgb_they_show() -> None:
    limit = 5 * 1024 * 1024
    cmyk = opened(normalized_jpeg(cmyk_jpeg(), limit, label="image")[0])
    assert (cmyk.mode, cmyk.format) == ("RGB", "JPEG")
    assert_close(cmyk.getpixel((32, 24)), RED, tolerance=10)

    palette = opened(normalized_jpeg(palette_png_with_transparency(), limit, label="image")[0])
    assert palette.mode == "RGB"
    assert_close(palette.getpixel((8, 16)), RED, tolerance=10)
    assert_close(palette.getpixel((56, 16)), WHITE, tolerance=3)  # flattened on white, not black

    gray = opened(normalized_jpeg(gray16_png(), limit, label="image")[0])
    assert_close(gray.getpixel((8, 8)), (128, 128, 128), tolerance=3)  # scaled, not clipped to white
    assert_close(gray.getpixel((56, 8)), (64, 64, 64), tolerance=3)

    rgb16 = opened(normalized_jpeg(rgb16_png(), limit, label="image")[0])
    assert_close(rgb16.getpixel((16, 8)), (128, 64, 192), tolerance=4)


def test_heic_decodes_upright_with_the_extra() -> None:
    data = heic_photo()
    info = inspect_image(data)
    assert info.format == "heif"
    jpeg, _ = normalized_jpeg(data, 5 * 1024 * 1024, label="image")
    assert_upright_portrait(opened(jpeg))


_WITHOUT_PILLOW_HEIF = """
import sys
sys.modules["pillow_heif"] = None  # what an install without the heif extra has: no such module
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.image_pixels import inspect_image
try:
    inspect_image(open(sys.argv[1], "rb").read(), label="s3://photos/iphone.heic")
except CogVideoValidationError as exc:
    print(exc)
else:
    print("decoded")
"""


def test_heic_without_the_extra_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "iphone.heic"
    path.write_bytes(heic_photo())
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PILLOW_HEIF, str(path)], capture_output=True, text=True, check=True
    )
    message = run.stdout.strip().splitlines()[-1]
    assert "s3://photos/iphone.heic" in message and "HEIC/HEIF" in message
    assert install_line("heif") in message and "pip install 'airflow-provider-cogvideo[heif]'" in message


def test_heif_opener_is_registered_only_when_a_photo_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "iphone.heic"
    path.write_bytes(heic_photo())
    code = (
        "import sys; from airflow_provider_cogvideo.image_pixels import inspect_image; "
        "from airflow_provider_cogvideo.prepare import prepare_images; "
        "from PIL import Image; inspect_image(open(sys.argv[2], 'rb').read()); "
        "before = 'pillow_heif' in sys.modules; inspect_image(open(sys.argv[1], 'rb').read()); "
        "print(before, 'pillow_heif' in sys.modules)"
    )
    png = tmp_path / "plain.png"
    png.write_bytes(encoded(sideways(), "PNG"))
    run = subprocess.run([sys.executable, "-c", code, str(path), str(png)], capture_output=True, text=True, check=True)
    assert run.stdout.split()[-2:] == ["False", "True"]


# ------------------------------------------------------------------------------------------ generate path
def test_generate_sends_a_rotated_jpeg_upright(tmp_path: Path) -> None:
    """prepare_images sends file/base64/s3 images as they are; one whose EXIF says "rotated" would arrive
    sideways (the service ignores EXIF), so it goes as an upright JPEG. The fingerprint's digest stays
    the one of the bytes read (a Pillow upgrade between retries must not look like a new request)."""
    path = tmp_path / "portrait.jpg"
    path.write_bytes(exif_rotated_jpeg())
    (image,) = prepare_images(str(path), COGVIDEOX, aws_conn_id=None)
    assert image.wire.startswith("data:image/jpeg;base64,")
    assert_upright_portrait(opened(wire_bytes(image.wire)))
    assert image.info is not None and (image.info.width, image.info.height) == (32, 64)
    assert image.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert image.source == str(path)


def test_generate_passes_an_upright_jpeg_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "flat.jpg"
    path.write_bytes(exif_rotated_jpeg(orientation=1))
    (image,) = prepare_images(str(path), COGVIDEOX, aws_conn_id=None)
    assert wire_bytes(image.wire) == path.read_bytes()


def test_generate_sends_a_heic_as_an_upright_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "iphone.heic"
    path.write_bytes(heic_photo())
    (image,) = prepare_images(str(path), COGVIDEOX, aws_conn_id=None)
    assert image.wire.startswith("data:image/jpeg;base64,")
    assert_upright_portrait(opened(wire_bytes(image.wire)))


def test_generate_still_refuses_what_cannot_be_fixed(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(exif_rotated_jpeg()[:200])
    with pytest.raises(CogVideoValidationError, match="not a decodable image"):
        prepare_images(str(path), COGVIDEOX, aws_conn_id=None)


def test_p3_profile_helper_is_a_real_profile() -> None:
    """The hand-built profile is read by LittleCMS as what it says (guards the test oracle itself)."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile()))
    assert ImageCms.getProfileDescription(profile).strip() == "Display P3 (test, gamma 2.2)"
    assert profile.profile.xcolor_space.strip() == "RGB"
    assert json.dumps(p3_in_srgb((255, 255, 255))) == "[255, 255, 255]"  # white stays white (same D50 white)
