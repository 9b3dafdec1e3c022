"""Reading a catalog's inputs from S3 for :class:`~.product_images.S3ProductImagesOperator`: the listing
(images, sidecars, filters), the catalog file, a sidecar, and each image, checked with Pillow and, where
the API would refuse it or a format needs another shape, re-encoded or framed and staged.

Every object is read with a cap: its ``ContentLength`` first, and a read that stops one byte past the
cap, so an object that grew since it was listed costs no more. Images travel on by S3 URI only.
"""

from __future__ import annotations

import csv
import json
import posixpath
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.catalog_plan import CatalogImage, Listed
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.image_framing import already_framed, framed_jpeg
from airflow_provider_cogvideo.image_pixels import ImageInfo, normalized_jpeg, sendable_as_is
from airflow_provider_cogvideo.image_sources import MAX_SOURCE_BYTES
from airflow_provider_cogvideo.products import PlaceholderValues, parse_catalog, product_id_of, without_signatures
from airflow_provider_cogvideo.s3 import (
    ObjectTooLargeError,
    checked_key,
    get_or_none,
    head_or_none,
    read_capped,
    s3_uri,
)
from airflow_provider_cogvideo.sizes import MiB

if TYPE_CHECKING:
    from collections import Counter

    from airflow.sdk import Context

    from airflow_provider_cogvideo.product_variants import ProductVariants

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
SIDECAR_EXTENSION = ".json"
_MAX_SIDECAR_BYTES = 1 * MiB
"""A sidecar holds one product's fields: a megabyte is thousands of prompts' worth."""
_MAX_CATALOG_BYTES = 32 * MiB
"""Tens of thousands of products with long descriptions; parsed, a catalog costs a few times this."""


class Rejected(Exception):
    """One image cannot be used; the message is the reason reported to the user."""


def sidecar_key(image_key: str) -> str:
    return posixpath.splitext(image_key)[0] + SIDECAR_EXTENSION


@dataclass(frozen=True)
class Prepared:
    """A product whose image and sidecar were read: what goes to the generate step and the index."""

    image: str
    reencoded: bool
    fields: dict[str, Any]
    sidecar_fields: dict[str, Any] | None
    sha256: str
    prompt: str | None
    data: bytes
    """The source image's bytes, framed per format (then dropped with the product)."""
    info: ImageInfo
    """What Pillow found in them (read once, for every format)."""


class CatalogReadsMixin:
    """The reads of one ingestion try (set up by its ``execute``: ``_client``, ``_staging``,
    ``_requests``, ``_read_keys``, ``_written_keys``, ``_made``)."""

    s3_bucket: str
    prefix: str
    catalog_key: str | None
    only_new_in_data_interval: bool
    processed_key_template: str | None
    image_max_bytes: int
    log: Any
    _client: Any
    _staging: str
    _requests: Counter[str]
    _read_keys: list[str]
    _written_keys: list[str]
    _made: ProductVariants

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
            self._requests["catalog"] += 1
            self._read_keys.append(self.catalog_key)
            return parse_catalog(self.catalog_key, raw)
        except (ValueError, UnicodeDecodeError, csv.Error) as exc:  # ObjectTooLargeError included
            raise AirflowFailException(f"catalog {self._uri(self.catalog_key)} is unreadable: {exc}") from None

    def _interval(self, context: Context) -> tuple[datetime, datetime] | None:
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            self.log.warning("only_new_in_data_interval: this run has no data interval; all images are taken")
            return None
        return start, end

    def _list_candidates(self, context: Context) -> tuple[list[CatalogImage], dict[str, Listed], list[dict[str, str]]]:
        """The images to consider (sorted by key), the sidecars listed beside them, and the refusals."""
        interval = self._interval(context) if self.only_new_in_data_interval else None
        paginator = self._client.get_paginator("list_objects_v2")
        candidates: list[CatalogImage] = []
        sidecars: dict[str, Listed] = {}
        rejected: list[dict[str, str]] = []
        seen: dict[str, str] = {}
        ignored = 0
        old = 0
        for page in paginator.paginate(Bucket=self.s3_bucket, Prefix=self.prefix):
            self._requests["list"] += 1
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.startswith(self._staging):
                    continue
                ext = posixpath.splitext(key)[1]
                if ext.lower() == SIDECAR_EXTENSION:
                    sidecars[key] = Listed.from_listing(obj)
                if ext.lower() not in IMAGE_EXTENSIONS:
                    is_ours = ext.lower() == SIDECAR_EXTENSION or key == self.catalog_key or key.endswith("/")
                    ignored += 0 if is_ours else 1
                    continue
                if interval and not interval[0] <= obj["LastModified"] < interval[1]:
                    old += 1
                    continue
                pid = product_id_of(key)
                if pid in seen:
                    reason = f"duplicate product_id {pid!r} (also {seen[pid]})"
                    rejected.append({"product_id": pid, "image": self._uri(key), "reason": reason})
                    continue
                seen[pid] = self._uri(key)
                candidates.append(CatalogImage.from_listing(obj, product_id=pid))
        if ignored:
            self.log.info("Ignored %d non-image file(s) under %s", ignored, self._uri(self.prefix))
        if old:
            self.log.info("Skipped %d image(s) not modified in the data interval %s", old, interval)
        if self.processed_key_template:
            fresh, processed = [], 0
            for c in candidates:
                try:  # the key rule of every key (s3.checked_key): a product id cannot walk out of the prefix
                    output = checked_key(
                        self.processed_key_template.format_map(PlaceholderValues({"product_id": c.product_id})),
                        "processed_key_template",
                    )
                except CogVideoValidationError as exc:
                    rejected.append({"product_id": c.product_id, "image": self._uri(c.key), "reason": str(exc)})
                    continue
                if self._exists(output):
                    processed += 1
                else:
                    fresh.append(c)
            if processed:
                self.log.info("Skipped %d already processed product(s)", processed)
            candidates = fresh
        candidates.sort(key=lambda c: c.key)
        return candidates, sidecars, rejected

    def _sidecar(self, sidecar: Listed | None) -> dict[str, Any] | None:
        """The sidecar's fields, read only when the listing showed one (None: there is none)."""
        if sidecar is None:
            return None
        key = sidecar.key
        try:
            raw = get_or_none(self._client, self.s3_bucket, key, max_bytes=_MAX_SIDECAR_BYTES)
            self._requests["sidecars"] += 1
            if raw is None:
                return None  # deleted since it was listed
            self._read_keys.append(key)
            data = json.loads(raw.decode("utf-8-sig"))
        except ObjectTooLargeError as exc:
            raise Rejected(f"sidecar {exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Rejected(f"sidecar {self._uri(key)} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise Rejected(f"sidecar {self._uri(key)} must hold a JSON object, not {type(data).__name__}")
        return without_signatures(data)

    def _checked_image(self, candidate: CatalogImage) -> tuple[str, bool, bytes, ImageInfo]:
        """The S3 URI to send, whether it was re-encoded, the image's bytes as they arrived (hashed for
        its fingerprint: a re-encode's bytes depend on the Pillow version) and what Pillow found in them;
        raises Rejected if unusable."""
        label = self._uri(candidate.key)
        try:
            data = self._read(candidate.key, MAX_SOURCE_BYTES)
            self._requests["images"] += 1
            self._read_keys.append(candidate.key)
            info, reasons = sendable_as_is(data, self.image_max_bytes, label=label)
        except ObjectTooLargeError as exc:
            raise Rejected(f"too big to be a product photo: {exc}") from None
        except CogVideoValidationError as exc:
            raise Rejected(exc.reason) from None
        if not reasons:
            return label, False, data, info
        try:  # within the pixel budget: inspect_image refused anything bigger from its header
            jpeg, _ = normalized_jpeg(data, self.image_max_bytes, label=label)
        except CogVideoValidationError as exc:
            raise Rejected(exc.reason) from None
        staged = self._stage(candidate, f"{candidate.product_id}.jpg", jpeg)
        self.log.info(
            "%s: %s (%s) re-encoded to JPEG (%d bytes) at %s",
            candidate.product_id,
            info.format,
            ", ".join(reasons),
            len(jpeg),
            staged,
        )
        return staged, True, data, info

    def _framed(self, candidate: CatalogImage, prepared: Prepared, variant: str) -> str:
        """The image to send for ``variant``: the product's, or, for a format it does not fit (or one it
        was re-encoded for anyway), the source framed to the format, staged as ``<product>/<variant>.jpg``."""
        choice = self._made.choice(variant)
        if choice is None or (
            not prepared.reencoded
            and already_framed(prepared.info.width, prepared.info.height, choice.width, choice.height)
        ):
            return prepared.image
        try:
            jpeg = framed_jpeg(
                prepared.data,
                choice.width,
                choice.height,
                fit=self._made.fit,
                max_bytes=self.image_max_bytes,
                label=self._uri(candidate.key),
                info=prepared.info,
            )
        except CogVideoValidationError as exc:
            raise Rejected(str(exc)) from None
        framing = self._made.preparation(variant) or ""
        return self._stage(candidate, f"{candidate.product_id}/{variant}.jpg", jpeg, framing=framing)

    def _stage(self, candidate: CatalogImage, name: str, jpeg: bytes, **metadata: str) -> str:
        """Write a JPEG made from ``candidate`` under the staging prefix; its ``s3://`` URI."""
        try:
            staged = checked_key(f"{self._staging}{name}", "staged key")
        except CogVideoValidationError as exc:
            raise Rejected(str(exc)) from None
        self._client.put_object(
            Bucket=self.s3_bucket,
            Key=staged,
            Body=jpeg,
            ContentType="image/jpeg",
            Metadata={"source-key": quote(candidate.key, safe="/"), **metadata},
        )
        self._written_keys.append(staged)
        return self._uri(staged)


__all__ = ["IMAGE_EXTENSIONS", "SIDECAR_EXTENSION", "CatalogReadsMixin", "Prepared", "Rejected", "sidecar_key"]
