"""Turn a folder of product photos in S3 into generation requests.

``S3ProductImagesOperator`` lists images under a prefix, checks each one with Pillow, re-encodes what
the API would refuse, renders one prompt per product and returns small dicts for
``CogVideoGenerateOperator.partial(...).expand_kwargs(...)``::

    {"image": "s3://bucket/key", "prompt": "...", "metadata": {"product_id": "sku-1", ...}}

Images travel by S3 URI only, never as base64 through XCom (XCom rows are small and logged).

Per image (:func:`~airflow_provider_cogvideo.image_pixels.sendable_as_is`): a PNG or JPEG up to
``image_max_bytes`` that any decoder shows the same way is used as is; anything else decodable (another
format, HEIC with the ``heif`` extra, too big, rotated, another colour profile, CMYK, a palette,
transparency, 16 bits) is re-encoded to an upright sRGB JPEG that fits, under ``staging_prefix``.
Undecodable, over the pixel budget or :data:`~airflow_provider_cogvideo.image_sources.MAX_SOURCE_BYTES`,
a HEIC without the extra, an unreadable sidecar or a duplicate product id: rejected, with the reason
in the log and in the XCom key ``rejected``; if nothing is usable the task fails.

Every object is read with a cap (images, sidecars, the catalog): its ``ContentLength`` first, and a
read that stops one byte past the cap, so an object that grew since it was listed costs no more.

Product fields and prompts: :mod:`~airflow_provider_cogvideo.products`.

Over a catalog that runs every day, give it the ``video_index`` the transfer writes to: what is already
a video is decided from the listing (:mod:`~airflow_provider_cogvideo.catalog_plan`) and never read,
and at most ``[core] max_map_length`` items are handed on to be paid, the rest ``waiting``.

OpenLineage (with ``apache-airflow-providers-openlineage``): every object read (images, sidecars, the
catalog) is an input dataset and every staged JPEG an output (``s3://bucket`` / key).
"""

from __future__ import annotations

import csv
import hashlib
import json
import posixpath
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES, PROMPT_MAX_CHARS
from airflow_provider_cogvideo.catalog_plan import (
    CatalogImage,
    CatalogRun,
    Choice,
    Listed,
    Selection,
    choose,
    entry_row,
    held_row,
    index_inputs,
    index_overlaps,
    known_title,
    paid_cap,
    reuse_after_read,
    waiting_row,
)
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.image_framing import DEFAULT_FIT, already_framed, framed_jpeg
from airflow_provider_cogvideo.image_pixels import normalized_jpeg, sendable_as_is
from airflow_provider_cogvideo.image_sources import MAX_SOURCE_BYTES
from airflow_provider_cogvideo.product_variants import ProductVariants
from airflow_provider_cogvideo.products import (
    PlaceholderValues,
    checked_generation,
    checked_variants,
    parse_catalog,
    product_id_of,
    render_prompt,
    truncate_prompt,
    without_signatures,
)
from airflow_provider_cogvideo.prompt_writer import PromptWriter
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
from airflow_provider_cogvideo.validation import bounded, is_unset
from airflow_provider_cogvideo.video_index import (
    DEFAULT_VARIANT,
    INDEX_INPUTS,
    Hold,
    IndexEntry,
    IndexLocation,
    VideoIndex,
    load_index,
)
from airflow_provider_cogvideo.xcom import XCOM_CATALOG, XCOM_READS, XCOM_REJECTED

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
READ_KINDS = ("list", "get_index", "images", "sidecars", "catalog")
"""What XCom ``catalog_reads`` counts: listings (catalog and index), GETs of the index, images,
sidecars and the catalog read; an unchanged catalog re-run reads no image and no sidecar."""
MAX_PRODUCTS_RANGE = (1, 10_000)
"""``max_products``: the products travel as one XCom value (about 1 KB each); a bigger batch is
several runs, each checked and priced on its own."""


@dataclass(frozen=True)
class _Prepared:
    """A product whose image and sidecar were read: what goes to the generate step and the index."""

    image: str
    reencoded: bool
    fields: dict[str, Any]
    sidecar_fields: dict[str, Any] | None
    sha256: str
    prompt: str | None
    data: bytes
    """The source image's bytes, framed per format (then dropped with the product)."""
    size: tuple[int, int]


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
    :param max_products: hand on at most this many items to be paid (the first by key), as a spending
        guard; the rest are listed as ``waiting`` (XCom ``catalog``) and left, unread, for a later run.
        1 to 10,000, or ``None``: ``[core] max_map_length`` (1024 by default), the most Airflow maps one
        task over, always caps it.
    :param video_index: ``s3://bucket/prefix/`` of a video index (:mod:`~airflow_provider_cogvideo.video_index`,
        the videos' own prefix, given to the transfer too): a product whose video is already there,
        made from the same inputs, is not handed on to be paid but listed as ``reused`` (XCom
        ``catalog``); decided from the listing, without reading its image or sidecar. A product an
        earlier run left ``ambiguous`` is listed as ``held``; one whose video a review rejected, as
        ``rejected_by_review`` (not paid again until its inputs change or ``regenerate`` names it). Needs
        ``generation``.
    :param generation: what makes the video besides the image and prompt, as given to the generate
        operator: ``model`` and every option (``duration``, ``quality``, ``extra_body``...). With it each
        item carries its ``fingerprint`` (:func:`~airflow_provider_cogvideo.fingerprint.video_fingerprint`).
    :param variants: the videos made of each product (1 to 16 names; ``["default"]``): each is an item
        of its own, keyed and indexed by (product, variant).
    :param regenerate: products to pay for again even when the index has their video: a list of product
        ids, a comma-separated text of them, or ``"all"``.
    :param release_held: held products to pay for again (a person checked the console and accepts the
        risk of a second job): a list of product ids, a comma-separated text, or ``"all"``.
    :param formats: one video per ad format instead of ``variants``: 1 to 8 names of
        :data:`~airflow_provider_cogvideo.formats.AD_FORMATS` (``["9:16", "16:9"]``, ``"tiktok,amazon"``),
        each a variant of its own (key ``<variant>.mp4``: ``9x16``, ``tiktok``), sending the size (or
        aspect ratio) the model renders it at, from an image framed to it. A format the model cannot
        render fails the task before anything is paid, naming the sizes it can. Unset: ``variants``.
    :param fit: how a photo is framed to a format it does not have: ``"pad"`` (default: the whole photo,
        bars of its border's colour; in image-to-video the photo is the first frame, and a crop could cut
        the product out of every frame) or ``"crop"`` (fills the frame, centre cut). The framed JPEG is
        staged under ``staging_prefix`` as ``<product_id>/<variant>.jpg``; a photo that already has the
        format's aspect ratio is sent as it is.
    :param prompt_writer: the generate step's ``prompt_writer`` (unset: none): with it each item's
        fingerprint names the writer key of its inputs (template prompt, fields, image, format, writer
        settings; :mod:`~airflow_provider_cogvideo.product_variants`), carried in ``metadata`` for the
        generate step, which writes the prompt, so turning the writer on makes each video once more
        and later runs match from the listing.

    Which tool when: ``video_index`` is the one for a catalog re-run every day (it notices a replaced
    image, a changed sidecar or catalog row, template, model or option, and costs one listing).
    ``only_new_in_data_interval`` suits drops where each image arrives once and never changes (no
    index, no read of outputs). ``processed_key_template`` suits outputs written by something else
    than this pipeline (a HEAD per product; it cannot tell that a product changed).

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
        "video_index",
        "regenerate",
        "release_held",
        "formats",
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
        video_index: str | None = None,
        generation: Mapping[str, Any] | None = None,
        variants: Sequence[str] = (DEFAULT_VARIANT,),
        regenerate: Any = None,
        release_held: Any = None,
        formats: Any = None,
        fit: str = DEFAULT_FIT,
        prompt_writer: Mapping[str, Any] | None = None,
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
        self.video_index = video_index
        self.generation = checked_generation(generation, required=video_index is not None)
        self.variants = checked_variants(variants)
        self.regenerate = regenerate
        self.release_held = release_held
        self.formats = formats
        self.fit = fit
        self.prompt_writer = PromptWriter.from_value(prompt_writer)
        if not isinstance(formats, str) or "{" not in formats:  # literal: checked when the DAG is parsed
            self._product_variants()

    def _product_variants(self) -> ProductVariants:
        return ProductVariants.build(
            generation=self.generation,
            variants=self.variants,
            formats=self.formats,
            fit=self.fit,
            writer=self.prompt_writer,
        )

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        try:
            render_prompt(self.prompt_template, {})
        except (ValueError, IndexError) as exc:
            raise AirflowFailException(f"prompt_template is not a valid format string: {exc}") from None
        try:
            location = None if is_unset(self.video_index) else IndexLocation.parse(str(self.video_index))
            regenerate = Selection.parse("regenerate", self.regenerate)
            release_held = Selection.parse("release_held", self.release_held)
            self._made = self._product_variants()
        except CogVideoValidationError as exc:
            raise AirflowFailException(str(exc)) from None
        if location is not None and index_overlaps(location, self.s3_bucket, self.prefix):
            # the videos' covers are images: listed as products, each run would pay for videos of covers
            raise AirflowFailException(
                f"video_index {location.uri} overlaps the images listed under {self._uri(self.prefix)}: keep the "
                "videos under another prefix (or bucket) than the product images"
            )
        self._client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        self._read_keys: list[str] = []  # what OpenLineage reports: objects read and written
        self._written_keys: list[str] = []
        # S3 requests by kind (XCom catalog_reads), each reported even when none was made
        self._requests: Counter[str] = Counter(dict.fromkeys(READ_KINDS, 0))
        staging = self.staging_prefix.strip("/")
        if not staging:
            raise AirflowFailException("staging_prefix must not be empty (re-encoded images would land at the root)")
        if problem := key_problem(staging):
            raise AirflowFailException(f"staging_prefix {self.staging_prefix!r} {problem}; {KEY_RULES}")
        self._staging = staging + "/"

        catalog = self._load_catalog()
        candidates, sidecars, rejected = self._list_candidates(context)
        run = CatalogRun(
            catalog=catalog,
            index=self._load_index(location),
            cap=paid_cap(self.max_products),
            regenerate=regenerate,
            release_held=release_held,
            rejected=rejected,
        )
        for candidate in candidates:
            self._decide(run, candidate, sidecars.get(_sidecar_key(candidate.key)))
        self._report(context, run)
        return run.paid

    def _report(self, context: Context, run: CatalogRun) -> None:
        """XCom (``rejected``, ``catalog``, ``catalog_reads``) and the log: what each product became."""
        for item in run.rejected:
            self.log.warning("Rejected %s: %s", item["image"], item["reason"])
        ti = context["ti"]
        ti.xcom_push(key=XCOM_REJECTED, value=run.rejected)
        ti.xcom_push(key=XCOM_CATALOG, value=run.rows)
        ti.xcom_push(key=XCOM_READS, value=dict(self._requests))
        counts = Counter(row["status"] for row in run.rows)
        self.log.info(
            "%d item(s) to pay, %d reused, %d held, %d rejected by review, %d waiting, %d image(s) rejected (%d "
            "re-encoded into %s); S3 requests: %s",
            len(run.paid),
            counts["reused"],
            counts["held"],
            counts["rejected_by_review"],
            counts["waiting"],
            len(run.rejected),
            sum(1 for p in run.paid if p["metadata"].get("reencoded")),
            self._uri(self._staging),
            dict(self._requests),
        )
        if counts["waiting"]:
            self.log.warning(
                "%d item(s) wait for a later run: this run hands on at most %d to be paid ([core] max_map_length "
                "or max_products)",
                counts["waiting"],
                run.cap,
            )
        if run.rejected and not run.paid and not run.rows:
            raise AirflowFailException(
                f"all {len(run.rejected)} image(s) under {self._uri(self.prefix)} were rejected; see the log or "
                "the XCom 'rejected'"
            )
        if not run.paid and not run.rows:
            self.log.warning("No new product images under %s", self._uri(self.prefix))

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

    def _load_index(self, location: IndexLocation | None) -> VideoIndex | None:
        if location is None:
            return None
        index = load_index(self._client, location)
        self._requests["list"] += index.requests["list"]
        self._requests["get_index"] += index.requests["get"]
        self.log.info(
            "Video index %s: %d entries, %d held (S3 requests: %s)",
            location.uri,
            len(index.entries),
            len(index.holds),
            dict(index.requests),
        )
        return index

    # ------------------------------------------------------------------ the decision per product
    def _decide(self, run: CatalogRun, candidate: CatalogImage, sidecar: Listed | None) -> None:
        """Reuse, hold, or read; then, read, reuse or pay (see :mod:`~airflow_provider_cogvideo.catalog_plan`)."""
        pid, image = candidate.product_id, self._uri(candidate.key)
        to_read: list[str] = []
        for variant in self._made.names:

            def fingerprint_of(fields: Mapping[str, Any] | None, sha256: str, variant: str = variant) -> str:
                merged = self._fields(pid, run.catalog, fields)
                return self._made.fingerprint(variant, self._prompt(pid, merged, quiet=True), sha256, merged) or ""

            choice, found = choose(
                run.index,
                pid,
                variant,
                image=candidate.listed,
                sidecar=sidecar,
                fingerprint_of=fingerprint_of,
                regenerate=run.regenerate,
                release_held=run.release_held,
            )
            if choice in (Choice.REUSE, Choice.REJECTED) and isinstance(found, IndexEntry):  # nothing read or paid
                run.rows.append(entry_row(found, title=known_title(found, run.catalog.get(pid)), image=image))
            elif choice is Choice.HOLD and isinstance(found, Hold) and run.index is not None:
                # a hold records no fields: the title is the one its last paid video recorded, if any
                title = known_title(run.index.latest(pid, variant), run.catalog.get(pid))
                run.rows.append(held_row(found, title=title, image=image))
            else:
                to_read.append(variant)
        if not to_read:
            return
        if len(run.paid) + len(to_read) > run.cap:  # left unread for the next run
            title = known_title(None, run.catalog.get(pid))
            run.rows.extend(waiting_row(pid, variant, title=title, image=image, cap=run.cap) for variant in to_read)
            return
        try:
            prepared = self._prepare(candidate, run.catalog, sidecar)
        except _Rejected as exc:
            run.rejected.append({"product_id": pid, "image": image, "reason": str(exc)})
            return
        for variant in to_read:
            fingerprint = self._made.fingerprint(variant, prepared.prompt, prepared.sha256, prepared.fields)
            entry = (
                reuse_after_read(run.index, pid, variant, fingerprint, regenerate=run.regenerate)
                if fingerprint
                else None
            )
            if entry is not None:  # reused, or rejected by review: not paid either way
                run.rows.append(entry_row(entry, title=prepared.fields.get("title"), image=image))
            else:
                try:
                    sent = self._framed(candidate, prepared, variant)
                except _Rejected as exc:
                    run.rejected.append({"product_id": pid, "image": image, "reason": str(exc)})
                    continue
                run.paid.append(self._item(run, candidate, sidecar, prepared, variant, fingerprint, sent))

    def _item(
        self,
        run: CatalogRun,
        candidate: CatalogImage,
        sidecar: Listed | None,
        prepared: _Prepared,
        variant: str,
        fingerprint: str | None,
        sent: str,
    ) -> dict[str, Any]:
        """One item to pay: the image to send, the prompt, the request options and the metadata."""
        extra = self._made.metadata(variant, prepared.prompt, prepared.sha256, prepared.fields)
        metadata = {**prepared.fields, "source_image": self._uri(candidate.key), "variant": variant, **extra}
        if prepared.reencoded:
            metadata["reencoded"] = True
        if fingerprint:
            metadata["fingerprint"] = fingerprint
        if run.index is not None:  # what the entry records, as the listing showed it
            inputs = index_inputs(candidate.listed, prepared.sha256, sidecar, prepared.sidecar_fields)
            if (recorded := self._made.recorded_format(variant)) is not None:
                inputs["format"] = recorded
            metadata[INDEX_INPUTS] = inputs
        return {"image": sent, "prompt": prepared.prompt, "metadata": metadata, "options": self._made.options(variant)}

    def _framed(self, candidate: CatalogImage, prepared: _Prepared, variant: str) -> str:
        """The image to send for ``variant``: the product's, or, for a format it does not fit (or one it
        was re-encoded for anyway), the source framed to the format, staged as ``<product>/<variant>.jpg``."""
        choice = self._made.choice(variant)
        if choice is None or (not prepared.reencoded and already_framed(*prepared.size, choice.width, choice.height)):
            return prepared.image
        label = self._uri(candidate.key)
        try:
            jpeg = framed_jpeg(
                prepared.data,
                choice.width,
                choice.height,
                fit=self._made.fit,
                max_bytes=self.image_max_bytes,
                label=label,
            )
            staged = checked_key(f"{self._staging}{candidate.product_id}/{variant}.jpg", "staged key")
        except CogVideoValidationError as exc:
            raise _Rejected(str(exc)) from None
        self._client.put_object(
            Bucket=self.s3_bucket,
            Key=staged,
            Body=jpeg,
            ContentType="image/jpeg",
            Metadata={"source-key": quote(candidate.key, safe="/"), "framing": self._made.preparation(variant) or ""},
        )
        self._written_keys.append(staged)
        return self._uri(staged)

    # ------------------------------------------------------------------ listing
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

    # ------------------------------------------------------------------ one product
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
            raise _Rejected(f"sidecar {exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Rejected(f"sidecar {self._uri(key)} is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise _Rejected(f"sidecar {self._uri(key)} must hold a JSON object, not {type(data).__name__}")
        return without_signatures(data)

    @staticmethod
    def _fields(
        product_id: str, catalog: Mapping[str, Mapping[str, Any]], sidecar_fields: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """A product's fields: its catalog row, the sidecar over it, URLs without signatures, its id."""
        fields = without_signatures({**catalog.get(product_id, {}), **(sidecar_fields or {})})
        fields["product_id"] = product_id
        return fields

    def _prompt(self, product_id: str, fields: Mapping[str, Any], *, quiet: bool = False) -> str | None:
        """The rendered prompt, cut to ``max_prompt_chars``; ``quiet`` when only its fingerprint is needed."""
        prompt, missing = render_prompt(self.prompt_template, fields)
        if missing and not quiet:
            self.log.warning("%s: no value for placeholder(s) %s; rendered as empty", product_id, sorted(missing))
        if len(prompt) > self.max_prompt_chars:
            if not quiet:
                self.log.warning(
                    "%s: prompt of %d characters cut to %d", product_id, len(prompt), self.max_prompt_chars
                )
            prompt = truncate_prompt(prompt, self.max_prompt_chars)
        return prompt or None

    def _prepare(
        self, candidate: CatalogImage, catalog: Mapping[str, Mapping[str, Any]], sidecar: Listed | None
    ) -> _Prepared:
        if candidate.size > MAX_SOURCE_BYTES:
            raise _Rejected(f"{human_size(candidate.size)} is too big to be a product photo")
        sidecar_fields = self._sidecar(sidecar)
        fields = self._fields(candidate.product_id, catalog, sidecar_fields)
        image_uri, reencoded, data, size = self._checked_image(candidate)
        return _Prepared(
            image=image_uri,
            reencoded=reencoded,
            fields=fields,
            sidecar_fields=sidecar_fields,
            sha256=hashlib.sha256(data).hexdigest(),
            prompt=self._prompt(candidate.product_id, fields),
            data=data,
            size=size,
        )

    def _checked_image(self, candidate: CatalogImage) -> tuple[str, bool, bytes, tuple[int, int]]:
        """The S3 URI to send, whether it was re-encoded, the image's bytes as they arrived (hashed for
        its fingerprint: a re-encode's bytes depend on the Pillow version) and its size as stored;
        raises _Rejected if unusable."""
        label = self._uri(candidate.key)
        try:
            data = self._read(candidate.key, MAX_SOURCE_BYTES)
            self._requests["images"] += 1
            self._read_keys.append(candidate.key)
            info, reasons = sendable_as_is(data, self.image_max_bytes, label=label)
        except ObjectTooLargeError as exc:
            raise _Rejected(f"too big to be a product photo: {exc}") from None
        except CogVideoValidationError as exc:
            raise _Rejected(exc.reason) from None
        if not reasons:
            return label, False, data, (info.width, info.height)
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
        return self._uri(staged), True, data, (info.width, info.height)

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


def _sidecar_key(image_key: str) -> str:
    return posixpath.splitext(image_key)[0] + SIDECAR_EXTENSION


__all__ = ["S3ProductImagesOperator"]
