"""S3 helpers shared by ingestion (:mod:`.operators.product_images`), the transfer and image reading.

One place decides what "the object is not there" looks like (S3 and S3-compatible stores answer a
missing key with different codes), how an object is named in messages and results (``s3://`` URIs),
and which content type a file gets. botocore is imported only when an error is inspected.
"""

from __future__ import annotations

import posixpath
from typing import Any

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
"""``ClientError`` codes for a missing key: HEAD answers a bare 404, GET ``NoSuchKey``, some stores ``NotFound``."""

IMAGE_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
DEFAULT_VIDEO_TYPE = "video/mp4"
DEFAULT_IMAGE_TYPE = "image/png"


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


def get_or_none(client: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when the key does not exist (other errors propagate)."""
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
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
    "content_type",
    "get_or_none",
    "head_or_none",
    "is_not_found",
    "s3_uri",
]
