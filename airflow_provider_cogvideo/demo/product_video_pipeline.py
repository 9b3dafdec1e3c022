"""Product images in S3 -> one video per product -> videos and covers in S3 -> a run manifest.

Scheduled ``@daily`` over a catalog, it pays only for what changed since the videos it already made:

* ``ingest`` lists the product images under ``source_prefix`` (with optional ``<name>.json``
  sidecars: title, selling points, style...) and reads the video index kept with the videos
  (``s3://<output_bucket>/videos/``). A product whose video is there, made from the same image,
  fields, prompt, model and options, is ``reused`` without reading anything of it; one an earlier run
  left ``ambiguous`` is ``held``; the others are read (validated or re-encoded, one prompt each) and
  handed on to be paid, at most ``[core] max_map_length`` of them (the rest ``waiting`` for the next
  run).
* ``plan`` prices what will be paid (reused products cost nothing) and fails, paying nothing, when
  that exceeds the ``max_total_price`` param; every submit checks the same budget again.
* ``product`` is a task group mapped over the items to pay: ``generate`` (image-to-video, in the
  ``cogvideo`` pool) then ``upload`` (the MP4 and cover into the index's keys, then the index entry).
  One product's failure leaves the other products running.
* ``manifest`` (runs whatever happened) writes ``manifests/<day>/<run_id>.json`` and the review
  gallery ``gallery/<day>/<run_id>.html`` to the output bucket (one row and card per product, with
  its status: :class:`~airflow_provider_cogvideo.manifest.RowStatus`), holds the products left
  ambiguous, and compacts the index. Its asset event (``RUN_VIDEOS``) names the manifest: the review
  DAG (``product_video_review.py``, next to this file) runs on it, so reviews that wait for people never
  hold this ``@daily``, ``max_active_runs=1`` DAG back.

``<day>`` is the run's logical date, or for a run triggered without one, the day it was triggered for.

Params: ``dry_run`` (validate and price, send nothing; the manifest lists what would be reused and
what paid), ``max_total_price`` (the run's budget, regenerations after reviews included; unset = no
limit), ``regenerate`` (product ids, or ``all``, to pay for again), ``release_held`` (held product ids,
or ``all``, a person has checked), ``review`` (``required``, ``publish_all`` or ``off``), ``formats`` (ad
formats, one video per product and format: ``["9:16", "16:9"]``, ``"tiktok,amazon"``; README "Ad formats").

Prompts: off by default, each video's prompt is the template's. With ``PROMPT_WRITER`` on
(``pipeline_settings``, env ``COGVIDEO_PIPELINE_PROMPT_WRITER=on`` or a JSON object of settings), each
``generate`` task has a chat model on the same account rewrite it first (cached beside the video index,
so every later run and retry sends the same text and a video is paid once per writer inputs); ``plan``
counts each writing at its ceiling.

The generation tasks run in the pool ``cogvideo`` (``cogvideo pool --tier V0`` creates it with
``include_deferred`` on, so rendering jobs keep their slot). Parsing this file touches no
connection, variable or network. This file is wiring: every step is an operator of the package.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task_group

from airflow_provider_cogvideo.demo.pipeline_settings import (
    FORMATS,
    GENERATION,
    POLL_INTERVAL,
    POOL,
    PROMPT_WRITER,
    RUN_VIDEOS,
)
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.operators.run_plan import CogVideoRunPlanOperator
from airflow_provider_cogvideo.operators.run_record import CogVideoRunRecordOperator
from airflow_provider_cogvideo.review import ReviewMode
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

UPLOADS_AT_ONCE = max(1, int(os.environ.get("COGVIDEO_PIPELINE_UPLOADS_AT_ONCE") or 2))
"""Uploads running at once per run. They are off the tier's critical path: when a wave of renders
ends together, unthrottled uploads take the workers' CPU from the submits that refill the tier."""
# "none" for manually triggered runs only (the distributed test and the tier benchmark trigger without a logical date).
SCHEDULE = None if os.environ.get("COGVIDEO_PIPELINE_SCHEDULE", "@daily").lower() == "none" else "@daily"
_METADATA = "(task.metadata if task.metadata is defined else task.result['metadata'])"
PRODUCT_ID = (
    "{{ " + _METADATA + "['product_id'] }}{% if " + _METADATA + ".get('variant', 'default') != 'default' %}"
    " / {{ " + _METADATA + "['variant'] }}{% endif %}"
)
"""The label of a mapped product task in the grid: its product id (and variant: ``sku-1 / 9x16``)."""
FORMATS_TEXT = (
    "{{ params.formats | join(',') if params.formats is not none and params.formats is not string "
    "else params.formats }}"
)
"""The ``formats`` param as the comma-separated text ingestion reads (a list param renders as its repr)."""
RUN_DAY = "{{ (dag_run.logical_date or dag_run.run_after).strftime('%Y-%m-%d') }}"
"""The run's day for S3 keys: its logical date, or when it has none (a manual run), ``run_after``."""
RUN_KEY = RUN_DAY + "/{{ run_id | replace(':', '_') | replace('+', '_') }}"
"""``<day>/<run_id>`` in the manifest's and the gallery's keys (``:`` and ``+`` of the run id replaced)."""
VIDEO_INDEX = "s3://{{ params.output_bucket }}/videos/"
"""The videos, their covers and their index (``videos/.index/``), kept together."""
PROMPT = (
    "{title}: {selling_points}. Product video in a {style} style, the product turning slowly in soft "
    "studio light, gentle camera push-in."
)
SELECTION = ["null", "string", "array"]
"""A param naming products: a list of product ids, a comma-separated text, or "all"."""

with DAG(
    dag_id="product_video_pipeline",
    description="Product images in S3 -> CogVideoX videos -> S3, paying only for what changed",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "source_bucket": Param(os.environ.get("COGVIDEO_PIPELINE_SOURCE_BUCKET", "products"), type="string"),
        "source_prefix": Param(os.environ.get("COGVIDEO_PIPELINE_SOURCE_PREFIX", "incoming/"), type="string"),
        "output_bucket": Param(os.environ.get("COGVIDEO_PIPELINE_OUTPUT_BUCKET", "product-videos"), type="string"),
        "dry_run": Param(False, type="boolean", description="Validate and price everything; send nothing."),
        "max_total_price": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="The run's budget in list price (CNY on BigModel, USD on Z.AI); unset = no limit.",
        ),
        "regenerate": Param(None, type=SELECTION, description='Product ids to pay for again, or "all".'),
        "release_held": Param(
            None, type=SELECTION, description='Held product ids (checked in the console) to pay for again, or "all".'
        ),
        "formats": Param(
            FORMATS,
            type=["null", "string", "array"],
            description='Ad formats, one video each (e.g. ["9:16", "16:9"] or "tiktok,amazon"); unset: one video.',
        ),
        "review": Param(
            "required",
            enum=[mode.value for mode in ReviewMode],
            description="New videos: each waits for a reviewer (required), is published unreviewed "
            "(publish_all), or stays unpublished (off). The review DAG product_video_review does it.",
        ),
    },
    tags=["cogvideo", "example"],
) as dag:
    ingest = S3ProductImagesOperator(
        task_id="ingest",
        s3_bucket="{{ params.source_bucket }}",
        prefix="{{ params.source_prefix }}",
        staging_prefix=f"staging/{RUN_DAY}/",
        prompt_template=PROMPT,
        video_index=VIDEO_INDEX,
        generation=GENERATION,
        regenerate="{{ params.regenerate }}",
        release_held="{{ params.release_held }}",
        formats=FORMATS_TEXT,
        prompt_writer=PROMPT_WRITER,
    )
    plan = CogVideoRunPlanOperator(
        task_id="plan",
        products=ingest.output,
        model=GENERATION["model"],
        max_total_price="{{ params.max_total_price }}",
        prompt_writer=PROMPT_WRITER,
    )

    @task_group
    def product(
        image: str, prompt: str, metadata: dict[str, Any], options: dict[str, Any], spend_plan: dict[str, float]
    ) -> None:
        video = CogVideoGenerateOperator(
            task_id="generate",
            **GENERATION,
            image=image,
            prompt=prompt,
            metadata=metadata,
            options=options,  # the item's ad format: its size
            prompt_writer=PROMPT_WRITER,
            video_index=VIDEO_INDEX,
            pool=POOL,
            # Rendering takes minutes: wait in the triggerer, holding no worker slot (run one).
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=timedelta(hours=1),
            dry_run="{{ params.dry_run }}",
            max_total_price="{{ params.max_total_price }}",
            spend_plan=spend_plan,
            map_index_template=PRODUCT_ID,  # the grid shows product ids, not 0..N
        )
        CogVideoToS3Operator(
            task_id="upload",
            map_index_template=PRODUCT_ID,
            result=video.output,
            s3_bucket="{{ params.output_bucket }}",
            video_index=VIDEO_INDEX,
            max_active_tis_per_dagrun=UPLOADS_AT_ONCE,
        )

    record = CogVideoRunRecordOperator(
        task_id="manifest",
        s3_bucket="{{ params.output_bucket }}",
        manifest_key=f"manifests/{RUN_KEY}.json",
        gallery_key=f"gallery/{RUN_KEY}.html",
        video_index=VIDEO_INDEX,
        dry_run="{{ params.dry_run }}",
        review="{{ params.review }}",
        outlets=[RUN_VIDEOS],  # the review DAG runs on it
    )
    record << product.expand_kwargs(plan.output)
