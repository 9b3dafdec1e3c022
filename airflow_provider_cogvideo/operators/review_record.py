"""CogVideoReviewRecordOperator: the last task of a review run, which records every decision.

It runs whatever happened upstream (``trigger_rule="all_done"``) and, from the tasks' XComs (one
pull per task and key, whatever the number of products):

1. takes each product's outcome (:func:`~airflow_provider_cogvideo.review_run.outcomes`): every
   round's decision (who, when, the note, the round), the last round's video, what was published;
2. writes it on the video's index entry (``review``), keyed by the product's *input* fingerprint, so
   later runs reuse an approved video without a new review and never reuse a rejected one; an entry
   that no longer names the decided video (replaced since) is left alone;
3. rewrites the pipeline run's manifest and gallery with the outcomes (the rows then name the last
   round's video; earlier rounds' videos stay listed, under their own keys), compacts the index and
   logs the counts. Returns the counts by state and ``published``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.operators.gallery import (
    DEFAULT_URL_EXPIRES,
    checked_media,
    checked_url_expires,
    read_manifest,
)
from airflow_provider_cogvideo.operators.review_plan import XCOM_REVIEW_RUN, store_run_record
from airflow_provider_cogvideo.operators.run_record import RETURN_KEY, all_values
from airflow_provider_cogvideo.operators.s3_hook import S3HookMixin
from airflow_provider_cogvideo.review_run import (
    outcomes,
    recorded_rows,
    regeneration_price,
    review_counts,
    reviewed_entry,
)
from airflow_provider_cogvideo.video_index import IndexLocation, compact, load_index, write_entry

if TYPE_CHECKING:
    from airflow.sdk import Context


class CogVideoReviewRecordOperator(S3HookMixin, BaseOperator):
    """Record a review run's decisions in the index, the manifest and the gallery (module docstring).
    Runs whatever happened upstream (``trigger_rule`` defaults to ``all_done``) and returns the count
    of every review state, ``published``, ``regenerated``, ``paid`` and ``manifest``.

    :param plan_task_id: the review plan task: its items and its XCom ``review_run`` (without it the
        task skips: nothing was reviewed).
    :param review_task_ids: every round's review task, by full id (``video.review_1``, ...): their
        decisions.
    :param upload_task_ids: every round's upload of a regenerated video: the later rounds' videos and
        what the regenerations paid.
    :param publish_task_ids: every round's publish task: what was published.
    :param media: how the rewritten gallery page reaches its media, ``"presigned"`` or ``"relative"``
        (:class:`~airflow_provider_cogvideo.operators.gallery.S3VideoGalleryOperator`'s ``media``).
    :param url_expires: validity of the gallery's presigned URLs (seconds or a ``timedelta``), 1 s to 7 days.
    :param aws_conn_id: ``aws`` connection for ``S3Hook``.

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        plan_task_id: str = "pending",
        review_task_ids: Sequence[str],
        upload_task_ids: Sequence[str] = (),
        publish_task_ids: Sequence[str] = (),
        media: str = "presigned",
        url_expires: float | timedelta = DEFAULT_URL_EXPIRES,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon")
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.review_task_ids = list(review_task_ids)
        self.upload_task_ids = list(upload_task_ids)
        self.publish_task_ids = list(publish_task_ids)
        self.media = checked_media(media)
        self.url_expires = checked_url_expires(url_expires)
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        run = ti.xcom_pull(task_ids=self.plan_task_id, key=XCOM_REVIEW_RUN)
        if not isinstance(run, Mapping):
            raise AirflowSkipException("the review plan recorded no run: nothing was reviewed")

        def pull(task_ids: Sequence[str]) -> list[Any]:
            return [
                value for task_id in task_ids for value in all_values(ti.xcom_pull(task_ids=task_id, key=RETURN_KEY))
            ]

        items = all_values(ti.xcom_pull(task_ids=self.plan_task_id, key=RETURN_KEY))
        uploads = pull(self.upload_task_ids)
        found = outcomes(
            items, decisions=pull(self.review_task_ids), uploads=uploads, publishes=pull(self.publish_task_ids)
        )
        client = self.s3_hook.get_conn()
        location = IndexLocation.parse(run["video_index"], "video_index")
        run_id = str(context["run_id"])
        index = load_index(client, location)
        known = []
        for outcome in found:
            entry = index.find(outcome.product_id, outcome.variant, str(outcome.video["metadata"].get("fingerprint")))
            reviewed = reviewed_entry(entry, outcome, run_id=run_id) if entry is not None else None
            if reviewed is None:
                self.log.warning(
                    "%s (%s): its index entry no longer names job %s; its review is not recorded there",
                    outcome.product_id,
                    outcome.variant,
                    outcome.video.get("id"),
                )
                continue
            key, etag = write_entry(client, location, reviewed)
            known.append((key, etag, reviewed.to_json()))
        compact(client, location, known=known)
        document = read_manifest(client, run["manifest"])
        counts = review_counts(found)
        published = sum(1 for outcome in found if outcome.published)
        review = document.get("review") or {}
        paid = regeneration_price(uploads)
        document = {
            **document,
            "products": recorded_rows(document.get("products") or [], found),
            "review": {
                **review,
                "counts": {**counts, "published": published},
                "regenerated": len(uploads),
                # Every review run of this pipeline run adds its regenerations (one budget: review_run.budget_left).
                "paid": round(float(review.get("paid") or 0.0) + paid, 6),
            },
        }
        store_run_record(
            self.s3_hook, run["manifest"], document, media=self.media, url_expires=self.url_expires, log=self.log
        )
        self.log.info(
            "Review run %s: %s, %d published, %d regenerated (%g list price); manifest %s",
            run_id,
            counts,
            published,
            len(uploads),
            paid,
            run["manifest"],
        )
        return {
            **counts,
            "published": published,
            "regenerated": len(uploads),
            "paid": paid,
            "manifest": run["manifest"],
        }


__all__ = ["CogVideoReviewRecordOperator"]
