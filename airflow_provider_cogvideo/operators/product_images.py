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

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
from airflow_provider_cogvideo.image_framing import DEFAULT_FIT
from airflow_provider_cogvideo.image_sources import MAX_SOURCE_BYTES
from airflow_provider_cogvideo.operators.catalog_reads import CatalogReadsMixin, Prepared, Rejected, sidecar_key
from airflow_provider_cogvideo.product_variants import ProductVariants
from airflow_provider_cogvideo.products import (
    checked_generation,
    checked_variants,
    render_prompt,
    truncate_prompt,
    without_signatures,
)
from airflow_provider_cogvideo.prompt_writer import PromptWriter
from airflow_provider_cogvideo.s3 import (
    KEY_RULES,
    checked_key_template,
    key_problem,
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


class S3ProductImagesOperator(CatalogReadsMixin, BaseOperator):
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
            self._decide(run, candidate, sidecars.get(sidecar_key(candidate.key)))
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
        except Rejected as exc:
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
                except Rejected as exc:
                    run.rejected.append({"product_id": pid, "image": image, "reason": str(exc)})
                    continue
                run.paid.append(self._item(run, candidate, sidecar, prepared, variant, fingerprint, sent))

    def _item(
        self,
        run: CatalogRun,
        candidate: CatalogImage,
        sidecar: Listed | None,
        prepared: Prepared,
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

    # ------------------------------------------------------------------ listing
    # ------------------------------------------------------------------ one product
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
    ) -> Prepared:
        if candidate.size > MAX_SOURCE_BYTES:
            raise Rejected(f"{human_size(candidate.size)} is too big to be a product photo")
        sidecar_fields = self._sidecar(sidecar)
        fields = self._fields(candidate.product_id, catalog, sidecar_fields)
        image_uri, reencoded, data, info = self._checked_image(candidate)
        return Prepared(
            image=image_uri,
            reencoded=reencoded,
            fields=fields,
            sidecar_fields=sidecar_fields,
            sha256=hashlib.sha256(data).hexdigest(),
            prompt=self._prompt(candidate.product_id, fields),
            data=data,
            info=info,
        )

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


__all__ = ["S3ProductImagesOperator"]
