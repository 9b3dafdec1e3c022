"""What an input image's pixels are, with Pillow: open, inspect, and re-encode so the service sees them right.

:func:`inspect_image` decodes an image far enough to trust it before a paid request: pixels are
counted from the header before any is decoded, and above :data:`MAX_IMAGE_PIXELS` the image is
refused, so a few KB of PNG cannot expand into gigabytes (Pillow's own decompression-bomb warning and
error become the same validation error naming the field); the integrity check (a truncated or corrupt
file is refused here, not billed at the server) decodes within that budget, and JPEGs at 1/8 scale
(every byte of the file is still decoded).

The service reads pixels, not metadata: it ignores EXIF orientation and ICC profiles. So what is
re-encoded is made to look the same without them (:func:`normalized_jpeg`): turned upright
(``ImageOps.exif_transpose``), converted to sRGB when it carries another colour profile (Display P3
from a phone, Adobe RGB, a CMYK press profile: LittleCMS through ``ImageCms``), 16-bit channels scaled
(not clipped) to 8, transparency flattened on white, CMYK and palettes made RGB. HEIC/HEIF photos
(iPhones) decode through the optional ``heif`` extra (``pillow-heif``, registered only when such a
photo comes along); no model accepts them, so they are sent as JPEGs.

Pillow is an optional extra (``images``, see :mod:`.extras`), imported where it is used, so importing
this module costs nothing; callers check the extra before they hand bytes over.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_cogvideo.capabilities import COGVIDEOX_IMAGE_FORMATS
from airflow_provider_cogvideo.errors import CogVideoMissingExtraError, CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra
from airflow_provider_cogvideo.sizes import human_size

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

_PILLOW_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
MAX_IMAGE_PIXELS = 40_000_000
"""Images with more pixels are refused from their header, before a pixel is decoded.

40 megapixels holds a full-resolution photo of up to 40 MP (8000x5000) and is nearly five times the
largest video frame any model renders (3840x2160), while a full decode stays under 160 MB (RGBA).
It is well below Pillow's own thresholds (``Image.MAX_IMAGE_PIXELS``, ~89 MP, warns; twice that
raises), between which an image would otherwise be decoded in full."""
_JPEG_DRAFT_SIZE = (1, 1)
"""Asked of ``Image.draft``: the smallest scale libjpeg offers (1/8 per side, 1/64 of the pixels).
Every entropy-coded byte is still decoded, so truncation and corruption are found as in a full decode."""
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})
"""ISO-BMFF ``ftyp`` brands of HEIF images (``mif1``/``msf1`` also start AVIF files, which Pillow reads itself)."""
_EXIF_ORIENTATION = 0x0112
_PASS_THROUGH_MODES = frozenset({"RGB", "L"})
"""Pixel modes every decoder shows the same way: 8-bit RGB or grey without transparency."""
_JPEG_QUALITIES = (90, 80, 70)
_MIN_LONG_SIDE = 512
"""A re-encode that needs to scale down stops here: smaller is no longer a usable product photo."""


@dataclass(frozen=True)
class ImageInfo:
    """What Pillow found in an image's bytes."""

    format: str  # lower-case: png, jpeg, webp, heif, ...
    mode: str  # Pillow's pixel mode: RGB, RGBA, L, P, CMYK, I;16...
    width: int
    height: int
    n_bytes: int
    orientation: int = 1
    """EXIF orientation: 1 is upright, 2 to 8 mirror and/or rotate (6: a phone held upright)."""
    bits: int = 8
    """Bits per channel as stored (16 for a 16-bit PNG, which Pillow may already show as 8-bit RGB)."""
    transparent: bool = False
    """Some pixel is not fully opaque (an alpha channel below 255, or a transparent palette entry)."""
    icc: str | None = None
    """Description of the embedded ICC colour profile ("" when unreadable), None without one."""

    @property
    def mime(self) -> str:
        return f"image/{self.format}"

    @property
    def srgb(self) -> bool:
        """Pixels already mean sRGB: no profile (sRGB is what one assumes), or an sRGB one."""
        return self.icc is None or _is_srgb_description(self.icc)

    def reencode_reasons(self) -> list[str]:
        """What a decoder that ignores metadata (the service) would get wrong if sent as it is."""
        reasons = []
        if self.orientation != 1:
            reasons.append(f"EXIF orientation {self.orientation}")
        if self.bits > 8:
            reasons.append(f"{self.bits}-bit")
        if self.transparent:
            reasons.append("transparency")
        elif self.mode not in _PASS_THROUGH_MODES:
            reasons.append(f"{self.mode} pixels")
        if not self.srgb:
            reasons.append(f"ICC profile {self.icc!r}")
        return reasons


def _check_pixel_budget(width: int, height: int, label: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise CogVideoValidationError(
            label,
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over the "
            f"{MAX_IMAGE_PIXELS / 1e6:g}-megapixel budget for decoding an image (a decompression bomb, or a "
            "photo to scale down first)",
        )


def _looks_like_heif(data: bytes) -> bool:
    """An ISO-BMFF file whose major brand is a HEIF one (``....ftypheic``)."""
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


_heif_registered = False


def _register_heif(label: str) -> None:
    """Teach Pillow HEIC/HEIF (once, on the first such photo). Without the ``heif`` extra the photo is
    refused as invalid input (ingestion rejects that one photo and goes on), naming the extra."""
    global _heif_registered
    if not _heif_registered:
        try:
            require_extra("heif", needed_for="decoding it")
        except CogVideoMissingExtraError as exc:
            raise CogVideoValidationError(label, f"is a HEIC/HEIF photo; {exc}") from None
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True


def open_image(data: bytes, *, label: str) -> PILImage.Image:
    """``Image.open`` of ``data`` (lazy: nothing decoded yet), HEIC/HEIF included when the extra is
    installed; a HEIF photo without it is refused naming the extra. Pillow's own errors propagate."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if not _looks_like_heif(data):
            raise
    _register_heif(label)
    return Image.open(io.BytesIO(data))


def _png_bit_depth(data: bytes) -> int | None:
    """Bits per channel from a PNG's IHDR (Pillow shows a 16-bit RGB PNG as 8-bit RGB)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 24:
        return data[24]
    return None


def _is_transparent(img: PILImage.Image) -> bool:
    """Some pixel shows through: an alpha channel below 255 somewhere, or a transparency key."""
    if "transparency" in img.info:
        return True
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        low, _high = img.getchannel("A").getextrema()
        return low < 255
    return False


def _is_srgb_description(description: str) -> bool:
    return "srgb" in description.lower()


def _icc_description(icc: bytes) -> str:
    """The profile's description ("" when LittleCMS cannot read it)."""
    from PIL import ImageCms

    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return ""


def inspect_image(data: bytes, *, label: str = "image") -> ImageInfo:
    """Decode an image far enough to trust it; raise a validation error naming ``label`` if not.

    Format, mode and size come from the header; the pixel budget is checked before anything is
    decoded; then the image is decoded (JPEG at 1/8 scale) so a truncated or corrupt file fails here.
    Pillow's decompression-bomb warning is raised as an error while opening, so an image over a
    threshold lowered by the deployment is refused too instead of being decoded with a warning.
    Also read: what the service would ignore (EXIF orientation, the ICC profile) or might misread
    (16-bit channels, transparency), see :meth:`ImageInfo.reencode_reasons`.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_image(data, label=label) as img:
                fmt = _PILLOW_FORMATS.get(img.format or "", (img.format or "unknown").lower())
                width, height = img.size
                mode = img.mode
                _check_pixel_budget(width, height, label)
                if img.format == "JPEG":
                    img.draft(img.mode, _JPEG_DRAFT_SIZE)
                img.load()  # decode the pixels: a truncated or corrupt file fails here, not at the server
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
                transparent = _is_transparent(img)
                icc = img.info.get("icc_profile") or None
    except CogVideoValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CogVideoValidationError(label, f"image too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CogVideoValidationError(label, f"not a decodable image ({type(exc).__name__}: {exc})") from None
    bits = _png_bit_depth(data) or (16 if mode.startswith("I;16") else 8)
    return ImageInfo(
        format=fmt,
        mode=mode,
        width=width,
        height=height,
        n_bytes=len(data),
        orientation=orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
        bits=max(bits, 8),
        transparent=transparent,
        icc=_icc_description(icc) if icc else None,
    )


# ---------------------------------------------------------------------------------------- re-encoding
def _eight_bit(img: PILImage.Image) -> PILImage.Image:
    """16-bit and 32-bit grey scaled to 8 bits. Pillow's own ``convert("L")`` clips at 255: a 16-bit
    scan would arrive white."""
    if img.mode.startswith("I;16"):
        img = img.convert("I")
        return img.point(lambda v: v * (255 / 65535)).convert("L")
    if img.mode == "I":
        _low, high = img.getextrema()
        scale = 255 / 65535 if high <= 65535 else 255 / max(high, 1)
        return img.point(lambda v: v * scale).convert("L")
    if img.mode == "F":
        _low, high = img.getextrema()
        return img.point(lambda v: v * (255 if high <= 1.0 else 1)).convert("L")
    return img


def _split_alpha(img: PILImage.Image) -> tuple[PILImage.Image, PILImage.Image | None]:
    """Colour without transparency, and the alpha to flatten with (None when all is opaque)."""
    if not _is_transparent(img):
        if img.mode in ("RGBA", "RGBa", "PA", "P"):
            return img.convert("RGB"), None
        if img.mode in ("LA", "La"):
            return img.convert("L"), None
        return img, None
    if img.mode in ("L", "LA", "La"):
        grey = img.convert("LA")
        return grey.convert("L"), grey.getchannel("A")
    rgba = img.convert("RGBA")
    return rgba.convert("RGB"), rgba.getchannel("A")


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


_PROFILE_MODES = {"RGB": ("RGB",), "CMYK": ("CMYK",), "GRAY": ("L",)}
"""Pixel modes an ICC profile of each colour space describes."""


def _to_srgb(img: PILImage.Image, icc: bytes) -> PILImage.Image | None:
    """``img`` converted from its profile to sRGB (RGB), or None when the profile cannot be used."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = source.profile.xcolor_space.strip().upper()
        if img.mode not in _PROFILE_MODES.get(space, ()):
            log.warning("ICC profile for %s pixels on a %s image: colours converted without it", space, img.mode)
            return None
        # Perceptual intent (Pillow's default): photos keep their gradation where the gamut is cut.
        converted = ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError) as exc:
        log.warning("Unusable ICC profile (%s): colours converted without it", exc)
        return None
    return converted


def normalized_rgb(img: PILImage.Image) -> tuple[PILImage.Image, bytes | None]:
    """``img`` as upright, opaque, 8-bit sRGB pixels, and the ICC profile to embed with them.

    Orientation: ``ImageOps.exif_transpose`` (the EXIF tag goes with the rest of the metadata: a
    phone photo's EXIF carries its GPS position). Colour: a non-sRGB profile (Display P3, Adobe RGB,
    CMYK press profiles) is *converted* to sRGB rather than carried along, because the service and
    the model read pixel values and ignore profiles: only sRGB pixels look right to them; the sRGB
    profile is then embedded, so colour-managed viewers agree. An sRGB profile is kept as it is;
    none stays none. Transparency is flattened on white (black backgrounds look broken)."""
    from PIL import Image, ImageOps

    icc = img.info.get("icc_profile") or None
    img = ImageOps.exif_transpose(img)
    img, alpha = _split_alpha(_eight_bit(img))
    embed = None
    if icc is not None:
        if _is_srgb_description(_icc_description(icc)):
            embed = icc
        elif (converted := _to_srgb(img, icc)) is not None:
            img, embed = converted, _srgb_profile()
    rgb = img.convert("RGB")
    if alpha is not None:
        background = Image.new("RGB", rgb.size, (255, 255, 255))
        background.paste(rgb, mask=alpha)
        rgb = background
    return rgb, embed


def encode_jpeg(img: PILImage.Image, max_bytes: int) -> bytes:
    """``img`` (see :func:`normalized_rgb`) as a JPEG no bigger than ``max_bytes``: lower quality
    first, then scale down by 3/4 steps; ValueError when even a 512-pixel side does not fit."""
    rgb, icc = normalized_rgb(img)
    extra = {"icc_profile": icc} if icc else {}
    while True:
        for quality in _JPEG_QUALITIES:
            out = io.BytesIO()
            rgb.save(out, format="JPEG", quality=quality, optimize=True, **extra)
            if out.tell() <= max_bytes:
                return out.getvalue()
        width, height = rgb.size
        if max(width, height) * 3 // 4 < _MIN_LONG_SIDE:
            raise ValueError(f"cannot fit into {max_bytes} bytes as a JPEG")
        rgb = rgb.resize((width * 3 // 4, height * 3 // 4))


def normalized_jpeg(data: bytes, max_bytes: int, *, label: str) -> tuple[bytes, ImageInfo]:
    """The image in ``data`` (already inspected) re-encoded by :func:`encode_jpeg`, and what it is now.

    Raises a validation error naming ``label`` when it cannot be decoded or fitted."""
    from PIL import Image

    try:
        with open_image(data, label=label) as img:
            jpeg = encode_jpeg(img, max_bytes)
    except CogVideoValidationError:
        raise
    except (ValueError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CogVideoValidationError(label, f"cannot be re-encoded to fit ({type(exc).__name__}: {exc})") from None
    with Image.open(io.BytesIO(jpeg)) as out:
        width, height = out.size
    icc = _icc_description(out.info["icc_profile"]) if out.info.get("icc_profile") else None
    return jpeg, ImageInfo(format="jpeg", mode="RGB", width=width, height=height, n_bytes=len(jpeg), icc=icc)


def sendable_as_is(data: bytes, max_bytes: int, *, label: str) -> tuple[ImageInfo, list[str]]:
    """What ``data`` is, and why it cannot be sent as it is (empty: it can): a format no CogVideoX
    model takes, what :meth:`ImageInfo.reencode_reasons` finds (rotated, a colour profile, alpha...),
    more than ``max_bytes``. Whatever has a reason is sent as :func:`normalized_jpeg` makes it."""
    info = inspect_image(data, label=label)
    reasons = info.reencode_reasons()
    if info.format not in COGVIDEOX_IMAGE_FORMATS:
        reasons.insert(0, info.format)
    if info.n_bytes > max_bytes:
        reasons.append(human_size(info.n_bytes))
    return info, reasons


__all__ = [
    "MAX_IMAGE_PIXELS",
    "ImageInfo",
    "encode_jpeg",
    "inspect_image",
    "normalized_jpeg",
    "normalized_rgb",
    "sendable_as_is",
]
