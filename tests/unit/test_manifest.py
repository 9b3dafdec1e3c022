"""The run record (manifest.py): every status, the counts, records matched by (product, variant) without
map indexes, prices, the log line and the budget's refusal, against values written out here."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cogvideo.gallery_cards import STATUS_LABELS
from airflow_provider_cogvideo.manifest import (
    NO_RECORD,
    RowStatus,
    budget_refusal,
    build_manifest,
    count_rows,
    subject,
    summary_line,
)

RUN = "scheduled__2026-12-01T00:00:00+00:00"
GALLERY = "s3://out/gallery/2026-12-01/run.html"


def item(pid: str, variant: str = "default", **metadata: Any) -> dict[str, Any]:
    """A paid item as ingestion hands it on."""
    return {
        "image": f"s3://products/incoming/{pid}.png",
        "prompt": f"{pid} turning",
        "metadata": {"product_id": pid, "variant": variant, "title": pid.title(), "fingerprint": f"fp-{pid}-{variant}"}
        | metadata,
    }


def upload(pid: str, variant: str = "default", price: float = 1.0, **more: Any) -> dict[str, Any]:
    """An upload result: the generate result's fields plus what the transfer stored."""
    return {
        "id": f"job-{pid}",
        "model": "cogvideox-3",
        "task_status": "SUCCESS",
        "metadata": {"product_id": pid, "variant": variant},
        "price": price,
        "price_currency": "CNY",
        "prompt": f"{pid} turning",
        "request": {"model": "cogvideox-3", "quality": "speed"},
        "s3_uri": f"s3://out/videos/{pid}/{variant}/abc-job-{pid}.mp4",
        "cover_s3_uri": f"s3://out/videos/{pid}/{variant}/abc-job-{pid}.png",
        "sha256": "ab" * 32,
        "size": 4096,
        **more,
    }


def error(pid: str, message: str, variant: str = "default", **more: Any) -> dict[str, Any]:
    """An error record as failures.failure_record writes it (naming its product)."""
    return {"error": message, "type": "AirflowException", "product_id": pid, "variant": variant, **more}


REUSED = {
    "product_id": "vase",
    "variant": "default",
    "status": "reused",
    "title": "Vase",
    "image": "s3://products/incoming/vase.png",
    "video": "s3://out/videos/vase/default/0123-81.mp4",
    "price": 0.0,
    "paid_price": 1.0,
    "currency": "CNY",
    "paid_by_run": "scheduled__2026-11-30T00:00:00+00:00",
    "paid_at": "2026-11-30T00:05:12.000000+00:00",
}
HELD = {"product_id": "bowl", "variant": "default", "status": "held", "request_id": "req-bowl", "check": "look"}
REJECTED = {
    "product_id": "pot",
    "variant": "default",
    "status": "rejected_by_review",
    "video": "s3://out/videos/pot/default/0123-82.mp4",
    "price": 0.0,
    "reason": "rejected by review in run review__1",
    "review": {"state": "rejected_by_review", "job_id": "82", "decisions": [{"note": "too dark"}]},
}
WAITING = {"product_id": "jar", "variant": "default", "status": "waiting", "reason": "over this run's cap of 2"}
REFUSED_IMAGE = {
    "product_id": "Widget-9",
    "image": "s3://products/incoming/widget-9-front.jpg",
    "reason": "not an image",
}


def build(**kwargs: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"run_id": RUN, "gallery": GALLERY, "plan": False, "elapsed_seconds": 61.0}
    return build_manifest(**{**defaults, **kwargs})


def rows_by_id(document: dict[str, Any]) -> dict[tuple[Any, Any], dict[str, Any]]:
    return {(row["product_id"], row.get("variant")): row for row in document["products"]}


def test_the_statuses_are_the_ten_of_the_contract_and_the_gallery_labels_each() -> None:
    assert [s.value for s in RowStatus] == [
        "uploaded", "reused", "waiting", "held", "rejected_by_review", "failed", "ambiguous", "not_submitted",
        "refused", "planned",
    ]  # fmt: skip
    assert set(STATUS_LABELS) == set(RowStatus)
    assert RowStatus.REFUSED == "refused" and {"refused": 1}[RowStatus.REFUSED] == 1  # plain text finds it


def test_a_run_with_every_status_of_a_real_run() -> None:
    items = [item("mug"), item("lamp"), item("cup"), item("gone"), item("mug", "square")]
    document = build(
        items=items,
        # The mapped tasks' values come back in any order and without map indexes.
        uploads=[upload("mug", "square", price=1.5), upload("mug")],
        errors=[
            error("lamp", "upload failed: 503"),  # the upload's record comes first: it is the one shown
            error("cup", "submit answer lost", status="ambiguous", request_id="req-cup"),
            error("lamp", "generate said something earlier"),
        ],
        catalog=[REUSED, HELD, REJECTED, WAITING],
        refused=[REFUSED_IMAGE],
        estimate={"price": 5.0, "currency": "CNY", "budget": 10.0, "refused": False, "paid": 5},
        spend=[{"paid": 1.0}, {"paid": 1.5, "reserved": 0.0}, {"paid": 1.0}, "not a record"],
        reads={"list": 2, "get_index": 1, "images": 5},
    )
    rows = rows_by_id(document)
    assert [(r["product_id"], r["status"]) for r in document["products"]] == [
        ("mug", "uploaded"),
        ("lamp", "failed"),
        ("cup", "ambiguous"),
        ("gone", "failed"),
        ("mug", "uploaded"),
        ("vase", "reused"),
        ("bowl", "held"),
        ("pot", "rejected_by_review"),
        ("jar", "waiting"),
        ("Widget-9", "refused"),
    ]
    assert rows["mug", "default"] == {
        "product_id": "mug",
        "variant": "default",
        "title": "Mug",
        "image": "s3://products/incoming/mug.png",
        "fingerprint": "fp-mug-default",
        "status": "uploaded",
        "video": "s3://out/videos/mug/default/abc-job-mug.mp4",
        "cover": "s3://out/videos/mug/default/abc-job-mug.png",
        "sha256": "ab" * 32,
        "size": 4096,
        "job_id": "job-mug",
        "model": "cogvideox-3",
        "prompt": "mug turning",
        "request": {"model": "cogvideox-3", "quality": "speed"},
        "price": 1.0,
        "sent_image": "s3://products/incoming/mug.png",
    }
    assert (rows["mug", "square"]["video"], rows["mug", "square"]["price"]) == (
        "s3://out/videos/mug/square/abc-job-mug.mp4",
        1.5,
    )
    assert rows["lamp", "default"]["error"]["error"] == "upload failed: 503"
    cup = rows["cup", "default"]
    assert (cup["request_id"], cup["error"]["error"]) == ("req-cup", "submit answer lost")
    assert cup["check"].startswith("Look up request_id req-cup in the BigModel console")
    assert "Later runs hold this product" in cup["check"] and "release_held" in cup["check"]
    assert rows["gone", "default"]["error"] == NO_RECORD and "no error record was left" in NO_RECORD
    assert rows["vase", "default"] == REUSED and rows["vase", "default"] is not REUSED  # as given, copied
    assert rows["bowl", "default"] == HELD and rows["jar", "default"] == WAITING
    assert rows["pot", "default"] == REJECTED, "as ingestion gave it, review and all"
    assert rows["Widget-9", None] == {
        "product_id": "Widget-9",  # ingestion's id, not the URI's stem ("widget-9-front")
        "status": "refused",
        "image": "s3://products/incoming/widget-9-front.jpg",
        "error": "not an image",
    }
    assert document["counts"] == {
        "uploaded": 2,
        "reused": 1,
        "waiting": 1,
        "held": 1,
        "rejected_by_review": 1,
        "failed": 2,
        "ambiguous": 1,
        "not_submitted": 0,
        "refused": 1,
        "planned": 0,
    }
    top = {k: document[k] for k in document["counts"]}
    assert top == document["counts"]  # the per-status totals earlier readers use
    assert "rejected" not in document
    assert (document["total_price"], document["actual_price"], document["currency"]) == (2.5, 3.5, "CNY")
    assert (document["estimated_price"], document["budget"]) == (5.0, 10.0)
    assert (document["dag_run"], document["gallery"], document["plan"], document["elapsed_seconds"]) == (
        RUN,
        GALLERY,
        False,
        61.0,
    )
    assert document["reads"] == {"list": 2, "get_index": 1, "images": 5}


def test_a_dry_run_is_a_plan() -> None:
    planned = {
        "id": None,
        "task_status": "DRY_RUN",
        "model": "vidu2-image",
        "metadata": {"product_id": "mug", "variant": "default"},
        "price": 0.5,
        "price_currency": "CNY",
        "prompt": "mug turning",
        "request": {"model": "vidu2-image", "duration": 4},
    }
    document = build(plan=True, items=[item("mug")], planned=[planned], catalog=[REUSED])
    row = document["products"][0]
    assert {k: row[k] for k in ("status", "model", "prompt", "price", "request")} == {
        "status": "planned",
        "model": "vidu2-image",
        "prompt": "mug turning",
        "price": 0.5,
        "request": {"model": "vidu2-image", "duration": 4},
    }
    assert "video" not in row
    # The reused video costs nothing this run, whatever it cost when it was paid.
    assert (document["plan"], document["total_price"], document["planned"], document["reused"]) == (True, 0.5, 1, 1)
    assert summary_line(document) == (
        "Dry run: this run would cost 0.50 CNY (list price) for 1 videos; 1 reused, 0 waiting for a later run, "
        "0 held; nothing was sent"
    )


def test_a_run_refused_by_its_budget_submits_nothing_and_says_so() -> None:
    estimate = {"price": 4.0, "currency": "CNY", "budget": 3.0, "refused": True, "paid": 4}
    document = build(items=[item("a"), item("b")], estimate=estimate, catalog=[REUSED])
    assert [row["status"] for row in document["products"]] == ["not_submitted", "not_submitted", "reused"]
    assert document["products"][0]["error"] == "the run's estimate 4 is over max_total_price=3: nothing was submitted"
    assert (document["not_submitted"], document["currency"], document["total_price"]) == (2, "CNY", 0.0)
    assert budget_refusal(document, estimate) == (
        "Run refused by its budget: estimate 4 CNY for 2 paid item(s) is over max_total_price=3: nothing was submitted"
    )
    assert budget_refusal(document, {**estimate, "refused": False}) is None
    assert budget_refusal(document, None) is None
    unpriced = build(items=[item("a")], estimate={"price": None, "budget": 3.0, "refused": True})
    assert unpriced["products"][0]["error"].startswith("the run's estimate ? is over max_total_price=3")


def test_records_are_matched_by_product_and_variant_only() -> None:
    """No map index anywhere: a record of a product the run did not map, or one naming no product, is
    ignored, never attributed to the item at its position."""
    document = build(
        items=[item("a"), item("b", "square")],
        uploads=[upload("z"), {"s3_uri": "s3://out/x.mp4", "metadata": {}}, upload("b")],  # b default, not square
        errors=[{"error": "no product named"}, error("b", "boom", variant="square")],
    )
    a, b = document["products"]
    assert (a["status"], a["error"]) == ("failed", NO_RECORD)
    assert (b["status"], b["error"]["error"]) == ("failed", "boom")
    assert subject({"product_id": 7, "metadata": {"product_id": "x"}}) == ("7", None)  # the record's own first
    assert subject({"metadata": {"product_id": "x", "variant": "v"}}) == ("x", "v")
    assert subject({"error": "boom"}) is None


def test_a_reencoded_item_names_the_image_it_arrived_as() -> None:
    reencoded = item("echo", source_image="s3://products/incoming/echo.webp")
    reencoded["image"] = "s3://products/staging/2026-12-01/echo.jpg"
    row = build(items=[reencoded], uploads=[upload("echo")])["products"][0]
    assert row["image"] == "s3://products/incoming/echo.webp"


def test_a_refused_image_without_an_id_is_not_given_one() -> None:
    document = build(items=[], refused=[{"image": "s3://products/incoming/x.jpg", "reason": "duplicate"}])
    assert document["products"] == [
        {"product_id": None, "status": "refused", "image": "s3://products/incoming/x.jpg", "error": "duplicate"}
    ]


def test_half_written_values_are_skipped_and_nothing_is_an_empty_record() -> None:
    document = build(items=["x", item("a")], uploads=[None, 3], catalog=["y"], refused=[None], spend=[None])
    assert [row["product_id"] for row in document["products"]] == ["a"]
    empty = build(items=[])
    assert empty["products"] == [] and sum(empty["counts"].values()) == 0
    assert (empty["total_price"], empty["actual_price"], empty["currency"], empty["reads"]) == (0.0, 0.0, None, {})


def test_count_rows_keeps_an_unknown_status_visible() -> None:
    counts = count_rows([{"status": "uploaded"}, {"status": "archived"}, {}])
    assert (counts["uploaded"], counts["archived"], counts["None"], counts["failed"]) == (1, 1, 1, 0)
    assert list(counts)[:10] == [s.value for s in RowStatus]


@pytest.mark.parametrize("counts", [True, False], ids=["counts", "rows counted"])
def test_summary_line_of_a_run(counts: bool) -> None:
    document = build(
        items=[item("mug"), item("cup"), item("lamp")],
        uploads=[upload("mug")],
        errors=[error("cup", "lost", status="ambiguous", request_id="r"), error("lamp", "x")],
        catalog=[REUSED, HELD, WAITING, {**WAITING, "product_id": "jug"}],
        refused=[REFUSED_IMAGE],
        spend=[{"paid": 1.0}, {"paid": 1.0}],
    )
    if not counts:
        del document["counts"]  # a manifest written before counts existed
    assert summary_line(document) == (
        "Total cost of this run: 1.00 CNY (list price) for 1 videos (submits sent: 2.00); 1 reused, 2 waiting "
        "for a later run, 1 held; 1 failed, 1 ambiguous, 0 not submitted, 1 image(s) refused"
    )


def test_summary_line_names_products_rejected_by_review_when_there_are_any() -> None:
    document = build(items=[], catalog=[REUSED, REJECTED, {**REJECTED, "product_id": "pan"}])
    assert summary_line(document) == (
        "Total cost of this run: 0.00  (list price) for 0 videos (submits sent: 0.00); 1 reused, 0 waiting for a "
        "later run, 0 held, 2 rejected by review; 0 failed, 0 ambiguous, 0 not submitted, 0 image(s) refused"
    )
    dry_run = build(plan=True, items=[], catalog=[REJECTED])
    assert "0 held, 1 rejected by review; nothing was sent" in summary_line(dry_run)


# ------------------------------------------------------------------ ad formats and written prompts

CACHE = "s3://out/videos/.prompts/"


def writing(source: str = "writer", *, cached: bool = False, **more: Any) -> dict[str, Any]:
    """A request summary's ``prompt_writing``, as the generate step records it."""
    return {
        "prompt": "A glossy mug turns on marble, vertical",
        "source": source,
        "model": "glm-4-plus",
        "key": "k" * 32,
        "calls": 1,
        "tokens": 800,
        "price": 0.004,
        "currency": "CNY",
        "reason": None,
        "cached": cached,
        "template_prompt": "mug turning",
        "cache": f"{CACHE}{'k' * 32}.json",
        **more,
    }


def formatted(pid: str, name: str, variant: str, size: str) -> dict[str, Any]:
    """An item of one ad format, with a prompt writer, as ingestion hands it on."""
    extra = {"format": name, "format_text": f"{name} ({size})", "prompt_writer": "k" * 32}
    return {**item(pid, variant, **extra), "options": {"size": size}}


def written_upload(pid: str, variant: str, prompt_writing: dict[str, Any], prompt: str) -> dict[str, Any]:
    request = {"model": "cogvideox-3", "prompt": prompt, "size": "1080x1920", "prompt_writing": prompt_writing}
    return upload(pid, variant, prompt=prompt, request=request)


def test_rows_of_formats_and_written_prompts() -> None:
    items = [
        formatted("mug", "9:16", "9x16", "1080x1920"),
        formatted("mug", "16:9", "16x9", "1920x1080"),
        formatted("cup", "tiktok", "tiktok", "1080x1920"),
        formatted("lamp", "9:16", "9x16", "1080x1920"),
    ]
    fallback = writing("fallback", prompt=None, reason="the writer's answer was empty", calls=2, tokens=90, price=0.001)
    document = build(
        items=items,
        uploads=[
            written_upload("mug", "9x16", writing(), "A glossy mug turns on marble, vertical"),
            written_upload("mug", "16x9", writing(cached=True, price=0.005), "A glossy mug, landscape"),
            written_upload("cup", "tiktok", fallback, "cup turning"),
        ],
        errors=[error("lamp", "generate failed", variant="9x16")],
        estimate={
            "price": 4.1,
            "currency": "CNY",
            "budget": None,
            "refused": False,
            "paid": 4,
            "writing": {"model": "glm-4-plus", "calls_at_most": 4, "ceiling": 0.1, "currency": "CNY"},
        },
    )
    rows = rows_by_id(document)
    assert rows["mug", "9x16"] == {
        "product_id": "mug",
        "variant": "9x16",
        "title": "Mug",
        "image": "s3://products/incoming/mug.png",
        "fingerprint": "fp-mug-9x16",
        "format": "9:16",
        "options": {"size": "1080x1920"},
        "status": "uploaded",
        "video": "s3://out/videos/mug/9x16/abc-job-mug.mp4",
        "cover": "s3://out/videos/mug/9x16/abc-job-mug.png",
        "sha256": "ab" * 32,
        "size": 4096,
        "job_id": "job-mug",
        "model": "cogvideox-3",
        "prompt": "A glossy mug turns on marble, vertical",
        "template_prompt": "mug turning",
        # Cut to what a reader needs: no cache key, no second copy of the prompts.
        "prompt_writing": {
            "source": "writer",
            "model": "glm-4-plus",
            "cached": False,
            "calls": 1,
            "tokens": 800,
            "price": 0.004,
            "currency": "CNY",
            "reason": None,
            "cache": f"{CACHE}{'k' * 32}.json",
        },
        # Lifted out of the request: one place says how the prompt was written.
        "request": {"model": "cogvideox-3", "prompt": "A glossy mug turns on marble, vertical", "size": "1080x1920"},
        "price": 1.0,
        "sent_image": "s3://products/incoming/mug.png",
    }
    landscape = rows["mug", "16x9"]
    assert (landscape["format"], landscape["options"], landscape["prompt_writing"]["cached"]) == (
        "16:9",
        {"size": "1920x1080"},
        True,
    )
    cup = rows["cup", "tiktok"]
    assert (cup["format"], cup["prompt"], cup["template_prompt"]) == ("tiktok", "cup turning", "cup turning")
    assert (cup["prompt_writing"]["source"], cup["prompt_writing"]["reason"]) == (
        "fallback",
        "the writer's answer was empty",
    )
    lamp = rows["lamp", "9x16"]
    assert (lamp["status"], lamp["format"], lamp["options"]) == ("failed", "9:16", {"size": "1080x1920"})
    assert "prompt_writing" not in lamp and "template_prompt" not in lamp
    # The plan's writing ceiling as the estimate recorded it; what the writings did, summed: a cached one
    # was paid by an earlier run (not counted again), the fallback's calls were paid all the same.
    assert document["estimated_writing"] == {
        "model": "glm-4-plus",
        "calls_at_most": 4,
        "ceiling": 0.1,
        "currency": "CNY",
    }
    assert document["writing"] == {"calls": 3, "tokens": 890, "price": 0.005, "cached": 1}
    assert (document["total_price"], document["estimated_price"]) == (3.0, 4.1)  # videos only; estimate: all
    assert summary_line(document).endswith(
        "1 failed, 0 ambiguous, 0 not submitted, 0 image(s) refused; prompt writing: 3 call(s), 0.005 CNY, "
        "1 from the cache"
    )


def test_a_dry_runs_rows_say_the_prompt_would_be_written() -> None:
    planned_writing = {
        "source": "dry_run",
        "model": "glm-4-plus",
        "key": "k" * 32,
        "ceiling": 0.025,
        "currency": "CNY",
        "template_prompt": "mug turning",
    }
    request = {"model": "cogvideox-3", "prompt": "mug turning", "size": "1080x1920", "prompt_writing": planned_writing}
    planned = [
        {**upload("mug", "9x16", prompt="mug turning", request=request), "task_status": "DRY_RUN", "id": None},
        {
            **written_upload("mug", "16x9", writing(cached=True), "A glossy mug, landscape"),
            "task_status": "DRY_RUN",
            "id": None,
        },
    ]
    estimate = {"price": 2.05, "currency": "CNY", "budget": None, "refused": False, "paid": 2}
    estimate["writing"] = {"model": "glm-4-plus", "calls_at_most": 2, "ceiling": 0.05, "currency": "CNY"}
    items = [formatted("mug", "9:16", "9x16", "1080x1920"), formatted("mug", "16:9", "16x9", "1920x1080")]
    document = build(plan=True, items=items, planned=planned, estimate=estimate)
    vertical, landscape = document["products"]
    assert {k: vertical[k] for k in ("status", "format", "options", "prompt", "template_prompt", "prompt_writing")} == {
        "status": "planned",
        "format": "9:16",
        "options": {"size": "1080x1920"},
        "prompt": "mug turning",
        "template_prompt": "mug turning",
        "prompt_writing": {"source": "dry_run", "model": "glm-4-plus", "currency": "CNY", "ceiling": 0.025},
    }
    assert vertical["request"] == {"model": "cogvideox-3", "prompt": "mug turning", "size": "1080x1920"}
    assert (landscape["prompt"], landscape["prompt_writing"]["source"], landscape["prompt_writing"]["cached"]) == (
        "A glossy mug, landscape",
        "writer",
        True,
    )
    assert document["writing"] == {"calls": 0, "tokens": 0, "price": 0.0, "cached": 1}  # nothing written
    assert summary_line(document) == (
        "Dry run: this run would cost 2.00 CNY (list price) for 2 videos; 0 reused, 0 waiting for a later run, "
        "0 held; prompt writing by glm-4-plus: at most 0.05 CNY for at most 2 call(s), 1 from the cache; "
        "nothing was sent"
    )


def test_rows_not_submitted_keep_their_format_and_a_run_without_a_writer_has_no_writing() -> None:
    estimate = {"price": 9.0, "currency": "CNY", "budget": 1.0, "refused": True, "paid": 1}
    document = build(items=[formatted("mug", "amazon", "amazon", "1920x1080")], estimate=estimate)
    (row,) = document["products"]
    assert (row["status"], row["format"], row["options"]) == ("not_submitted", "amazon", {"size": "1920x1080"})
    assert (document["estimated_writing"], document["writing"]) == (None, None)
    plain = build(items=[item("mug")], uploads=[upload("mug")])
    assert "format" not in plain["products"][0] and "options" not in plain["products"][0]
    assert (plain["estimated_writing"], plain["writing"]) == (None, None)
    assert "prompt writing" not in summary_line(plain)
