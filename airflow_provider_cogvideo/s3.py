"""S3 helpers shared by ingestion (:mod:`.operators.product_images`), the transfer, the gallery, image
reading and lineage.

One place decides what "the object is not there" looks like (S3 and S3-compatible stores answer a
missing key with different codes), what an object key may be (:func:`checked_key`: one rule,
:data:`KEY_RULES`, for every key this provider writes or looks up), how an object is named in
messages and results (``s3://`` URIs: written by :func:`s3_uri`, read by :func:`parse_s3_uri`), how
an object is read without trusting its size (:func:`read_capped`), and which content type a file
gets. botocore is imported only when an error is inspected. Writing a stream as one object is
:mod:`.s3_multipart`'s.
"""

from __future__ import annotations

import posixpath
import re
import string
import unicodedata
from typing import Any

from airflow_provider_cogvideo.errors import CogVideoValidationError

MAX_KEY_BYTES = 1024
"""S3's longest object key, in UTF-8 bytes."""
KEY_RULES = (
    "a key is at most 1,024 UTF-8 bytes, without control characters, '\\' or a '.' or '..' path segment "
    "(so it cannot leave its prefix); a leading '/' is dropped"
)
"""What every key this provider writes (or looks up) must be: :func:`key_problem` is the one check."""
_JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_VALUE = "\ue000"
"""Stands for a value not known yet (a Jinja expression, a ``{…}`` placeholder) in a template's check."""
_SHOWN_KEY_CHARS = 200

S3_SCHEME = "s3://"
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
    return f"{S3_SCHEME}{bucket}/{key}"


def parse_s3_uri(uri: Any) -> tuple[str, str] | None:
    """``(bucket, key)`` of an object's ``s3://bucket/key``; None for anything else (not text, another
    scheme, no bucket or no key): the one reading of an ``s3://`` URI, wherever one arrives (an image,
    a manifest, a gallery's media, a lineage dataset).

    The key is everything after the bucket's ``/``, as written: ``?`` and ``#`` are characters of an
    S3 key, not a query or a fragment. A ``user:password@`` before the bucket is dropped (no bucket
    name holds ``@``), so credentials pasted into a URI are never taken for part of its name."""
    if not isinstance(uri, str) or not uri.startswith(S3_SCHEME):
        return None
    bucket, _, key = uri.removeprefix(S3_SCHEME).partition("/")
    bucket = bucket.rpartition("@")[2]
    return (bucket, key) if bucket and key else None


def key_problem(key: str, *, unknown: str | None = None) -> str | None:
    """What breaks :data:`KEY_RULES` in ``key`` (a key, a prefix, or a template's skeleton in which
    ``unknown`` stands for each value not known yet and counts no bytes), or None.

    The rules: no control character (Unicode category Cc: NUL, tab, CR, LF, DEL...), no ``\\`` (a
    path separator to some tools), no ``.`` or ``..`` path segment (``./``, ``../``: a key that walks
    out of its prefix in every tool that normalises paths), valid UTF-8 text, and at most
    :data:`MAX_KEY_BYTES` bytes."""
    for position, char in enumerate(key):
        if unicodedata.category(char) == "Cc":
            return f"has control character U+{ord(char):04X} at position {position}"
        if char == "\\":
            return f"has '\\' at position {position}"
        if unicodedata.category(char) == "Cs":
            return f"has U+{ord(char):04X} at position {position}, which is not UTF-8 text"
    for segment in key.split("/"):
        if segment in (".", ".."):
            return f"has a {segment!r} path segment"
    size = len(key.encode("utf-8")) - (len(unknown.encode("utf-8")) * key.count(unknown) if unknown else 0)
    if size > MAX_KEY_BYTES:
        return f"is {size} UTF-8 bytes{' before its values' if unknown else ''}, over S3's limit of {MAX_KEY_BYTES}"
    return None


def _shown_key(key: Any) -> str:
    shown = repr(key)
    return shown if len(shown) <= _SHOWN_KEY_CHARS else f"{shown[:_SHOWN_KEY_CHARS]}... ({len(shown)} characters)"


def checked_key(key: Any, what: str) -> str:
    """``key`` as the object key to use (a leading ``/`` dropped: S3 keys have no root), or
    :class:`CogVideoValidationError` naming ``what``, the key, what is wrong and :data:`KEY_RULES`."""
    text = key.lstrip("/") if isinstance(key, str) else ""
    problem = (
        "is not text" if not isinstance(key, str)
        else "is empty" if not text
        else "ends with '/' (a prefix, not an object key)" if text.endswith("/")
        else key_problem(text)
    )  # fmt: skip
    if problem:
        raise CogVideoValidationError(what, f"{_shown_key(key)} is not an object key: it {problem}; {KEY_RULES}")
    return text


def checked_key_template(template: Any, what: str, *, placeholders: bool = True, prefix: bool = False) -> Any:
    """``template`` as given, once the text known before it is rendered passes :func:`key_problem`:
    called when an operator is built (the DAG is parsed), so a literal ``../`` fails the DAG, not a
    run. Jinja expressions (``{{ ds }}``, and ``{%…%}``/``{#…#}``) and, with ``placeholders``, the
    ``str.format`` fields filled later (``{metadata[product_id]}``) stand for values checked when
    the key is made. A ``prefix`` may end with ``/``; a key may not. Anything but text (an XComArg)
    is left to that later check."""
    if not isinstance(template, str):
        return template
    skeleton = _JINJA_RE.sub(_VALUE, template)
    if placeholders:
        try:
            parsed = list(string.Formatter().parse(skeleton))
        except ValueError:
            return template  # a malformed placeholder is reported, with the result's fields, when the key is made
        skeleton = "".join(literal + ("" if field is None else _VALUE) for literal, field, _, _ in parsed)
    skeleton = skeleton.lstrip("/")
    if prefix:
        skeleton = skeleton.rstrip("/")
    problem = (
        "is empty" if not skeleton
        else "ends with '/' (a prefix, not an object key)" if skeleton.endswith("/")
        else key_problem(skeleton, unknown=_VALUE)
    )  # fmt: skip
    if problem:
        kind = "a prefix" if prefix else "an object key"
        raise CogVideoValidationError(
            what, f"{_shown_key(template)} cannot make {kind}: its fixed text {problem}; {KEY_RULES}"
        )
    return template


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
    "KEY_RULES",
    "MAX_KEY_BYTES",
    "NOT_FOUND_CODES",
    "ObjectTooLargeError",
    "checked_key",
    "checked_key_template",
    "content_type",
    "get_or_none",
    "head_or_none",
    "is_not_found",
    "key_problem",
    "parse_s3_uri",
    "read_capped",
    "s3_uri",
]
