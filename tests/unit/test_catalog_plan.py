"""The decision per (product, variant) from listings (catalog_plan): selections, choose() in every
branch, reuse after a read, the cap, what an entry records of a product's inputs, and the rows of
products that are not mapped. Indexes are real ones, written to and loaded from moto's S3."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest

from airflow_provider_cogvideo.catalog_plan import (
    DEFAULT_MAX_MAP_LENGTH,
    MAX_RECORDED_SIDECAR_BYTES,
    Choice,
    Listed,
    Selection,
    choose,
    entry_row,
    held_row,
    index_inputs,
    known_title,
    max_map_length,
    paid_cap,
    rejected_by_review,
    rejected_row,
    reuse_after_read,
    reused_row,
    waiting_row,
)
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.fingerprint import video_fingerprint
from airflow_provider_cogvideo.products import render_prompt
from airflow_provider_cogvideo.video_index import (
    Hold,
    IndexEntry,
    IndexLocation,
    StoredObject,
    VideoIndex,
    load_index,
    write_entry,
    write_hold,
)

BUCKET = "product-videos"
LOCATION = IndexLocation(BUCKET, "videos/")
TEMPLATE = "{title}: {style}. Product {product_id} turns slowly."
IMAGE = Listed("incoming/mug.png", 2048, "etag-image-1")
SIDECAR = Listed("incoming/mug.json", 41, "etag-sidecar-1")
FIELDS = {"title": "Red mug", "style": "studio"}
IMAGE_SHA = hashlib.sha256(b"the mug photo").hexdigest()
NOTHING = Selection()

# What an entry records of the mug's inputs, written out (not made by index_inputs).
RECORDED_IMAGE = {"key": "incoming/mug.png", "size": 2048, "etag": "etag-image-1", "sha256": IMAGE_SHA}
RECORDED_SIDECAR = {"key": "incoming/mug.json", "size": 41, "etag": "etag-sidecar-1", "fields": FIELDS}


def fingerprint_of(
    fields: Mapping[str, Any] | None, sha256: str, *, template: str = TEMPLATE, model: str = "cogvideox-3"
) -> str:
    """As ingestion computes it: the prompt rendered from the fields, this run's model and options."""
    prompt, _ = render_prompt(template, {**(fields or {}), "product_id": "mug"})
    return video_fingerprint(
        model=model,
        options={"duration": 5, "quality": "speed"},
        prompt=prompt,
        image_digests=[sha256],
        variant="default",
    )


FINGERPRINT = fingerprint_of(FIELDS, IMAGE_SHA)


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def paid(
    s3: Any,
    *,
    inputs: dict[str, Any] | None = None,
    fingerprint: str = FINGERPRINT,
    job: str = "job-1",
    paid_at: str = "2025-03-01T08:30:00.000000+00:00",
    review: dict[str, Any] | None = None,
) -> IndexEntry:
    """A paid video of the mug: its video and cover stored, its entry written as the upload writes it."""
    video_key = LOCATION.video_key("mug", "default", fingerprint, job)
    cover_key = video_key.removesuffix(".mp4") + ".png"
    video_etag = s3.put_object(Bucket=BUCKET, Key=video_key, Body=f"video of {job}".encode())["ETag"].strip('"')
    cover_etag = s3.put_object(Bucket=BUCKET, Key=cover_key, Body=b"cover")["ETag"].strip('"')
    entry = IndexEntry(
        product_id="mug",
        variant="default",
        fingerprint=fingerprint,
        bucket=BUCKET,
        video=StoredObject(video_key, len(f"video of {job}"), video_etag, f"sha-of-{job}"),
        cover=StoredObject(cover_key, 5, cover_etag),
        job_id=job,
        model="cogvideox-3",
        price=1.0,
        currency="CNY",
        paid_by_run="scheduled__2025-03-01",
        paid_at=paid_at,
        prompt="Red mug: studio. Product mug turns slowly.",
        inputs={"image": RECORDED_IMAGE, "sidecar": RECORDED_SIDECAR} if inputs is None else inputs,
        review=review,
    )
    write_entry(s3, LOCATION, entry)
    return entry


def decide(
    index: VideoIndex | None,
    *,
    image: Listed = IMAGE,
    sidecar: Listed | None = SIDECAR,
    fingerprint: Any = fingerprint_of,
    regenerate: Selection = NOTHING,
    release_held: Selection = NOTHING,
) -> tuple[Choice, Any]:
    return choose(
        index,
        "mug",
        "default",
        image=image,
        sidecar=sidecar,
        fingerprint_of=fingerprint,
        regenerate=regenerate,
        release_held=release_held,
    )


HOLD = Hold("mug", "default", "req-7", "scheduled__2025-03-02", "2025-03-02T08:00:00+00:00", FINGERPRINT, "ambiguous")


# ---------------------------------------------------------------- Selection.parse


@pytest.mark.parametrize(
    ("value", "products"),
    [
        (["sku-1", "sku-2"], {"sku-1", "sku-2"}),
        (("sku-1",), {"sku-1"}),
        ({"sku-1"}, {"sku-1"}),
        ([" sku-1 ", "", "  "], {"sku-1"}),
        ("sku-1, sku-2,,sku-3 ", {"sku-1", "sku-2", "sku-3"}),
        ("sku-1", {"sku-1"}),
        ("['sku-1', 'sku-2']", {"sku-1", "sku-2"}),
        (' ["sku-1"] ', {"sku-1"}),
    ],
)
def test_a_selection_of_products(value: Any, products: set[str]) -> None:
    selection = Selection.parse("regenerate", value)
    assert selection == Selection(products=frozenset(products))
    assert selection
    assert all(p in selection for p in products)
    assert "sku-9" not in selection


@pytest.mark.parametrize("value", ["all", " all ", "ALL", ["sku-1", "All"], "sku-1,all", "['all']", True])
def test_all_selects_every_product(value: Any) -> None:
    selection = Selection.parse("regenerate", value)
    assert selection.everything
    assert "anything" in selection
    assert selection


@pytest.mark.parametrize("value", [None, "None", "none", "null", "", [], False, "[]", "   "])
def test_unset_selects_nothing(value: Any) -> None:
    selection = Selection.parse("release_held", value)
    assert not selection
    assert not selection.everything
    assert "sku-1" not in selection
    assert "None" not in selection


@pytest.mark.parametrize("value", [5, 2.5, {"sku-1": True}, ["sku-1", 2], [None], "[1, 2]", "['sku-1'", "[sku-1]"])
def test_anything_else_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(CogVideoValidationError) as raised:
        Selection.parse("release_held", value)
    assert raised.value.field == "release_held"
    assert str(raised.value).startswith("release_held: ")


# ---------------------------------------------------------------- choose: no index, holds, regenerate


def test_without_an_index_every_product_is_read() -> None:
    assert decide(None) == (Choice.READ, None)


def test_no_entry_is_read(s3: Any) -> None:
    assert decide(load_index(s3, LOCATION)) == (Choice.READ, None)


def test_an_unchanged_product_is_reused_without_reading(s3: Any) -> None:
    entry = paid(s3)
    seen: list[tuple[Any, str]] = []

    def recording(fields: Mapping[str, Any] | None, sha256: str) -> str:
        seen.append((fields, sha256))
        return fingerprint_of(fields, sha256)

    assert decide(load_index(s3, LOCATION), fingerprint=recording) == (Choice.REUSE, entry)
    assert seen == [(FIELDS, IMAGE_SHA)], "the fingerprint is recomputed from what the entry recorded"


def test_an_unchanged_product_without_sidecar_is_reused(s3: Any) -> None:
    entry = paid(s3, inputs={"image": RECORDED_IMAGE, "sidecar": None}, fingerprint=fingerprint_of(None, IMAGE_SHA))
    assert decide(load_index(s3, LOCATION), sidecar=None) == (Choice.REUSE, entry)


def test_a_held_product_is_held_even_with_a_matching_entry(s3: Any) -> None:
    paid(s3)
    write_hold(s3, LOCATION, HOLD)
    index = load_index(s3, LOCATION)
    assert decide(index) == (Choice.HOLD, HOLD)
    assert decide(index, regenerate=Selection(everything=True)) == (Choice.HOLD, HOLD), "regenerate is no release"
    assert decide(index, release_held=Selection(products=frozenset({"lamp"}))) == (Choice.HOLD, HOLD)


@pytest.mark.parametrize("release", [Selection(products=frozenset({"mug"})), Selection(everything=True)])
def test_a_released_hold_is_decided_as_any_product(s3: Any, release: Selection) -> None:
    write_hold(s3, LOCATION, HOLD)
    assert decide(load_index(s3, LOCATION), release_held=release) == (Choice.READ, None)
    entry = paid(s3)
    assert decide(load_index(s3, LOCATION), release_held=release) == (Choice.REUSE, entry)


@pytest.mark.parametrize("regenerate", [Selection(products=frozenset({"mug"})), Selection(everything=True)])
def test_a_regenerated_product_is_read_whatever_the_index_holds(s3: Any, regenerate: Selection) -> None:
    paid(s3)
    assert decide(load_index(s3, LOCATION), regenerate=regenerate) == (Choice.READ, None)


def test_regenerating_another_product_changes_nothing(s3: Any) -> None:
    entry = paid(s3)
    assert decide(load_index(s3, LOCATION), regenerate=Selection(products=frozenset({"lamp"}))) == (
        Choice.REUSE,
        entry,
    )


# ---------------------------------------------------------------- choose: what changed


@pytest.mark.parametrize(
    "break_it",
    [
        lambda s3, e: s3.put_object(Bucket=BUCKET, Key=e.video.key, Body=b"someone else's video"),
        lambda s3, e: s3.delete_object(Bucket=BUCKET, Key=e.video.key),
        lambda s3, e: s3.put_object(Bucket=BUCKET, Key=e.cover.key, Body=b"other"),
    ],
    ids=["video replaced", "video deleted", "cover replaced"],
)
def test_an_untrusted_entry_is_read(s3: Any, break_it: Any) -> None:
    entry = paid(s3)
    break_it(s3, entry)
    assert decide(load_index(s3, LOCATION)) == (Choice.READ, None)


@pytest.mark.parametrize(
    "image",
    [
        Listed("incoming/other/mug.png", 2048, "etag-image-1"),
        Listed("incoming/mug.png", 2049, "etag-image-1"),
        Listed("incoming/mug.png", 2048, "etag-image-2"),
    ],
    ids=["key", "size", "etag"],
)
def test_a_changed_image_is_read(s3: Any, image: Listed) -> None:
    paid(s3)
    assert decide(load_index(s3, LOCATION), image=image) == (Choice.READ, None)


def test_an_image_recorded_without_its_sha256_is_read(s3: Any) -> None:
    unhashed = {k: v for k, v in RECORDED_IMAGE.items() if k != "sha256"}
    paid(s3, inputs={"image": unhashed, "sidecar": RECORDED_SIDECAR})
    assert decide(load_index(s3, LOCATION)) == (Choice.READ, None)


def test_an_entry_without_recorded_inputs_is_read(s3: Any) -> None:
    paid(s3, inputs={})
    assert decide(load_index(s3, LOCATION)) == (Choice.READ, None)


@pytest.mark.parametrize(
    ("recorded", "listed"),
    [
        (None, SIDECAR),
        (RECORDED_SIDECAR, None),
        (RECORDED_SIDECAR, Listed("incoming/mug.json", 41, "etag-sidecar-2")),
        (RECORDED_SIDECAR, Listed("incoming/mug.json", 44, "etag-sidecar-1")),
        ({**RECORDED_SIDECAR, "fields": None}, SIDECAR),
    ],
    ids=["sidecar added", "sidecar removed", "sidecar etag", "sidecar size", "sidecar fields not recorded"],
)
def test_a_changed_or_unrecorded_sidecar_is_read(s3: Any, recorded: Any, listed: Listed | None) -> None:
    paid(s3, inputs={"image": RECORDED_IMAGE, "sidecar": recorded})
    called: list[Any] = []
    choice = decide(load_index(s3, LOCATION), sidecar=listed, fingerprint=lambda f, s: called.append(f) or "")
    assert choice == (Choice.READ, None)
    assert called == [], "decided before any fingerprint is computed"


@pytest.mark.parametrize(
    "changed",
    [
        {"template": "{title} in a {style} style"},
        {"model": "cogvideox-2"},
    ],
    ids=["template", "model"],
)
def test_a_changed_fingerprint_is_read(s3: Any, changed: dict[str, str]) -> None:
    paid(s3)
    assert decide(load_index(s3, LOCATION), fingerprint=lambda f, s: fingerprint_of(f, s, **changed)) == (
        Choice.READ,
        None,
    )


def test_only_the_latest_entry_is_reused_from_the_listing(s3: Any) -> None:
    """An image put back to what it was two videos ago: the newest entry (of another image) does not
    match, so it is read; then the older entry is found by the fingerprint of what was read."""
    old = paid(s3, job="job-1", paid_at="2025-03-01T08:30:00+00:00")
    newer_image = {**RECORDED_IMAGE, "etag": "etag-image-2", "sha256": "b" * 64}
    paid(
        s3,
        inputs={"image": newer_image, "sidecar": RECORDED_SIDECAR},
        fingerprint=fingerprint_of(FIELDS, "b" * 64),
        job="job-2",
        paid_at="2025-03-02T08:30:00+00:00",
    )
    index = load_index(s3, LOCATION)
    assert decide(index) == (Choice.READ, None)
    assert reuse_after_read(index, "mug", "default", FINGERPRINT, regenerate=NOTHING) == old


# ---------------------------------------------------------------- choose: review decisions


def review(state: str, job: str = "job-1", *notes: str) -> dict[str, Any]:
    """An entry's ``review``, as the review run records it: one decision per note."""
    decisions = [
        {
            "round": n,
            "answer": "Reject",
            "state": state,
            "note": note,
            "by": "ana",
            "at": "t",
            "job_id": job,
            "video": "v",
        }
        for n, note in enumerate(notes, start=1)
    ]
    return {
        "state": state,
        "job_id": job,
        "run_id": "review__1",
        "until": None,
        "decisions": decisions,
        "published": None,
    }


REJECTED = review("rejected_by_review", "job-1", "too dark", "still too dark")


def test_a_video_rejected_by_review_is_neither_reused_nor_read(s3: Any) -> None:
    entry = paid(s3, review=REJECTED)
    index = load_index(s3, LOCATION)
    assert decide(index) == (Choice.REJECTED, entry)
    assert rejected_by_review(entry)
    # read after all (an image put back as it was): its entry is found, and still not reused nor paid
    assert reuse_after_read(index, "mug", "default", FINGERPRINT, regenerate=NOTHING) == entry
    assert entry_row(entry, title="Red mug", image="s3://c/mug.png")["status"] == "rejected_by_review"


@pytest.mark.parametrize("regenerate", [Selection(products=frozenset({"mug"})), Selection(everything=True)])
def test_regenerate_reads_and_pays_for_a_rejected_video(s3: Any, regenerate: Selection) -> None:
    paid(s3, review=REJECTED)
    index = load_index(s3, LOCATION)
    assert decide(index, regenerate=regenerate) == (Choice.READ, None)
    assert reuse_after_read(index, "mug", "default", FINGERPRINT, regenerate=regenerate) is None


def test_a_rejected_product_whose_inputs_changed_is_read_and_paid(s3: Any) -> None:
    """A new fingerprint is a new video and a new review: the rejection stays with the old one."""
    paid(s3, review=REJECTED)
    index = load_index(s3, LOCATION)
    changed = Listed("incoming/mug.png", 2048, "etag-image-2")
    assert decide(index, image=changed) == (Choice.READ, None)
    assert decide(index, fingerprint=lambda f, s: fingerprint_of(f, s, model="cogvideox-2")) == (Choice.READ, None)
    new_fingerprint = fingerprint_of(FIELDS, "c" * 64)
    assert reuse_after_read(index, "mug", "default", new_fingerprint, regenerate=NOTHING) is None


def test_a_rejection_of_another_job_of_the_same_fingerprint_does_not_count(s3: Any) -> None:
    """The entry now names a newer video (regenerated after the reject): that one is unreviewed."""
    entry = paid(s3, job="job-2", review=REJECTED)
    assert not rejected_by_review(entry)
    assert decide(load_index(s3, LOCATION)) == (Choice.REUSE, entry)
    assert reused_row(entry, title="Red mug", image="s3://c/mug.png")["review"] is None
    assert entry_row(entry, title="Red mug", image="s3://c/mug.png")["status"] == "reused"


@pytest.mark.parametrize("state", ["approved", "held", "awaiting"])
def test_a_video_approved_or_not_yet_decided_is_reused_with_its_review(s3: Any, state: str) -> None:
    decided = review(state, "job-1")
    entry = paid(s3, review=decided)
    assert decide(load_index(s3, LOCATION)) == (Choice.REUSE, entry)
    row = entry_row(entry, title="Red mug", image="s3://c/mug.png")
    assert row == {**entry.reused_row("Red mug", "s3://c/mug.png"), "review": decided}
    assert row["status"] == "reused" and row["price"] == 0.0


def test_an_unreviewed_video_is_reused_with_no_review(s3: Any) -> None:
    entry = paid(s3)
    assert decide(load_index(s3, LOCATION)) == (Choice.REUSE, entry)
    assert reused_row(entry, title=None, image=None) == {**entry.reused_row(None, None), "review": None}


def test_rejected_row(s3: Any) -> None:
    entry = paid(s3, review=REJECTED)
    row = rejected_row(entry, title="Red mug", image="s3://catalog/incoming/mug.png")
    reason = row.pop("reason")
    assert row == {
        **entry.reused_row("Red mug", "s3://catalog/incoming/mug.png"),
        "status": "rejected_by_review",
        "price": 0.0,
        "review": REJECTED,
    }
    assert row["paid_price"] == 1.0 and row["video"] == f"s3://{BUCKET}/{entry.video.key}"
    assert "review__1" in reason and "too dark" in reason and "still too dark" in reason
    assert "regenerate" in reason
    assert entry_row(entry, title="Red mug", image="s3://catalog/incoming/mug.png") == {**row, "reason": reason}


# ---------------------------------------------------------------- reuse after reading


def test_reuse_after_read(s3: Any) -> None:
    entry = paid(s3)
    index = load_index(s3, LOCATION)
    assert reuse_after_read(index, "mug", "default", FINGERPRINT, regenerate=NOTHING) == entry
    assert reuse_after_read(index, "mug", "default", "f" * 64, regenerate=NOTHING) is None
    assert reuse_after_read(index, "mug", "douyin", FINGERPRINT, regenerate=NOTHING) is None
    assert reuse_after_read(index, "lamp", "default", FINGERPRINT, regenerate=NOTHING) is None
    assert reuse_after_read(None, "mug", "default", FINGERPRINT, regenerate=NOTHING) is None


@pytest.mark.parametrize("regenerate", [Selection(products=frozenset({"mug"})), Selection(everything=True)])
def test_no_reuse_after_read_when_regenerated(s3: Any, regenerate: Selection) -> None:
    paid(s3)
    assert reuse_after_read(load_index(s3, LOCATION), "mug", "default", FINGERPRINT, regenerate=regenerate) is None


def test_no_reuse_after_read_of_an_untrusted_entry(s3: Any) -> None:
    entry = paid(s3)
    s3.put_object(Bucket=BUCKET, Key=entry.video.key, Body=b"edited by hand")
    assert reuse_after_read(load_index(s3, LOCATION), "mug", "default", FINGERPRINT, regenerate=NOTHING) is None


# ---------------------------------------------------------------- the cap


@pytest.mark.parametrize(
    ("max_products", "map_length", "cap"),
    [(None, 1024, 1024), (10, 1024, 10), (5000, 1024, 1024), (3, 3, 3), (None, 2, 2)],
)
def test_paid_cap_with_a_given_map_length(max_products: int | None, map_length: int, cap: int) -> None:
    assert paid_cap(max_products, map_length) == cap


def test_paid_cap_reads_max_map_length_from_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__CORE__MAX_MAP_LENGTH", raising=False)
    assert max_map_length() == DEFAULT_MAX_MAP_LENGTH == 1024
    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "7")
    assert max_map_length() == 7
    assert paid_cap(None) == 7
    assert paid_cap(3) == 3
    assert paid_cap(10) == 7


# ---------------------------------------------------------------- what an entry records


def test_index_inputs_record_the_listing_the_sha256_and_the_fields() -> None:
    assert index_inputs(IMAGE, IMAGE_SHA, SIDECAR, FIELDS) == {
        "image": {"key": "incoming/mug.png", "size": 2048, "etag": "etag-image-1", "sha256": IMAGE_SHA},
        "sidecar": {"key": "incoming/mug.json", "size": 41, "etag": "etag-sidecar-1", "fields": FIELDS},
    }
    assert index_inputs(IMAGE, IMAGE_SHA, None, None) == {
        "image": {"key": "incoming/mug.png", "size": 2048, "etag": "etag-image-1", "sha256": IMAGE_SHA},
        "sidecar": None,
    }
    # listed, but gone when it was read: recorded without fields, so the next run reads it again
    assert index_inputs(IMAGE, IMAGE_SHA, SIDECAR, None)["sidecar"] == {
        "key": "incoming/mug.json",
        "size": 41,
        "etag": "etag-sidecar-1",
        "fields": None,
    }


def test_big_sidecar_fields_are_not_recorded() -> None:
    wrapper = len(json.dumps({"notes": ""}))
    fits = {"notes": "x" * (MAX_RECORDED_SIDECAR_BYTES - wrapper)}
    over = {"notes": "x" * (MAX_RECORDED_SIDECAR_BYTES - wrapper + 1)}
    assert len(json.dumps(fits)) == MAX_RECORDED_SIDECAR_BYTES == 8192
    assert index_inputs(IMAGE, IMAGE_SHA, SIDECAR, fits)["sidecar"]["fields"] == fits
    assert index_inputs(IMAGE, IMAGE_SHA, SIDECAR, over)["sidecar"] == {
        "key": "incoming/mug.json",
        "size": 41,
        "etag": "etag-sidecar-1",
        "fields": None,
    }


def test_recorded_inputs_are_a_copy() -> None:
    fields = {"title": "Red mug"}
    inputs = index_inputs(IMAGE, IMAGE_SHA, SIDECAR, fields)
    fields["title"] = "changed later"
    assert inputs["sidecar"]["fields"] == {"title": "Red mug"}


def test_what_index_inputs_record_is_reused_by_the_next_run(s3: Any) -> None:
    """The round trip: an entry recording index_inputs of this listing is reused from this listing."""
    entry = paid(s3, inputs=index_inputs(IMAGE, IMAGE_SHA, SIDECAR, FIELDS))
    assert decide(load_index(s3, LOCATION)) == (Choice.REUSE, entry)


def test_a_sidecar_too_big_to_record_is_read_again(s3: Any) -> None:
    big = {**FIELDS, "notes": "x" * MAX_RECORDED_SIDECAR_BYTES}
    entry = paid(s3, inputs=index_inputs(IMAGE, IMAGE_SHA, SIDECAR, big), fingerprint=fingerprint_of(big, IMAGE_SHA))
    index = load_index(s3, LOCATION)
    assert decide(index) == (Choice.READ, None)
    assert reuse_after_read(index, "mug", "default", fingerprint_of(big, IMAGE_SHA), regenerate=NOTHING) == entry


# ---------------------------------------------------------------- rows of products not mapped


def entry_with(inputs: dict[str, Any]) -> IndexEntry:
    video = StoredObject("videos/mug/default/x-job-1.mp4", 10, "e", "s")
    return IndexEntry(
        "mug", "default", FINGERPRINT, BUCKET, video, None, "job-1", None, None, None, "r", "t", None, inputs
    )


@pytest.mark.parametrize(
    ("found", "catalog_row", "title"),
    [
        (entry_with({"image": RECORDED_IMAGE, "sidecar": RECORDED_SIDECAR}), {"title": "Catalog mug"}, "Red mug"),
        (entry_with({"image": RECORDED_IMAGE, "sidecar": None}), {"title": "Catalog mug"}, "Catalog mug"),
        (
            entry_with({"image": RECORDED_IMAGE, "sidecar": {**RECORDED_SIDECAR, "fields": {"style": "x"}}}),
            {"title": "Catalog mug"},
            "Catalog mug",
        ),
        (entry_with({"image": RECORDED_IMAGE, "sidecar": {**RECORDED_SIDECAR, "fields": None}}), None, None),
        (entry_with({}), {"title": "Catalog mug"}, "Catalog mug"),
        (HOLD, {"title": "Catalog mug"}, "Catalog mug"),
        (HOLD, None, None),
        (None, {"title": "Catalog mug"}, "Catalog mug"),
        (None, None, None),
    ],
)
def test_known_title(found: Any, catalog_row: dict[str, Any] | None, title: str | None) -> None:
    assert known_title(found, catalog_row) == title


def test_held_row() -> None:
    row = held_row(HOLD, title="Red mug", image="s3://catalog/incoming/mug.png")
    check = row.pop("check")
    assert row == {
        "product_id": "mug",
        "variant": "default",
        "status": "held",
        "title": "Red mug",
        "image": "s3://catalog/incoming/mug.png",
        "request_id": "req-7",
        "held_by_run": "scheduled__2025-03-02",
        "held_at": "2025-03-02T08:00:00+00:00",
    }
    assert "scheduled__2025-03-02" in check and "req-7" in check
    assert "release_held" in check and "delete the hold" in check


def test_waiting_row() -> None:
    assert waiting_row("mug", "default", title="Red mug", image="s3://catalog/incoming/mug.png", cap=1024) == {
        "product_id": "mug",
        "variant": "default",
        "status": "waiting",
        "title": "Red mug",
        "image": "s3://catalog/incoming/mug.png",
        "reason": "over this run's cap of 1024 paid item(s) ([core] max_map_length or max_products): "
        "taken by the next run",
    }
