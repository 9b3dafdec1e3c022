"""Where an input image's bytes come from: a data URI, bare base64, an ``s3://bucket/key`` or a local path.

An operator's ``image`` argument may also be an http(s) URL: that one is not read here, the service
fetches it. Everything else is read here, and nothing is trusted to be as small as it looks, because
every check runs before a paid request: bytes are capped *as they are read* (:class:`ByteLimit`, the
model's ``image_max_bytes`` and never more than :data:`MAX_SOURCE_BYTES`): an S3 object by its
``ContentLength`` and a read that stops one byte past the cap, a file by its size before it is
opened, base64 by its encoded length before it is decoded.

The Amazon provider is an optional extra (``amazon``), imported when an ``s3://`` image is read;
:func:`require_extras_for` says, before anything is read, what a reference needs.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_cogvideo.capabilities import ModelCapabilities
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra
from airflow_provider_cogvideo.redact import shorten
from airflow_provider_cogvideo.s3 import ObjectTooLargeError, parse_s3_uri, read_capped
from airflow_provider_cogvideo.sizes import MiB, human_size

_DATA_URI_RE = re.compile(r"data:(?P<mime>[\w/+.-]*)?(?P<params>(;[\w=.-]+)*?);base64,\s*(?P<data>.*)", re.DOTALL)
MAX_PATH_CHARS = 4096
"""Longer strings are never taken for a file path (PATH_MAX on Linux): they are base64 or nothing."""
MAX_SOURCE_BYTES = 100 * MiB
"""Never read more than this for one image, whatever a model row (or ``capability_overrides``) or
ingestion's ``image_max_bytes`` allows: nothing bigger is a product photo or a frame to animate."""


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
        limit = human_size(self.max_bytes)
        held = human_size(size) if size is not None else f"more than {limit}"
        return CogVideoValidationError(label, f"{source}: {held} is over the {limit} limit {self.owner}")


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

        bucket, key = parse_s3_uri(ref) or ("", "")
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
    return shorten(text, limit)


def require_extras_for(ref: str, label: str) -> None:
    """Before a non-URL image is read: Pillow to check it, and for ``s3://`` the Amazon provider to
    read it. Both are checked first, so nothing is fetched that could not be checked (what kind of
    reference it is otherwise, :func:`read_image_bytes` decides)."""
    if ref.startswith("s3://"):
        extras, kind = ("amazon", "images"), "an S3 object, read through the aws connection and checked with Pillow"
    else:
        extras, kind = ("images",), "read and checked with Pillow"
    require_extra(*extras, needed_for=f"{label} {_short(ref)!r} ({kind})")


__all__ = ["MAX_SOURCE_BYTES", "ByteLimit", "read_image_bytes", "require_extras_for"]
