"""What the generate operator, the sensor and the transfer share: XCom keys, the result dict, the hook.

It sits below ``operators/``, ``sensors/`` and ``transfers/`` so that none of them imports another
(imports run downward only: operators → triggers → hook → tables).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoConnectionConfigError,
    CogVideoMissingExtraError,
    CogVideoValidationError,
)

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
DRY_RUN_STATUS = "DRY_RUN"
"""``task_status`` of a dry run's result: validated and priced, never sent (the transfer skips it)."""
DEFAULT_TIMEOUT = timedelta(hours=2)
"""How long one try waits for a job (the operator) or for a job to end (the sensor)."""

JOB_KEEPS_RUNNING = (
    "CogVideo job %s keeps running on the service and will be billed: the API has no cancel endpoint. "
    "A retry of this task reconnects to it (task_state_store) instead of resubmitting."
)
"""Logged when a waiting task is killed: the job cannot be stopped, so say which one goes on."""


def seconds(value: float | timedelta | None) -> float | None:
    """A duration argument given as seconds or a ``timedelta``, in seconds."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", "", "none"})


def as_bool(field_name: str, value: Any) -> bool:
    """A boolean argument that may arrive as text (a rendered template such as ``"{{ params.dry_run }}"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CogVideoValidationError(field_name, f"must be true or false, got {value!r}")


def failure_record(exc: BaseException) -> dict[str, Any]:
    """What a manifest needs to know about a failure: the message, the type, and for a submit whose
    outcome is unknown (it may have created a paid job) ``status: "ambiguous"`` with its ``request_id``.

    Operators translate provider errors into Airflow's (``raise AirflowFailException(...) from None``);
    the original stays reachable as ``__context__``, which is where an ambiguous submit is recognised."""
    record: dict[str, Any] = {"error": str(exc), "type": type(exc).__name__}
    origin = exc if isinstance(exc, CogVideoAmbiguousSubmitError) else exc.__context__
    if isinstance(origin, CogVideoAmbiguousSubmitError):
        record.update(status="ambiguous", request_id=origin.request_id)
    return record


NEVER_SUCCEEDS = (CogVideoConnectionConfigError, CogVideoValidationError, CogVideoMissingExtraError)
"""Errors that trying again cannot cure: an unusable connection, an invalid value, a missing extra.
Found at run time they fail the task at once, without Airflow's retries (each retry would fail the
same way, and a user who set ``retries=2`` would wait through all of them)."""


@contextlib.contextmanager
def failure_recorded(context: Context) -> Iterator[None]:
    """Leave a failing step's reason in XCom ``error`` before it propagates, so a pipeline's
    manifest can list the product with its error while the other products carry on; an error of
    :data:`NEVER_SUCCEEDS` propagates as ``AirflowFailException`` (no retry).
    (``TaskDeferred`` is not an ``Exception``: deferring is not recorded.)"""
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

    try:
        yield
    except AirflowSkipException:
        raise  # skipping (a dry run's upload) is not a failure
    except Exception as exc:
        context["ti"].xcom_push(key=XCOM_ERROR, value=failure_record(exc))
        if isinstance(exc, NEVER_SUCCEEDS):
            raise AirflowFailException(f"{exc} (not retried: trying again cannot change this)") from exc
        raise


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
        "metadata": metadata or {},
        "price": price,
        "price_currency": currency,
        "prompt": (request or {}).get("prompt"),
        "request": request or {},
    }


class CogVideoHookMixin:
    """One lazily built hook per task instance, for the operators and the sensor of this provider."""

    cogvideo_conn_id: str = DEFAULT_CONN_ID

    @cached_property
    def hook(self) -> CogVideoHook:
        from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

        return CogVideoHook(self.cogvideo_conn_id)


__all__ = [
    "DEFAULT_TIMEOUT",
    "DRY_RUN_STATUS",
    "JOB_KEEPS_RUNNING",
    "NEVER_SUCCEEDS",
    "XCOM_ERROR",
    "XCOM_JOB_ID",
    "XCOM_REQUEST",
    "XCOM_S3_LINK",
    "XCOM_VIDEO_URL",
    "CogVideoHookMixin",
    "as_bool",
    "failure_record",
    "failure_recorded",
    "job_result",
    "no_video_yet",
    "seconds",
]
