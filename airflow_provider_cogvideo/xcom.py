"""What the provider's tasks leave in XCom: the keys, and the result dict a generate task returns.

The generate operator, the sensor and the transfer push and read these; so do the extra links (which
read an XCom to build their URL), the run budget's ledger (which reads its siblings' spend) and the
pipelines that collect results into a manifest. The keys are part of the provider's interface:
renaming one breaks the DAGs and links that read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_cogvideo.validation import rendered_none

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
    from airflow_provider_cogvideo.models import TaskResult

XCOM_JOB_ID = "job_id"
XCOM_VIDEO_URL = "video_url"
XCOM_S3_LINK = "video_s3_link"
"""Where a person opens the transfer's S3 copy of the video (its extra link)."""
XCOM_REQUEST = "request"
"""The summary of the request as sent (:meth:`VideoGenerationRequest.describe`), pushed at submit."""
XCOM_ERROR = "error"
"""Why a step failed (:func:`~airflow_provider_cogvideo.failures.failure_recorded`), for a manifest."""
XCOM_REJECTED = "rejected"
"""The images ingestion refused, each ``{"product_id", "image", "reason"}`` (:class:`S3ProductImagesOperator`)."""
XCOM_CATALOG = "catalog"
"""Ingestion's rows for the products it did not hand on to be paid: ``reused``, ``held`` or ``waiting``."""
XCOM_READS = "catalog_reads"
"""Ingestion's S3 requests by kind (listing pages, index reads, images, sidecars, catalog)."""
XCOM_ESTIMATE = "estimate"
"""The run plan's price of what will be paid, its budget and whether it refused the run."""
XCOM_SPEND = "spend"
"""What a generate task instance has paid and reserved in its run (:mod:`~airflow_provider_cogvideo.budget`)."""
DRY_RUN_STATUS = "DRY_RUN"
"""``task_status`` of a dry run's result: validated and priced, never sent (the transfer skips it)."""


def no_video_yet(context: Context) -> None:
    """Push an empty ``video_url`` first thing: Airflow computes the video link whenever a try ends,
    deferring included, and a link that finds no XCom logs an error in every healthy deferred task."""
    context["ti"].xcom_push(key=XCOM_VIDEO_URL, value=None)


def job_result(
    job: TaskResult,
    *,
    hook: CogVideoHook,
    metadata: dict[str, Any] | None,
    request: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON-safe return value of the generate operator and the sensor (the transfer's input).

    ``video_url`` and ``cover_image_url`` stay as the service signed them (the transfer downloads
    them; they expire); one with ``user:password@`` never gets this far (``VideoResult`` refuses it)."""
    price, currency = hook.price_of(job.model)
    return {
        "id": job.id,
        "model": job.model,
        "request_id": job.request_id,
        "task_status": job.task_status,
        "video_url": job.video_url,
        "cover_image_url": job.cover_image_url,
        "metadata": rendered_none(metadata) or {},
        "price": price,
        "price_currency": currency,
        "prompt": (request or {}).get("prompt"),
        "request": request or {},
    }


__all__ = [
    "DRY_RUN_STATUS",
    "XCOM_CATALOG",
    "XCOM_ERROR",
    "XCOM_ESTIMATE",
    "XCOM_JOB_ID",
    "XCOM_READS",
    "XCOM_REJECTED",
    "XCOM_REQUEST",
    "XCOM_S3_LINK",
    "XCOM_SPEND",
    "XCOM_VIDEO_URL",
    "job_result",
    "no_video_yet",
]
