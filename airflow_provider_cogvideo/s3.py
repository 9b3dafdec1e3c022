"""S3 helpers shared by ingestion (:mod:`.operators.product_images`), the transfer and image reading.

One place decides what "the object is not there" looks like (S3 and S3-compatible stores answer a
missing key with different codes), how an object is named in messages and results (``s3://`` URIs),
how an object is read without trusting its size (:func:`read_capped`), and which content type a file
gets. botocore is imported only when an error is inspected.
"""

from __future__ import annotations

import posixpath
from typing import Any

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
"""``ClientError`` codes for a missing key: HEAD answers a bare 404, GET ``NoSuchKey``, some stores ``NotFound``."""

IMAGE_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
DEFAULT_VIDEO_TYPE = "video/mp4"
DEFAULT_IMAGE_TYPE = "image/png"
_READ_CHUNK = 1024 * 1024
"""Bytes asked of an object's body per read in :func:`read_capped`."""


class ObjectTooLargeError(ValueError):
    """An object holds more bytes than its reader accepts. ``size`` is None when only "more than
    ``limit``" is known (the read stopped at ``limit + 1``)."""

    def __init__(self, uri: str, size: int | None, limit: int) -> None:
        self.uri = uri
        self.size = size
        self.limit = limit
        held = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"{uri} holds {held}, over the limit of {limit} bytes")


def s3_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``: how an object is named in logs, results and asset events."""
    return f"s3://{bucket}/{key}"


def is_not_found(exc: BaseException) -> bool:
    """True for a botocore ``ClientError`` that means "no such key"."""
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in NOT_FOUND_CODES


def head_or_none(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """``head_object``'s answer, or None when the key does not exist (other errors propagate)."""
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def read_capped(client: Any, bucket: str, key: str, max_bytes: int) -> bytes:
    """The object's bytes, or :class:`ObjectTooLargeError` when it holds more than ``max_bytes``.

    Memory is bounded by ``max_bytes`` whatever the store says: the answer's ``ContentLength`` is
    checked before the body is read, and the body is read in chunks that stop one byte past the
    limit (an object replaced between listing and reading, or a store that mis-states the length,
    costs no more). Reading to the end lets botocore check the byte count against ``ContentLength``.
    """
    answer = client.get_object(Bucket=bucket, Key=key)
    body = answer["Body"]
    try:
        length = answer.get("ContentLength")
        if length is not None and length > max_bytes:
            raise ObjectTooLargeError(s3_uri(bucket, key), int(length), max_bytes)
        data = bytearray()
        while len(data) <= max_bytes:
            chunk = body.read(min(_READ_CHUNK, max_bytes + 1 - len(data)))
            if not chunk:
                return bytes(data)
            data += chunk
        raise ObjectTooLargeError(s3_uri(bucket, key), None, max_bytes)
    finally:
        body.close()


def get_or_none(client: Any, bucket: str, key: str, *, max_bytes: int) -> bytes | None:
    """:func:`read_capped`, or None when the key does not exist (other errors propagate)."""
    try:
        return read_capped(client, bucket, key, max_bytes)
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def content_type(served: str | None, *, kind: str, key: str = "") -> str:
    """The content type to store: the server's, when it is of the expected ``kind`` (``video``/``image``);
    otherwise guessed from the key's extension (images) or the kind's default."""
    served_type = (served or "").split(";")[0].strip()
    if served_type.startswith(f"{kind}/"):
        return served_type
    if kind == "image":
        return IMAGE_CONTENT_TYPES.get(posixpath.splitext(key)[1].lower(), DEFAULT_IMAGE_TYPE)
    return DEFAULT_VIDEO_TYPE


__all__ = [
    "IMAGE_CONTENT_TYPES",
    "NOT_FOUND_CODES",
    "ObjectTooLargeError",
    "content_type",
    "get_or_none",
    "head_or_none",
    "is_not_found",
    "read_capped",
    "s3_uri",
]
