"""CogVideoReviewPlanOperator: the first task of a review run, which picks the videos to ask about.

The review DAG runs on the pipeline run's asset event (the pipeline's ``manifest`` task emits it, its
``extra`` naming the run's manifest), or by hand with the ``manifest`` param. This task:

1. reads the pipeline run's manifest (its rows, its ``video_index``, its ``review`` mode, its budget)
   and the video index (one GET of the compacted document and one listing, as ingestion does);
2. picks the videos to ask about (:func:`~airflow_provider_cogvideo.review_run.plan_reviews`), at most
   ``max_reviews`` of them;
3. marks each one's index entry ``awaiting`` (this run, until its deadline), so that a run of the
   pipeline the next day reuses the video without asking about it again while this run waits;
4. rewrites the run's manifest and gallery with each card's review state and its link to the
   Required actions page (``[api] base_url`` must be set for links: checked, and said in the log and
   on the page when it is not);
5. returns the items the review group is mapped over, and pushes XCom ``review_run`` (the
   manifest, gallery and index URIs, the mode) for the tasks after it.

A review nobody answers waits ``review_timeout`` per round; the deadline marked on an entry covers
every round (``(max_review_rounds + 1) x review_timeout``), after which another run may ask again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException, conf
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.catalog_plan import max_map_length
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.operators.gallery import (
    DEFAULT_URL_EXPIRES,
    checked_media,
    checked_url_expires,
    read_manifest,
    write_gallery,
    write_manifest,
)
from airflow_provider_cogvideo.operators.s3_hook import S3HookMixin
from airflow_provider_cogvideo.review import (
    ReviewMode,
    checked_mode,
    checked_review_timeout,
    checked_rounds,
)
from airflow_provider_cogvideo.review_run import plan_reviews
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.validation import bounded, is_unset
from airflow_provider_cogvideo.video_index import IndexLocation, load_index, write_entry

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_MAX_REVIEWS = 1000
"""Reviews one run asks about by default on Airflow 3.3, where a waiting review costs nothing but a
row (``awaiting_input``: no trigger, no worker, no pool slot)."""
DEFAULT_MAX_DEFERRED_REVIEWS = 100
"""The default before Airflow 3.3, where each waiting review is a ``HITLTrigger`` polling every 5 s
from the triggerer for as long as it waits: measured on Airflow 3.1.3, 200 waiting reviews took 29
CPU-seconds a minute of the triggerer (half a core; benchmarks/README.md section 9), so 1,000 would take
two and a half cores, and a fifth of a triggerer's default ``[triggerer] capacity`` (1000) per 200,
capacity the generate tasks' own triggers need. Set ``max_reviews`` to choose otherwise."""
XCOM_REVIEW_RUN = "review_run"
"""Where the review run's record lives (``manifest``, ``gallery``, ``video_index``, ``bucket``, ``mode``)."""
MAX_REVIEWS_RANGE = (1, 100_000)


def required_actions_link(
    base_url: str | None, dag_id: str, run_id: str, task_id: str | None = None, map_index: int | None = None
) -> str | None:
    """The Airflow UI's Required actions page of a run, or of one task's mapped instance; None without
    ``[api] base_url``. A mapped instance's page is ``.../tasks/<task>/mapped/<i>/required_actions``:
    the ``?map_index=<i>`` form ``HITLOperator.generate_link_to_ui`` builds opens "No Task Instance
    found" for a mapped task in the UI of Airflow 3.3.2 (checked in a browser by the tests)."""
    if not base_url:
        return None
    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task_id:
        path += f"/tasks/{quote(task_id, safe='')}"
        if map_index is not None:
            path += f"/mapped/{int(map_index)}"
    return f"{base_url.rstrip('/')}{path}/required_actions"


def manifest_of(context: Context, manifest: Any) -> str:
    """The pipeline run's manifest URI: the ``manifest`` param, else the newest triggering asset event's."""
    if not is_unset(manifest):
        return str(manifest)
    events = context.get("triggering_asset_events") or {}
    found = [
        event
        for asset_events in events.values()
        for event in asset_events
        if isinstance(getattr(event, "extra", None), Mapping) and event.extra.get("manifest")
    ]
    if not found:
        raise AirflowSkipException("no manifest: neither the manifest param nor a triggering asset event names one")
    newest = max(
        found, key=lambda event: getattr(event, "timestamp", None) or datetime.min.replace(tzinfo=timezone.utc)
    )
    return str(newest.extra["manifest"])


class CogVideoReviewPlanOperator(S3HookMixin, BaseOperator):
    """Pick a pipeline run's videos to review, mark them, link them (module docstring). Returns the items
    (``video``, ``image``, ``prompt``, ``budget``, ``auto``) the review group is mapped over.

    :param manifest: the pipeline run's manifest ``s3://`` URI (``"{{ params.manifest }}"``); unset:
        taken from the newest triggering asset event's ``extra`` (``manifest``). Neither: the task skips.
    :param review_task_id: the first round's review task, by its full id (``video.review_1`` inside the
        task group ``video``): each gallery card links to its mapped instance's required action.
    :param max_review_rounds: regenerations after a reject, 0 to 5: the rounds the DAG unrolls (each
        entry is marked ``awaiting`` for ``max_review_rounds + 1`` timeouts).
    :param review_timeout: how long each round waits for an answer, in seconds or a ``timedelta``, 1 s to
        30 days: the review tasks' ``review_timeout``.
    :param max_reviews: the most videos one run asks about, 1 to 100,000 and never more than ``[core]
        max_map_length``; the others are asked by the next run. Unset: 1000 on Airflow 3.3, 100 before
        (:data:`DEFAULT_MAX_DEFERRED_REVIEWS`: there each waiting review is a trigger polling from the
        triggerer, about 0.15 CPU-second a minute each).
    :param media: how the rewritten gallery page reaches its media, ``"presigned"`` or ``"relative"``
        (:class:`~airflow_provider_cogvideo.operators.gallery.S3VideoGalleryOperator`'s ``media``).
    :param url_expires: validity of the gallery's presigned URLs (seconds or a ``timedelta``), 1 s to 7 days.
    :param aws_conn_id: ``aws`` connection for ``S3Hook``.

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = ("manifest",)
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        manifest: Any = None,
        review_task_id: str = "video.review_1",
        max_review_rounds: int = 2,
        review_timeout: timedelta | float = timedelta(days=3),
        max_reviews: int | None = None,
        media: str = "presigned",
        url_expires: float | timedelta = DEFAULT_URL_EXPIRES,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon")
        super().__init__(**kwargs)
        self.manifest = manifest
        self.review_task_id = review_task_id
        self.max_review_rounds = checked_rounds(max_review_rounds)
        self.review_timeout = checked_review_timeout(review_timeout)
        self.max_reviews = (
            None if max_reviews is None else int(bounded("max_reviews", max_reviews, MAX_REVIEWS_RANGE, integer=True))
        )
        self.media = checked_media(media)
        self.url_expires = checked_url_expires(url_expires)
        self.aws_conn_id = aws_conn_id

    def _cap(self) -> int:
        chosen = self.max_reviews
        if chosen is None:
            chosen = DEFAULT_MAX_DEFERRED_REVIEWS if reviews_wait_in_triggerer() else DEFAULT_MAX_REVIEWS
        elif reviews_wait_in_triggerer() and chosen > DEFAULT_MAX_DEFERRED_REVIEWS:
            self.log.warning(
                "Airflow before 3.3: each of up to %d waiting reviews is a trigger polling every 5 s (about 0.15 "
                "CPU-second a minute each in the triggerer)",
                chosen,
            )
        return min(chosen, max_map_length())

    def execute(self, context: Context) -> list[dict[str, Any]]:
        uri = manifest_of(context, self.manifest)
        client = self.s3_hook.get_conn()
        document = read_manifest(client, uri)
        if not isinstance(document, Mapping) or not isinstance(document.get("products"), list):
            raise AirflowFailException(f"{uri} is not a pipeline run manifest (no products list)")
        try:
            mode = checked_mode((document.get("review") or {}).get("mode") or ReviewMode.REQUIRED.value)
            location = IndexLocation.parse(document.get("video_index"), "manifest video_index")
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"{uri}: {exc}") from None
        base_url = conf.get("api", "base_url", fallback=None) or None
        if not base_url:
            self.log.warning(
                "[api] base_url is not set in Airflow's configuration: the gallery cannot link to the reviews "
                "(set it to the address reviewers open the Airflow UI at); they are on the Required actions page"
            )
        dag_id, run_id = context["dag"].dag_id, str(context["run_id"])
        now = datetime.now(timezone.utc)
        index = load_index(client, location)
        plan = plan_reviews(
            document,
            index,
            mode=mode,
            run_id=run_id,
            now=now,
            until=now + self.review_timeout * (self.max_review_rounds + 1),
            max_reviews=self._cap(),
            link_of=lambda i: required_actions_link(base_url, dag_id, run_id, self.review_task_id, map_index=i),
        )
        for entry in plan.marked:
            write_entry(client, location, entry)
        updated = {
            **document,
            "products": plan.rows,
            "review": {
                "mode": mode.value,
                "run_id": run_id,
                "link": required_actions_link(base_url, dag_id, run_id),
                "base_url_set": bool(base_url),
                "counts": {"awaiting": len(plan.items)},
            },
        }
        store_run_record(self.s3_hook, uri, updated, media=self.media, url_expires=self.url_expires, log=self.log)
        context["ti"].xcom_push(
            key=XCOM_REVIEW_RUN,
            value={
                "manifest": uri,
                "gallery": document.get("gallery"),
                "video_index": location.uri,
                "bucket": location.bucket,
                "mode": mode.value,
            },
        )
        self.log.info(
            "Review mode %s: %d video(s) to review; skipped %s; S3 requests %s",
            mode.value,
            len(plan.items),
            plan.skipped,
            dict(index.requests),
        )
        return plan.items


def reviews_wait_in_triggerer() -> bool:
    """Whether a waiting review is a trigger (Airflow before 3.3) rather than ``awaiting_input``."""
    from airflow.providers.standard.version_compat import AIRFLOW_V_3_3_PLUS

    return not AIRFLOW_V_3_3_PLUS


def store_run_record(
    s3_hook: Any, uri: str, document: Mapping[str, Any], *, media: str, url_expires: int, log: Any
) -> None:
    """Rewrite a pipeline run's manifest (at ``uri``) and its gallery page (the same keys) with the
    review states: the gallery a reviewer has open shows them on reload."""
    bucket, key = parse_s3_uri(uri) or ("", "")
    write_manifest(s3_hook.get_conn(), bucket, key, document)
    gallery = parse_s3_uri(document.get("gallery"))
    if gallery is not None:
        write_gallery(
            document,
            s3_bucket=gallery[0],
            s3_key=gallery[1],
            media=media,
            url_expires=url_expires,
            log=log,
            s3_hook=s3_hook,
        )


__all__ = [
    "XCOM_REVIEW_RUN",
    "CogVideoReviewPlanOperator",
    "manifest_of",
    "required_actions_link",
    "store_run_record",
]
