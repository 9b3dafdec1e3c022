"""Input images: where they come from, what they are, and how they go on the wire.

An operator's ``image`` argument may be an http(s) URL, a data URI, bare base64, an
``s3://bucket/key`` (read through ``aws_conn_id``) or a local path. Everything but a URL is read
here, inspected with Pillow (decodable? which format? how many bytes and pixels?) and sent as a data
URI, the one base64 form every model accepts. URLs are passed through: the service fetches them.

Pillow and boto3 are imported where they are used, so importing this module costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_cogvideo.capabilities import ModelCapabilities, check_frame_pair, check_image_properties
from airflow_provider_cogvideo.errors import CogVideoValidationError

_DATA_URI_RE = re.compile(r"data:(?P<mime>[\w/+.-]*)?(?P<params>(;[\w=.-]+)*?);base64,\s*(?P<data>.*)", re.DOTALL)
_PILLOW_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
MAX_PATH_CHARS = 4096
"""Longer strings are never taken for a file path (PATH_MAX on Linux): they are base64 or nothing."""


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


def inspect_image(data: bytes, *, label: str = "image") -> ImageInfo:
    """Decode an image far enough to trust it; raise a validation error naming ``label`` if not."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = _PILLOW_FORMATS.get(img.format or "", (img.format or "unknown").lower())
            width, height = img.size
            mode = img.mode
            img.load()  # decode the pixels: a truncated or corrupt file fails here, not at the server
    except Image.DecompressionBombError as exc:
        raise CogVideoValidationError(label, f"image too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CogVideoValidationError(label, f"not a decodable image ({type(exc).__name__}: {exc})") from None
    return ImageInfo(format=fmt, mode=mode, width=width, height=height, n_bytes=len(data))


@dataclass(frozen=True)
class WireImage:
    """One image as it will be sent, plus what we know about it (``info`` is None for URLs).

    ``source`` says where it came from (the URL, ``s3://`` URI or path; base64 summarised): the
    request summary shows it instead of the wire form."""

    wire: str
    digest: str
    source: str
    info: ImageInfo | None = None


def _decode_base64(text: str, label: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CogVideoValidationError(label, "is neither a URL, an s3:// URI, a data URI, a file nor base64") from None


def read_image_bytes(ref: str, *, aws_conn_id: str | None, label: str) -> tuple[bytes, str]:
    """Bytes of a non-URL image reference, and a short description of where they came from."""
    if ref.startswith("data:"):
        match = _DATA_URI_RE.fullmatch(ref)
        if not match:
            raise CogVideoValidationError(label, "is a malformed data URI (expected data:image/...;base64,...)")
        return _decode_base64(match["data"], label), f"data URI ({len(ref)} chars)"
    if ref.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        bucket, key = S3Hook.parse_s3_url(ref)
        try:
            obj = S3Hook(aws_conn_id=aws_conn_id).get_key(key, bucket_name=bucket)
            return obj.get()["Body"].read(), ref
        except Exception as exc:  # boto raises many types; the message matters, not the class
            raise CogVideoValidationError(label, f"cannot read {ref}: {type(exc).__name__}: {exc}") from None
    path = Path(ref).expanduser()
    could_be_path = len(ref) < MAX_PATH_CHARS
    if could_be_path and path.is_file():
        return path.read_bytes(), str(path)
    try:
        return _decode_base64(ref, label), f"base64 ({len(ref)} chars)"
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
    prepared: list[WireImage] = []
    for index, ref in enumerate(refs):
        label = f"image[{index}]" if len(refs) > 1 or not isinstance(image, str) else "image"
        if not isinstance(ref, str) or not ref.strip():
            raise CogVideoValidationError(label, f"must be a non-empty string, got {ref!r}")
        ref = ref.strip()
        if ref.startswith(("http://", "https://")):
            prepared.append(WireImage(wire=ref, digest=hashlib.sha256(ref.encode()).hexdigest(), source=ref))
            continue
        data, source = read_image_bytes(ref, aws_conn_id=aws_conn_id, label=label)
        info = inspect_image(data, label=label)
        check_image_properties(caps, index, info.format, info.n_bytes, info.width, info.height)
        wire = f"data:{info.mime};base64,{base64.b64encode(data).decode('ascii')}"
        prepared.append(WireImage(wire=wire, digest=hashlib.sha256(data).hexdigest(), source=source, info=info))
    known = [(p.info.width, p.info.height) for p in prepared if p.info is not None]
    if len(known) == 2:
        check_frame_pair(caps, known)
    return prepared
