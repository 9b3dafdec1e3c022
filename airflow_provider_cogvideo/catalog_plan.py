"""Which products of a catalog a run pays for: the decision per (product, variant), made from listings.

A pipeline run over a catalog it has seen before should pay only for what changed, and find that out
without reading what did not. The video index (:mod:`.video_index`) records, for every video it paid
for, the *inputs* as the listing showed them (the source image's key, size, ETag and content sha256,
the sidecar's key, size, ETag and fields) and the video's fingerprint (:mod:`.fingerprint`). So, per
product and variant, with nothing but this run's listing of the catalog:

* **held**: an earlier run's submit for it may have created a billed job that nobody can find
  (``ambiguous``); it is not paid again until a person clears the hold or the run releases it;
* **reuse**: the newest entry's recorded inputs are what the listing shows now (same keys, sizes and
  ETags, so the same bytes), the fingerprint recomputed from them with *today's* template, catalog,
  model and options is the entry's, and the entry's video and cover are still in S3 as uploaded
  (:meth:`~.video_index.VideoIndex.trusted`): no request is sent, nothing is read;
* **rejected**: as reuse, but a review rejected that very video (its entry's ``review``, made on its
  job: :func:`~.review.entry_review_state`): it is neither reused nor read nor paid again until its
  inputs change (a new fingerprint, so a new video and a new review) or ``regenerate`` names it;
* **read**: anything else (no entry, an input changed, the video was replaced or deleted, or the
  product is to be regenerated): its image and sidecar are read, and only then is it known whether an
  entry matches its fingerprint after all (:func:`reuse_after_read`: reused, or rejected as above) or
  it is paid.

What a run maps is capped (:func:`paid_cap`): Airflow refuses to expand a mapped task over more than
``[core] max_map_length`` items, so products to read beyond the cap are left ``waiting`` for the next
run, unread.
"""

from __future__ import annotations

import ast
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.manifest import RowStatus
from airflow_provider_cogvideo.review import ReviewState, entry_review_state, rejected_reason
from airflow_provider_cogvideo.sizes import KiB
from airflow_provider_cogvideo.validation import is_unset
from airflow_provider_cogvideo.video_index import Hold, IndexEntry, IndexLocation, VideoIndex

ALL = "all"
"""A :class:`Selection` of every product (``regenerate="all"``)."""
DEFAULT_MAX_MAP_LENGTH = 1024
"""Airflow's default ``[core] max_map_length`` (since 2.3)."""
MAX_RECORDED_SIDECAR_BYTES = 8 * KiB
"""Sidecar fields up to this (as JSON) are recorded in the index, so that a later run can recompute
the prompt without reading the sidecar; a bigger sidecar is read again each run (never paid twice)."""


_ListedT = TypeVar("_ListedT", bound="Listed")


@dataclass(frozen=True)
class Listed:
    """An object as a listing shows it: enough to tell that its bytes did not change."""

    key: str
    size: int
    etag: str

    def matches(self, recorded: Mapping[str, Any] | None) -> bool:
        """Whether ``recorded`` (an index entry's record of an input) is this object, unchanged."""
        return isinstance(recorded, Mapping) and (recorded.get("key"), recorded.get("size"), recorded.get("etag")) == (
            self.key,
            self.size,
            self.etag,
        )

    def record(self, **more: Any) -> dict[str, Any]:
        """What an index entry records of this input (plus e.g. its ``sha256`` or ``fields``)."""
        return {"key": self.key, "size": self.size, "etag": self.etag, **more}

    @classmethod
    def from_listing(cls: type[_ListedT], obj: Mapping[str, Any], **more: Any) -> _ListedT:
        """One ``Contents`` entry of a ``ListObjectsV2`` page (the ETag without its quotes)."""
        return cls(str(obj["Key"]), int(obj["Size"]), str(obj.get("ETag") or "").strip('"'), **more)


@dataclass(frozen=True)
class CatalogImage(Listed):
    """A product image as listed: a candidate of the run, named by its product id."""

    product_id: str = ""

    @property
    def listed(self) -> Listed:
        return Listed(self.key, self.size, self.etag)


@dataclass
class CatalogRun:
    """One ingestion's inputs to the decisions, and what they produced: the items to pay, the rows of
    what is not mapped (reused, held, rejected by review, waiting) and the refusals."""

    catalog: dict[str, dict[str, Any]]
    index: VideoIndex | None
    cap: int
    regenerate: Selection
    release_held: Selection
    rejected: list[dict[str, Any]]
    paid: list[dict[str, Any]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


def index_overlaps(location: IndexLocation, bucket: str, prefix: str) -> bool:
    """Whether the listing of ``prefix`` in ``bucket`` and the index under ``location`` share keys (the
    index's covers would be listed as product images, and paid for every run)."""
    return location.bucket == bucket and (location.root.startswith(prefix) or prefix.startswith(location.root))


@dataclass(frozen=True)
class Selection:
    """Products named by a DAG param: ``regenerate`` and ``release_held`` (a list of product ids, a
    comma-separated text, or ``"all"``)."""

    products: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def parse(cls, field: str, value: Any) -> Selection:
        """``value`` as a selection; unset selects nothing. Anything else is refused naming ``field``."""
        if value is None or value is False or is_unset(value) or value == []:
            return cls()
        if value is True:
            return cls(everything=True)
        if isinstance(value, str) and value.strip().startswith("["):
            try:  # a list param rendered by Jinja as text: ['sku-1', 'sku-2']
                value = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise CogVideoValidationError(field, f"is not a list of product ids: {value!r}") from None
        elif isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
            raise CogVideoValidationError(
                field, f'must be a list of product ids, a comma-separated text of them, or "all"; got {value!r}'
            )
        names = frozenset(v.strip() for v in value if v.strip())
        if any(name.casefold() == ALL for name in names):
            return cls(everything=True)
        return cls(products=names)

    def __contains__(self, product_id: object) -> bool:
        return self.everything or product_id in self.products

    def __bool__(self) -> bool:
        return self.everything or bool(self.products)


class Choice(enum.Enum):
    """What a run does with a (product, variant) before reading anything of it."""

    REUSE = "reuse"
    HOLD = "hold"
    READ = "read"
    REJECTED = "rejected"
    """Its video, as it would be reused, was rejected by review: neither reused, read nor paid."""


FingerprintOf = Callable[[Mapping[str, Any] | None, str], str]
"""``(sidecar fields or None, source image sha256) -> fingerprint`` with this run's template,
catalog, model, options and the variant at hand."""


def choose(
    index: VideoIndex | None,
    product_id: str,
    variant: str,
    *,
    image: Listed,
    sidecar: Listed | None,
    fingerprint_of: FingerprintOf,
    regenerate: Selection,
    release_held: Selection,
) -> tuple[Choice, IndexEntry | Hold | None]:
    """The decision from listings (see the module docstring): ``(REUSE, entry)``, ``(REJECTED, entry)``,
    ``(HOLD, hold)`` or ``(READ, None)``."""
    if index is None:
        return Choice.READ, None
    hold = index.held(product_id, variant)
    if hold is not None and product_id not in release_held:
        return Choice.HOLD, hold
    if product_id in regenerate:
        return Choice.READ, None
    entry = index.latest(product_id, variant)
    if entry is None or not index.trusted(entry):
        return Choice.READ, None
    inputs = entry.inputs if isinstance(entry.inputs, Mapping) else {}
    recorded_image, recorded_sidecar = inputs.get("image"), inputs.get("sidecar")
    if not image.matches(recorded_image) or not isinstance(recorded_image.get("sha256"), str):
        return Choice.READ, None
    if sidecar is None:
        if recorded_sidecar is not None:
            return Choice.READ, None
        fields = None
    else:
        if not sidecar.matches(recorded_sidecar) or not isinstance(recorded_sidecar.get("fields"), Mapping):
            return Choice.READ, None  # a sidecar too big to record is read again (and reused after reading)
        fields = recorded_sidecar["fields"]
    if fingerprint_of(fields, recorded_image["sha256"]) != entry.fingerprint:
        return Choice.READ, None  # the template, the catalog, the model or an option changed
    if rejected_by_review(entry):  # not regenerated: that was read above
        return Choice.REJECTED, entry
    return Choice.REUSE, entry


def reuse_after_read(
    index: VideoIndex | None, product_id: str, variant: str, fingerprint: str, *, regenerate: Selection
) -> IndexEntry | None:
    """An entry with the fingerprint computed from what was read, still in S3 as uploaded (an image put
    back as it was, a sidecar re-uploaded unchanged): reused rather than paid, unless regenerated; or
    rejected, not paid, when a review rejected its video (:func:`entry_row` tells which)."""
    if index is None or product_id in regenerate:
        return None
    entry = index.find(product_id, variant, fingerprint)
    return entry if entry is not None and index.trusted(entry) else None


def max_map_length() -> int:
    """``[core] max_map_length``, the most items Airflow expands one mapped task over.

    Read from this process's configuration: the Execution API server enforces its own value, so every
    component of a deployment must be configured alike (Airflow's own rule for ``[core]`` settings)."""
    try:
        from airflow.sdk.configuration import conf  # Airflow 3.2+
    except ImportError:  # Airflow 3.1: the task SDK has no configuration of its own
        from airflow.configuration import conf  # type: ignore[no-redef]
    return conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAP_LENGTH)


def paid_cap(max_products: int | None, map_length: int | None = None) -> int:
    """How many items a run may hand on to be paid: ``[core] max_map_length``, or ``max_products`` when
    that is smaller."""
    limit = max_map_length() if map_length is None else map_length
    return limit if max_products is None else min(limit, max_products)


def index_inputs(
    image: Listed, sha256: str, sidecar: Listed | None, sidecar_fields: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What an index entry records of a paid item's inputs, as this run's listing showed them: the
    source image with its content sha256, the sidecar with its fields (unless they are too big to
    record: that product's sidecar is then read again by every run, and its video still reused)."""
    recorded = dict(sidecar_fields) if sidecar_fields is not None else None
    if recorded is not None and len(json.dumps(recorded, default=str)) > MAX_RECORDED_SIDECAR_BYTES:
        recorded = None
    return {"image": image.record(sha256=sha256), "sidecar": sidecar.record(fields=recorded) if sidecar else None}


def known_title(found: IndexEntry | Hold | None, catalog_row: Mapping[str, Any] | None) -> Any:
    """A reused or held product's title from what is known without reading its sidecar: the sidecar
    fields its entry recorded, else its catalog row."""
    inputs = getattr(found, "inputs", None)
    sidecar = inputs.get("sidecar") if isinstance(inputs, Mapping) else None
    fields = sidecar.get("fields") if isinstance(sidecar, Mapping) else None
    return (fields if isinstance(fields, Mapping) else {}).get("title") or (catalog_row or {}).get("title")


def held_row(hold: Hold, *, title: Any, image: str | None) -> dict[str, Any]:
    """The catalog row of a held product: what is known of the submit, and what a person does."""
    return {
        "product_id": hold.product_id,
        "variant": hold.variant,
        "status": RowStatus.HELD.value,
        "title": title,
        "image": image,
        "request_id": hold.request_id,
        "held_by_run": hold.run_id,
        "held_at": hold.at,
        "check": (
            f"Run {hold.run_id} left this product's submit ambiguous (request_id {hold.request_id}): a job may "
            "exist and be billed. Look it up in the BigModel console (billing / API logs); then delete the hold "
            "object or trigger a run with release_held naming this product to pay for it again."
        ),
    }


def rejected_by_review(entry: IndexEntry) -> bool:
    """Whether a review rejected the entry's video (a decision made on its own job)."""
    return entry_review_state(entry) == ReviewState.REJECTED.value


def reused_row(entry: IndexEntry, *, title: Any, image: str | None) -> dict[str, Any]:
    """The catalog row of a reused product (:meth:`~.video_index.IndexEntry.reused_row`) with its
    ``review`` when one was made on that video's job (None otherwise: the video is unreviewed)."""
    review = entry.review if entry_review_state(entry) is not None else None
    return {**entry.reused_row(title, image), "review": review}


def rejected_row(entry: IndexEntry, *, title: Any, image: str | None) -> dict[str, Any]:
    """The catalog row of a product whose video a review rejected: the video it would have reused, at
    no cost this run, with the reason (the reviewers' notes) and the ``review``."""
    return {
        **entry.reused_row(title, image),
        "status": RowStatus.REJECTED_BY_REVIEW.value,
        "price": 0.0,
        "reason": rejected_reason(entry.review or {}),
        "review": entry.review,
    }


def entry_row(entry: IndexEntry, *, title: Any, image: str | None) -> dict[str, Any]:
    """The row of a product an index entry settles without paying: :func:`rejected_row` when a review
    rejected its video, else :func:`reused_row`."""
    return (rejected_row if rejected_by_review(entry) else reused_row)(entry, title=title, image=image)


def waiting_row(product_id: str, variant: str, *, title: Any, image: str | None, cap: int) -> dict[str, Any]:
    """The catalog row of a product left for a later run by the cap (its title as far as it is known
    unread: :func:`known_title`)."""
    return {
        "product_id": product_id,
        "variant": variant,
        "status": RowStatus.WAITING.value,
        "title": title,
        "image": image,
        "reason": f"over this run's cap of {cap} paid item(s) ([core] max_map_length or max_products): "
        "taken by the next run",
    }


__all__ = [
    "ALL",
    "DEFAULT_MAX_MAP_LENGTH",
    "MAX_RECORDED_SIDECAR_BYTES",
    "CatalogImage",
    "CatalogRun",
    "Choice",
    "FingerprintOf",
    "Listed",
    "Selection",
    "choose",
    "entry_row",
    "held_row",
    "index_inputs",
    "index_overlaps",
    "known_title",
    "max_map_length",
    "paid_cap",
    "rejected_by_review",
    "rejected_row",
    "reuse_after_read",
    "reused_row",
    "waiting_row",
]
