"""CogVideoGenerateOperator: submit a video generation job, free the worker, resume with the result.

What it does, in order, on every try:

1. Validate everything (model options, images: format, size, decodability) before any paid request.
   A bad argument fails the task without retries (``AirflowFailException``), and so does an image
   that needs an optional extra which is not installed (``images``, or ``amazon`` for ``s3://``).
2. Look in ``task_state_store`` (Airflow 3.3+) for a job stored by an earlier try of this task
   instance (:mod:`..job_store`). If its request fingerprint matches: a PROCESSING job is
   reconnected, a SUCCESS job's result is returned, a FAIL or unknown job is resubmitted. A
   different fingerprint means a new job.
3. Reserve the price in the run's budget (:mod:`..budget`), record a *pending* marker, POST the job,
   store its id (the gap between the two cannot be closed: the API cannot look jobs up by
   ``request_id``; a retry that finds only the marker says so in the log and submits anew). A
   submit refused for capacity (429 with 1302/1303/1305, or 503 "server flow exceeded", once the
   hook's resends run out) does not fail the task: both created nothing, so it defers to a timer
   and tries again, within the deadline.
4. Push the job id (so the extra link works while deferred), then defer to
   :class:`~airflow_provider_cogvideo.triggers.cogvideo.CogVideoTaskTrigger` with an absolute epoch
   deadline (``timeout`` seconds from the start of this try's wait, capped by ``execution_timeout``,
   which Airflow 3 does not enforce on deferred tasks).
5. ``execute_complete`` reads the event through the one event contract (:mod:`..events`), maps
   failures to clear exceptions (forgetting the stored job when it can never succeed; a success
   keeps it, so a retry after a lost report returns it), and returns a JSON-safe result
   dict whose ``request`` is the summary of the request actually sent (pushed to XCom at submit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo import DEFAULT_CONN_ID, metrics
from airflow_provider_cogvideo.backoff import Backoff
from airflow_provider_cogvideo.budget import SpendLedger
from airflow_provider_cogvideo.capabilities import DEFAULT_MODEL, OPTION_COLUMNS, canonical_model
from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoDuplicateRequestError,
    CogVideoError,
    CogVideoMissingExtraError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.events import JobEvent, ResubmitEvent, raise_for_event, read_event
from airflow_provider_cogvideo.failures import failure_recorded
from airflow_provider_cogvideo.hooks.submit_policy import refused_for_capacity
from airflow_provider_cogvideo.job_store import JobStore
from airflow_provider_cogvideo.links import CogVideoVideoLink
from airflow_provider_cogvideo.mixins import CogVideoHookMixin
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest
from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, DEFAULT_TIMEOUT
from airflow_provider_cogvideo.prepare import PreparedRequest, check_literal_options, prepare_request
from airflow_provider_cogvideo.redact import redact_url
from airflow_provider_cogvideo.triggers.cogvideo import (
    JOB_KEEPS_RUNNING,
    CogVideoSubmitBackoffTrigger,
    CogVideoTaskTrigger,
    wait_for_job_async,
)
from airflow_provider_cogvideo.validation import (
    as_bool,
    checked_budget,
    checked_wait_settings,
    rendered_none,
    seconds,
)
from airflow_provider_cogvideo.xcom import (
    DRY_RUN_STATUS,
    XCOM_JOB_ID,
    XCOM_REQUEST,
    XCOM_VIDEO_URL,
    job_result,
    no_video_yet,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

RATE_LIMIT_BACKOFF = Backoff(first=15.0, ceiling=300.0, jitter=(0.8, 1.2))
"""A submit refused with 429 (tier limit or overload): 15 s doubling to 300 s, +-20 % so that a
pool's worth of refused tasks does not come back in one burst; a Retry-After up to 300 s wins."""


class CogVideoGenerateOperator(CogVideoHookMixin, BaseOperator):
    """Generate a video with CogVideoX or Vidu, without holding a worker slot while it renders.

    Unset, for every templated field: a value that renders to empty text, ``None`` or ``null`` (any
    case, spaces around the word ignored) is unset, as if the argument had not been given: an unset
    ``{{ params.x }}`` renders to ``"None"``, a blank form field to ``""``. Text of spaces alone is a
    value, refused where it cannot be one (a prompt of blanks would buy a random video). One rule,
    :func:`~airflow_provider_cogvideo.validation.is_unset`, read by every field below.

    :param prompt: text description (<= 512 characters). Templated.
    :param image: one image, a list of two (first/last frame), or up to three (``vidu2-reference``):
        an http(s) URL, a data URI or bare base64, an ``s3://bucket/key`` (read with ``aws_conn_id``)
        or a local path. Templated.
    :param model: one of the capability table's models (default ``cogvideox-3``; any case, so
        Zhipu's ``CogVideoX-3`` is read as ``cogvideox-3``). Templated.
    :param quality, with_audio, size, fps, duration, watermark_enabled, aspect_ratio, style,
        movement_amplitude, user_id: API fields, validated per model after rendering (all but
        ``watermark_enabled`` and ``user_id`` are templated: ``"{{ params.fps }}"`` renders to text and
        is read as the field's type). A model and options written
        literally in a plain operator are checked when the DAG file is parsed (an unknown model or a
        size the model cannot render fails the import); templates, XComArgs and the values of
        ``.partial().expand()`` are checked when the task runs, before anything is paid for.
    :param request_id: client request id (templated); a fresh unique one per submit when unset.
    :param metadata: a dict carried untouched into the result (e.g. a product id). Templated.
    :param extra_body: merged last into the JSON body, unvalidated (escape hatch).
    :param capability_overrides: replace columns of the model's capability row for this task.
    :param deferrable: wait in the triggerer (recommended: no worker slot is held while a video
        renders). ``False`` polls on the worker. Default: ``[operators] default_deferrable``, as for
        Airflow's own providers, so a deployment without a triggerer never has tasks stuck deferred.
    :param wait_for_completion: ``False`` returns right after the submit (use the sensor to wait).
    :param poll_interval: fixed seconds between polls (1 to 3600); unset = the adaptive schedule.
    :param timeout: how long one try waits (seconds or timedelta, up to 7 days), as an absolute deadline.
    :param error_budget: consecutive transient poll errors tolerated before the try fails (0 to 100).
    :param dry_run: validate and price everything exactly as for a real submit, log the body that
        would be sent, and return a result with ``task_status: "DRY_RUN"`` without sending anything.
        Templated (``"{{ params.dry_run }}"``).
    :param regenerate: ask for a new (paid) video although this task instance already has a finished
        one. A finished job is kept for the task instance, so a retry after any failure (even one that
        happened after the job succeeded) returns it instead of paying again; a deliberate re-run
        (a clear) does the same unless ``regenerate`` is set. Any value other than ``None``/``False``
        is a label: the first try with a new label pays once, its retries reuse that video; a later
        clear with the *same* label reuses it too, so give a new label (a date, a counter, e.g.
        ``"{{ dag_run.conf.get('regenerate') }}"``) each time a new video is wanted. The task instance
        remembers one job: going back to an earlier label (or to none) is a new request, paid again.
        Templated.
    :param durable: keep the job in ``task_state_store`` so retries reconnect to it or return it
        (default; Airflow 3.3+). ``False`` opts out, as ``ResumableJobMixin``'s ``durable`` does for
        Airflow's own providers: every try submits (and pays for) a new job.
    :param max_total_price: the most this task's mapped instances may spend in one run, in list price
        of the endpoint's currency (see :mod:`airflow_provider_cogvideo.budget`): a submit that would
        pass it fails without paying. Unset = no limit. Templated (``"{{ params.max_total_price }}"``).
    """

    template_fields: Sequence[str] = (
        "prompt",
        "image",
        "model",
        "quality",
        "size",
        "fps",
        "duration",
        "with_audio",
        "aspect_ratio",
        "style",
        "movement_amplitude",
        "extra_body",
        "metadata",
        "request_id",
        "cogvideo_conn_id",
        "dry_run",
        "regenerate",
        "max_total_price",
    )
    template_fields_renderers = {"metadata": "json", "image": "json", "extra_body": "json"}
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        wait_for_completion: bool = True,
        poll_interval: float | None = None,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        dry_run: bool | str = False,
        regenerate: bool | str | None = None,
        max_total_price: float | str | None = None,
        durable: bool = True,
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
        self.poll_interval, self.error_budget, self.timeout = checked_wait_settings(
            poll_interval=seconds(poll_interval), error_budget=error_budget, timeout=seconds(timeout)
        )
        self.dry_run = dry_run
        self.regenerate = regenerate
        self.max_total_price = max_total_price
        self.durable = durable
        check_literal_options(model, capability_overrides, {name: getattr(self, name) for name, _ in OPTION_COLUMNS})

    # ------------------------------------------------------------------ building the request
    def build_request(self) -> PreparedRequest:
        """The validated request, its fingerprint and its summary. Raises ``AirflowFailException`` on bad input."""
        try:
            metadata = rendered_none(self.metadata)
            if metadata is not None and not isinstance(metadata, dict):
                raise CogVideoValidationError("metadata", f"must be a dict, got {type(metadata).__name__}")
            fields = {name: rendered_none(getattr(self, name)) for name in VideoGenerationRequest.api_fields()}
            return prepare_request(
                image=rendered_none(self.image),
                aws_conn_id=self.aws_conn_id,
                generation=self._generation_label(),
                request_id=rendered_none(self.request_id),
                **{**fields, "model": self._model()},
            )
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid CogVideo request: {exc}") from None
        except CogVideoMissingExtraError as exc:  # an image needs Pillow or the Amazon provider: retrying cannot help
            raise AirflowFailException(f"CogVideo request not sent: {exc}") from None

    def _model(self) -> str:
        return canonical_model(rendered_none(self.model) or DEFAULT_MODEL)

    def _generation_label(self) -> str | None:
        """``regenerate`` as a label in the fingerprint: a new label is a new job; unset or false is none."""
        regenerate = rendered_none(self.regenerate)
        label = "" if regenerate is None or regenerate is False else str(regenerate).strip()
        return label if label and label.lower() != "false" else None

    # ------------------------------------------------------------------ the store and the ledger
    def _job_store(self, context: Context) -> JobStore:
        state = context.get("task_state_store")  # type: ignore[call-overload]
        return JobStore(state, durable=self.durable, operator=type(self).__name__, log=self.log)

    def _ledger(self, context: Context, jobs: JobStore) -> SpendLedger:
        try:
            budget = checked_budget(self.max_total_price)
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid CogVideo request: {exc}") from None
        return SpendLedger(context["ti"], jobs.state, budget)

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        with failure_recorded(context):
            no_video_yet(context)
            prepared = self.build_request()
            if self._is_dry_run():
                return self._dry_run(prepared)
            jobs = self._job_store(context)
            self._ledger(context, jobs).publish()
            return self._submit_or_resume(context, jobs, prepared, self._deadline(context), rate_limited=0)

    def _is_dry_run(self) -> bool:
        try:
            return as_bool("dry_run", self.dry_run)
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid CogVideo request: {exc}") from None

    def _dry_run(self, prepared: PreparedRequest) -> dict[str, Any]:
        """Everything a submit does before the POST (validation, images, price), and nothing after."""
        request = prepared.request
        job = TaskResult(id=None, model=request.model, request_id=request.request_id, task_status=DRY_RUN_STATUS)
        result = job_result(job, hook=self.hook, metadata=self.metadata, request=prepared.summary)
        metrics.incr("cogvideo.dry_runs", model=request.model)
        self.log.info(
            "Dry run: nothing sent. Would submit a %s job (list price %s %s) with body: %s",
            request.model,
            result["price"],
            result["price_currency"],
            prepared.summary,
        )
        return result

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
        self, context: Context, jobs: JobStore, prepared: PreparedRequest, deadline: float, rate_limited: int
    ) -> Any:
        earlier = jobs.earlier_job(prepared.fingerprint, self.hook)
        if earlier is None:
            job_id, submitted_at = self._submit(context, jobs, prepared, deadline, rate_limited)
            return self._wait(context, jobs, job_id, submitted_at, deadline, request=prepared.summary)
        if earlier.succeeded:
            return self._finish(context, earlier.job, request=earlier.request)
        context["ti"].xcom_push(key=XCOM_REQUEST, value=earlier.request)
        return self._wait(context, jobs, earlier.job_id, earlier.submitted_at, deadline, request=earlier.request)

    def _submit(
        self, context: Context, jobs: JobStore, prepared: PreparedRequest, deadline: float, rate_limited: int
    ) -> tuple[str, float]:
        """POST the job, recording a pending marker first and the job id after; returns (job_id, submitted_at).

        A submit refused for capacity waits and tries again (deferring, when deferrable)."""
        request = prepared.request
        price = self._reserve(ledger := self._ledger(context, jobs), request.model)
        jobs.submitting(prepared)
        context["ti"].xcom_push(key=XCOM_REQUEST, value=prepared.summary)
        self.log.info("Submitting %s job (request_id=%s): %s", request.model, request.request_id, prepared.summary)
        try:
            job = self.hook.submit(request)
        except CogVideoError as exc:
            if refused_for_capacity(exc):  # a 1302-like rate limit or a 503 flow refusal: nothing created
                ledger.release()
                metrics.incr("cogvideo.rate_limited", model=request.model)
                return self._rate_limit_wait(context, jobs, prepared, deadline, rate_limited, exc)
            if isinstance(exc, CogVideoAmbiguousSubmitError | CogVideoDuplicateRequestError):
                ledger.confirm(price)  # it may have been billed
                metrics.incr("cogvideo.submit_ambiguous", model=request.model)
                raise AirflowFailException(f"{exc} Not retried automatically: retrying could pay twice.") from None
            # The server refused (or the request never left): no job exists, so no pending marker
            # must make the next try believe one might.
            ledger.release()
            jobs.forget()
            metrics.incr("cogvideo.submit_refused", model=request.model)
            if exc.retryable:
                raise AirflowException(f"CogVideo submit failed (transient): {exc}") from None
            raise AirflowFailException(f"CogVideo submit refused: {exc}") from None
        ledger.confirm(price)
        submitted_at = time.time()
        assert job.id is not None
        jobs.submitted(job.id, submitted_at)
        self.hook.record_submit(job, request)
        return job.id, submitted_at

    def _reserve(self, ledger: SpendLedger, model: str) -> float:
        """The job's list price, reserved in the run's budget; fails without paying when it does not fit."""
        price, currency = self.hook.price_of(model)
        if price is None:
            if ledger.budget is not None:
                raise AirflowFailException(
                    f"max_total_price is set but model {model!r} has no list price in the capability table: "
                    "the budget cannot be enforced, so nothing is submitted"
                )
            return 0.0
        reason = ledger.reserve(price)
        if reason is not None:
            raise AirflowFailException(f"CogVideo job not submitted: {reason} {currency}.")
        return price

    def _rate_limit_wait(
        self,
        context: Context,
        jobs: JobStore,
        prepared: PreparedRequest,
        deadline: float,
        rate_limited: int,
        exc: CogVideoError,
    ) -> tuple[str, float]:
        """A submit refused for capacity (429, 503): wait (freeing the worker when deferrable) and try
        again, within the deadline."""
        jobs.forget()  # the POST was refused: no job exists for this marker
        wait = RATE_LIMIT_BACKOFF.wait(rate_limited + 1, getattr(exc, "retry_after", None))
        if time.time() + wait >= deadline:
            raise AirflowException(f"Rate limited until the deadline ({rate_limited + 1} refusals); last: {exc}")
        self.log.warning(
            "Submit refused for capacity (%s): trying again in %.0f s (%s).",
            exc,
            wait,
            "worker released" if self.deferrable else "on the worker",
        )
        if not self.deferrable:
            time.sleep(wait)
            return self._submit(context, jobs, prepared, deadline, rate_limited + 1)
        self._defer_rate_limited(time.time() + wait, deadline, rate_limited + 1)

    def _defer_rate_limited(self, resume_at: float, deadline: float, rate_limited: int) -> NoReturn:
        self.defer(
            trigger=CogVideoSubmitBackoffTrigger(resume_at, deadline, rate_limited),
            method_name="execute_after_rate_limit",
            timeout=None,
        )

    def execute_after_rate_limit(self, context: Context, event: Any = None) -> Any:
        """Resume after a rate-limit wait: rebuild (templates are rendered again) and submit again."""
        with failure_recorded(context):
            resubmit = read_event(event, ResubmitEvent)
            prepared, jobs = self.build_request(), self._job_store(context)
            return self._submit_or_resume(context, jobs, prepared, resubmit.deadline, resubmit.rate_limited)

    def on_kill(self) -> None:
        """Killed while polling on the worker: the job cannot be cancelled (the API has no cancel)."""
        job_id = getattr(self, "_job_id", None)
        if job_id:
            self.log.warning(JOB_KEEPS_RUNNING, job_id)

    def _wait(
        self, context: Context, jobs: JobStore, job_id: str, submitted_at: float, deadline: float, *, request: dict
    ) -> Any:
        self._job_id = job_id
        ti = context["ti"]
        ti.xcom_push(key=XCOM_JOB_ID, value=job_id)
        if not self.wait_for_completion:
            self.log.info("wait_for_completion=False: returning job %s without waiting.", job_id)
            job = TaskResult(
                id=job_id, model=self._model(), request_id=request.get("request_id"), task_status="PROCESSING"
            )
            return job_result(job, hook=self.hook, metadata=self.metadata, request=request)
        trigger = CogVideoTaskTrigger(
            job_id=job_id,
            deadline=deadline,
            cogvideo_conn_id=self.hook.cogvideo_conn_id,
            waiting_since=submitted_at,
            model=self._model(),
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
        return self._complete(context, jobs, self._wait_on_worker(trigger), request=request)

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
            return self._complete(context, self._job_store(context), event)

    def _complete(
        self, context: Context, jobs: JobStore, payload: Any, *, request: dict[str, Any] | None = None
    ) -> Any:
        event = read_event(payload, JobEvent)
        if event.status != "success":
            if event.is_final:
                jobs.forget()
            raise_for_event(event)
        job = TaskResult.model_validate(event.result)
        return self._finish(context, job, request=request, waited=event.waited_seconds, polls=event.polls)

    def _finish(
        self,
        context: Context,
        job: TaskResult,
        *,
        request: dict[str, Any] | None,
        waited: float | None = None,
        polls: int | None = None,
    ) -> dict[str, Any]:
        # The record is kept: if Airflow fails to record this success (a lost report, a worker lost
        # after this line), the retry finds the finished job and returns it instead of paying again.
        ti = context["ti"]
        if request is None:  # resumed from a deferral: the summary pushed at submit
            request = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_REQUEST, map_indexes=ti.map_index)
        if job.video_url:
            ti.xcom_push(key=XCOM_VIDEO_URL, value=job.video_url)
        result = job_result(job, hook=self.hook, metadata=self.metadata, request=request)
        self.log.info(
            "Job %s done: %s (waited %s s, %s polls, list price %s %s)",
            job.id,
            redact_url(job.video_url) if job.video_url else None,
            waited,
            polls,
            result["price"],
            result["price_currency"],
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (optional provider): the input images as datasets, the rendered video as output,
        and the job (id, model, options, list price) as the run facet ``cogvideo_job``, from what this
        process holds (a deferred task: the event it resumed with); see :mod:`..lineage`."""
        from airflow_provider_cogvideo.lineage import generation_lineage

        return generation_lineage(self, task_instance)


__all__ = ["CogVideoGenerateOperator"]
