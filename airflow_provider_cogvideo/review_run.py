"""A review run's bookkeeping, pure: which videos of a pipeline run it asks about, and what its answers
do to the run's manifest rows and to the videos' index entries. The operators that read and write S3
are :mod:`~airflow_provider_cogvideo.operators.review_plan` (before the reviews) and
:mod:`~airflow_provider_cogvideo.operators.review_record` (after them); the rules are
:mod:`~airflow_provider_cogvideo.review`'s.

**Which videos.** Every row of the pipeline run's manifest that names a video (``uploaded`` this run,
or ``reused``) whose index entry is still the video the row names, trusted, and needs a review
(:func:`~airflow_provider_cogvideo.review.needs_review`: unreviewed, held, or awaiting in a run whose
deadline passed). An approved video is reused without a review; a rejected one is never a row here
(ingestion does not reuse it). At most ``max_reviews`` per run: the rest are asked by the next run.

**The budget.** A regeneration is paid like any submit of the pipeline run, within that run's one
``max_total_price``: the review run may spend what the pipeline run's manifest says is left
(``budget - actual_price``); none when the run had no budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from airflow_provider_cogvideo.manifest import RowStatus
from airflow_provider_cogvideo.review import (
    ReviewMode,
    ReviewState,
    entry_review_state,
    final_state,
    needs_review,
)
from airflow_provider_cogvideo.s3 import s3_uri
from airflow_provider_cogvideo.video_index import (
    DEFAULT_VARIANT,
    INDEX_INPUTS,
    IndexEntry,
    VideoIndex,
    iso_utc,
)

REVIEWED_STATUSES = (RowStatus.UPLOADED.value, RowStatus.REUSED.value)
"""Manifest rows that name a video a reviewer can be asked about."""


def _subject(row: Mapping[str, Any]) -> tuple[str, str]:
    return str(row.get("product_id")), str(row.get("variant") or DEFAULT_VARIANT)


def video_of(entry: IndexEntry, *, title: Any, image: Any, review: Mapping[str, Any]) -> dict[str, Any]:
    """An indexed video in the shape of a transfer result (what the review, publish and regenerate
    tasks read), its ``metadata`` what the transfer needs to index a regeneration under the same
    input fingerprint, with the ``awaiting`` marker a regeneration's entry carries; for a video made
    for an ad format also the format's ``format`` (name) and ``format_text`` (what a prompt writer
    reads of it), as ingestion's items have them."""
    bucket = entry.bucket
    video = {
        "id": entry.job_id,
        "model": entry.model,
        "prompt": entry.prompt,
        "price": entry.price,
        "price_currency": entry.currency,
        "s3_uri": s3_uri(bucket, entry.video.key),
        "cover_s3_uri": s3_uri(bucket, entry.cover.key) if entry.cover else None,
        "sha256": entry.video.sha256,
        "size": entry.video.size,
        "metadata": {
            "product_id": entry.product_id,
            "variant": entry.variant,
            "fingerprint": entry.fingerprint,
            "title": title,
            "source_image": image,
            INDEX_INPUTS: entry.inputs,
            "review": dict(review),
        },
    }
    shape = _format(entry)
    for name, recorded in (("format", "name"), ("format_text", "text")):
        if shape.get(recorded) is not None:
            video["metadata"][name] = shape[recorded]
    return video


def _format(entry: IndexEntry) -> Mapping[str, Any]:
    """The ad format the entry's video was made for (``name``, ``options``, ``fit``, ``text``), or ``{}``."""
    shape = entry.inputs.get("format")
    return shape if isinstance(shape, Mapping) else {}


@dataclass(frozen=True)
class ReviewPlan:
    """What a review run asks about: the mapped ``items``, the entries marked ``awaiting`` (to write),
    and the rows of the manifest as they now read."""

    items: list[dict[str, Any]]
    marked: list[IndexEntry]
    rows: list[dict[str, Any]]
    skipped: dict[str, int]


def budget_left(document: Mapping[str, Any]) -> float | None:
    """What the pipeline run may still spend on regenerations (module docstring): its budget less what
    its generation paid and what earlier review runs of it paid; None: no limit."""
    budget = document.get("budget")
    if budget is None:
        return None
    review = document.get("review") if isinstance(document.get("review"), Mapping) else {}
    spent = float(document.get("actual_price") or 0.0) + float(review.get("paid") or 0.0)
    return max(0.0, round(float(budget) - spent, 6))


def plan_reviews(
    document: Mapping[str, Any],
    index: VideoIndex,
    *,
    mode: ReviewMode,
    run_id: str,
    now: datetime,
    until: datetime,
    max_reviews: int,
    link_of: Callable[[int], str | None],
) -> ReviewPlan:
    """The review run's items, one per video to review, in map-index order (``link_of(i)`` is the
    required action of item ``i``). Each item: ``video`` (:func:`video_of`), ``image``, ``prompt`` and
    ``options`` (what a regeneration sends: ``options`` are the request options of the video's ad format,
    ``{"size": "1080x1920"}``, so it is made at the same size; ``{}`` without a format), ``budget``
    (:func:`budget_left`) and ``auto`` (``"approve"`` when the mode publishes without asking, else None)."""
    rows = [dict(row) for row in document.get("products") or () if isinstance(row, Mapping)]
    skipped = {"reviewed": 0, "not_indexed": 0, "over_cap": 0}
    items: list[dict[str, Any]] = []
    marked: list[IndexEntry] = []
    if mode is ReviewMode.OFF or document.get("plan"):
        return ReviewPlan(items, marked, rows, skipped)
    left = budget_left(document)
    for row in rows:
        if row.get("status") not in REVIEWED_STATUSES or not isinstance(row.get("fingerprint"), str):
            continue
        product_id, variant = _subject(row)
        entry = index.find(product_id, variant, row["fingerprint"])
        if entry is None or not index.trusted(entry) or (row.get("job_id") and entry.job_id != row.get("job_id")):
            skipped["not_indexed"] += 1
            continue
        # Marked by this very run: a retry of the plan (its first try wrote the markers, then failed) asks again.
        ours = entry_review_state(entry) == ReviewState.AWAITING.value and (entry.review or {}).get("run_id") == run_id
        if not ours and not needs_review(entry, now):
            skipped["reviewed"] += 1
            row["review"] = _recorded(entry)
            continue
        if len(items) >= max_reviews:
            skipped["over_cap"] += 1
            continue
        earlier = entry.review if isinstance(entry.review, Mapping) else {}
        review = {
            "state": ReviewState.AWAITING.value,
            "job_id": entry.job_id,
            "run_id": run_id,
            "until": iso_utc(until),
            "decisions": list(earlier.get("decisions") or []),
            "published": None,
        }
        marked.append(replace(entry, review=review))
        link = link_of(len(items))
        row["review"] = {"state": ReviewState.AWAITING.value, "round": 1, "link": link, "decisions": []}
        items.append(
            {
                "video": video_of(entry, title=row.get("title"), image=row.get("image"), review=review),
                "image": row.get("sent_image") or row.get("image"),
                "prompt": entry.prompt,
                "options": dict(options) if isinstance(options := _format(entry).get("options"), Mapping) else {},
                "budget": left,
                "auto": "approve" if mode is ReviewMode.PUBLISH_ALL else None,
            }
        )
    return ReviewPlan(items, marked, rows, skipped)


def _recorded(entry: IndexEntry) -> dict[str, Any] | None:
    """A reviewed entry's review as a manifest row shows it."""
    review = entry.review if isinstance(entry.review, Mapping) else None
    if review is None or entry_review_state(entry) is None:
        return None
    return {
        "state": review.get("state"),
        "round": max(
            (int(d.get("round") or 0) for d in review.get("decisions") or () if isinstance(d, Mapping)), default=0
        ),
        "link": None,
        "decisions": list(review.get("decisions") or []),
        "published": review.get("published"),
    }


@dataclass(frozen=True)
class ReviewOutcome:
    """One reviewed product after its review run."""

    product_id: str
    variant: str
    state: str
    decisions: list[dict[str, Any]]
    video: Mapping[str, Any]
    """The last round's video (transfer-result shape)."""
    earlier: list[dict[str, Any]]
    """Earlier rounds' videos: ``round``, ``video``, ``cover``, ``job_id``, ``prompt``."""
    published: dict[str, Any] | None


def outcomes(
    items: Iterable[Mapping[str, Any]],
    *,
    decisions: Iterable[Any],
    uploads: Iterable[Any],
    publishes: Iterable[Any],
) -> list[ReviewOutcome]:
    """Each item's outcome, from every round's decisions, the regenerated videos' uploads and the
    publications (values of any task, any order: matched by product and variant, then job id)."""

    def by_subject(values: Iterable[Any], subject: Callable[[Mapping[str, Any]], tuple[str, str]]) -> dict:
        found: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        for value in values:
            if isinstance(value, Mapping):
                found.setdefault(subject(value), []).append(value)
        return found

    def of_metadata(value: Mapping[str, Any]) -> tuple[str, str]:
        return _subject(value.get("metadata") if isinstance(value.get("metadata"), Mapping) else {})

    decided, uploaded, published = (
        by_subject(decisions, _subject),
        by_subject(uploads, of_metadata),
        by_subject(publishes, _subject),
    )
    found: list[ReviewOutcome] = []
    for item in items:
        video = item.get("video") if isinstance(item.get("video"), Mapping) else None
        if video is None:
            continue
        subject = of_metadata(video)
        rounds = sorted(decided.get(subject, []), key=lambda d: int(d.get("round") or 0))
        videos = {str(video.get("id")): video, **{str(u.get("id")): u for u in uploaded.get(subject, [])}}
        last = videos.get(str(rounds[-1].get("job_id")), video) if rounds else video
        earlier = [
            {
                "round": d.get("round"),
                "video": videos.get(str(d.get("job_id")), {}).get("s3_uri"),
                "cover": videos.get(str(d.get("job_id")), {}).get("cover_s3_uri"),
                "job_id": d.get("job_id"),
                "prompt": videos.get(str(d.get("job_id")), {}).get("prompt"),
            }
            for d in rounds[:-1]
        ]
        publication = next(iter(published.get(subject, [])), None)
        found.append(
            ReviewOutcome(
                product_id=subject[0],
                variant=subject[1],
                state=final_state(rounds) or ReviewState.HELD.value,
                decisions=[dict(d) for d in rounds],
                video=last,
                earlier=earlier,
                published=dict(publication) if publication else None,
            )
        )
    return found


def recorded_rows(rows: Sequence[Mapping[str, Any]], found: Iterable[ReviewOutcome]) -> list[dict[str, Any]]:
    """The manifest's rows with each outcome: its review, and the last round's video as the row's own."""
    by_subject = {(o.product_id, o.variant): o for o in found}
    updated = []
    for row in rows:
        outcome = by_subject.get(_subject(row)) if row.get("status") in REVIEWED_STATUSES else None
        row = dict(row)
        if outcome is not None:
            video = outcome.video
            row.update(
                {
                    "video": video.get("s3_uri"),
                    "cover": video.get("cover_s3_uri"),
                    "sha256": video.get("sha256"),
                    "size": video.get("size"),
                    "job_id": video.get("id"),
                    "prompt": video.get("prompt"),
                }
            )
            row["review"] = {
                "state": outcome.state,
                "round": len(outcome.decisions),
                "link": None,
                "decisions": outcome.decisions,
                "published": _published_view(outcome.published),
                "videos": outcome.earlier,
            }
        updated.append(row)
    return updated


def _published_view(published: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not published:
        return None
    return {"video": published.get("video"), "cover": published.get("cover"), "sha256": published.get("sha256")}


def reviewed_entry(entry: IndexEntry, outcome: ReviewOutcome, *, run_id: str) -> IndexEntry | None:
    """The entry with its review recorded, when it still names the outcome's last video (a person or
    another run may have replaced it since); None otherwise."""
    if entry.job_id != outcome.video.get("id"):
        return None
    earlier = entry.review if isinstance(entry.review, Mapping) else {}
    history = [d for d in earlier.get("decisions") or () if isinstance(d, Mapping) and d.get("run_id") != run_id]
    review = {
        "state": outcome.state,
        "job_id": entry.job_id,
        "run_id": run_id,
        "decisions": [*history, *({**d, "run_id": run_id} for d in outcome.decisions)],
        "published": _published_view(outcome.published),
    }
    return replace(entry, review=review)


def regeneration_price(uploads: Iterable[Any]) -> float:
    """The list price of a review run's regenerated videos (each upload names its job's price)."""
    return round(sum(float(u.get("price") or 0.0) for u in uploads if isinstance(u, Mapping)), 6)


def review_counts(found: Iterable[ReviewOutcome]) -> dict[str, int]:
    counts = {state.value: 0 for state in ReviewState if state is not ReviewState.REGENERATING}
    for outcome in found:
        counts[outcome.state] = counts.get(outcome.state, 0) + 1
    return counts


__all__ = [
    "REVIEWED_STATUSES",
    "ReviewOutcome",
    "ReviewPlan",
    "budget_left",
    "outcomes",
    "plan_reviews",
    "recorded_rows",
    "regeneration_price",
    "review_counts",
    "reviewed_entry",
    "video_of",
]
