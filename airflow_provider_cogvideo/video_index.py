"""The video index: which videos exist already, kept in S3 with the videos, so a run pays only for
what changed. It lives in the output bucket, not in Airflow, because it must outlive the metadata
database (cleanups, a new deployment) and work on every supported Airflow: the bucket that holds the
videos lives exactly as long as they do. People's side of it: ``docs/video-index.md``.

The layout under a root (an ``s3://`` prefix, :class:`IndexLocation`) is owned here::

    <root><slug(product)>/<slug(variant)>/<fingerprint[:16]>-<slug(job id)>.mp4   each paid video
    <root>.index/entries/<slug(product)>/<slug(variant)>/<fingerprint>.json     one entry per fingerprint
    <root>.index/held/<slug(product)>/<slug(variant)>.json                      a hold
    <root>.index/index.json                                                     the compacted document

Every paid job gets its own video key: nothing is ever overwritten, so any run's manifest row keeps
pointing at the exact bytes it names. A run reads one GET of the document, one (paginated) listing of
the root, which shows every video, cover, entry and hold with its size and ETag, and a GET only of an
entry or hold the document lacks under that ETag (:func:`load_index`): never a request per product.
An entry is trusted only while the listing shows its video (and cover) with the size *and* ETag
recorded at upload (:meth:`VideoIndex.trusted`).

**Concurrency model**: entries and holds are one small object per key, and a key is written only by
the task that owns that (product, variant) in a run: up to ``[core] max_map_length`` uploads finish at
once and none can lose another's entry, because none writes another's key (a ``regenerate`` rewrites
its own entry: the latest write wins, as it should). An entry is written only once its video is
safely in S3, so a crash in between leaves a video without an entry (paid again: the safe side),
never an entry without a video. The compacted document is only a cache of the listing, validated by
key and ETag: two compactions racing each write a document complete as of their own listing, and an
entry either one missed is still listed, so the next reader fetches it. A lost compaction costs GETs,
never an entry.

**Nothing is deleted by the index** except a hold, when it is cleared (:func:`clear_hold`): videos,
covers and entries stay until a person deletes them. A hold (a product whose submit may have created
a billed job nobody can find) is its object's presence, whatever its body says.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import reprlib
import typing
from collections import Counter
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.products import INDEX_INPUTS, REVIEW_MARKER
from airflow_provider_cogvideo.s3 import (
    MAX_KEY_BYTES,
    ObjectTooLargeError,
    get_or_none,
    key_problem,
    parse_s3_uri,
    s3_uri,
)
from airflow_provider_cogvideo.sizes import MiB

INDEX_VERSION = 1
"""The version of entries, holds and the compacted document; another version is not read."""
DEFAULT_VARIANT = "default"
"""The variant of a product made once; named variants and ad formats add others without reshaping keys or rows."""
WRITING_FIELDS = ("source", "model", "template_prompt")
"""What an entry keeps of its upload's ``request["prompt_writing"]`` (how the prompt was written)."""
INDEX_DIR = ".index"
"""The index's own folder under the root: a slug never holds ``.``, so no product can collide with it."""

SLUG_MAX_CHARS = 80
"""The longest slug: long ids are cut to 71 characters plus ``-`` and a hash of the whole id."""
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_HASH_CHARS = 8
KEY_ROOM = 300
"""Bytes kept free after the root for the longest key the index makes (three slugs of
:data:`SLUG_MAX_CHARS`, a fingerprint and an extension), so none of its keys can break S3's limit."""
MAX_ENTRY_BYTES = MiB
"""An entry or hold is a few KB: past this, the object at its key is no entry (ignored)."""
MAX_DOCUMENT_BYTES = 256 * MiB
"""The compacted document: about 2 KB per entry, so room for over 100,000 videos."""
LIST_PAGE_KEYS = 1000
"""Keys per listing page: S3's most, so a catalog of N products costs about 3N/1000 listing requests."""
FETCH_WORKERS = 16
"""Entries fetched at once when the document misses some (after a failed compaction)."""

log = logging.getLogger(__name__)


def slug(text: str) -> str:
    """``text`` as one path segment of a key: ``[A-Za-z0-9_-]`` kept, any run of other characters
    made ``-``; when that changed anything (or left nothing), ``-`` and 8 hex of the sha256 of the
    original are appended, and past :data:`SLUG_MAX_CHARS` it is cut to 71 characters plus that
    hash. So a slug never holds ``:``, ``.`` or ``/``, and two ids that differ share no slug in practice."""
    kept = _SLUG_UNSAFE.sub("-", text)
    tagged = kept != text or not kept
    if len(kept) + (1 + _HASH_CHARS if tagged else 0) > SLUG_MAX_CHARS:
        kept, tagged = kept[: SLUG_MAX_CHARS - 1 - _HASH_CHARS], True
    if not tagged:
        return kept
    return f"{kept}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:_HASH_CHARS]}"


def iso_utc(moment: datetime) -> str:
    """``moment`` as the index writes times: ISO 8601 in UTC to the microsecond (a naive time is
    taken as UTC), so that every time the index holds compares and sorts alike."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class IndexLocation:
    """Where an index lives: a bucket and a root prefix (``""``, or ending with ``/``)."""

    bucket: str
    root: str

    @classmethod
    def parse(cls, uri: Any, field: str = "video_index") -> IndexLocation:
        """``s3://bucket/prefix/`` (the trailing ``/`` may be left out; ``s3://bucket/`` is the
        bucket's root), or :class:`CogVideoValidationError` naming ``field``: the prefix follows
        :data:`~.s3.KEY_RULES` and leaves :data:`KEY_ROOM` bytes for the keys made under it."""
        text = uri.strip() if isinstance(uri, str) else ""
        # parse_s3_uri reads an object's URI: read that of an object just inside the prefix.
        parsed = parse_s3_uri(f"{text.rstrip('/')}/_") if text.startswith("s3://") else None
        if parsed is None:
            raise CogVideoValidationError(field, f"{uri!r} is not an s3:// prefix (e.g. s3://product-videos/videos/)")
        bucket, key = parsed
        root = key.removesuffix("_").lstrip("/")
        problem = key_problem(root)
        if problem is None and len(root.encode("utf-8")) > MAX_KEY_BYTES - KEY_ROOM:
            problem = f"is over {MAX_KEY_BYTES - KEY_ROOM} UTF-8 bytes, leaving no room for the keys made under it"
        if problem:
            raise CogVideoValidationError(field, f"{uri!r} cannot hold the index: its prefix {problem}")
        return cls(bucket=bucket, root=root)

    @property
    def uri(self) -> str:
        return s3_uri(self.bucket, self.root)

    def uri_of(self, key: str) -> str:
        """``s3://bucket/key`` of an object of this index's bucket."""
        return s3_uri(self.bucket, key)

    @property
    def index_prefix(self) -> str:
        return f"{self.root}{INDEX_DIR}/"

    @property
    def entries_prefix(self) -> str:
        return f"{self.index_prefix}entries/"

    @property
    def holds_prefix(self) -> str:
        return f"{self.index_prefix}held/"

    @property
    def document_key(self) -> str:
        return f"{self.index_prefix}index.json"

    def video_key(self, product_id: str, variant: str, fingerprint: str, job_id: str) -> str:
        """A paid video's own key: the job id in it means no run ever overwrites another's video."""
        return f"{self.root}{slug(product_id)}/{slug(variant)}/{slug(fingerprint[:16])}-{slug(job_id)}.mp4"

    def entry_key(self, product_id: str, variant: str, fingerprint: str) -> str:
        return f"{self.entries_prefix}{slug(product_id)}/{slug(variant)}/{slug(fingerprint)}.json"

    def hold_key(self, product_id: str, variant: str) -> str:
        return f"{self.holds_prefix}{slug(product_id)}/{slug(variant)}.json"


class _Malformed(ValueError):
    """An index object that does not read as one: ignored, never a crashed run."""


_NONE = type(None)
_R = typing.TypeVar("_R", bound="_Record")


def _field_value(name: str, hint: Any, value: Any) -> Any:
    """``value`` if it is what the annotation ``hint`` says (``str``, ``str | None``, ``dict[...]``, a
    record...); an int where a float is expected becomes one; a bool is never a number."""
    options = typing.get_args(hint) if typing.get_origin(hint) is not dict else ()
    if value is None and _NONE in options:
        return None
    kind = next((o for o in options if o is not _NONE), hint) if _NONE in options else hint
    kind = typing.get_origin(kind) or kind
    if isinstance(kind, type) and issubclass(kind, _Record):
        return kind.read(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _Malformed(f"{name} is {reprlib.repr(value)}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A record class's resolved annotations, worked out once (a run reads thousands of entries)."""
    return typing.get_type_hints(cls)


class _Record:
    """What the index stores (entries, holds, the objects they name) as JSON, read back by the
    dataclass's own annotations: a field is declared once, and a body that does not match is
    refused field by field rather than half-read."""

    def to_json(self) -> dict[str, Any]:
        return {"version": INDEX_VERSION, **asdict(self)}

    @classmethod
    def read(cls: type[_R], data: Any) -> _R:
        """An instance from ``data``, or :class:`_Malformed`."""
        if not isinstance(data, Mapping):
            raise _Malformed(f"{reprlib.repr(data)} is no object")
        hints = _hints(cls)
        return cls(**{f.name: _field_value(f.name, hints[f.name], data.get(f.name)) for f in fields(cls)})

    @classmethod
    def from_json(cls: type[_R], data: Any) -> _R | None:
        """An instance, or None (logged) for a body of another version or shape: one bad object in
        the bucket never crashes a run."""
        try:
            if not isinstance(data, Mapping) or data.get("version") != INDEX_VERSION:
                raise _Malformed(f"not version {INDEX_VERSION}")
            return cls.read(data)
        except _Malformed as exc:
            log.warning("Ignoring a malformed video index %s (%s)", cls.__name__, exc)
            return None


def _instant(text: str) -> datetime:
    """A recorded time as a moment; one that does not read counts as the oldest."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class StoredObject(_Record):
    """One object as the index recorded it: what the listing must still show for it to be trusted."""

    key: str
    size: int
    etag: str
    sha256: str | None = None


@dataclass(frozen=True)
class IndexEntry(_Record):
    """One paid video of one (product, variant), and everything it was made from.

    ``bucket`` is the index's: the entry names exact bytes on its own (bucket, key, size, ETag,
    sha256). ``inputs`` records what ingestion saw of the sources, so a later run can tell an
    unchanged product from the listing alone: ``{"image": {"key", "size", "etag", "sha256"},
    "sidecar": {"key", "size", "etag", "fields"} | None}``.

    ``review``: the review decisions remembered for this fingerprint, None until a review run records
    one (entries written before reviews existed read as None): ``{"state", "job_id", "run_id",
    "until", "decisions", "published"}``. It counts only for the video whose ``job_id`` it names
    (``review.entry_review_state``, a layer up: the index stores a review, it does not judge it).

    ``writing``: how the prompt was written, when a prompt writer wrote it (:data:`WRITING_FIELDS` of the
    upload's ``request["prompt_writing"]``), else None (entries written before writers existed too), so
    a later run's reused row still says where its prompt came from. With formats, ``inputs["format"]``
    is ``{"name", "options", "fit", "text"}``."""

    product_id: str
    variant: str
    fingerprint: str
    bucket: str
    video: StoredObject
    cover: StoredObject | None
    job_id: str | None
    model: str | None
    price: float | None
    currency: str | None
    paid_by_run: str
    paid_at: str
    prompt: str | None
    inputs: dict[str, Any]
    review: dict[str, Any] | None = None
    writing: dict[str, Any] | None = None

    def reused_row(self, title: str | None, image: str | None) -> dict[str, Any]:
        """The catalog row of a product this run reuses: it costs 0 now; ``paid_price`` is what the
        paying run spent. With a written prompt also ``template_prompt`` and ``prompt_writing``
        (``source``, ``model``), with a format ``format`` (its name), as a paid row has them."""
        row = {
            "product_id": self.product_id,
            "variant": self.variant,
            "status": "reused",
            "title": title,
            "image": image,
            "video": s3_uri(self.bucket, self.video.key),
            "cover": s3_uri(self.bucket, self.cover.key) if self.cover else None,
            "sha256": self.video.sha256,
            "size": self.video.size,
            "job_id": self.job_id,
            "model": self.model,
            "prompt": self.prompt,
            "price": 0.0,
            "paid_price": self.price,
            "currency": self.currency,
            "paid_by_run": self.paid_by_run,
            "paid_at": self.paid_at,
            "fingerprint": self.fingerprint,
        }
        if self.writing is not None:
            row["template_prompt"] = self.writing.get("template_prompt")
            row["prompt_writing"] = {"source": self.writing.get("source"), "model": self.writing.get("model")}
        if isinstance(shape := self.inputs.get("format"), Mapping) and shape.get("name") is not None:
            row["format"] = shape["name"]
        return row


@dataclass(frozen=True)
class Hold(_Record):
    """A (product, variant) no run pays for until a person deletes its hold object: its last submit
    may have created a billed job that nobody can find."""

    product_id: str
    variant: str
    request_id: str | None
    run_id: str
    at: str
    fingerprint: str | None
    reason: str | None


@dataclass
class VideoIndex:
    """What one run knows after :func:`load_index`.

    ``entries`` by entry key; ``objects``: every key listed under the root -> (size, ETag);
    ``holds`` by (product, variant); ``requests``: the S3 requests made, by kind (``list``, ``get``,
    ``put``), for logs and benchmarks."""

    location: IndexLocation
    entries: dict[str, IndexEntry] = field(default_factory=dict)
    objects: dict[str, tuple[int, str]] = field(default_factory=dict)
    holds: dict[tuple[str, str], Hold] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    _bodies: dict[str, tuple[str, Any]] = field(default_factory=dict, repr=False)
    """Every entry and hold object read, key -> (ETag, body or None when unreadable): the document."""
    _rows: dict[tuple[str, str], list[IndexEntry]] = field(default_factory=dict, repr=False)
    """``entries`` by (product, variant), so a run's look-ups stay linear in the catalog."""
    document_current: bool = False
    """The stored compacted document already names every entry and hold listed, under its ETag, and
    nothing else: :func:`compact` need not write it again (megabytes at catalog scale)."""

    def find(self, product_id: str, variant: str, fingerprint: str) -> IndexEntry | None:
        return self.entries.get(self.location.entry_key(product_id, variant, fingerprint))

    def latest(self, product_id: str, variant: str) -> IndexEntry | None:
        """The (product, variant)'s most recently paid entry, whatever its fingerprint."""
        return max(self._rows.get((product_id, variant), ()), key=lambda e: _instant(e.paid_at), default=None)

    def trusted(self, entry: IndexEntry) -> bool:
        """Whether the listing still shows the entry's video (and cover, when it has one) in the
        index's bucket with the size *and* ETag recorded at upload."""

        def listed(stored: StoredObject) -> bool:
            return self.objects.get(stored.key) == (stored.size, stored.etag)

        return (
            entry.bucket == self.location.bucket
            and listed(entry.video)
            and (entry.cover is None or listed(entry.cover))
        )

    def held(self, product_id: str, variant: str) -> Hold | None:
        """The (product, variant)'s hold, or None. A listed hold object holds even when its body
        cannot be read: a person's mistake there must not let a possibly billed job be paid twice."""
        key = self.location.hold_key(product_id, variant)
        if key not in self.objects:
            return None
        unreadable = f"the hold object {self.location.uri_of(key)} could not be read; it holds all the same"
        return self.holds.get((product_id, variant)) or Hold(product_id, variant, None, "unknown", "", None, unreadable)

    def compacted_document(self) -> dict[str, Any]:
        """The document a compaction writes: every entry and hold body read, under its key and ETag
        (an unreadable one as ``null``, so it costs one GET once, not one every run)."""
        return {
            "version": INDEX_VERSION,
            "compacted_at": iso_utc(datetime.now(timezone.utc)),
            "objects": {key: {"etag": etag, "body": body} for key, (etag, body) in sorted(self._bodies.items())},
        }

    def _add(self, key: str, etag: str, body: Any) -> None:
        """Take one entry or hold object's body in; one whose contents do not match its key (copied
        by hand to another product's place) is ignored."""
        self._bodies[key] = (etag, body)
        location = self.location
        if key.startswith(location.entries_prefix):
            entry = IndexEntry.from_json(body) if body is not None else None
            if entry and location.entry_key(entry.product_id, entry.variant, entry.fingerprint) == key:
                self.entries[key] = entry
                self._rows.setdefault((entry.product_id, entry.variant), []).append(entry)
        else:
            hold = Hold.from_json(body) if body is not None else None
            if hold and location.hold_key(hold.product_id, hold.variant) == key:
                self.holds[(hold.product_id, hold.variant)] = hold


def _read_json(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _fetch(client: Any, bucket: str, key: str) -> Any:
    """One entry or hold object's body, or None when it is gone, too large or not JSON."""
    try:
        return _read_json(get_or_none(client, bucket, key, max_bytes=MAX_ENTRY_BYTES))
    except ObjectTooLargeError:
        return None


def _document_objects(data: bytes | None, location: IndexLocation) -> dict[str, tuple[str, Any]]:
    """The compacted document's (key -> (ETag, body)); empty when there is none or it does not read
    (every entry is then fetched, and the next compaction rewrites it)."""
    if data is None:
        return {}
    document = _read_json(data)
    objects = document.get("objects") if isinstance(document, dict) else None
    if not isinstance(objects, dict) or document.get("version") != INDEX_VERSION:
        log.warning(
            "The video index document %s does not read: fetching every entry", location.uri_of(location.document_key)
        )
        return {}
    return {
        key: (item["etag"], item.get("body"))
        for key, item in objects.items()
        if isinstance(item, dict) and isinstance(item.get("etag"), str)
    }


def _load(client: Any, location: IndexLocation, known: Iterable[tuple[str, str, Any]]) -> VideoIndex:
    index = VideoIndex(location)
    index.requests["get"] += 1
    stored = _document_objects(
        get_or_none(client, location.bucket, location.document_key, max_bytes=MAX_DOCUMENT_BYTES), location
    )
    cached = {**stored, **{key: (etag.strip('"'), body) for key, etag, body in known}}
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=location.bucket, Prefix=location.root, PaginationConfig={"PageSize": LIST_PAGE_KEYS}
    )
    for page in pages:
        index.requests["list"] += 1
        for item in page.get("Contents", ()):
            index.objects[item["Key"]] = (int(item["Size"]), str(item["ETag"]).strip('"'))
    missing: list[tuple[str, str]] = []
    listed: dict[str, str] = {}
    for key, (_, etag) in index.objects.items():
        if not key.endswith(".json") or not key.startswith((location.entries_prefix, location.holds_prefix)):
            continue
        listed[key] = etag
        hit = cached.get(key)
        if hit is not None and hit[0] == etag:
            index._add(key, etag, hit[1])
        else:
            missing.append((key, etag))
    if missing:
        index.requests["get"] += len(missing)
        with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(missing))) as pool:
            bodies = pool.map(lambda item: _fetch(client, location.bucket, item[0]), missing)
            for (key, etag), body in zip(missing, bodies, strict=True):
                index._add(key, etag, body)
    index.document_current = listed == {key: etag for key, (etag, _) in stored.items()}
    return index


def load_index(client: Any, location: IndexLocation) -> VideoIndex:
    """The index as it stands: one GET of the compacted document (none is an empty index), one
    listing of the root, and a GET only of each entry or hold the document does not hold under its
    current ETag. An entry whose object is no longer listed is gone (a person deleted it)."""
    return _load(client, location, ())


def _put_json(client: Any, location: IndexLocation, key: str, body: Any) -> str:
    answer = client.put_object(
        Bucket=location.bucket,
        Key=key,
        Body=json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
        ContentType="application/json",
    )
    return str(answer.get("ETag", "")).strip('"')


def write_entry(client: Any, location: IndexLocation, entry: IndexEntry) -> tuple[str, str]:
    """Write ``entry`` at its own key (only once its video is in S3); its (key, ETag), which the
    compaction takes as known so it need not read the entry back."""
    key = location.entry_key(entry.product_id, entry.variant, entry.fingerprint)
    return key, _put_json(client, location, key, entry.to_json())


def write_hold(client: Any, location: IndexLocation, hold: Hold) -> None:
    _put_json(client, location, location.hold_key(hold.product_id, hold.variant), hold.to_json())


def clear_hold(client: Any, location: IndexLocation, product_id: str, variant: str) -> None:
    """Delete the hold (none is fine): the one object the index ever deletes."""
    client.delete_object(Bucket=location.bucket, Key=location.hold_key(product_id, variant))


def compact(client: Any, location: IndexLocation, *, known: Iterable[tuple[str, str, Any]] = ()) -> VideoIndex:
    """Load the index, taking ``known`` (key, ETag, body) of the entries this run wrote without
    reading them back, and write the compacted document unless the stored one is already current;
    the index as compacted."""
    index = _load(client, location, known)
    if not index.document_current:  # an unchanged catalog's run writes nothing
        index.requests["put"] += 1
        _put_json(client, location, location.document_key, index.compacted_document())
    return index


def stored_object(client: Any, bucket: str, key: str, sha256: str | None) -> StoredObject:
    """An object as the index records it, its size and ETag from one HEAD (what later listings show)."""
    answer = client.head_object(Bucket=bucket, Key=key)
    return StoredObject(key=key, size=int(answer["ContentLength"]), etag=str(answer["ETag"]).strip('"'), sha256=sha256)


def _indexed_fields(result: Mapping[str, Any]) -> tuple[str, str, str, dict[str, Any]]:
    """(product id, variant, fingerprint, index inputs) from a generate result's ``metadata``, which
    ingestion filled, or :class:`CogVideoValidationError` naming what is missing."""
    metadata = {"variant": DEFAULT_VARIANT, **(result.get("metadata") or {})}
    wrong = [name for name in ("product_id", "variant", "fingerprint") if not isinstance(metadata.get(name), str)]
    if wrong:
        raise CogVideoValidationError(
            "result.metadata", f"has no text {', '.join(wrong)}: not an item planned against a video index"
        )
    return metadata["product_id"], metadata["variant"], metadata["fingerprint"], dict(metadata.get(INDEX_INPUTS) or {})


def indexed_key(location: IndexLocation, result: Mapping[str, Any]) -> str:
    """The video key of a generate result, as the index lays it out (:meth:`IndexLocation.video_key`):
    its own job id in it, so it overwrites no other run's video."""
    if not result.get("id"):
        raise CogVideoValidationError("result.id", "is missing: an indexed video's key is made from its job id")
    product_id, variant, fingerprint, _ = _indexed_fields(result)
    return location.video_key(product_id, variant, fingerprint, str(result["id"]))


def entry_from_upload(
    *,
    location: IndexLocation,
    result: Mapping[str, Any],
    video: StoredObject,
    cover: StoredObject | None,
    run_id: str,
    paid_at: datetime,
) -> IndexEntry:
    """The entry of a video the transfer stored: ``result`` is the generate result it was given,
    whose ``metadata`` (from ingestion) carries ``product_id``, ``variant``, ``fingerprint`` and
    :data:`INDEX_INPUTS`; a :data:`REVIEW_MARKER` there (a regenerated video's ``awaiting`` marker, so
    that no other run asks about it mid-review) is copied to the entry, no part of its key or fingerprint,
    and so is (its :data:`WRITING_FIELDS`) the ``prompt_writing`` of its ``request``, as ``writing``."""
    product_id, variant, fingerprint, inputs = _indexed_fields(result)
    price = result.get("price")
    review = (result.get("metadata") or {}).get(REVIEW_MARKER)
    request = result.get("request")
    writing = request.get("prompt_writing") if isinstance(request, Mapping) else None
    return IndexEntry(
        product_id=product_id,
        variant=variant,
        fingerprint=fingerprint,
        bucket=location.bucket,
        video=video,
        cover=cover,
        job_id=str(result["id"]) if result.get("id") else None,
        model=result.get("model"),
        price=None if price is None else float(price),
        currency=result.get("price_currency"),
        paid_by_run=run_id,
        paid_at=iso_utc(paid_at),
        prompt=result.get("prompt"),
        inputs=inputs,
        # The marker names the video it was copied to: this job's (a review counts only for its job).
        review={**review, "job_id": str(result["id"]) if result.get("id") else None}
        if isinstance(review, Mapping)
        else None,
        writing={name: writing.get(name) for name in WRITING_FIELDS} if isinstance(writing, Mapping) else None,
    )


__all__ = [
    "DEFAULT_VARIANT",
    "INDEX_DIR",
    "INDEX_INPUTS",
    "INDEX_VERSION",
    "KEY_ROOM",
    "LIST_PAGE_KEYS",
    "MAX_DOCUMENT_BYTES",
    "MAX_ENTRY_BYTES",
    "REVIEW_MARKER",
    "WRITING_FIELDS",
    "Hold",
    "IndexEntry",
    "IndexLocation",
    "StoredObject",
    "VideoIndex",
    "clear_hold",
    "compact",
    "entry_from_upload",
    "indexed_key",
    "iso_utc",
    "load_index",
    "slug",
    "stored_object",
    "write_entry",
    "write_hold",
]
