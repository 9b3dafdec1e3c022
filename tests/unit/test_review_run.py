"""A review run's bookkeeping (review_run.py) over a real video index in moto's S3: which videos of a
pipeline run's manifest are asked about, what each review item carries (the budget the run left), and
what the answers do to the manifest's rows and the videos' index entries. Expected values written out."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_cogvideo.review import ReviewMode
from airflow_provider_cogvideo.review_run import (
    budget_left,
    outcomes,
    plan_reviews,
    recorded_rows,
    reviewed_entry,
)
from airflow_provider_cogvideo.video_index import (
    IndexEntry,
    IndexLocation,
    StoredObject,
    VideoIndex,
    entry_from_upload,
    iso_utc,
    load_index,
    write_entry,
)

BUCKET = "out"
LOCATION = IndexLocation(BUCKET, "videos/")
RUN = "review__2026-03-02"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
UNTIL = NOW + timedelta(days=9)
PAID_AT = "2026-03-01T08:30:00.000000+00:00"


def link_of(i: int) -> str:
    return f"https://airflow.test/dags/review/runs/{RUN}/tasks/video.review_1/required_actions?map_index={i}"


def fp(product: str) -> str:
    return f"fp-{product}".ljust(64, "0")


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def paid(s3: Any, product: str, *, job: str | None = None, review: dict[str, Any] | None = None) -> IndexEntry:
    """A paid video of ``product``: its video and cover stored, its entry written as the upload writes it."""
    job = job or f"job-{product}"
    video_key = LOCATION.video_key(product, "default", fp(product), job)
    cover_key = video_key.removesuffix(".mp4") + ".png"
    body = f"video of {job}".encode()
    video_etag = s3.put_object(Bucket=BUCKET, Key=video_key, Body=body)["ETag"].strip('"')
    cover_etag = s3.put_object(Bucket=BUCKET, Key=cover_key, Body=b"cover")["ETag"].strip('"')
    entry = IndexEntry(
        product_id=product,
        variant="default",
        fingerprint=fp(product),
        bucket=BUCKET,
        video=StoredObject(video_key, len(body), video_etag, f"sha-of-{job}"),
        cover=StoredObject(cover_key, 5, cover_etag),
        job_id=job,
        model="cogvideox-3",
        price=1.0,
        currency="CNY",
        paid_by_run="scheduled__2026-03-01",
        paid_at=PAID_AT,
        prompt=f"A {product} turns slowly.",
        inputs={"image": {"key": f"incoming/{product}.png", "size": 5, "etag": "e", "sha256": "s"}, "sidecar": None},
        review=review,
    )
    write_entry(s3, LOCATION, entry)
    return entry


def uploaded_row(entry: IndexEntry, **more: Any) -> dict[str, Any]:
    """The manifest row of a video the pipeline run paid for and stored."""
    return {
        "product_id": entry.product_id,
        "variant": entry.variant,
        "status": "uploaded",
        "title": entry.product_id.title(),
        "image": f"s3://products/incoming/{entry.product_id}.png",
        "fingerprint": entry.fingerprint,
        "video": f"s3://{BUCKET}/{entry.video.key}",
        "job_id": entry.job_id,
        "price": 1.0,
        **more,
    }


def manifest(*rows: dict[str, Any], budget: float | None = 10.0, actual: float = 3.5, **more: Any) -> dict[str, Any]:
    return {"run_id": "scheduled__2026-03-01", "products": list(rows), "budget": budget, "actual_price": actual, **more}


def plan(document: dict[str, Any], index: VideoIndex, *, mode: ReviewMode = ReviewMode.REQUIRED, cap: int = 100):
    return plan_reviews(document, index, mode=mode, run_id=RUN, now=NOW, until=UNTIL, max_reviews=cap, link_of=link_of)


def awaiting(entry: IndexEntry, decisions: list[Any] | None = None) -> dict[str, Any]:
    """The marker the plan puts on an entry it asks about."""
    return {
        "state": "awaiting",
        "job_id": entry.job_id,
        "run_id": RUN,
        "until": "2026-03-11T09:00:00.000000+00:00",
        "decisions": decisions or [],
        "published": None,
    }


APPROVED = {
    "state": "approved",
    "job_id": "job-cup",
    "run_id": "review__2026-02-01",
    "decisions": [{"round": 1, "state": "approved", "by": "ana", "job_id": "job-cup"}],
    "published": {"video": "s3://pub/published/cup/default.mp4", "cover": None, "sha256": "sha-of-job-cup"},
}


# ---------------------------------------------------------------- budget


@pytest.mark.parametrize(
    ("document", "left"),
    [
        ({"budget": 10, "actual_price": 3.5}, 6.5),
        ({"budget": 10}, 10.0),
        ({"budget": 10, "actual_price": 3.5, "review": {"paid": 2.0}}, 4.5),  # an earlier review run's regenerations
        ({"budget": 10, "actual_price": 3.5, "review": "odd"}, 6.5),
        ({"budget": 2, "actual_price": 5}, 0.0),  # overspent (a retry paid): nothing left, never negative
        ({"budget": 1.1, "actual_price": 0.3}, 0.8),  # rounded, not 0.8000000000000002
        ({"budget": None, "actual_price": 3}, None),
        ({}, None),
    ],
)
def test_the_budget_left_is_the_runs_budget_less_what_it_paid(document: dict[str, Any], left: float | None) -> None:
    assert budget_left(document) == left


# ---------------------------------------------------------------- plan_reviews


def test_uploaded_and_reused_videos_with_no_review_are_asked_about_in_order(s3: Any) -> None:
    mug, vase = paid(s3, "mug"), paid(s3, "vase")
    rows = [
        uploaded_row(mug),
        {"product_id": "pan", "status": "failed", "error": "boom"},
        vase.reused_row("Vase", None),
    ]
    reviews = plan(manifest(*rows), load_index(s3, LOCATION))

    assert [item["video"]["metadata"]["product_id"] for item in reviews.items] == ["mug", "vase"]
    assert reviews.items[0] == {
        "video": {
            "id": "job-mug",
            "model": "cogvideox-3",
            "prompt": "A mug turns slowly.",
            "price": 1.0,
            "price_currency": "CNY",
            "s3_uri": f"s3://{BUCKET}/{mug.video.key}",
            "cover_s3_uri": f"s3://{BUCKET}/{mug.cover.key}",
            "sha256": "sha-of-job-mug",
            "size": len(b"video of job-mug"),
            "metadata": {
                "product_id": "mug",
                "variant": "default",
                "fingerprint": fp("mug"),
                "title": "Mug",
                "source_image": "s3://products/incoming/mug.png",
                "index_inputs": mug.inputs,
                "review": awaiting(mug),
            },
        },
        "image": "s3://products/incoming/mug.png",
        "prompt": "A mug turns slowly.",
        "options": {},
        "budget": 6.5,
        "auto": None,
    }
    assert reviews.items[1]["image"] is None and reviews.items[1]["video"]["metadata"]["title"] == "Vase"
    assert reviews.marked == [
        dataclasses.replace(mug, review=awaiting(mug)),
        dataclasses.replace(vase, review=awaiting(vase)),
    ]
    assert reviews.rows[0]["review"] == {"state": "awaiting", "round": 1, "link": link_of(0), "decisions": []}
    assert reviews.rows[2]["review"] == {"state": "awaiting", "round": 1, "link": link_of(1), "decisions": []}
    assert reviews.rows[1] == rows[1], "a failed row is left as it is"
    assert reviews.skipped == {"reviewed": 0, "not_indexed": 0, "over_cap": 0}
    assert "review" not in rows[0], "the document handed in is not changed"


def test_the_marked_entries_round_trip_through_the_index_and_are_then_pending(s3: Any) -> None:
    """What the plan operator writes is what the next run reads: marked, the video is not asked about again."""
    mug = paid(s3, "mug")
    document = manifest(uploaded_row(mug))
    reviews = plan(document, load_index(s3, LOCATION))
    for entry in reviews.marked:
        write_entry(s3, LOCATION, entry)
    again = plan_reviews(
        document,
        load_index(s3, LOCATION),
        mode=ReviewMode.REQUIRED,
        run_id="review__other",
        now=NOW + timedelta(days=1),
        until=UNTIL,
        max_reviews=100,
        link_of=link_of,
    )
    assert again.items == [] and again.skipped["reviewed"] == 1
    assert again.rows[0]["review"]["state"] == "awaiting"


def test_a_held_video_is_asked_again_and_keeps_its_earlier_decisions(s3: Any) -> None:
    earlier = [{"round": 1, "answer": "timeout", "state": "held", "run_id": "review__2026-02-01"}]
    jug = paid(
        s3, "jug", review={"state": "held", "job_id": "job-jug", "run_id": "review__2026-02-01", "decisions": earlier}
    )
    reviews = plan(manifest(jug.reused_row("Jug", "s3://products/incoming/jug.png")), load_index(s3, LOCATION))
    assert len(reviews.items) == 1
    assert reviews.marked[0].review == awaiting(jug, earlier)
    assert reviews.items[0]["video"]["metadata"]["review"]["decisions"] == earlier


def test_an_approved_video_is_not_asked_about_and_its_row_shows_its_review(s3: Any) -> None:
    cup = paid(s3, "cup", review=APPROVED)
    reviews = plan(manifest(cup.reused_row("Cup", None)), load_index(s3, LOCATION))
    assert (reviews.items, reviews.marked) == ([], [])
    assert reviews.skipped == {"reviewed": 1, "not_indexed": 0, "over_cap": 0}
    assert reviews.rows[0]["review"] == {
        "state": "approved",
        "round": 1,
        "link": None,
        "decisions": APPROVED["decisions"],
        "published": APPROVED["published"],
    }


def test_rejected_replaced_and_untrusted_videos_are_not_asked_about(s3: Any) -> None:
    lamp = paid(s3, "lamp", review={**APPROVED, "state": "rejected_by_review", "job_id": "job-lamp"})
    bowl = paid(s3, "bowl", job="job-bowl-2")  # a later run replaced the video this run's row names
    plate = paid(s3, "plate")
    s3.put_object(Bucket=BUCKET, Key=plate.video.key, Body=b"other bytes")  # no longer the video indexed
    rows = [
        lamp.reused_row("Lamp", None),
        uploaded_row(bowl, job_id="job-bowl-1"),
        uploaded_row(plate),
        {**uploaded_row(paid(s3, "cup")), "fingerprint": fp("other")},  # no entry under the row's fingerprint
    ]
    reviews = plan(manifest(*rows), load_index(s3, LOCATION))
    assert (reviews.items, reviews.marked) == ([], [])
    assert reviews.skipped == {"reviewed": 1, "not_indexed": 3, "over_cap": 0}
    assert reviews.rows[0]["review"]["state"] == "rejected_by_review"
    assert all("review" not in row for row in reviews.rows[1:])


def test_an_entry_reviewed_on_another_job_of_its_fingerprint_is_asked_about(s3: Any) -> None:
    """A review counts for the job it was made on: a newer video of the same inputs is unreviewed."""
    mug = paid(s3, "mug", review={**APPROVED, "job_id": "job-mug-old"})
    reviews = plan(manifest(uploaded_row(mug)), load_index(s3, LOCATION))
    assert len(reviews.items) == 1
    assert reviews.marked[0].review["decisions"] == APPROVED["decisions"], "the history is kept"


def test_publish_all_approves_without_asking_and_no_budget_is_none(s3: Any) -> None:
    mug = paid(s3, "mug")
    reviews = plan(manifest(uploaded_row(mug), budget=None), load_index(s3, LOCATION), mode=ReviewMode.PUBLISH_ALL)
    assert [(item["auto"], item["budget"]) for item in reviews.items] == [("approve", None)]


@pytest.mark.parametrize(
    ("mode", "more"),
    [(ReviewMode.OFF, {}), (ReviewMode.REQUIRED, {"plan": True}), (ReviewMode.PUBLISH_ALL, {"plan": True})],
)
def test_review_off_or_a_dry_run_asks_about_nothing(s3: Any, mode: ReviewMode, more: dict[str, Any]) -> None:
    mug = paid(s3, "mug")
    rows = [uploaded_row(mug)]
    reviews = plan(manifest(*rows, **more), load_index(s3, LOCATION), mode=mode)
    assert (reviews.items, reviews.marked, reviews.rows) == ([], [], rows)


FORMAT = {"name": "9:16", "options": {"size": "1080x1920"}, "fit": "pad", "text": "9:16 vertical (1080x1920)"}


def test_a_video_of_an_ad_format_is_regenerated_in_that_format(s3: Any) -> None:
    """The review item carries the format's request options (a regeneration is made at the same size)
    and its video's metadata the format, as ingestion's item had them (the prompt writer reads the text)."""
    mug = paid(s3, "mug")
    vertical = dataclasses.replace(mug, inputs={**mug.inputs, "format": FORMAT})
    write_entry(s3, LOCATION, vertical)
    (item,) = plan(manifest(uploaded_row(vertical)), load_index(s3, LOCATION)).items
    assert item["options"] == {"size": "1080x1920"}
    assert {k: item["video"]["metadata"][k] for k in ("format", "format_text", "index_inputs")} == {
        "format": "9:16",
        "format_text": "9:16 vertical (1080x1920)",
        "index_inputs": {**mug.inputs, "format": FORMAT},
    }
    item["options"]["size"] = "720x1280"
    assert vertical.inputs["format"]["options"] == {"size": "1080x1920"}, "a copy: the entry is not changed"
    (plain,) = plan(manifest(uploaded_row(paid(s3, "cup"))), load_index(s3, LOCATION)).items
    assert plain["options"] == {} and not {"format", "format_text"} & set(plain["video"]["metadata"])


def test_at_most_max_reviews_are_asked_about_the_rest_next_run(s3: Any) -> None:
    entries = [paid(s3, name) for name in ("a1", "a2", "a3", "a4")]
    reviews = plan(manifest(*map(uploaded_row, entries)), load_index(s3, LOCATION), cap=2)
    assert [item["video"]["id"] for item in reviews.items] == ["job-a1", "job-a2"]
    assert [entry.product_id for entry in reviews.marked] == ["a1", "a2"]
    assert reviews.skipped == {"reviewed": 0, "not_indexed": 0, "over_cap": 2}
    assert [row.get("review", {}).get("state") for row in reviews.rows] == ["awaiting", "awaiting", None, None]


# ---------------------------------------------------------------- outcomes, rows, entries


def decision(product: str, round_number: int, state: str, job: str, note: str | None = None) -> dict[str, Any]:
    """A review task's return value."""
    return {
        "product_id": product,
        "variant": "default",
        "round": round_number,
        "job_id": job,
        "video": f"s3://{BUCKET}/videos/{product}/{job}.mp4",
        "answer": "Approve" if state == "approved" else "Reject",
        "state": state,
        "note": note,
        "by": "ana",
        "at": "2026-03-02T10:00:00+00:00",
    }


def regenerated_upload(item: dict[str, Any], job: str) -> dict[str, Any]:
    """The upload of a regeneration: the first video's metadata, a new job and its own key."""
    return {
        **item["video"],
        "id": job,
        "prompt": "A vase turns slowly. Revision requested by the reviewer: brighter",
        "s3_uri": f"s3://{BUCKET}/videos/vase/default/x-{job}.mp4",
        "cover_s3_uri": f"s3://{BUCKET}/videos/vase/default/x-{job}.png",
        "sha256": f"sha-of-{job}",
        "size": 77,
    }


def published(product: str, job: str) -> dict[str, Any]:
    return {
        "product_id": product,
        "variant": "default",
        "job_id": job,
        "round": 1,
        "approved_by": "ana",
        "video": f"s3://pub/published/{product}/default.mp4",
        "cover": f"s3://pub/published/{product}/default.png",
        "sha256": f"sha-of-{job}",
        "cover_sha256": "c" * 64,
    }


@pytest.fixture
def reviewed(s3: Any) -> dict[str, Any]:
    """Three products asked about: mug approved in round 1; vase rejected in round 1 and its regeneration
    approved in round 2; jug never answered (its review tasks failed)."""
    mug, vase, jug = paid(s3, "mug"), paid(s3, "vase"), paid(s3, "jug")
    rows = [
        uploaded_row(mug),
        vase.reused_row("Vase", None),
        {"product_id": "pan", "status": "failed"},
        uploaded_row(jug),
    ]
    reviews = plan(manifest(*rows), load_index(s3, LOCATION))
    items = reviews.items
    upload = regenerated_upload(items[1], "job-vase-2")
    decisions = [  # in any order, with the None of review tasks that were skipped
        decision("vase", 2, "approved", "job-vase-2"),
        None,
        decision("mug", 1, "approved", "job-mug"),
        decision("vase", 1, "regenerating", "job-vase", "brighter"),
        None,
    ]
    found = outcomes(
        items,
        decisions=decisions,
        uploads=[None, upload],
        publishes=[published("vase", "job-vase-2"), None, published("mug", "job-mug")],
    )
    return {"entries": (mug, vase, jug), "plan": reviews, "upload": upload, "found": found}


def test_each_product_has_its_outcome(reviewed: dict[str, Any]) -> None:
    mug, vase, jug = reviewed["found"]
    items = reviewed["plan"].items
    assert (mug.product_id, mug.state, mug.video, mug.earlier) == ("mug", "approved", items[0]["video"], [])
    assert [d["round"] for d in mug.decisions] == [1]
    assert mug.published == published("mug", "job-mug")

    assert (vase.product_id, vase.state) == ("vase", "approved")
    assert vase.video == reviewed["upload"], "the last round's video is the regenerated one"
    assert [(d["round"], d["state"]) for d in vase.decisions] == [(1, "regenerating"), (2, "approved")]
    assert vase.earlier == [
        {
            "round": 1,
            "video": items[1]["video"]["s3_uri"],
            "cover": items[1]["video"]["cover_s3_uri"],
            "job_id": "job-vase",
            "prompt": "A vase turns slowly.",
        }
    ]

    assert (jug.product_id, jug.state, jug.decisions, jug.video, jug.published) == (
        "jug",
        "held",
        [],
        items[2]["video"],
        None,
    )


def test_the_rows_name_the_last_rounds_video_and_list_earlier_ones(reviewed: dict[str, Any]) -> None:
    rows = recorded_rows(reviewed["plan"].rows, reviewed["found"])
    upload = reviewed["upload"]
    mug_row, vase_row, pan_row, jug_row = rows
    assert {k: vase_row[k] for k in ("video", "cover", "sha256", "size", "job_id", "prompt")} == {
        "video": upload["s3_uri"],
        "cover": upload["cover_s3_uri"],
        "sha256": "sha-of-job-vase-2",
        "size": 77,
        "job_id": "job-vase-2",
        "prompt": "A vase turns slowly. Revision requested by the reviewer: brighter",
    }
    assert vase_row["status"] == "reused" and vase_row["paid_by_run"] == "scheduled__2026-03-01"
    assert vase_row["review"] == {
        "state": "approved",
        "round": 2,
        "link": None,
        "decisions": [
            decision("vase", 1, "regenerating", "job-vase", "brighter"),
            decision("vase", 2, "approved", "job-vase-2"),
        ],
        "published": {
            "video": "s3://pub/published/vase/default.mp4",
            "cover": "s3://pub/published/vase/default.png",
            "sha256": "sha-of-job-vase-2",
        },
        "videos": reviewed["found"][1].earlier,
    }
    assert vase_row["review"]["videos"][0]["job_id"] == "job-vase"
    assert (mug_row["job_id"], mug_row["review"]["state"], mug_row["review"]["round"]) == ("job-mug", "approved", 1)
    assert mug_row["review"]["videos"] == []
    assert (jug_row["review"]["state"], jug_row["review"]["round"], jug_row["review"]["published"]) == ("held", 0, None)
    assert pan_row == {"product_id": "pan", "status": "failed"}


def test_a_row_of_another_status_is_not_rewritten_by_an_outcome_of_its_product(reviewed: dict[str, Any]) -> None:
    rows = [{"product_id": "mug", "variant": "default", "status": "failed", "video": None}]
    assert recorded_rows(rows, reviewed["found"]) == rows


def test_an_entry_is_recorded_only_while_it_names_the_last_rounds_video(reviewed: dict[str, Any]) -> None:
    mug, vase, _ = reviewed["entries"]
    mug_outcome, vase_outcome, _ = reviewed["found"]
    assert reviewed_entry(vase, vase_outcome, run_id=RUN) is None, "the index entry still names round 1's job"
    regenerated = dataclasses.replace(vase, job_id="job-vase-2")  # as the regeneration's upload wrote it
    recorded = reviewed_entry(regenerated, vase_outcome, run_id=RUN)
    assert recorded is not None and recorded.review["state"] == "approved" and recorded.review["job_id"] == "job-vase-2"
    assert [d["round"] for d in recorded.review["decisions"]] == [1, 2]
    recorded_mug = reviewed_entry(mug, mug_outcome, run_id=RUN)
    assert recorded_mug == dataclasses.replace(
        mug,
        review={
            "state": "approved",
            "job_id": "job-mug",
            "run_id": RUN,
            "decisions": [{**decision("mug", 1, "approved", "job-mug"), "run_id": RUN}],
            "published": {
                "video": "s3://pub/published/mug/default.mp4",
                "cover": "s3://pub/published/mug/default.png",
                "sha256": "sha-of-job-mug",
            },
        },
    )


def test_an_entry_keeps_other_runs_decisions_and_replaces_this_runs(reviewed: dict[str, Any]) -> None:
    """A retried record task must not list this run's decisions twice; earlier runs' stay, first."""
    mug = reviewed["entries"][0]
    before = [
        {"round": 1, "state": "held", "answer": "timeout", "run_id": "review__2026-02-01"},
        {"round": 1, "state": "approved", "answer": "Approve", "run_id": RUN},  # a first try of this record
        "junk",
    ]
    entry = dataclasses.replace(mug, review={**awaiting(mug), "decisions": before})
    recorded = reviewed_entry(entry, reviewed["found"][0], run_id=RUN)
    assert recorded is not None
    assert recorded.review["decisions"] == [
        before[0],
        {**decision("mug", 1, "approved", "job-mug"), "run_id": RUN},
    ]
    assert "until" not in recorded.review, "no longer awaiting"
    assert iso_utc(UNTIL) == "2026-03-11T09:00:00.000000+00:00"


def test_a_retried_plan_asks_again_about_what_its_first_try_marked(s3: Any) -> None:
    """The plan writes its markers before the manifest: a try that failed in between must not leave its
    retry (same run) seeing its own markers as another run's, and asking about nothing for days."""
    mug, vase = paid(s3, "mug"), paid(s3, "vase")
    document = manifest(uploaded_row(mug), vase.reused_row("Vase", None))
    first = plan(document, load_index(s3, LOCATION))
    for entry in first.marked:
        write_entry(s3, LOCATION, entry)
    retry = plan(document, load_index(s3, LOCATION))
    assert retry.items == first.items
    assert retry.marked == first.marked
    assert retry.rows == first.rows


def test_a_video_regenerated_mid_review_is_not_asked_about_by_another_run(s3: Any) -> None:
    """Run A asks about the vase, rejects it, and its regeneration is uploaded (same fingerprint, a new
    job, the awaiting marker copied from the item's metadata). The pipeline reuses that video the next
    day: run B must leave it to run A's second round until A's deadline."""
    vase = paid(s3, "vase")
    run_a = plan(manifest(vase.reused_row("Vase", None)), load_index(s3, LOCATION))
    for entry in run_a.marked:
        write_entry(s3, LOCATION, entry)
    result = {**run_a.items[0]["video"], "id": "job-vase-2"}
    key = LOCATION.video_key("vase", "default", fp("vase"), "job-vase-2")
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=b"round 2")["ETag"].strip('"')
    regenerated = entry_from_upload(
        location=LOCATION, result=result, video=StoredObject(key, 7, etag, "sha-2"), cover=None, run_id=RUN, paid_at=NOW
    )
    write_entry(s3, LOCATION, regenerated)
    index = load_index(s3, LOCATION)
    assert index.find("vase", "default", fp("vase")).job_id == "job-vase-2"

    next_day = manifest(regenerated.reused_row("Vase", None))
    run_b = plan_reviews(
        next_day,
        index,
        mode=ReviewMode.REQUIRED,
        run_id="review__b",
        now=NOW + timedelta(days=1),
        until=UNTIL + timedelta(days=1),
        max_reviews=100,
        link_of=link_of,
    )
    assert (run_b.items, run_b.marked) == ([], [])
    later = plan_reviews(
        next_day,
        index,
        mode=ReviewMode.REQUIRED,
        run_id="review__c",
        now=UNTIL + timedelta(days=1),
        until=UNTIL + timedelta(days=10),
        max_reviews=100,
        link_of=link_of,
    )
    assert [item["video"]["id"] for item in later.items] == ["job-vase-2"], "asked again once A's deadline passed"
