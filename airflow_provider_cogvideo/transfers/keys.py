"""Where the transfer writes a result, and what it writes beside the bytes: the object keys made from
the key templates, and the object metadata made from the result.

**Key templates** (``s3_key``, ``cover_s3_key``): ``{…}`` placeholders are filled from the result's
fields by :func:`format_key`. It reads the template with :meth:`string.Formatter.parse` and looks each
placeholder up itself (:meth:`string.Formatter.get_field`), rather than handing the template to
``str.format``/``format_map``: a placeholder may only name a result field or index one (``{id}``,
``{metadata[product_id]}``); attribute access (``{metadata.__class__}``), conversions (``{id!r}``)
and format specs (``{id:>10}``) reach beyond the result's data and are refused. A value that is
empty or holds ``/``, ``\\`` or ``..`` is refused too, since it would move the key out of its prefix.
The whole key, fixed text and values together, then follows S3's conventions
(:func:`~airflow_provider_cogvideo.s3.checked_key`). The fixed text is already checked when the
operator is built (:func:`~airflow_provider_cogvideo.s3.checked_key_template`).

**Object metadata** (:func:`s3_metadata`): what is known before the download (job id, model,
request id, prompt hash, product fields) is set when the upload is created. Anyone allowed to HEAD
the object reads it, so URLs in product fields are redacted; it travels in HTTP headers, so
non-ASCII text is RFC 2047 encoded (as S3 itself does); and S3 caps it at 2 KB, so product fields
past that are dropped with a warning.

A refusal here is an ``AirflowFailException``: the same result and template fail the same way on
every try.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import string
from collections.abc import Callable, Mapping, Sequence
from email.header import Header
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.redact import redact_urls, shown_value
from airflow_provider_cogvideo.s3 import IMAGE_CONTENT_TYPES, checked_key

AUTO_COVER_KEY = "auto"
"""``cover_s3_key`` default: the video key with the cover's extension (``videos/a.mp4`` → ``videos/a.png``)."""
DEFAULT_COVER_EXTENSION = ".png"
"""The auto cover key's extension when the cover URL's is no image extension."""
META_JOB_ID = "cogvideo-job-id"
"""The metadata key the transfer recognises its own objects by (a retry, a rerun)."""
META_PREFIX_PRODUCT = "product-"
METADATA_BUDGET = 2000
"""S3 caps user metadata at 2 KB (keys and values); product fields past this are dropped with a warning."""
_META_KEY_RE = re.compile(r"[^a-z0-9-]+")
_KEY_FIELD_RE = re.compile(r"[^.\[\]]+(?:\[[^\[\]]+\])*")
"""A key placeholder: a result field, optionally indexed (``metadata[product_id]``); no ``.attribute``."""
_UNSAFE_IN_KEY = ("/", "\\", "..")


# ---------------------------------------------------------------------------------------------- keys
def url_stem(url: str) -> str:
    """The file name of a URL's path without its extension: the key field ``{url_stem}``."""
    return posixpath.splitext(posixpath.basename(urlsplit(url).path))[0]


def _placeholder_value(
    formatter: string.Formatter, field: str, fields: Mapping[str, Any], template: str, what: str
) -> str:
    """The text one placeholder stands for; refused when it could move the key out of its prefix."""
    try:
        value, _ = formatter.get_field(field, (), fields)
    except (KeyError, IndexError, TypeError) as exc:
        raise AirflowFailException(
            f"{what} {template!r} cannot be filled from the result ({type(exc).__name__}: {exc}); "
            f"available fields: {sorted(fields)}"
        ) from None
    text = "" if value is None else formatter.format_field(value, "")
    if not text or any(unsafe in text for unsafe in _UNSAFE_IN_KEY):
        raise AirflowFailException(
            f"{what} {template!r}: placeholder {{{field}}} is {shown_value(text)}; a value must be a non-empty "
            "name without '/', '\\' or '..', which would move the key out of its prefix"
        )
    return text


def format_key(template: str, fields: Mapping[str, Any], what: str) -> str:
    """The object key ``template`` makes from the result's ``fields`` (``videos/{metadata[product_id]}.mp4``),
    or an ``AirflowFailException`` naming ``what`` (the parameter) and the template.

    Each placeholder is parsed and looked up here, one by one: a field or an index of one, never an
    attribute, a conversion or a format spec (see the module's docstring)."""
    formatter = string.Formatter()
    try:
        parsed = list(formatter.parse(template))
    except ValueError as exc:
        raise AirflowFailException(f"{what} {template!r} is not a valid key template: {exc}") from None
    pieces: list[str] = []
    for literal, field, spec, conversion in parsed:
        pieces.append(literal)
        if field is None:
            continue
        if conversion is not None or spec or not _KEY_FIELD_RE.fullmatch(field):
            written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise AirflowFailException(
                f"{what} {template!r}: placeholder {written} is not allowed; use a result field or an index "
                "of one, e.g. {id} or {metadata[product_id]} (no attributes, conversions or format specs)"
            )
        pieces.append(_placeholder_value(formatter, field, fields, template, what))
    try:  # the whole key, fixed text and values together: S3's conventions in one place
        return checked_key("".join(pieces), what)
    except CogVideoValidationError as exc:
        raise AirflowFailException(f"{what} {template!r} rendered to {exc.reason}") from None


def cover_key(template: str, fields: Mapping[str, Any], *, video_key: str, cover_url: str) -> str:
    """The cover's key: with :data:`AUTO_COVER_KEY`, the video key with the cover URL's image extension
    (``.png`` when it has none of :data:`~airflow_provider_cogvideo.s3.IMAGE_CONTENT_TYPES`); else
    ``template`` filled as :func:`format_key` fills ``s3_key``."""
    if template == AUTO_COVER_KEY:
        ext = posixpath.splitext(urlsplit(cover_url).path)[1].lower()
        return posixpath.splitext(video_key)[0] + (ext if ext in IMAGE_CONTENT_TYPES else DEFAULT_COVER_EXTENSION)
    return format_key(template, fields, "cover_s3_key")


# ------------------------------------------------------------------------------------------ metadata
def header_safe(value: str) -> str:
    """A metadata value as an HTTP header carries it: blanks folded, non-ASCII RFC 2047 encoded."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def _metadata_text(value: Any) -> str | None:
    """A product field as object metadata, URLs redacted: anyone allowed to HEAD the object reads it."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return redact_urls(text)


def s3_metadata(
    result: Mapping[str, Any], warn: Callable[..., None], *, leave_out: Sequence[str] = ()
) -> dict[str, str]:
    """Object metadata known before the download: job, model, request, prompt hash, product fields
    but those in ``leave_out`` (``warn`` is told which product fields did not fit in S3's 2 KB)."""
    meta: dict[str, str] = {}
    for key, field_name in ((META_JOB_ID, "id"), ("cogvideo-model", "model"), ("cogvideo-request-id", "request_id")):
        if result.get(field_name):
            meta[key] = header_safe(str(result[field_name]))
    if result.get("prompt"):
        meta["cogvideo-prompt-sha256"] = hashlib.sha256(str(result["prompt"]).encode()).hexdigest()
    used = sum(len(k) + len(v) for k, v in meta.items())
    dropped = []
    product = result.get("metadata") or {}
    for name, raw in product.items() if isinstance(product, Mapping) else ():
        text = None if name in leave_out else _metadata_text(raw)
        if text is None:
            continue
        key = META_PREFIX_PRODUCT + _META_KEY_RE.sub("-", str(name).lower()).strip("-")
        value = header_safe(text)
        if used + len(key) + len(value) > METADATA_BUDGET:
            dropped.append(str(name))
            continue
        meta[key] = value
        used += len(key) + len(value)
    if dropped:
        warn("Product metadata fields %s not stored on the object: S3 metadata is limited to 2 KB", dropped)
    return meta


__all__ = [
    "AUTO_COVER_KEY",
    "METADATA_BUDGET",
    "META_JOB_ID",
    "cover_key",
    "format_key",
    "header_safe",
    "s3_metadata",
    "url_stem",
]
