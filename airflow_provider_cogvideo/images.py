"""Input images: where they come from, what they are, and how they go on the wire.

An operator's ``image`` argument may be an http(s) URL, a data URI, bare base64, an
``s3://bucket/key`` (read through ``aws_conn_id``) or a local path. Everything but a URL is read
here, inspected with Pillow (decodable? which format? how many bytes and pixels?) and sent as a data
URI, the one base64 form every model accepts. URLs are passed through: the service fetches them.

Nothing is trusted to be as small as it looks, because every check runs before a paid request:

* bytes are capped *as they are read* (the model's ``image_max_bytes``): an S3 object by its
  ``ContentLength`` and a read that stops one byte past the cap, a file by its size before it is
  opened, base64 by its encoded length before it is decoded;
* pixels are counted from the header before any is decoded: above :data:`MAX_IMAGE_PIXELS` the image
  is refused, so a few KB of PNG cannot expand into gigabytes, and Pillow's own decompression-bomb
  warning and error become the same validation error naming the field;
* the integrity check (a truncated or corrupt file is refused here, not billed at the server) decodes
  within that budget, and JPEGs at 1/8 scale (every byte of the file is still decoded).

Pillow and boto3 are imported where they are used, so importing this module costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_cogvideo.capabilities import (
    MiB,
    ModelCapabilities,
    check_frame_pair,
    check_image_properties,
)
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.redact import redact_url
from airflow_provider_cogvideo.s3 import ObjectTooLargeError, read_capped

_DATA_URI_RE = re.compile(r"data:(?P<mime>[\w/+.-]*)?(?P<params>(;[\w=.-]+)*?);base64,\s*(?P<data>.*)", re.DOTALL)
_PILLOW_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
MAX_PATH_CHARS = 4096
"""Longer strings are never taken for a file path (PATH_MAX on Linux): they are base64 or nothing."""
MAX_IMAGE_PIXELS = 40_000_000
"""Images with more pixels are refused from their header, before a pixel is decoded.

40 megapixels holds a full-resolution photo of up to 40 MP (8000x5000) and is nearly five times the
largest video frame any model renders (3840x2160), while a full decode stays under 160 MB (RGBA).
It is well below Pillow's own thresholds (``Image.MAX_IMAGE_PIXELS``, ~89 MP, warns; twice that
raises), between which an image would otherwise be decoded in full: a 640 KB PNG costs 650 MB."""
MAX_SOURCE_BYTES = 100 * MiB
"""Never read more than this for one image, whatever a model row (or ``capability_overrides``) or
ingestion's ``image_max_bytes`` allows: nothing bigger is a product photo or a frame to animate."""
_JPEG_DRAFT_SIZE = (1, 1)
"""Asked of ``Image.draft``: the smallest scale libjpeg offers (1/8 per side, 1/64 of the pixels).
Every entropy-coded byte is still decoded, so truncation and corruption are found as in a full decode."""


@dataclass(frozen=True)
class ImageInfo:
    """What Pillow found in an image's bytes."""

    format: str  # lower-case: png, jpeg, webp, ...
    mode: str  # Pillow's pixel mode: RGB, RGBA, L, P, CMYK, I;16...
    width: int
    height: int
    n_bytes: int

    @property
    def mime(self) -> str:
        return f"image/{self.format}"


def _check_pixel_budget(width: int, height: int, label: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise CogVideoValidationError(
            label,
            f"{width}x{height} is {width * height / 1e6:.1f} megapixels, over the "
            f"{MAX_IMAGE_PIXELS / 1e6:g}-megapixel budget for decoding an image (a decompression bomb, or a "
            "photo to scale down first)",
        )


def inspect_image(data: bytes, *, label: str = "image") -> ImageInfo:
    """Decode an image far enough to trust it; raise a validation error naming ``label`` if not.

    Format, mode and size come from the header; the pixel budget is checked before anything is
    decoded; then the image is decoded (JPEG at 1/8 scale) so a truncated or corrupt file fails here.
    Pillow's decompression-bomb warning is raised as an error while opening, so an image over a
    threshold lowered by the deployment is refused too instead of being decoded with a warning.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = _PILLOW_FORMATS.get(img.format or "", (img.format or "unknown").lower())
                width, height = img.size
                mode = img.mode
                _check_pixel_budget(width, height, label)
                if img.format == "JPEG":
                    img.draft(img.mode, _JPEG_DRAFT_SIZE)
                img.load()  # decode the pixels: a truncated or corrupt file fails here, not at the server
    except CogVideoValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CogVideoValidationError(label, f"image too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CogVideoValidationError(label, f"not a decodable image ({type(exc).__name__}: {exc})") from None
    return ImageInfo(format=fmt, mode=mode, width=width, height=height, n_bytes=len(data))


@dataclass(frozen=True)
class WireImage:
    """One image as it will be sent, plus what we know about it (``info`` is None for URLs).

    ``source`` says where it came from (the URL without its query string, which may carry a
    signature; the ``s3://`` URI or path; base64 summarised): the request summary, which goes to
    logs and XCom, shows it instead of the wire form."""

    wire: str
    digest: str
    source: str
    info: ImageInfo | None = None


@dataclass(frozen=True)
class ByteLimit:
    """How many bytes one image may have, and whose limit that is (named in the refusal)."""

    max_bytes: int
    owner: str

    @classmethod
    def for_model(cls, caps: ModelCapabilities) -> ByteLimit:
        if caps.image_max_bytes <= MAX_SOURCE_BYTES:
            return cls(caps.image_max_bytes, f"of {caps.name!r}")
        return cls(MAX_SOURCE_BYTES, "for one image (MAX_SOURCE_BYTES)")

    def refuse(self, label: str, source: str, size: int | None) -> CogVideoValidationError:
        held = f"{size / MiB:.1f} MiB" if size is not None else f"more than {self.max_bytes / MiB:.1f} MiB"
        return CogVideoValidationError(
            label, f"{source}: {held} is over the {self.max_bytes / MiB:g} MB limit {self.owner}"
        )


def _decode_base64(text: str, label: str, limit: ByteLimit, source: str) -> bytes:
    """Bytes of base64 ``text``; its encoded length is compared with the limit before decoding."""
    compact = "".join(text.split())
    if len(compact) > 4 * -(-limit.max_bytes // 3):  # the longest base64 of max_bytes bytes
        raise limit.refuse(label, source, len(compact) * 3 // 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CogVideoValidationError(label, "is neither a URL, an s3:// URI, a data URI, a file nor base64") from None


def _read_file(path: Path, label: str, limit: ByteLimit) -> bytes:
    """A local file's bytes: its size is checked before it is opened, and the read stops past the cap
    (a file that grows meanwhile costs no more)."""
    size = path.stat().st_size
    if size > limit.max_bytes:
        raise limit.refuse(label, str(path), size)
    with path.open("rb") as handle:
        data = handle.read(limit.max_bytes + 1)
    if len(data) > limit.max_bytes:
        raise limit.refuse(label, str(path), None)
    return data


def read_image_bytes(ref: str, *, aws_conn_id: str | None, label: str, limit: ByteLimit) -> tuple[bytes, str]:
    """Bytes of a non-URL image reference, and a short description of where they came from.

    No more than ``limit.max_bytes`` (+1) is ever read or decoded: a bigger image is refused."""
    if ref.startswith("data:"):
        match = _DATA_URI_RE.fullmatch(ref)
        if not match:
            raise CogVideoValidationError(label, "is a malformed data URI (expected data:image/...;base64,...)")
        source = f"data URI ({len(ref)} chars)"
        return _decode_base64(match["data"], label, limit, source), source
    if ref.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = S3Hook.parse_s3_url(ref)
        try:
            return read_capped(S3Hook(aws_conn_id=aws_conn_id).get_conn(), bucket, key, limit.max_bytes), ref
        except ObjectTooLargeError as exc:
            raise limit.refuse(label, ref, exc.size) from None
        except Exception as exc:  # boto raises many types; the message matters, not the class
            raise CogVideoValidationError(label, f"cannot read {ref}: {type(exc).__name__}: {exc}") from None
    path = Path(ref).expanduser()
    could_be_path = len(ref) < MAX_PATH_CHARS
    if could_be_path and path.is_file():
        return _read_file(path, label, limit), str(path)
    source = f"base64 ({len(ref)} chars)"
    try:
        return _decode_base64(ref, label, limit, source), source
    except CogVideoValidationError:
        if ref.startswith(("/", "./", "~")) or (could_be_path and path.suffix):
            raise CogVideoValidationError(label, f"file {_short(ref)!r} does not exist") from None
        raise


def _short(text: str, limit: int = 80) -> str:
    """Keep base64 blobs out of error messages."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def prepare_images(
    image: str | Sequence[str] | None, caps: ModelCapabilities, *, aws_conn_id: str | None
) -> list[WireImage]:
    """Turn an operator's ``image`` argument into wire images, validated against the model's row."""
    if image is None or image == "" or image == []:
        return []
    refs = [image] if isinstance(image, str) else list(image)
    limit = ByteLimit.for_model(caps)
    prepared: list[WireImage] = []
    for index, ref in enumerate(refs):
        label = f"image[{index}]" if len(refs) > 1 or not isinstance(image, str) else "image"
        if not isinstance(ref, str) or not ref.strip():
            raise CogVideoValidationError(label, f"must be a non-empty string, got {ref!r}")
        ref = ref.strip()
        if ref.startswith(("http://", "https://")):
            digest = hashlib.sha256(ref.encode()).hexdigest()
            prepared.append(WireImage(wire=ref, digest=digest, source=redact_url(ref)))
            continue
        data, source = read_image_bytes(ref, aws_conn_id=aws_conn_id, label=label, limit=limit)
        info = inspect_image(data, label=label)
        check_image_properties(caps, index, info.format, info.n_bytes, info.width, info.height)
        wire = f"data:{info.mime};base64,{base64.b64encode(data).decode('ascii')}"
        prepared.append(WireImage(wire=wire, digest=hashlib.sha256(data).hexdigest(), source=source, info=info))
    known = [(p.info.width, p.info.height) for p in prepared if p.info is not None]
    if len(known) == 2:
        check_frame_pair(caps, known)
    return prepared
