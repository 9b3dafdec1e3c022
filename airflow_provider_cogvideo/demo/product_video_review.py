"""A pipeline run's new videos -> a reviewer's decision each -> published, or made again with the note.

Scheduled on the pipeline's ``RUN_VIDEOS`` asset (``product_video_pipeline.py`` emits it once per run,
naming the run's manifest), so reviews that wait for people never hold the ``@daily`` generation DAG
back; several review runs may wait at once. Trigger it by hand with the ``manifest`` param.

* ``pending`` reads the run's manifest and the video index, marks each video to review ``awaiting``
  and links every gallery card to its required action.
* ``video`` is a task group mapped over those videos (each labelled ``<product id> / <variant>``, its
  own row on the Required actions page), its rounds unrolled (DAGs are acyclic):
  ``review_1`` → Approve → ``publish_1`` (server-side copy to ``publish_bucket``/``publish_prefix`` and
  one ``PUBLISHED_VIDEOS`` asset event); Reject → ``regenerate_1`` (the note folded into the prompt,
  or, with the pipeline's ``PROMPT_WRITER``, sent to the writer; the video's ad format again; paid
  within the pipeline run's budget, crash-safe) → ``upload_1`` → ``review_2`` → ... After
  ``MAX_REVIEW_ROUNDS`` regenerations a reject ends the product ``rejected_by_review``.
* ``record`` (runs whatever happened) writes every decision on the videos' index entries and into the
  run's manifest and gallery.

A review nobody answers within ``REVIEW_TIMEOUT`` takes ``TIMEOUT_DEFAULT`` (``hold``: unpublished,
asked again by the next run; ``approve``: published); a timeout never pays. On Airflow 3.3 a waiting
review holds no worker, no pool slot and no triggerer; on 3.1/3.2 each is a trigger polling the
database every 5 s (``docs/review.md`` has the figures). This file is wiring: every step is an
operator of the package.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task_group

from airflow_provider_cogvideo.demo.pipeline_settings import (
    GENERATION,
    POLL_INTERVAL,
    POOL,
    PROMPT_WRITER,
    PUBLISHED_VIDEOS,
    RUN_VIDEOS,
)
from airflow_provider_cogvideo.operators.publish import CogVideoPublishOperator
from airflow_provider_cogvideo.operators.regenerate import CogVideoRegenerateOperator
from airflow_provider_cogvideo.operators.review import CogVideoReviewOperator
from airflow_provider_cogvideo.operators.review_plan import XCOM_REVIEW_RUN, CogVideoReviewPlanOperator
from airflow_provider_cogvideo.operators.review_record import CogVideoReviewRecordOperator
from airflow_provider_cogvideo.review import DEFAULT_REVISION_TEMPLATE
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

MAX_REVIEW_ROUNDS = int(os.environ.get("COGVIDEO_REVIEW_MAX_ROUNDS") or 2)
"""Regenerations after a reject, per product and run (each is a paid job and a new review)."""
REVIEW_TIMEOUT = timedelta(seconds=float(os.environ.get("COGVIDEO_REVIEW_TIMEOUT_SECONDS") or 3 * 24 * 3600))
TIMEOUT_DEFAULT = os.environ.get("COGVIDEO_REVIEW_TIMEOUT_DEFAULT", "hold")
REVISION_TEMPLATE = DEFAULT_REVISION_TEMPLATE
"""How a reject's notes join the product's prompt (``{prompt}``, ``{note}``): edit it here."""
GROUP = "video"
LABEL = "{{ task.video['metadata']['product_id'] }} / {{ task.video['metadata']['variant'] }}"
"""A review's or a publication's row label (Required actions, grid): product id / variant."""
UPLOADED_LABEL = "{{ task.result['metadata']['product_id'] }} / {{ task.result['metadata']['variant'] }}"
REVIEW_RUN = "{{ ti.xcom_pull(task_ids='pending', key='" + XCOM_REVIEW_RUN + "')"
VIDEO_INDEX = REVIEW_RUN + "['video_index'] }}"
VIDEO_BUCKET = REVIEW_RUN + "['bucket'] }}"


def _ids(kind: str) -> list[str]:
    rounds = range(1, MAX_REVIEW_ROUNDS + 2) if kind in ("review", "publish") else range(1, MAX_REVIEW_ROUNDS + 1)
    return [f"{GROUP}.{kind}_{n}" for n in rounds]


with DAG(
    dag_id="product_video_review",
    description="Each new product video: approve (publish) or reject with a note (made again)",
    schedule=[RUN_VIDEOS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "manifest": Param(
            None,
            type=["null", "string"],
            description="The pipeline run's manifest (s3://...); unset: the triggering asset event's.",
        ),
        "publish_bucket": Param(
            os.environ.get("COGVIDEO_PIPELINE_OUTPUT_BUCKET", "product-videos"),
            type="string",
            description="Where approved videos are copied to.",
        ),
        "publish_prefix": Param("published/", type="string", description="Their prefix there."),
    },
    tags=["cogvideo", "example", "review"],
) as dag:
    pending = CogVideoReviewPlanOperator(
        task_id="pending",
        manifest="{{ params.manifest }}",
        review_task_id=f"{GROUP}.review_1",
        max_review_rounds=MAX_REVIEW_ROUNDS,
        review_timeout=REVIEW_TIMEOUT,
    )

    @task_group(group_id=GROUP)
    def video(
        video: dict[str, Any], image: str, prompt: str, options: dict[str, Any], budget: float | None, auto: str | None
    ) -> None:
        current: Any = video
        for n in range(1, MAX_REVIEW_ROUNDS + 2):
            last = n == MAX_REVIEW_ROUNDS + 1
            review = CogVideoReviewOperator(
                task_id=f"review_{n}",
                video=current,
                round_number=n,
                publish_task_id=f"{GROUP}.publish_{n}",
                regenerate_task_id=None if last else f"{GROUP}.regenerate_{n}",
                earlier_task_ids=_ids("review")[: n - 1],
                auto_decision=auto,
                review_timeout=REVIEW_TIMEOUT,
                timeout_default=TIMEOUT_DEFAULT,
                map_index_template=LABEL,
            )
            review >> CogVideoPublishOperator(
                task_id=f"publish_{n}",
                video=current,
                decision=review.output,
                publish_bucket="{{ params.publish_bucket }}",
                publish_prefix="{{ params.publish_prefix }}",
                outlets=[PUBLISHED_VIDEOS],
                map_index_template=LABEL,
            )
            if last:
                break
            regenerated = CogVideoRegenerateOperator(
                task_id=f"regenerate_{n}",
                **GENERATION,
                video=video,
                image=image,
                prompt=prompt,
                options=options,  # the video's ad format: the same size again
                prompt_writer=PROMPT_WRITER,  # with a writer, the notes go to it
                video_index=VIDEO_INDEX,
                decision_task_ids=_ids("review")[:n],
                revision_template=REVISION_TEMPLATE,
                max_total_price=budget,
                budget_task_ids=_ids("regenerate"),
                pool=POOL,
                deferrable=True,
                poll_interval=POLL_INTERVAL,
                timeout=timedelta(hours=1),
                map_index_template=LABEL,
            )
            review >> regenerated
            current = CogVideoToS3Operator(
                task_id=f"upload_{n}",
                result=regenerated.output,
                s3_bucket=VIDEO_BUCKET,
                video_index=VIDEO_INDEX,
                map_index_template=UPLOADED_LABEL,
            ).output

    CogVideoReviewRecordOperator(
        task_id="record",
        plan_task_id="pending",
        review_task_ids=_ids("review"),
        upload_task_ids=_ids("upload"),
        publish_task_ids=_ids("publish"),
    ) << video.expand_kwargs(pending.output)
