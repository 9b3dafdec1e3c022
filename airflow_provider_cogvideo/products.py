"""A product of the catalog: its id, its fields (catalog row and sidecar), its prompt, and what a
pipeline run makes of it (the generation settings and variants its videos are fingerprinted with).

Product fields come from ``<image name>.json`` next to the image and/or one ``catalog_key`` (CSV with
a ``product_id`` column, or JSON: a list of objects with ``product_id`` or an object keyed by it);
the sidecar wins. Missing fields are fine: a placeholder without a value renders as an empty string
(with a warning), so a product without a sidecar still gets a prompt. Lists render as ``a, b, c``.
Prompts are whitespace-normalised and cut at a word boundary to 512 characters (with a warning).
Product fields that are http(s) URLs lose their query string (:func:`~.redact.redact_url`): a presigned
link's signature would otherwise travel through XCom, logs, prompts and the videos' object metadata.

Pure functions shared by ingestion (:class:`~.operators.product_images.S3ProductImagesOperator`), the
run record (:mod:`.manifest`) and the index decisions (:mod:`.catalog_plan`): one reading of each fact.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import string
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_cogvideo.capabilities import PROMPT_MAX_CHARS
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.redact import redact_url
from airflow_provider_cogvideo.validation import bounded

INDEX_INPUTS = "index_inputs"
"""The key, in a paid item's ``metadata``, of what ingestion saw of its sources (its index entry's ``inputs``)."""
REVIEW_MARKER = "review"
"""The key, in a paid item's ``metadata``, of the review its index entry starts with (a regenerated
video's ``awaiting`` marker: the entry's ``review``). Like :data:`INDEX_INPUTS`, it is the index's, never
object metadata, and no part of the video's key or fingerprint."""
WRITER_KEY = "prompt_writer"
"""The key, in a paid item's ``metadata``, of the writer key its fingerprint was built from."""
FORMAT, FORMAT_TEXT = "format", "format_text"
"""The keys, in a paid item's ``metadata``, of its ad format's name and of the format as the writer reads it."""
RUN_METADATA = frozenset(
    {
        "source_image",
        "variant",
        "reencoded",
        "fingerprint",
        INDEX_INPUTS,
        REVIEW_MARKER,
        WRITER_KEY,
        FORMAT,
        FORMAT_TEXT,
    }
)
"""What ingestion (and a review run) add to an item's ``metadata`` besides the product's fields: none of
it describes the product, so the prompt writer never sees it."""
VARIANTS_RANGE = (1, 16)
"""``variants``: each is one paid video per product; a run's mapped items are products x variants."""


class PlaceholderValues(dict):
    """Template values; a placeholder with no value renders as "" and is remembered for one warning."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.missing: set[str] = set()

    def __missing__(self, key: str) -> str:
        self.missing.add(key)
        return ""


def _as_text(value: Any) -> str:
    """A sidecar value as prompt text: lists joined with commas, nested objects as ``k: v``."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(t for t in (_as_text(v) for v in value) if t)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_as_text(v)}" for k, v in value.items())
    return str(value).strip()


def product_id_of(key: str) -> str:
    """A product's id: its image's file name without the extension (``incoming/sku-1.jpg``, or the
    ``s3://`` URI of it, is ``sku-1``). Its sidecar, staged JPEG and video keys are named after it."""
    return posixpath.splitext(posixpath.basename(key))[0]


def source_image_of(product: Mapping[str, Any]) -> str | None:
    """The image a product arrived as: the ``s3://`` URI of the original in its metadata
    (``source_image``, which ingestion records), else its ``image``. They differ when ingestion
    re-encoded it: ``image`` is then the staged JPEG sent to the service, not what was uploaded."""
    metadata = product.get("metadata")
    source = metadata.get("source_image") if isinstance(metadata, Mapping) else None
    return source if isinstance(source, str) and source else product.get("image")


def truncate_prompt(text: str, limit: int = PROMPT_MAX_CHARS) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary, dropping a dangling separator."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    # A single enormous "word" (e.g. Chinese without spaces) is cut hard rather than dropped whole.
    cut = cut[:space] if space > limit // 2 else text[:limit]
    return cut.rstrip(" ,;:-/&(\u2013\u2014\u3001\uff0c")  # also en/em dash and CJK commas


def render_prompt(template: str, fields: Mapping[str, Any]) -> tuple[str, set[str]]:
    """The prompt for one product and the placeholders that had no value."""
    values = PlaceholderValues({k: _as_text(v) for k, v in fields.items()})
    text = string.Formatter().vformat(template, (), values)
    return " ".join(text.split()), values.missing


def parse_catalog(key: str, raw: bytes) -> dict[str, dict[str, Any]]:
    """``product_id`` → fields, from a CSV or JSON catalog."""
    text = raw.decode("utf-8-sig")
    if key.lower().endswith(".csv"):
        rows: list[Any] = list(csv.DictReader(io.StringIO(text)))
    else:
        data = json.loads(text)
        if isinstance(data, dict):
            rows = [{"product_id": pid, **(fields if isinstance(fields, dict) else {})} for pid, fields in data.items()]
        elif isinstance(data, list):
            rows = data
        else:
            raise ValueError("a JSON catalog must be a list of objects or an object keyed by product_id")
    catalog: dict[str, dict[str, Any]] = {}
    for row in rows:
        if not isinstance(row, dict) or not row.get("product_id"):
            raise ValueError(f"catalog row without product_id: {str(row)[:120]}")
        catalog[str(row["product_id"])] = {k: v for k, v in row.items() if k and v not in (None, "")}
    return catalog


def without_signatures(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Product fields with every http(s) URL (alone or in a list) cut to scheme, host and path."""
    return {k: [redact_url(x) for x in v] if isinstance(v, list) else redact_url(v) for k, v in fields.items()}


def product_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """An item's product fields: its ``metadata`` without :data:`RUN_METADATA`."""
    return {k: v for k, v in metadata.items() if k not in RUN_METADATA} if isinstance(metadata, Mapping) else {}


def checked_generation(generation: Mapping[str, Any] | None, *, required: bool) -> dict[str, Any] | None:
    """``generation`` as a dict with a ``model`` (required with a ``video_index``: a video's
    fingerprint names what made it)."""
    if generation is None:
        if required:
            raise CogVideoValidationError(
                "generation", "is required with video_index: the model and options the generate step uses"
            )
        return None
    if not isinstance(generation, Mapping) or not isinstance(generation.get("model"), str):
        raise CogVideoValidationError(
            "generation", f"must be a dict of the generate step's model and options, with 'model'; got {generation!r}"
        )
    return dict(generation)


def checked_variants(variants: Sequence[str]) -> tuple[str, ...]:
    """1 to 16 distinct, non-empty variant names."""
    names = (variants,) if isinstance(variants, str) else tuple(variants)
    bounded("variants", len(names), VARIANTS_RANGE, integer=True)
    if any(not isinstance(v, str) or not v.strip() for v in names) or len(set(names)) != len(names):
        raise CogVideoValidationError("variants", f"must be distinct non-empty names, got {list(names)!r}")
    return names


__all__ = [
    "FORMAT",
    "FORMAT_TEXT",
    "INDEX_INPUTS",
    "REVIEW_MARKER",
    "RUN_METADATA",
    "VARIANTS_RANGE",
    "WRITER_KEY",
    "PlaceholderValues",
    "checked_generation",
    "checked_variants",
    "parse_catalog",
    "product_fields",
    "product_id_of",
    "render_prompt",
    "source_image_of",
    "truncate_prompt",
    "without_signatures",
]
