"""CogVideoGenerateOperator: submit a video generation job, free the worker, resume with the result.

What it does, in order, on every try:

1. Validate everything (model options, images: format, size, decodability) before any paid request.
   A bad argument fails the task without retries (``AirflowFailException``).
2. Look in ``task_state_store`` (Airflow 3.3+) for a job stored by an earlier try of this task
   instance (the store is keyed by dag run, task and map index, and survives retries and clears).
   If its request fingerprint matches: a PROCESSING job is reconnected, a SUCCESS job's result is
   returned, a FAIL or unknown job is resubmitted. A different fingerprint means a new job.
3. Record a *pending* marker, POST the job, store its id (the gap between the two cannot be closed:
   the API cannot look jobs up by ``request_id``; a retry that finds only the marker says so in the
   log and submits anew). A 429 with 1302/1303/1305 does not fail the task: it defers to a timer and
   tries again, within the deadline.
4. Push the job id (so the extra link works while deferred), then defer to
   :class:`~airflow_provider_cogvideo.triggers.cogvideo.CogVideoTaskTrigger` with an absolute epoch
   deadline (``timeout`` seconds from the start of this try's wait, capped by ``execution_timeout``,
   which Airflow 3 does not enforce on deferred tasks).
5. ``execute_complete`` validates the event against an allow-list, maps failures to clear
   exceptions, forgets the stored job on success, and returns a JSON-safe result dict.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperatorLink, XCom
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoDuplicateRequestError,
    CogVideoError,
    CogVideoRateLimitError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.models import (
    DEFAULT_MODEL,
    TaskResult,
    VideoGenerationRequest,
    capabilities_for,
    describe_image,
)
from airflow_provider_cogvideo.triggers.cogvideo import (
    DEFAULT_ERROR_BUDGET,
    EVENT_STATUSES,
    EVENT_VERSION,
    CogVideoSubmitBackoffTrigger,
    CogVideoTaskTrigger,
    wait_for_job_async,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

STATE_KEY = "cogvideo_job"
XCOM_JOB_ID = "job_id"
XCOM_JOB_URL = "job_url"
XCOM_VIDEO_URL = "video_url"
XCOM_ERROR = "error"
DEFAULT_TIMEOUT = timedelta(hours=2)
# Back-off schedule for a submit refused with 429 (tier limit or overload): first wait, then x2.
RATE_LIMIT_FIRST_WAIT = 15.0
RATE_LIMIT_MAX_WAIT = 300.0
# Failure reasons that retrying cannot fix.
_FINAL_REASONS = frozenset({"job_failed", "auth", "unknown_job"})


class CogVideoVideoLink(BaseOperatorLink):
    """Link to the generated video (after success) or to the job's status URL (while it renders)."""

    name = "CogVideo video"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        return (
            XCom.get_value(key=XCOM_VIDEO_URL, ti_key=ti_key) or XCom.get_value(key=XCOM_JOB_URL, ti_key=ti_key) or ""
        )


@contextlib.contextmanager
def failure_recorded(context: Context) -> Iterator[None]:
    """Leave a failing step's reason in XCom ``error`` before it propagates, so a pipeline's
    manifest can list the product with its error while the other products carry on.
    (``TaskDeferred`` is not an ``Exception``: deferring is not recorded.)"""
    try:
        yield
    except Exception as exc:
        context["ti"].xcom_push(key=XCOM_ERROR, value={"error": str(exc), "type": type(exc).__name__})
        raise


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def request_fingerprint(body: dict[str, Any], image_digests: Sequence[str]) -> str:
    """What makes two submits 'the same job': the body without request_id, images by content hash."""
    canonical = {k: v for k, v in body.items() if k not in ("request_id", "image_url")}
    canonical["images"] = list(image_digests)
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


def job_result(
    task: TaskResult,
    *,
    hook: CogVideoHook,
    metadata: dict[str, Any] | None,
    request: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-safe return value shared by the operator and the sensor."""
    price, currency = hook.price_of(task.model)
    result = {
        "id": task.id,
        "model": task.model,
        "request_id": task.request_id,
        "task_status": task.task_status,
        "video_url": task.video_url,
        "cover_image_url": task.cover_image_url,
        "metadata": metadata or {},
        "price": price,
        "price_currency": currency,
        "prompt": (request or {}).get("prompt"),
        "request": request or {},
    }
    result.update(extra or {})
    return result


def check_event(event: Any) -> dict[str, Any]:
    """Allow-list validation: a None, unknown-version or unknown-status event fails loudly."""
    if not isinstance(event, dict) or event.get("v") != EVENT_VERSION or event.get("status") not in EVENT_STATUSES:
        raise AirflowException(f"Unexpected trigger event (version skew or a bug): {event!r}")
    return event


def raise_for_event(event: dict[str, Any]) -> None:
    """Map a non-success event to an exception: permanent failures are not retried."""
    status, reason, message = event["status"], event.get("reason"), event.get("message", "")
    if status == "success":
        return
    if status == "timeout":
        raise AirflowException(
            f"Timed out: {message}. Job {event['job_id']} was waited on for {event.get('waited_seconds', 0):.0f} s; "
            "a retry reconnects to it with a fresh window."
        )
    if status == "failed" or reason in _FINAL_REASONS:
        raise AirflowFailException(f"CogVideo job {event['job_id']} failed ({reason}): {message}")
    raise AirflowException(f"CogVideo job {event['job_id']} could not be followed ({reason}): {message}")


class CogVideoHookMixin:
    """One lazily built hook per task instance, for the operators and the sensor of this provider."""

    cogvideo_conn_id: str

    @cached_property
    def hook(self) -> CogVideoHook:
        from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

        return CogVideoHook(self.cogvideo_conn_id)


class CogVideoGenerateOperator(CogVideoHookMixin, BaseOperator):
    """Generate a video with CogVideoX or Vidu, without holding a worker slot while it renders.

    :param prompt: text description (<= 512 characters). Templated.
    :param image: one image, a list of two (first/last frame), or up to three (``vidu2-reference``):
        an http(s) URL, a data URI or bare base64, an ``s3://bucket/key`` (read with ``aws_conn_id``)
        or a local path. Templated.
    :param model: one of the capability table's models (default ``cogvideox-3``).
    :param quality, with_audio, size, fps, duration, watermark_enabled, aspect_ratio, style,
        movement_amplitude, user_id: API fields, validated per model (``size`` is templated).
    :param request_id: client request id (templated); a fresh unique one per submit when unset.
    :param metadata: a dict carried untouched into the result (e.g. a product id). Templated.
    :param extra_body: merged last into the JSON body, unvalidated (escape hatch).
    :param capability_overrides: replace columns of the model's capability row for this task.
    :param deferrable: wait in the triggerer (default). ``False`` polls on the worker.
    :param wait_for_completion: ``False`` returns right after the submit (use the sensor to wait).
    :param poll_interval: fixed seconds between polls; unset = the adaptive schedule.
    :param timeout: how long one try waits (seconds or timedelta), as an absolute deadline.
    :param error_budget: consecutive transient poll errors tolerated before the try fails.
    """

    template_fields: Sequence[str] = ("prompt", "image", "metadata", "request_id", "size")
    template_fields_renderers = {"metadata": "json", "image": "json"}
    operator_extra_links = (CogVideoVideoLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        prompt: str | None = None,
        image: str | list[str] | None = None,
        model: str = DEFAULT_MODEL,
        quality: str | None = None,
        with_audio: bool | None = None,
        size: str | None = None,
        fps: int | None = None,
        duration: int | None = None,
        watermark_enabled: bool | None = None,
        aspect_ratio: str | None = None,
        style: str | None = None,
        movement_amplitude: str | None = None,
        user_id: str | None = None,
        request_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        capability_overrides: dict[str, Any] | None = None,
        cogvideo_conn_id: str = DEFAULT_CONN_ID,
        aws_conn_id: str | None = "aws_default",
        deferrable: bool = True,
        wait_for_completion: bool = True,
        poll_interval: float | None = None,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image = image
        self.model = model
        self.quality = quality
        self.with_audio = with_audio
        self.size = size
        self.fps = fps
        self.duration = duration
        self.watermark_enabled = watermark_enabled
        self.aspect_ratio = aspect_ratio
        self.style = style
        self.movement_amplitude = movement_amplitude
        self.user_id = user_id
        self.request_id = request_id
        self.metadata = metadata
        self.extra_body = extra_body
        self.capability_overrides = capability_overrides
        self.cogvideo_conn_id = cogvideo_conn_id
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable
        self.wait_for_completion = wait_for_completion
        self.poll_interval = _seconds(poll_interval)
        self.timeout = _seconds(timeout)
        self.error_budget = error_budget

    # ------------------------------------------------------------------ building the request
    def build_request(self) -> tuple[VideoGenerationRequest, str]:
        """The validated request and its fingerprint. Raises ``AirflowFailException`` on bad input."""
        from airflow_provider_cogvideo.images import prepare_images

        try:
            if self.metadata is not None and not isinstance(self.metadata, dict):
                raise CogVideoValidationError("metadata", f"must be a dict, got {type(self.metadata).__name__}")
            caps = capabilities_for(self.model, self.capability_overrides)
            images = prepare_images(self.image, caps, aws_conn_id=self.aws_conn_id)
            wire_images: str | list[str] | None = None
            if images:
                single = isinstance(self.image, str) or (len(images) == 1 and caps.max_images == 1)
                wire_images = images[0].wire if single else [i.wire for i in images]
            fields = self._request_fields(wire_images)
            request = VideoGenerationRequest.build(**fields)
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid CogVideo request: {exc}") from None
        return request, request_fingerprint(request.to_body(), [i.digest for i in images])

    def _request_fields(self, image_url: str | list[str] | None) -> dict[str, Any]:
        fields = {
            "model": self.model,
            "prompt": self.prompt or None,
            "image_url": image_url,
            "quality": self.quality,
            "with_audio": self.with_audio,
            "watermark_enabled": self.watermark_enabled,
            "size": self.size or None,
            "fps": self.fps,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
            "style": self.style,
            "movement_amplitude": self.movement_amplitude,
            "user_id": self.user_id,
            "extra_body": self.extra_body,
            "capability_overrides": self.capability_overrides,
        }
        if self.request_id:
            fields["request_id"] = self.request_id
        return fields

    def request_summary(self, request_id: str | None) -> dict[str, Any]:
        """The request as sent, rebuilt from this operator's (re-rendered) arguments for the result:
        images appear as given (URL, s3:// URI or path), base64 summarised, never their bytes."""
        images = [self.image] if isinstance(self.image, str) else list(self.image or [])
        shown = [describe_image(i) if i.startswith("data:") or len(i) > 1024 else i for i in images]
        fields = self._request_fields(shown[0] if isinstance(self.image, str) else shown or None)
        fields["request_id"] = request_id or self.request_id
        body = VideoGenerationRequest.model_construct(**{k: v for k, v in fields.items() if v is not None}).to_body()
        return {k: v for k, v in body.items() if v is not None}

    # ------------------------------------------------------------------ the store
    def _store(self, context: Context) -> Any:
        store = context.get("task_state_store")  # type: ignore[call-overload]
        if store is None and not getattr(self, "_warned_no_store", False):
            self._warned_no_store = True
            self.log.warning(
                "task_state_store is not available (Airflow < 3.3): a retry of this task cannot find the "
                "job an earlier try submitted and will submit a new (billed) one. What still protects you: "
                "ambiguous submits fail without retry, and the job id is logged and pushed to XCom."
            )
        return store

    def _reuse_stored_job(self, context: Context, fingerprint: str) -> tuple[str, float] | dict[str, Any] | None:
        """Look for an earlier try's job. Returns (job_id, submitted_at) to reconnect, a result to
        return, or None to submit anew."""
        store = self._store(context)
        stored = store.get(STATE_KEY) if store is not None else None
        if not isinstance(stored, dict):
            return None
        if stored.get("fingerprint") != fingerprint:
            self.log.info(
                "Stored job %s was for a different request (inputs changed): submitting a new job.",
                stored.get("job_id") or stored.get("request_id"),
            )
            return None
        job_id = stored.get("job_id")
        if not job_id:
            self.log.warning(
                "An earlier try recorded a pending submit (request_id=%s) but no job id: it died between "
                "sending the request and storing the answer, or the answer was lost. A job may exist and be "
                "billed; the API cannot look it up by request_id, so a new job is submitted now.",
                stored.get("request_id"),
            )
            return None
        try:
            task = self.hook.get_task(job_id)
        except CogVideoError as exc:
            if exc.retryable:
                raise  # cannot tell now; let Airflow retry rather than risk a duplicate
            self.log.warning("Stored job %s cannot be queried (%s): submitting a new job.", job_id, exc)
            return None
        if task.task_status == "SUCCESS":
            self.log.info("Stored job %s already succeeded: returning its result without resubmitting.", job_id)
            return self._finish(context, task)
        if task.task_status == "FAIL":
            self.log.info("Stored job %s had failed: submitting a new job.", job_id)
            return None
        self.log.info("Reconnecting to job %s (still %s) from an earlier try.", job_id, task.task_status)
        return job_id, float(stored.get("submitted_at") or time.time())

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        with failure_recorded(context):
            return self._execute(context)

    def _execute(self, context: Context) -> Any:
        request, fingerprint = self.build_request()
        deadline = self._deadline(context)
        return self._submit_or_resume(context, request, fingerprint, deadline, rate_limited=0)

    def _deadline(self, context: Context) -> float:
        """Absolute epoch end of this try's wait: ``timeout`` from now, capped by ``execution_timeout``."""
        now = time.time()
        candidates = [now + self.timeout] if self.timeout else []
        if self.execution_timeout is not None:
            ti = context.get("ti")  # type: ignore[call-overload]
            start = getattr(ti, "start_date", None)
            started = start.timestamp() if start is not None else now
            candidates.append(started + self.execution_timeout.total_seconds())
        return min(candidates) if candidates else now + DEFAULT_TIMEOUT.total_seconds()

    def _submit_or_resume(
        self, context: Context, request: VideoGenerationRequest, fingerprint: str, deadline: float, rate_limited: int
    ) -> Any:
        reuse = self._reuse_stored_job(context, fingerprint)
        if isinstance(reuse, dict):
            return reuse
        if reuse is not None:
            job_id, submitted_at = reuse
        else:
            submitted = self._submit(context, request, fingerprint, deadline, rate_limited)
            if submitted is None:
                return None  # deferred to a rate-limit timer
            job_id, submitted_at = submitted
        return self._wait(context, job_id, submitted_at, deadline)

    def _submit(
        self, context: Context, request: VideoGenerationRequest, fingerprint: str, deadline: float, rate_limited: int
    ) -> tuple[str, float] | None:
        store = self._store(context)
        described = request.describe()
        record = {"fingerprint": fingerprint, "request_id": request.request_id, "model": request.model}
        if store is not None:
            store.set(STATE_KEY, {**record, "job_id": None})
        self.log.info("Submitting %s job (request_id=%s): %s", request.model, request.request_id, described)
        try:
            task = self.hook.submit(request)
        except CogVideoRateLimitError as exc:
            return self._rate_limit_wait(context, request, fingerprint, deadline, rate_limited, exc)
        except (CogVideoAmbiguousSubmitError, CogVideoDuplicateRequestError) as exc:
            raise AirflowFailException(f"{exc} Not retried automatically: retrying could pay twice.") from None
        except CogVideoError as exc:
            # The server refused (or the request never left): no job exists, so no pending marker
            # must make the next try believe one might.
            self._forget(context)
            if exc.retryable:
                raise AirflowException(f"CogVideo submit failed (transient): {exc}") from None
            raise AirflowFailException(f"CogVideo submit refused: {exc}") from None
        submitted_at = time.time()
        assert task.id is not None
        if store is not None:
            store.set(STATE_KEY, {**record, "job_id": task.id, "submitted_at": submitted_at})
        price, currency = self.hook.price_of(task.model)
        self.log.info(
            "Submitted job %s (model %s, request_id %s, list price %s %s)",
            task.id,
            task.model,
            task.request_id,
            price,
            currency,
        )
        return task.id, submitted_at

    def _rate_limit_wait(
        self,
        context: Context,
        request: VideoGenerationRequest,
        fingerprint: str,
        deadline: float,
        rate_limited: int,
        exc: CogVideoRateLimitError,
    ) -> tuple[str, float] | None:
        """A 429 at submit: wait (freeing the worker when deferrable) and try again, within the deadline."""
        self._forget(context)  # the POST was refused: no job exists for this marker
        wait = exc.retry_after or min(RATE_LIMIT_MAX_WAIT, RATE_LIMIT_FIRST_WAIT * 2**rate_limited)
        wait = wait * random.uniform(0.8, 1.2)
        if time.time() + wait >= deadline:
            raise AirflowException(f"Rate limited until the deadline ({rate_limited + 1} refusals); last: {exc}")
        self.log.warning(
            "Submit refused by the rate limit (%s): trying again in %.0f s (%s).",
            exc.code,
            wait,
            "worker released" if self.deferrable else "on the worker",
        )
        if not self.deferrable:
            time.sleep(wait)
            return self._submit(context, request, fingerprint, deadline, rate_limited + 1)
        self.defer(
            trigger=CogVideoSubmitBackoffTrigger(time.time() + wait, deadline, rate_limited + 1),
            method_name="execute_after_rate_limit",
            timeout=None,
        )
        return None

    def execute_after_rate_limit(self, context: Context, event: Any = None) -> Any:
        """Resume after a rate-limit wait: rebuild (templates are rendered again) and submit again."""
        with failure_recorded(context):
            return self._resubmit(context, event)

    def _resubmit(self, context: Context, event: Any) -> Any:
        if not isinstance(event, dict) or event.get("v") != EVENT_VERSION or event.get("status") != "resubmit":
            raise AirflowException(f"Unexpected trigger event (version skew or a bug): {event!r}")
        request, fingerprint = self.build_request()
        return self._submit_or_resume(context, request, fingerprint, float(event["deadline"]), event["rate_limited"])

    def on_kill(self) -> None:
        """Killed while polling on the worker: the job cannot be cancelled (the API has no cancel)."""
        job_id = getattr(self, "_job_id", None)
        if job_id:
            self.log.warning(
                "CogVideo job %s keeps running on the service and will be billed: the API has no cancel "
                "endpoint. A retry of this task reconnects to it (task_state_store) instead of resubmitting.",
                job_id,
            )

    def _wait(self, context: Context, job_id: str, submitted_at: float, deadline: float) -> Any:
        self._job_id = job_id
        ti = context["ti"]
        ti.xcom_push(key=XCOM_JOB_ID, value=job_id)
        ti.xcom_push(key=XCOM_JOB_URL, value=f"{self.hook.settings.base_url}/async-result/{job_id}")
        if not self.wait_for_completion:
            self.log.info("wait_for_completion=False: returning job %s without waiting.", job_id)
            self._forget(context)
            task = TaskResult(id=job_id, model=self.model, task_status="PROCESSING")
            return job_result(task, hook=self.hook, metadata=self.metadata, request=self.request_summary(None))
        trigger = CogVideoTaskTrigger(
            job_id=job_id,
            deadline=deadline,
            cogvideo_conn_id=self.cogvideo_conn_id,
            waiting_since=submitted_at,
            model=self.model,
            poll_interval=self.poll_interval,
            error_budget=self.error_budget,
        )
        if self.deferrable:
            self.log.info(
                "Deferring: job %s is polled in the triggerer until %s (epoch %.0f).",
                job_id,
                time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(deadline)),
                deadline,
            )
            self.defer(trigger=trigger, method_name="execute_complete", timeout=None)
        return self.execute_complete(context, event=self._wait_on_worker(trigger))

    def _wait_on_worker(self, trigger: CogVideoTaskTrigger) -> dict[str, Any]:
        """The synchronous path runs the trigger's own loop on the worker: one behaviour either way."""
        from airflow_provider_cogvideo.hooks.cogvideo import aclose_clients

        async def wait() -> dict[str, Any]:
            try:
                return await wait_for_job_async(trigger)
            finally:
                await aclose_clients()

        return asyncio.run(wait())

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        with failure_recorded(context):
            return self._complete(context, event)

    def _complete(self, context: Context, event: Any) -> Any:
        event = check_event(event)
        if event["status"] != "success":
            if event["status"] != "timeout" and event.get("reason") in _FINAL_REASONS:
                self._forget(context)
            raise_for_event(event)
        task = TaskResult.model_validate(event["result"])
        return self._finish(context, task, waited=event.get("waited_seconds"), polls=event.get("polls"))

    def _finish(
        self,
        context: Context,
        task: TaskResult,
        *,
        waited: float | None = None,
        polls: int | None = None,
    ) -> dict[str, Any]:
        self._forget(context)
        if task.video_url:
            context["ti"].xcom_push(key=XCOM_VIDEO_URL, value=task.video_url)
        result = job_result(task, hook=self.hook, metadata=self.metadata, request=self.request_summary(task.request_id))
        self.log.info(
            "Job %s done: %s (waited %s s, %s polls, list price %s %s)",
            task.id,
            task.video_url,
            waited,
            polls,
            result["price"],
            result["price_currency"],
        )
        return result

    def _forget(self, context: Context) -> None:
        """Drop the stored job so that clearing a finished task makes a new video."""
        store = self._store(context)
        if store is not None:
            store.delete(STATE_KEY)
