"""The video index in S3 (moto): its key layout, what a run reads, trust, holds, and two writers at once."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_cogvideo import video_index
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.video_index import (
    Hold,
    IndexEntry,
    IndexLocation,
    StoredObject,
    VideoIndex,
    clear_hold,
    compact,
    entry_from_upload,
    load_index,
    slug,
    stored_object,
    write_entry,
    write_hold,
)

BUCKET = "product-videos"
LOCATION = IndexLocation(BUCKET, "videos/")
PAID_AT = datetime(2025, 3, 1, 8, 30, tzinfo=timezone.utc)


def h8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def fp(n: int) -> str:
    return hashlib.sha256(f"video {n}".encode()).hexdigest()


# ---------------------------------------------------------------- layout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sku-1", "sku-1"),
        ("SKU_42", "SKU_42"),
        ("a b", f"a-b-{h8('a b')}"),
        ("a:b/c.d", f"a-b-c-d-{h8('a:b/c.d')}"),
        (".index", f"-index-{h8('.index')}"),
        ("", f"-{h8('')}"),
        ("x" * 80, "x" * 80),
        ("x" * 81, "x" * 71 + f"-{h8('x' * 81)}"),
        ("y" * 75 + " z", "y" * 71 + f"-{h8('y' * 75 + ' z')}"),
        ("杯子", f"--{h8('杯子')}"),
    ],
)
def test_slug(text: str, expected: str) -> None:
    assert slug(text) == expected
    assert len(slug(text)) <= 80


def test_different_ids_do_not_share_a_slug() -> None:
    ids = ["a b", "a-b", "a_b", "a.b", "a:b", "A b", "x" * 81, "x" * 82]
    assert len({slug(i) for i in ids}) == len(ids)


@pytest.mark.parametrize(
    ("uri", "bucket", "root"),
    [
        ("s3://product-videos/videos/", "product-videos", "videos/"),
        ("s3://product-videos/videos", "product-videos", "videos/"),
        ("s3://product-videos/a/b/", "product-videos", "a/b/"),
        ("s3://product-videos/", "product-videos", ""),
        ("s3://product-videos", "product-videos", ""),
        (" s3://product-videos/videos/ ", "product-videos", "videos/"),
    ],
)
def test_a_location_is_parsed_from_an_s3_prefix(uri: str, bucket: str, root: str) -> None:
    assert IndexLocation.parse(uri) == IndexLocation(bucket, root)
    assert IndexLocation.parse(uri).uri == f"s3://{bucket}/{root}"


@pytest.mark.parametrize(
    "uri", [None, "", "product-videos/videos/", "https://x/videos/", "s3://", "s3:///videos/", "s3://b/../v/", 3]
)
def test_anything_else_is_refused_naming_the_field(uri: Any) -> None:
    with pytest.raises(CogVideoValidationError) as raised:
        IndexLocation.parse(uri, field="params.video_index")
    assert raised.value.field == "params.video_index"


def test_a_root_leaves_room_for_the_keys_under_it() -> None:
    with pytest.raises(CogVideoValidationError, match="no room"):
        IndexLocation.parse("s3://b/" + "p" * 800 + "/")
    longest = IndexLocation("b", "p" * 723 + "/")  # the longest root parse accepts
    assert IndexLocation.parse("s3://b/" + "p" * 723 + "/") == longest
    key = longest.video_key("x" * 200, "v" * 200, "f" * 64, "j" * 200)
    assert len(key.encode()) <= 1024


def test_the_key_layout() -> None:
    assert LOCATION.video_key("sku-1", "default", fp(1), "job-7") == f"videos/sku-1/default/{fp(1)[:16]}-job-7.mp4"
    assert LOCATION.entry_key("sku-1", "default", fp(1)) == f"videos/.index/entries/sku-1/default/{fp(1)}.json"
    assert LOCATION.hold_key("sku-1", "default") == "videos/.index/held/sku-1/default.json"
    assert LOCATION.document_key == "videos/.index/index.json"
    assert LOCATION.uri_of("videos/x.mp4") == "s3://product-videos/videos/x.mp4"
    assert LOCATION.video_key("sku:1", "9:16", fp(1), "j") == (
        f"videos/sku-1-{h8('sku:1')}/9-16-{h8('9:16')}/{fp(1)[:16]}-j.mp4"
    )
    assert IndexLocation("b", "").entry_key("p", "v", "f") == ".index/entries/p/v/f.json"


# ---------------------------------------------------------------- objects


def make_entry(n: int, *, product: str | None = None, paid_at: datetime = PAID_AT, cover: bool = True) -> IndexEntry:
    product_id = product or f"sku-{n}"
    video_key = LOCATION.video_key(product_id, "default", fp(n), f"job-{n}")
    return IndexEntry(
        product_id=product_id,
        variant="default",
        fingerprint=fp(n),
        bucket=BUCKET,
        video=StoredObject(video_key, 1000 + n, f"etag-{n}", f"sha-{n}"),
        cover=StoredObject(video_key.replace(".mp4", ".jpg"), 100, f"cover-etag-{n}") if cover else None,
        job_id=f"job-{n}",
        model="cogvideox-3",
        price=1.0,
        currency="CNY",
        paid_by_run="scheduled__2025-03-01",
        paid_at=paid_at.isoformat(),
        prompt=f"prompt {n}",
        inputs={"image": {"key": f"products/sku-{n}.png", "size": 5, "etag": "e", "sha256": "s"}, "sidecar": None},
    )


def test_entry_and_hold_round_trip_through_json() -> None:
    entry = make_entry(1)
    assert IndexEntry.from_json(json.loads(json.dumps(entry.to_json()))) == entry
    assert IndexEntry.from_json(make_entry(2, cover=False).to_json()) == make_entry(2, cover=False)
    hold = Hold("sku-1", "default", "req-1", "run-1", PAID_AT.isoformat(), fp(1), "ambiguous submit")
    assert Hold.from_json(json.loads(json.dumps(hold.to_json()))) == hold


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"product_id": None},
        {"fingerprint": 5},
        {"video": {"key": "k", "size": "12", "etag": "e"}},
        {"video": {"key": "k", "size": True, "etag": "e"}},
        {"video": None},
        {"cover": "videos/x.jpg"},
        {"price": "1.0"},
        {"inputs": []},
        {"review": "approved"},
        {"review": ["approved"]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_malformed_entry_is_none(change: dict[str, Any]) -> None:
    assert IndexEntry.from_json({**make_entry(1).to_json(), **change}) is None


REVIEW = {
    "state": "rejected_by_review",
    "job_id": "job-1",
    "run_id": "review__2025-03-02",
    "until": None,
    "decisions": [
        {
            "round": 1,
            "answer": "Reject",
            "state": "rejected_by_review",
            "note": "too dark",
            "by": "ana",
            "at": "2025-03-02T09:00:00+00:00",
            "job_id": "job-1",
            "video": "s3://product-videos/videos/sku-1/default/x-job-1.mp4",
        }
    ],
    "published": None,
}


def test_an_entry_round_trips_with_its_review_and_an_old_one_without() -> None:
    reviewed = dataclasses.replace(make_entry(1), review=REVIEW)
    assert reviewed.to_json()["review"] == REVIEW
    assert IndexEntry.from_json(json.loads(json.dumps(reviewed.to_json()))) == reviewed
    assert make_entry(1).review is None and make_entry(1).to_json()["review"] is None
    old = {k: v for k, v in make_entry(1).to_json().items() if k != "review"}  # written before reviews existed
    assert IndexEntry.from_json(old) == make_entry(1)


def test_a_review_is_kept_through_the_index_and_its_compacted_document(s3: Any, calls: Counter[str]) -> None:
    reviewed = dataclasses.replace(put_video(s3, make_entry(1)), review=REVIEW)
    unreviewed = put_video(s3, make_entry(2))
    known = [(*write_entry(s3, LOCATION, entry), entry.to_json()) for entry in (reviewed, unreviewed)]
    assert load_index(s3, LOCATION).find("sku-1", "default", fp(1)) == reviewed  # read from its object
    compact(s3, LOCATION, known=known)
    calls.clear()
    index = load_index(s3, LOCATION)
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 1}), "from the document alone"
    assert index.find("sku-1", "default", fp(1)) == reviewed
    assert index.find("sku-2", "default", fp(2)) == unreviewed and unreviewed.review is None
    assert index.trusted(reviewed)


@pytest.mark.parametrize("data", [None, [], "entry", {}])
def test_what_is_no_object_is_no_entry(data: Any) -> None:
    assert IndexEntry.from_json(data) is None
    assert Hold.from_json(data) is None


# ---------------------------------------------------------------- S3


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


@pytest.fixture
def calls(s3: Any) -> Counter[str]:
    """Every S3 operation the client sends, counted by botocore's own event hook (not by the code
    under test): ``ListObjectsV2``, ``GetObject``..."""
    seen: Counter[str] = Counter()
    s3.meta.events.register("before-call.s3", lambda model, **_: seen.update([model.name]))
    return seen


def put_video(s3: Any, entry: IndexEntry, body: bytes = b"video") -> IndexEntry:
    """Store the entry's video (and cover) and return the entry as the upload records it."""
    video = s3.put_object(Bucket=BUCKET, Key=entry.video.key, Body=body)
    changes: dict[str, Any] = {"video": StoredObject(entry.video.key, len(body), video["ETag"].strip('"'), "sha")}
    if entry.cover:
        cover = s3.put_object(Bucket=BUCKET, Key=entry.cover.key, Body=b"cover")
        changes["cover"] = StoredObject(entry.cover.key, 5, cover["ETag"].strip('"'))
    return dataclasses.replace(entry, **changes)


def test_an_empty_index_costs_one_get_and_one_listing(s3: Any, calls: Counter[str]) -> None:
    index = load_index(s3, LOCATION)
    assert (index.entries, index.holds, index.objects) == ({}, {}, {})
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 1})
    assert index.requests == Counter({"get": 1, "list": 1})


def test_entries_written_are_found_and_compaction_makes_later_loads_read_none(s3: Any, calls: Counter[str]) -> None:
    entries = [put_video(s3, make_entry(n)) for n in range(3)]
    keys = [write_entry(s3, LOCATION, entry)[0] for entry in entries]
    calls.clear()

    before = load_index(s3, LOCATION)
    assert {key: before.entries[key] for key in keys} == dict(zip(keys, entries, strict=True))
    assert calls == Counter({"GetObject": 1 + 3, "ListObjectsV2": 1}), "the document, then each new entry"

    compact(s3, LOCATION)
    calls.clear()
    after = load_index(s3, LOCATION)
    assert after.entries == before.entries
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 1}), "everything came from the document"
    assert after.requests == Counter({"get": 1, "list": 1})
    assert after.find("sku-1", "default", fp(1)) == entries[1]
    assert after.find("sku-1", "default", fp(2)) is None


def test_entries_this_run_wrote_need_no_get_to_be_compacted(s3: Any, calls: Counter[str]) -> None:
    entries = [put_video(s3, make_entry(n)) for n in range(4)]
    known = [(*write_entry(s3, LOCATION, entry), entry.to_json()) for entry in entries]
    calls.clear()
    index = compact(s3, LOCATION, known=known)
    assert len(index.entries) == 4
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 1, "PutObject": 1})
    assert index.requests == Counter({"get": 1, "list": 1, "put": 1})


def test_a_current_document_is_not_written_again(s3: Any, calls: Counter[str]) -> None:
    """An unchanged catalog's run rewrites nothing; a new entry or a cleared hold makes it write again."""
    known = [(*write_entry(s3, LOCATION, entry), entry.to_json()) for entry in [put_video(s3, make_entry(0))]]
    compact(s3, LOCATION, known=known)
    calls.clear()
    again = compact(s3, LOCATION, known=known)
    assert again.document_current and again.requests == Counter({"get": 1, "list": 1})
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 1}), "no PutObject"

    write_entry(s3, LOCATION, put_video(s3, make_entry(1)))
    assert compact(s3, LOCATION).requests["put"] == 1
    write_hold(s3, LOCATION, Hold("sku-1", "default", "req", "run", "2026-12-01T00:00:00+00:00", None, None))
    assert compact(s3, LOCATION).requests["put"] == 1
    clear_hold(s3, LOCATION, "sku-1", "default")
    cleared = compact(s3, LOCATION)
    assert cleared.requests["put"] == 1 and cleared.held("sku-1", "default") is None
    assert compact(s3, LOCATION).requests["put"] == 0


def test_entries_newer_than_the_document_are_fetched(s3: Any, calls: Counter[str]) -> None:
    """What a compaction missed (written after its listing) is still listed: the next load reads it."""
    for n in range(2):
        write_entry(s3, LOCATION, put_video(s3, make_entry(n)))
    compact(s3, LOCATION)
    late = put_video(s3, make_entry(7))
    write_entry(s3, LOCATION, late)
    calls.clear()
    index = load_index(s3, LOCATION)
    assert index.find("sku-7", "default", fp(7)) == late
    assert len(index.entries) == 3
    assert calls["GetObject"] == 2


def test_a_rewritten_entry_is_read_again_latest_wins(s3: Any) -> None:
    """``regenerate`` rewrites an entry at its key: its new ETag tells the document's copy is stale."""
    first = put_video(s3, make_entry(1))
    write_entry(s3, LOCATION, first)
    compact(s3, LOCATION)
    again = dataclasses.replace(first, job_id="job-99", paid_by_run="manual__2025-03-02")
    write_entry(s3, LOCATION, again)
    assert load_index(s3, LOCATION).find("sku-1", "default", fp(1)) == again


def test_an_entry_deleted_by_a_person_is_gone_even_from_the_document(s3: Any) -> None:
    key, _ = write_entry(s3, LOCATION, put_video(s3, make_entry(1)))
    compact(s3, LOCATION)
    s3.delete_object(Bucket=BUCKET, Key=key)
    assert load_index(s3, LOCATION).entries == {}


def test_malformed_objects_are_ignored_and_read_once(s3: Any, calls: Counter[str]) -> None:
    good = put_video(s3, make_entry(1))
    write_entry(s3, LOCATION, good)
    s3.put_object(Bucket=BUCKET, Key=LOCATION.entry_key("sku-2", "default", fp(2)), Body=b"not json")
    s3.put_object(Bucket=BUCKET, Key=LOCATION.entry_key("sku-3", "default", fp(3)), Body=b'{"version": 1}')
    # a good entry copied by hand to another product's key describes another product: not this one's
    s3.put_object(Bucket=BUCKET, Key=LOCATION.entry_key("sku-4", "default", fp(4)), Body=json.dumps(good.to_json()))
    index = compact(s3, LOCATION)
    assert list(index.entries.values()) == [good]
    calls.clear()
    assert list(load_index(s3, LOCATION).entries.values()) == [good]
    assert calls["GetObject"] == 1, "the malformed objects are remembered under their ETag"


def test_an_unreadable_document_costs_gets_not_the_index(s3: Any) -> None:
    entry = put_video(s3, make_entry(1))
    write_entry(s3, LOCATION, entry)
    s3.put_object(Bucket=BUCKET, Key=LOCATION.document_key, Body=b"{broken")
    index = load_index(s3, LOCATION)
    assert list(index.entries.values()) == [entry]
    assert index.requests["get"] == 2
    s3.put_object(Bucket=BUCKET, Key=LOCATION.document_key, Body=b'{"version": 99, "objects": {}}')
    assert list(load_index(s3, LOCATION).entries.values()) == [entry]


def test_another_root_in_the_same_bucket_is_another_index(s3: Any) -> None:
    write_entry(s3, LOCATION, put_video(s3, make_entry(1)))
    other = IndexLocation(BUCKET, "videos-staging/")
    assert load_index(s3, other).entries == {}


# ---------------------------------------------------------------- trust


def test_an_entry_is_trusted_while_size_and_etag_match_the_listing(s3: Any) -> None:
    entry = put_video(s3, make_entry(1), body=b"0123456789")
    write_entry(s3, LOCATION, entry)
    assert load_index(s3, LOCATION).trusted(entry)

    s3.put_object(Bucket=BUCKET, Key=entry.video.key, Body=b"9876543210")  # same size, other bytes
    assert not load_index(s3, LOCATION).trusted(entry)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda s3, e: s3.put_object(Bucket=BUCKET, Key=e.video.key, Body=b"longer video bytes"),
        lambda s3, e: s3.delete_object(Bucket=BUCKET, Key=e.video.key),
        lambda s3, e: s3.delete_object(Bucket=BUCKET, Key=e.cover.key),
        lambda s3, e: s3.put_object(Bucket=BUCKET, Key=e.cover.key, Body=b"other"),
    ],
    ids=["video size", "video deleted", "cover deleted", "cover etag"],
)
def test_a_changed_or_missing_object_is_not_trusted(s3: Any, break_it: Any) -> None:
    entry = put_video(s3, make_entry(1))
    break_it(s3, entry)
    assert not load_index(s3, LOCATION).trusted(entry)


def test_an_entry_of_another_bucket_is_not_trusted(s3: Any) -> None:
    entry = put_video(s3, make_entry(1))
    index = load_index(s3, LOCATION)
    assert index.trusted(entry)
    assert not index.trusted(dataclasses.replace(entry, bucket="elsewhere"))


def test_latest_is_the_most_recently_paid(s3: Any) -> None:
    old = put_video(s3, make_entry(1, product="mug", paid_at=PAID_AT))
    new = put_video(s3, make_entry(2, product="mug", paid_at=PAID_AT + timedelta(days=1)))
    for entry in (new, old):
        write_entry(s3, LOCATION, entry)
    index = load_index(s3, LOCATION)
    assert index.latest("mug", "default") == new
    assert index.latest("mug", "douyin") is None
    unreadable_time = put_video(s3, make_entry(3, product="mug", paid_at=PAID_AT))
    write_entry(s3, LOCATION, dataclasses.replace(unreadable_time, paid_at="yesterday"))
    assert load_index(s3, LOCATION).latest("mug", "default") == new, "an unreadable time counts as the oldest"
    assert index.latest("cup", "default") is None


# ---------------------------------------------------------------- holds


def test_a_hold_stands_until_cleared(s3: Any) -> None:
    hold = Hold("sku-1", "default", "req-1", "run-1", PAID_AT.isoformat(), fp(1), "ambiguous submit")
    write_hold(s3, LOCATION, hold)
    assert s3.head_object(Bucket=BUCKET, Key="videos/.index/held/sku-1/default.json")
    index = load_index(s3, LOCATION)
    assert index.held("sku-1", "default") == hold
    assert index.held("sku-2", "default") is None

    compact(s3, LOCATION)
    assert load_index(s3, LOCATION).held("sku-1", "default") == hold

    clear_hold(s3, LOCATION, "sku-1", "default")
    assert load_index(s3, LOCATION).held("sku-1", "default") is None
    clear_hold(s3, LOCATION, "sku-1", "default")  # clearing twice is fine


def test_an_unreadable_hold_still_holds(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=LOCATION.hold_key("sku-1", "default"), Body=b"edited by hand")
    hold = load_index(s3, LOCATION).held("sku-1", "default")
    assert hold is not None
    assert (hold.product_id, hold.variant, hold.request_id) == ("sku-1", "default", None)
    assert "s3://product-videos/videos/.index/held/sku-1/default.json" in (hold.reason or "")


def test_a_catalog_larger_than_a_listing_page_is_read_in_pages_without_a_request_per_product(
    s3: Any, calls: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """51 products (a video and an entry each) and the document: 103 objects, 11 pages of 10 keys.
    Once compacted, a run reads one document and the pages, whatever the catalog's size (pages of 10
    stand for S3's 1,000, to keep the test fast)."""
    monkeypatch.setattr(video_index, "LIST_PAGE_KEYS", 10)
    known = []
    for n in range(51):
        entry = make_entry(n, cover=False)
        etag = s3.put_object(Bucket=BUCKET, Key=entry.video.key, Body=b"v")["ETag"].strip('"')
        entry = dataclasses.replace(entry, video=StoredObject(entry.video.key, 1, etag, "sha"))
        known.append((*write_entry(s3, LOCATION, entry), entry.to_json()))
    compact(s3, LOCATION, known=known)
    calls.clear()
    index = load_index(s3, LOCATION)
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 11})
    assert index.requests == Counter({"get": 1, "list": 11})
    assert len(index.entries) == 51
    assert all(index.trusted(entry) for entry in index.entries.values())


# ---------------------------------------------------------------- from an upload


def test_an_entry_from_an_upload_and_its_reused_row(s3: Any) -> None:
    video_key = LOCATION.video_key("sku-1", "default", fp(1), "job-1")
    cover_key = video_key.removesuffix(".mp4") + ".png"
    s3.put_object(Bucket=BUCKET, Key=video_key, Body=b"0123456789")
    s3.put_object(Bucket=BUCKET, Key=cover_key, Body=b"png")
    video = stored_object(s3, BUCKET, video_key, "vsha")
    cover = stored_object(s3, BUCKET, cover_key, None)
    assert video == StoredObject(video_key, 10, hashlib.md5(b"0123456789").hexdigest(), "vsha")
    inputs = {"image": {"key": "products/sku-1.png", "size": 5, "etag": "e", "sha256": "s"}, "sidecar": None}
    result = {
        "id": "job-1",
        "model": "cogvideox-3",
        "price": 1,
        "price_currency": "CNY",
        "prompt": "A red mug",
        "metadata": {"product_id": "sku-1", "variant": "default", "fingerprint": fp(1), "index_inputs": inputs},
    }
    paid_at = datetime(2025, 3, 1, 16, 30, tzinfo=timezone(timedelta(hours=8)))
    entry = entry_from_upload(
        location=LOCATION, result=result, video=video, cover=cover, run_id="scheduled__x", paid_at=paid_at
    )
    assert entry.paid_at == "2025-03-01T08:30:00.000000+00:00"
    assert entry.price == 1.0
    key, _ = write_entry(s3, LOCATION, entry)
    index = load_index(s3, LOCATION)
    assert index.entries == {key: entry}
    assert index.trusted(entry)
    assert entry.reused_row("Red mug", "s3://catalog/products/sku-1.png") == {
        "product_id": "sku-1",
        "variant": "default",
        "status": "reused",
        "title": "Red mug",
        "image": "s3://catalog/products/sku-1.png",
        "video": f"s3://product-videos/{video_key}",
        "cover": f"s3://product-videos/{cover_key}",
        "sha256": "vsha",
        "size": 10,
        "job_id": "job-1",
        "model": "cogvideox-3",
        "prompt": "A red mug",
        "price": 0.0,
        "paid_price": 1.0,
        "currency": "CNY",
        "paid_by_run": "scheduled__x",
        "paid_at": "2025-03-01T08:30:00.000000+00:00",
        "fingerprint": fp(1),
    }


@pytest.mark.parametrize(
    ("metadata_review", "entry_review"),
    [
        ({"state": "awaiting", "job_id": "job-2", "run_id": "r", "until": "2025-03-02T10:00:00+00:00"}, "same"),
        (None, None),
        ("awaiting", None),
        (["awaiting"], None),
    ],
    ids=["awaiting marker", "none", "text", "list"],
)
def test_an_entry_from_an_upload_copies_the_review_of_its_metadata(metadata_review: Any, entry_review: Any) -> None:
    """A regenerated video's upload carries an ``awaiting`` marker: the entry keeps it (a copy), so no
    other run asks about it mid-review; the key and the fingerprint are the same with or without it."""
    metadata = {"product_id": "sku-1", "variant": "default", "fingerprint": fp(1), "index_inputs": {}}
    video = StoredObject("k", 1, "e")

    def entry(**more: Any) -> IndexEntry:
        result = {"id": "job-2", "metadata": {**metadata, **more}}
        return entry_from_upload(location=LOCATION, result=result, video=video, cover=None, run_id="r", paid_at=PAID_AT)

    assert video_index.REVIEW_MARKER == "review"
    with_review, without = entry(review=metadata_review), entry()
    assert with_review.review == (metadata_review if entry_review == "same" else None)
    if isinstance(metadata_review, dict):
        assert with_review.review is not metadata_review
    assert without.review is None
    assert dataclasses.replace(with_review, review=None) == without
    assert LOCATION.entry_key("sku-1", "default", with_review.fingerprint) == LOCATION.entry_key(
        "sku-1", "default", fp(1)
    )


def test_an_upload_without_index_metadata_is_refused() -> None:
    video = StoredObject("k", 1, "e")
    with pytest.raises(CogVideoValidationError, match="product_id, fingerprint"):
        entry_from_upload(
            location=LOCATION, result={"metadata": {}}, video=video, cover=None, run_id="r", paid_at=PAID_AT
        )


def test_a_fresh_index_object_knows_nothing() -> None:
    index = VideoIndex(LOCATION)
    assert index.find("p", "default", "f") is None
    assert index.held("p", "default") is None
    assert index.compacted_document()["objects"] == {}


# ---------------------------------------------------------------- formats and written prompts

WRITING = {"source": "writer", "model": "glm-4-plus", "template_prompt": "A red mug turns"}
FORMAT = {"name": "9:16", "options": {"size": "1080x1920"}, "fit": "pad", "text": "9:16 vertical (1080x1920)"}


def test_an_entry_keeps_how_its_prompt_was_written_and_an_old_one_reads_without(s3: Any, calls: Counter[str]) -> None:
    inputs = {"image": {"key": "products/sku-1.png", "size": 5, "etag": "e", "sha256": "s"}, "format": FORMAT}
    written = {
        "prompt": "A glossy red mug on marble",
        "source": "writer",
        "model": "glm-4-plus",
        "key": "k" * 32,
        "calls": 1,
        "tokens": 800,
        "price": 0.004,
        "cached": False,
        "template_prompt": "A red mug turns",
        "cache": "s3://product-videos/videos/.prompts/kkk.json",
    }
    result = {
        "id": "job-1",
        "model": "cogvideox-3",
        "prompt": "A glossy red mug on marble",
        "request": {"model": "cogvideox-3", "size": "1080x1920", "prompt_writing": written},
        "metadata": {"product_id": "sku-1", "variant": "9x16", "fingerprint": fp(1), "index_inputs": inputs},
    }
    video = StoredObject(LOCATION.video_key("sku-1", "9x16", fp(1), "job-1"), 1, "e")
    entry = entry_from_upload(location=LOCATION, result=result, video=video, cover=None, run_id="r", paid_at=PAID_AT)
    assert entry.writing == WRITING  # the origin of the prompt, not the writing's cost or cache key
    assert entry.to_json()["writing"] == WRITING
    assert IndexEntry.from_json(json.loads(json.dumps(entry.to_json()))) == entry
    # Its key and fingerprint are the same with or without a writing.
    without = entry_from_upload(
        location=LOCATION, result={**result, "request": {}}, video=video, cover=None, run_id="r", paid_at=PAID_AT
    )
    assert without.writing is None and dataclasses.replace(entry, writing=None) == without
    old = {k: v for k, v in make_entry(1).to_json().items() if k != "writing"}  # written before writers existed
    assert IndexEntry.from_json(old) == make_entry(1) and make_entry(1).writing is None
    assert IndexEntry.from_json({**make_entry(1).to_json(), "writing": "glm-4-plus"}) is None  # malformed
    # Through the S3 index and its compacted document.
    stored = put_video(s3, dataclasses.replace(make_entry(1), writing=WRITING, inputs=inputs))
    known = [(*write_entry(s3, LOCATION, stored), stored.to_json())]
    compact(s3, LOCATION, known=known)
    calls.clear()
    assert load_index(s3, LOCATION).find("sku-1", "default", fp(1)) == stored
    assert calls == Counter({"GetObject": 1, "ListObjectsV2": 1}), "from the document alone"


def test_a_reused_row_says_how_its_prompt_was_written_and_its_format() -> None:
    entry = dataclasses.replace(make_entry(1), writing=WRITING, inputs={**make_entry(1).inputs, "format": FORMAT})
    row = entry.reused_row("Red mug", None)
    assert {k: row[k] for k in ("prompt", "template_prompt", "prompt_writing", "format")} == {
        "prompt": "prompt 1",
        "template_prompt": "A red mug turns",
        "prompt_writing": {"source": "writer", "model": "glm-4-plus"},
        "format": "9:16",
    }
    assert set(row) - set(make_entry(1).reused_row("Red mug", None)) == {"template_prompt", "prompt_writing", "format"}
    plain = make_entry(1).reused_row("Red mug", None)
    assert not {"template_prompt", "prompt_writing", "format"} & set(plain)
