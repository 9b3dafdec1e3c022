"""Turn a folder of product photos in S3 into generation requests.

``S3ProductImagesOperator`` lists images under a prefix, checks each one with Pillow, re-encodes what
the API would refuse, renders one prompt per product and returns small dicts for
``CogVideoGenerateOperator.partial(...).expand_kwargs(...)``::

    {"image": "s3://bucket/key", "prompt": "...", "metadata": {"product_id": "sku-1", ...}}

Images travel by S3 URI only, never as base64 through XCom (XCom rows are small and logged).

Per image:

* PNG or JPEG up to ``image_max_bytes`` (5 MB, the CogVideoX limit) that any decoder shows the same
  way (8-bit RGB or grey, opaque, upright, sRGB or no colour profile): used as is;
* anything else decodable is re-encoded to an RGB JPEG that fits, stored under ``staging_prefix``
  (quality, then size, reduced until it fits), because the service reads pixels and ignores
  metadata: another format (WebP, GIF, BMP, TIFF, HEIC/HEIF with the ``heif`` extra), too big, an EXIF
  orientation other than 1 (a phone portrait; turned upright), a non-sRGB ICC profile (converted to
  sRGB, see :func:`~airflow_provider_cogvideo.image_pixels.normalized_rgb`), CMYK, a palette, transparency
  (flattened on white) or 16-bit channels (scaled, not clipped);
* a HEIC/HEIF photo without the ``heif`` extra: rejected with the ``pip install`` line to fix it;
* undecodable, over the pixel budget (:data:`~airflow_provider_cogvideo.image_pixels.MAX_IMAGE_PIXELS`,
  checked from the header before any pixel is decoded), over
  :data:`~airflow_provider_cogvideo.image_sources.MAX_SOURCE_BYTES`, an unreadable sidecar, or a duplicate
  product id: rejected, with the reason in the log and in the XCom key ``rejected``; if nothing is
  usable the task fails.

Every object is read with a cap (images, sidecars, the catalog): its ``ContentLength`` first, and a
read that stops one byte past the cap, so an object that grew since it was listed costs no more.

Product fields come from ``<image name>.json`` next to the image and/or one ``catalog_key`` (CSV with
a ``product_id`` column, or JSON: a list of objects with ``product_id`` or an object keyed by it);
the sidecar wins. Missing fields are fine: a placeholder without a value renders as an empty string
(with a warning), so a product without a sidecar still gets a prompt. Lists render as ``a, b, c``.
Prompts are whitespace-normalised and cut at a word boundary to 512 characters (with a warning).
Product fields that are http(s) URLs lose their query string (:func:`~.redact.redact_url`): a presigned
link's signature would otherwise travel through XCom, logs, prompts and the videos' object metadata.

OpenLineage (with ``apache-airflow-providers-openlineage``): every object read (images, sidecars, the
catalog) is an input dataset and every staged JPEG an output (``s3://bucket`` / key).
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.capabilities import COGVIDEOX_IMAGE_FORMATS, MODEL_CAPABILITIES, PROMPT_MAX_CHARS
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.image_pixels import inspect_image, normalized_jpeg
from airflow_provider_cogvideo.image_sources import MAX_SOURCE_BYTES
from airflow_provider_cogvideo.redact import redact_url
from airflow_provider_cogvideo.s3 import (
    KEY_RULES,
    ObjectTooLargeError,
    checked_key,
    checked_key_template,
    get_or_none,
    head_or_none,
    key_problem,
    read_capped,
    s3_uri,
)
from airflow_provider_cogvideo.sizes import KiB, MiB, human_size
from airflow_provider_cogvideo.validation import bounded
from airflow_provider_cogvideo.xcom import XCOM_REJECTED

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
SIDECAR_EXTENSION = ".json"
_MAX_SIDECAR_BYTES = 1 * MiB
"""A sidecar holds one product's fields: a megabyte is thousands of prompts' worth."""
_MAX_CATALOG_BYTES = 32 * MiB
"""Tens of thousands of products with long descriptions; parsed, a catalog costs a few times this."""
IMAGE_MAX_BYTES_RANGE = (64 * KiB, max(c.image_max_bytes for c in MODEL_CAPABILITIES.values()))
"""``image_max_bytes``: from what a JPEG of 512 pixels (the smallest re-encode) needs, to the largest
image any model accepts."""
MAX_PROMPT_CHARS_RANGE = (1, PROMPT_MAX_CHARS)
"""``max_prompt_chars``: the API refuses longer prompts."""
MAX_PRODUCTS_RANGE = (1, 10_000)
"""``max_products``: the products travel as one XCom value (about 1 KB each); a bigger batch is
several runs, each checked and priced on its own."""


@dataclass
class _Candidate:
    key: str
    product_id: str
    size: int


class _Fields(dict):
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
    values = _Fields({k: _as_text(v) for k, v in fields.items()})
    text = string.Formatter().vformat(template, (), values)
    return " ".join(text.split()), values.missing


def _parse_catalog(key: str, raw: bytes) -> dict[str, dict[str, Any]]:
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


def _without_signatures(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Product fields with every http(s) URL (alone or in a list) cut to scheme, host and path."""
    return {k: [redact_url(x) for x in v] if isinstance(v, list) else redact_url(v) for k, v in fields.items()}


class S3ProductImagesOperator(BaseOperator):
    """List product images in S3, validate/re-encode them, and build one generation request each.

    Out-of-range numbers fail when the DAG is parsed, naming the field.

    :param s3_bucket: bucket holding the images, sidecars and catalog.
    :param prefix: key prefix to list (recursive), e.g. ``incoming/2026-01-01/``.
    :param prompt_template: ``str.format`` template, e.g.
        ``"{title}: {selling_points}. Style: {style}. Slow 360° turn of product {product_id}."``:
        ``{product_id}`` is the image's file name without extension, other names come from the sidecar
        or the catalog (Jinja renders first, so single ``{braces}`` are kept).
    :param staging_prefix: where re-encoded JPEGs are written (``<staging_prefix>/<product_id>.jpg``);
        keys under it are never listed as inputs. It must not be empty, and it and the keys below it
        follow the key rules (:data:`~airflow_provider_cogvideo.s3.KEY_RULES`: no ``.``/``..``
        segment, ``\\`` or control character), checked when the DAG is parsed as far as the text is
        known then, and again when used.
    :param aws_conn_id: ``aws`` connection for ``S3Hook`` (an ``endpoint_url`` extra selects any
        S3-compatible store).
    :param catalog_key: a catalog in the same bucket: CSV with a ``product_id`` column, or JSON (a list
        of objects with ``product_id``, or an object keyed by it); a sidecar wins over it.
    :param only_new_in_data_interval: keep only images whose ``LastModified`` is within the run's data
        interval (start inclusive, end exclusive); a run without a data interval takes all, with a
        warning.
    :param processed_key_template: skip products whose output already exists, e.g.
        ``"videos/{product_id}.mp4"`` (a HEAD in the same bucket); a product whose key would break the
        key rules is rejected.
    :param image_max_bytes: images above this are re-encoded (CogVideoX accepts 5 MB); 64 KiB to 50 MiB.
    :param max_prompt_chars: prompts are cut at a word boundary to this length; 1 to 512.
    :param max_products: process at most this many products (the first by key), as a spending guard
        for the generate step; the rest are left for a later run (logged). 1 to 10,000, or ``None`` for
        all.

    Needs the ``amazon`` and ``images`` extras: without them the constructor raises
    ``CogVideoMissingExtraError``, so the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = (
        "s3_bucket",
        "prefix",
        "prompt_template",
        "staging_prefix",
        "catalog_key",
        "processed_key_template",
    )
    template_fields_renderers = {"prompt_template": "py"}
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        s3_bucket: str,
        prefix: str,
        prompt_template: str,
        staging_prefix: str,
        aws_conn_id: str | None = "aws_default",
        catalog_key: str | None = None,
        only_new_in_data_interval: bool = False,
        processed_key_template: str | None = None,
        image_max_bytes: int = 5 * MiB,
        max_prompt_chars: int = PROMPT_MAX_CHARS,
        max_products: int | None = None,
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon", "images")
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.prefix = prefix
        self.prompt_template = prompt_template
        self.staging_prefix = checked_key_template(staging_prefix, "staging_prefix", placeholders=False, prefix=True)
        self.aws_conn_id = aws_conn_id
        self.catalog_key = catalog_key
        self.only_new_in_data_interval = only_new_in_data_interval
        self.processed_key_template = checked_key_template(processed_key_template, "processed_key_template")
        self.image_max_bytes = bounded("image_max_bytes", image_max_bytes, IMAGE_MAX_BYTES_RANGE, integer=True)
        self.max_prompt_chars = bounded("max_prompt_chars", max_prompt_chars, MAX_PROMPT_CHARS_RANGE, integer=True)
        self.max_products = (
            None if max_products is None else bounded("max_products", max_products, MAX_PRODUCTS_RANGE, integer=True)
        )

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        try:
            render_prompt(self.prompt_template, {})
        except (ValueError, IndexError) as exc:
            raise AirflowFailException(f"prompt_template is not a valid format string: {exc}") from None
        self._client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        self._read_keys: list[str] = []  # what OpenLineage reports: objects read and written
        self._written_keys: list[str] = []
        staging = self.staging_prefix.strip("/")
        if not staging:
            raise AirflowFailException("staging_prefix must not be empty (re-encoded images would land at the root)")
        if problem := key_problem(staging):
            raise AirflowFailException(f"staging_prefix {self.staging_prefix!r} {problem}; {KEY_RULES}")
        self._staging = staging + "/"

        catalog = self._load_catalog()
        candidates, rejected = self._list_candidates(context)
        products: list[dict[str, Any]] = []
        for candidate in candidates:
            try:
                products.append(self._prepare(candidate, catalog))
            except _Rejected as exc:
                rejected.append({"image": self._uri(candidate.key), "reason": str(exc)})

        for item in rejected:
            self.log.warning("Rejected %s: %s", item["image"], item["reason"])
        context["ti"].xcom_push(key=XCOM_REJECTED, value=rejected)
        self.log.info(
            "%d product(s) ready, %d rejected (%d re-encoded into %s)",
            len(products),
            len(rejected),
            sum(1 for p in products if p["metadata"].get("reencoded")),
            self._uri(self._staging),
        )
        if rejected and not products:
            raise AirflowFailException(
                f"all {len(rejected)} image(s) under {self._uri(self.prefix)} were rejected; see the log or "
                "the XCom 'rejected'"
            )
        if not products:
            self.log.warning("No new product images under %s", self._uri(self.prefix))
        return products

    def _uri(self, key: str) -> str:
        return s3_uri(self.s3_bucket, key)

    def _read(self, key: str, max_bytes: int) -> bytes:
        return read_capped(self._client, self.s3_bucket, key, max_bytes)

    def _exists(self, key: str) -> bool:
        return head_or_none(self._client, self.s3_bucket, key) is not None

    def _load_catalog(self) -> dict[str, dict[str, Any]]:
        if not self.catalog_key:
            return {}
        try:
            raw = self._read(self.catalog_key, _MAX_CATALOG_BYTES)
            self._read_keys.append(self.catalog_key)
            return _parse_catalog(self.catalog_key, raw)
        except (ValueError, UnicodeDecodeError, csv.Error) as exc:  # ObjectTooLargeError included
            raise AirflowFailException(f"catalog {self._uri(self.catalog_key)} is unreadable: {exc}") from None

    # ------------------------------------------------------------------ listing
    def _interval(self, context: Context) -> tuple[datetime, datetime] | None:
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            self.log.warning("only_new_in_data_interval: this run has no data interval; all images are taken")
            return None
        return start, end

    def _list_candidates(self, context: Context) -> tuple[list[_Candidate], list[dict[str, str]]]:
        interval = self._interval(context) if self.only_new_in_data_interval else None
        paginator = self._client.get_paginator("list_objects_v2")
        candidates: list[_Candidate] = []
        rejected: list[dict[str, str]] = []
        seen: dict[str, str] = {}
        ignored = 0
        old = 0
        for page in paginator.paginate(Bucket=self.s3_bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.startswith(self._staging):
                    continue
                ext = posixpath.splitext(key)[1]
                if ext.lower() not in IMAGE_EXTENSIONS:
                    is_ours = ext.lower() == SIDECAR_EXTENSION or key == self.catalog_key or key.endswith("/")
                    ignored += 0 if is_ours else 1
                    continue
                if interval and not interval[0] <= obj["LastModified"] < interval[1]:
                    old += 1
                    continue
                pid = product_id_of(key)
                if pid in seen:
                    rejected.append(
                        {"image": self._uri(key), "reason": f"duplicate product_id {pid!r} (also {seen[pid]})"}
                    )
                    continue
                seen[pid] = self._uri(key)
                candidates.append(_Candidate(key=key, product_id=pid, size=int(obj["Size"])))
        if ignored:
            self.log.info("Ignored %d non-image file(s) under %s", ignored, self._uri(self.prefix))
        if old:
            self.log.info("Skipped %d image(s) not modified in the data interval %s", old, interval)
        if self.processed_key_template:
            fresh, processed = [], 0
            for c in candidates:
                try:  # the key rule of every key (s3.checked_key): a product id cannot walk out of the prefix
                    output = checked_key(
                        self.processed_key_template.format_map(_Fields({"product_id": c.product_id})),
                        "processed_key_template",
                    )
                except CogVideoValidationError as exc:
                    rejected.append({"image": self._uri(c.key), "reason": str(exc)})
                    continue
                if self._exists(output):
                    processed += 1
                else:
                    fresh.append(c)
            if processed:
                self.log.info("Skipped %d already processed product(s)", processed)
            candidates = fresh
        candidates.sort(key=lambda c: c.key)
        if self.max_products is not None and len(candidates) > self.max_products:
            self.log.warning(
                "max_products=%d: %d product(s) left for a later run",
                self.max_products,
                len(candidates) - self.max_products,
            )
            candidates = candidates[: self.max_products]
        return candidates, rejected

    # ------------------------------------------------------------------ one product
    def _sidecar(self, candidate: _Candidate) -> dict[str, Any]:
        key = posixpath.splitext(candidate.key)[0] + SIDECAR_EXTENSION
        try:
            raw = get_or_none(self._client, self.s3_bucket, key, max_bytes=_MAX_SIDECAR_BYTES)
            if raw is None:
                return {}
            self._read_keys.append(key)
            data = json.loads(raw.decode("utf-8-sig"))
        except ObjectTooLargeError as exc:
            raise _Rejected(f"sidecar {exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Rejected(f"sidecar {self._uri(key)} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _Rejected(f"sidecar {self._uri(key)} must hold a JSON object, not {type(data).__name__}")
        return data

    def _prepare(self, candidate: _Candidate, catalog: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        if candidate.size > MAX_SOURCE_BYTES:
            raise _Rejected(f"{human_size(candidate.size)} is too big to be a product photo")
        fields = _without_signatures({**catalog.get(candidate.product_id, {}), **self._sidecar(candidate)})
        fields["product_id"] = candidate.product_id
        image_uri, reencoded = self._checked_image(candidate)

        prompt, missing = render_prompt(self.prompt_template, fields)
        if missing:
            self.log.warning(
                "%s: no value for placeholder(s) %s; rendered as empty", candidate.product_id, sorted(missing)
            )
        if len(prompt) > self.max_prompt_chars:
            self.log.warning(
                "%s: prompt of %d characters cut to %d", candidate.product_id, len(prompt), self.max_prompt_chars
            )
            prompt = truncate_prompt(prompt, self.max_prompt_chars)
        metadata = {**fields, "source_image": self._uri(candidate.key)}
        if reencoded:
            metadata["reencoded"] = True
        return {"image": image_uri, "prompt": prompt or None, "metadata": metadata}

    def _checked_image(self, candidate: _Candidate) -> tuple[str, bool]:
        """The S3 URI to send and whether it was re-encoded; raises _Rejected if unusable."""
        label = self._uri(candidate.key)
        try:
            data = self._read(candidate.key, MAX_SOURCE_BYTES)
            self._read_keys.append(candidate.key)
            info = inspect_image(data, label=label)
        except ObjectTooLargeError as exc:
            raise _Rejected(f"too big to be a product photo: {exc}") from None
        except CogVideoValidationError as exc:
            raise _Rejected(exc.reason) from None
        reasons = info.reencode_reasons()
        if info.format not in COGVIDEOX_IMAGE_FORMATS:
            reasons.insert(0, info.format)
        if info.n_bytes > self.image_max_bytes:
            reasons.append(human_size(info.n_bytes))
        if not reasons:
            return label, False
        try:  # within the pixel budget: inspect_image refused anything bigger from its header
            jpeg, _ = normalized_jpeg(data, self.image_max_bytes, label=label)
        except CogVideoValidationError as exc:
            raise _Rejected(exc.reason) from None
        try:
            staged = checked_key(f"{self._staging}{candidate.product_id}.jpg", "staged key")
        except CogVideoValidationError as exc:
            raise _Rejected(str(exc)) from None
        self._client.put_object(
            Bucket=self.s3_bucket,
            Key=staged,
            Body=jpeg,
            ContentType="image/jpeg",
            Metadata={"source-key": quote(candidate.key, safe="/")},
        )
        self._written_keys.append(staged)
        self.log.info(
            "%s: %s (%s) re-encoded to JPEG (%d bytes) at %s",
            candidate.product_id,
            info.format,
            ", ".join(reasons),
            len(jpeg),
            self._uri(staged),
        )
        return self._uri(staged), True

    # ------------------------------------------------------------------ OpenLineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: every object this try read (images, sidecars, catalog); outputs: the staged JPEGs."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        from airflow_provider_cogvideo.lineage import s3_dataset

        read = getattr(self, "_read_keys", [])
        written = getattr(self, "_written_keys", [])
        return OperatorLineage(
            inputs=[s3_dataset(self.s3_bucket, key) for key in dict.fromkeys(read)],
            outputs=[s3_dataset(self.s3_bucket, key) for key in dict.fromkeys(written)],
        )


class _Rejected(Exception):
    """One image cannot be used; the message is the reason reported to the user."""


__all__ = ["S3ProductImagesOperator", "product_id_of", "render_prompt", "source_image_of", "truncate_prompt"]
