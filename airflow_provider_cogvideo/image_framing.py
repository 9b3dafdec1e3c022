"""A product photo framed to a video's shape (Pillow): one prepared first frame per ad format.

In image-to-video the photo *is* the first frame: the model continues it, so its shape becomes the
video's composition. A 4:3 catalog photo sent for a 9:16 video is stretched, cropped or bordered by
the service in a way nobody chose; :func:`framed_jpeg` makes that choice here, the same way every
time, to exactly the frame :func:`~airflow_provider_cogvideo.formats.choose_format` picked:

* ``"pad"`` (the default, :data:`DEFAULT_FIT`): the whole photo scaled to fit inside the frame, the
  bars filled with the mean colour of the photo's outer border. Nothing of the product is ever cut
  off: a crop that cuts the product in the first frame cuts it out of every frame after it. Most
  product shots stand on a plain studio backdrop, whose colour is what the border holds, so the bars
  read as more backdrop and the model tends to extend the scene into them.
* ``"crop"``: the photo scaled to cover the frame and cut to it around its centre: no bars, for
  photos whose subject sits well inside the picture.

The photo is decoded as :mod:`.image_pixels` decodes every input (the pixel budget and integrity
check of :func:`~airflow_provider_cogvideo.image_pixels.inspect_image` first, then upright, sRGB,
opaque by :func:`~airflow_provider_cogvideo.image_pixels.normalized_rgb`) and encoded by its JPEG
encoder under the model's byte limit. Scaling up is allowed (a small catalog photo still gets its
frame: the model renders at its own size either way). No randomness: the same bytes give the same
JPEG, so a retried task sends, and fingerprints, the same image.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.image_pixels import ImageInfo, encode_jpeg, inspect_image, normalized_rgb, open_image

if TYPE_CHECKING:
    from PIL import Image as PILImage

FIT_MODES = ("pad", "crop")
DEFAULT_FIT = "pad"
"""Never cuts the product off (see the module's docstring)."""
BORDER_FRACTION = 0.015
"""The outer strip whose mean colour fills the bars: 1.5 % of each side's length, at least a pixel;
thin enough to hold only backdrop, thick enough not to be one stray edge row of JPEG noise."""
MAX_FRAME_SIDE = 8192
"""Frames are video sizes; anything larger is a caller's mistake, not a frame."""
ALREADY_FRAMED_TOLERANCE = 100
""":func:`already_framed` accepts a ratio within 1/100 (1 %) of the frame's."""


def checked_fit(fit: str) -> str:
    """``fit`` if it is one of :data:`FIT_MODES` (any case), else a validation error naming them."""
    folded = fit.strip().lower() if isinstance(fit, str) else fit
    if folded not in FIT_MODES:
        raise CogVideoValidationError("fit", f"must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    return folded


def border_colour(img: PILImage.Image) -> tuple[int, int, int]:
    """The mean colour of the outer :data:`BORDER_FRACTION` strip on all four sides of an RGB image
    (each pixel counted once), rounded."""
    from PIL import ImageStat

    width, height = img.size
    across = max(1, round(width * BORDER_FRACTION))
    down = max(1, round(height * BORDER_FRACTION))
    if 2 * across >= width or 2 * down >= height:
        boxes = [(0, 0, width, height)]
    else:
        boxes = [
            (0, 0, width, down),
            (0, height - down, width, height),
            (0, down, across, height - down),
            (width - across, down, width, height - down),
        ]
    sums, count = [0.0, 0.0, 0.0], 0
    for box in boxes:
        stat = ImageStat.Stat(img.crop(box))
        sums = [total + part for total, part in zip(sums, stat.sum, strict=True)]
        count += stat.count[0]
    r, g, b = (round(total / count) for total in sums)
    return r, g, b


def decode_at_frame_scale(img: PILImage.Image, width: int, height: int, fit: str, orientation: int) -> None:
    """Let a JPEG decode at the smallest of its DCT scales (1/2, 1/4, 1/8) that still covers the frame
    (Pillow's ``draft``; before anything is decoded): a 12 MP phone photo framed to 1080x1920 decodes at
    1500x2000, and its decode is most of the framing's time (benchmarks/README.md, section 10). The
    frame is then resampled from at least as many pixels as it has, as before."""
    if img.format != "JPEG":
        return
    stored_w, stored_h = img.size
    shown_w, shown_h = (stored_h, stored_w) if orientation in (5, 6, 7, 8) else (stored_w, stored_h)
    scale = (max if fit == "crop" else min)(width / shown_w, height / shown_h)
    if scale < 0.5:
        img.draft(img.mode, (math.ceil(stored_w * scale), math.ceil(stored_h * scale)))


def _framed(img: PILImage.Image, width: int, height: int, fit: str) -> PILImage.Image:
    from PIL import Image, ImageOps

    if img.size == (width, height):
        return img
    if fit == "crop":
        return ImageOps.fit(img, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    return ImageOps.pad(
        img, (width, height), method=Image.Resampling.LANCZOS, color=border_colour(img), centering=(0.5, 0.5)
    )


def framed_jpeg(
    data: bytes, width: int, height: int, *, fit: str, max_bytes: int, label: str, info: ImageInfo | None = None
) -> bytes:
    """The image in ``data`` as a JPEG of exactly ``width`` x ``height`` and at most ``max_bytes``.

    ``fit`` is ``"pad"`` (whole photo, bars of its border colour) or ``"crop"`` (cover, centre cut),
    see the module's docstring. Raises a validation error naming ``label`` when the image cannot be
    decoded (as :func:`~airflow_provider_cogvideo.image_pixels.inspect_image` does) or does not fit
    ``max_bytes`` at that size even at the encoder's lowest quality (a smaller frame would no longer
    be the one the request asks for); ``fit`` is checked first (field ``fit``). ``info`` is
    ``inspect_image``'s finding on these very bytes, when the caller already has it (ingestion, once per
    product for all its formats); without it the bytes are inspected here (pixel budget first)."""
    from PIL import Image

    fit = checked_fit(fit)
    for side in (width, height):
        if not isinstance(side, int) or isinstance(side, bool) or not 1 <= side <= MAX_FRAME_SIDE:
            raise ValueError(f"frame sides must be integers from 1 to {MAX_FRAME_SIDE}, got {width}x{height}")
    if info is None:
        info = inspect_image(data, label=label)
    try:
        with open_image(data, label=label) as img:
            decode_at_frame_scale(img, width, height, fit, info.orientation)
            rgb, icc = normalized_rgb(img)
        frame = _framed(rgb, width, height, fit)
        if icc:
            frame.info["icc_profile"] = icc  # read back by encode_jpeg, which embeds it
        jpeg = encode_jpeg(frame, max_bytes)
    except CogVideoValidationError:
        raise
    except (ValueError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CogVideoValidationError(
            label, f"cannot be framed to {width}x{height} ({type(exc).__name__}: {exc})"
        ) from None
    with Image.open(io.BytesIO(jpeg)) as out:
        if out.size != (width, height):
            raise CogVideoValidationError(
                label, f"cannot be framed to {width}x{height} within {max_bytes} bytes as a JPEG"
            )
    return jpeg


def already_framed(info_width: int, info_height: int, width: int, height: int) -> bool:
    """The source (``info_width`` x ``info_height``) has the frame's aspect ratio within 1 %
    (integers compared: no float rounding), so it needs no framing: the caller may send it as it is
    when nothing else (format, size, orientation) asks for a re-encode."""
    if min(info_width, info_height, width, height) <= 0:
        return False
    return abs(info_width * height - info_height * width) * ALREADY_FRAMED_TOLERANCE <= info_height * width


__all__ = [
    "DEFAULT_FIT",
    "FIT_MODES",
    "already_framed",
    "border_colour",
    "checked_fit",
    "framed_jpeg",
]
