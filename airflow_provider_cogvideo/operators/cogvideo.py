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
from airflow_provider_cogvideo.budget import SpendLedger, checked_spend_plan
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
from airflow_provider_cogvideo.operators.prompt_writing import PromptWritingMixin, checked_writer
from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, DEFAULT_TIMEOUT
from airflow_provider_cogvideo.prepare import PreparedRequest, check_literal_options, checked_options, prepare_request
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


class CogVideoGenerateOperator(PromptWritingMixin, CogVideoHookMixin, BaseOperator):
    r"""Generate a video with CogVideoX or Vidu, without holding a worker slot while it renders.

    Templated fields are rendered first, and text such as ``"{{ params.fps }}"`` is read as the
    field's type. **Unset**, for every templated field (one rule,
    :func:`~airflow_provider_cogvideo.validation.is_unset`): a field that renders to empty text,
    ``None`` or ``null`` (any case, spaces around the word ignored) counts as unset, as if it had not
    been given: an unset ``{{ params.x }}`` renders to ``"None"``, a blank form field to ``""``. So
    ``model`` falls back to ``cogvideox-3``, ``max_total_price`` to no limit, ``dry_run`` to ``False``,
    ``cogvideo_conn_id`` to ``cogvideo_default``, ``metadata`` to ``{}``. Text of spaces alone is a
    value, not unset: it is refused where it cannot be one (a prompt of blanks would buy a random
    video).

    Bounds are checked when the DAG is parsed, or, for templated fields, after rendering; an error
    names the field, the value and what is allowed. In a plain (unmapped) operator, a ``model`` and the
    capability table's options (``size``, ``fps``, ``duration``, ``quality``, ``aspect_ratio``,
    ``style``, ``movement_amplitude``) written literally are checked against the table when the DAG is
    parsed, so ``size="720x480"`` on ``cogvideox-3`` fails the import. Templates, XComArgs and the
    values of ``.partial().expand()`` reach the operator only when the task runs, and are checked
    then, before anything is paid for.

    :param prompt: text description, at most 512 characters. Required by some models; a prompt or an
        image is always required. Refused, never stripped (what is sent is what was asked): a prompt
        without a letter, digit, punctuation mark or symbol (only whitespace, zero-width or other
        invisible characters), and one holding a control character (NUL, TAB, CR, LF, any Unicode Cc)
        or a line separator (U+2028/U+2029): a prompt is one line. A multi-line Jinja template must
        render to one line (``{%- -%}``, or ``| replace("\n", " ")``). The error names the character
        (``U+000A``) and its position.
    :param image: one image, a list of two (first/last frame) or up to three (``vidu2-reference``): an
        http(s) URL (passed to the service unread), a data URI or bare base64, an ``s3://bucket/key``
        (read with ``aws_conn_id``) or a local path. Everything but a URL is read, checked (size,
        format, decodability, pixel budget) and sent as a data URI; that needs the ``images`` extra
        (and ``amazon`` for ``s3://``), else the task fails without retries before anything is sent.
    :param model: one of the capability table's models, in any case (Zhipu's ``CogVideoX-3`` is read,
        sent and fingerprinted as ``cogvideox-3``); an unknown name is refused with the closest known
        one ("did you mean").
    :param quality: ``"speed"`` or ``"quality"`` (CogVideoX).
    :param with_audio: generate sound (models that support it).
    :param size: e.g. ``"1920x1080"``, from the model's sizes.
    :param fps: 30 or 60 (CogVideoX).
    :param duration: seconds, from the model's durations.
    :param watermark_enabled: API field, passed as given.
    :param aspect_ratio: Vidu: ``16:9``, ``9:16``, ``1:1`` (models that take it).
    :param style: Vidu: ``general``, ``anime`` (models that take it).
    :param movement_amplitude: Vidu: ``auto``, ``small``, ``medium``, ``large``.
    :param user_id: end-user id for the API, 6 to 128 characters.
    :param request_id: client request id (6 to 64 printable characters, no whitespace); unset: a fresh
        unique ``af-<uuid>`` per submit. Named in every ambiguous-submit error.
    :param metadata: carried untouched into the result (e.g. a product id); must be a dict.
    :param extra_body: merged last into the JSON body, **unvalidated** (escape hatch).
    :param capability_overrides: replace columns of the model's capability row for this task, e.g.
        ``{"sizes": ["640x360"]}``, or ``"*"`` for any value; also lets a model the table does not know
        through.
    :param cogvideo_conn_id: the ``cogvideo`` connection.
    :param aws_conn_id: ``aws`` connection for ``s3://`` images.
    :param deferrable: wait in the triggerer (recommended: no worker slot is held while the video
        renders). ``False`` polls on the worker with the same loop, holding the slot. The default
        follows ``[operators] default_deferrable``, as for Airflow's own providers, so a deployment
        without a triggerer never has tasks stuck deferred: pass ``deferrable=True`` where one runs.
    :param wait_for_completion: ``False`` returns right after the submit (``task_status``
        ``PROCESSING``, with the ``request_id``); wait later with ``CogVideoTaskSensor``.
    :param poll_interval: fixed seconds between polls, 1 to 3600 (tests, renders of seconds). Unset:
        the adaptive schedule, first poll at three quarters of the model's typical shortest render (at
        least 5 s: 45 s for ``cogvideox-3``, 22.5 s for ``vidu2-*``), then every 15 % of the time
        waited, between 8 and 10 s.
    :param timeout: how long one try waits (seconds or a ``timedelta``), up to 7 days; becomes an
        absolute epoch deadline when the try starts, carried in the trigger's kwargs (a triggerer
        restart keeps the same end) and capped by ``execution_timeout`` (which Airflow 3 does not
        enforce on deferred tasks). ``None``: ``execution_timeout``, else 2 hours. When it passes, the
        try fails (retried) naming the job and the time waited; the job keeps running and a retry
        reconnects to it with a fresh window.
    :param error_budget: consecutive transient poll errors (429, 5xx, timeouts) tolerated before the
        try fails, 0 to 100; a refused key or an unknown job ends the wait after one request.
    :param dry_run: validate and price exactly as for a real submit (images are read and checked), log
        the body that would be sent, send **nothing**; returns ``task_status: "DRY_RUN"`` and the price
        (the connection is read, for the endpoint's currency; no request is sent, no budget or store is
        touched), which ``CogVideoToS3Operator`` skips. Text ``true/1/yes/on`` or ``false/0/no/off``
        (any case), e.g. ``"{{ params.dry_run }}"``; unset is ``False``.
    :param regenerate: ask for a new (paid) video although this task instance already has a finished
        one. A finished job is kept for the task instance, so a retry after any failure (even one that
        happened after the job succeeded) returns it instead of paying again; a deliberate re-run (a
        clear) does the same unless ``regenerate`` is set. Any value other than ``None``/``False`` is a
        label in the request's fingerprint: the first try with a new label pays once, its retries and
        later clears with the same label reuse that video, so give a new label (a date, a counter, e.g.
        ``"{{ dag_run.conf.get('regenerate') }}"``) each time a new video is wanted. The task instance
        remembers one job: going back to an earlier label (or to none) is a new request, paid again.
    :param max_total_price: the most this task's mapped instances may spend in one run, in list price
        of the endpoint's currency (CNY on BigModel, USD on Z.AI), 0 to 1e9, e.g.
        ``"{{ params.max_total_price }}"``. A submit that would pass it fails without paying; retries
        and resubmits count (a ledger in XCom and ``task_state_store``, Airflow 3.3+). Unset: no limit.
    :param spend_plan: ``{"run_estimate": E, "share": p}``, this item's part of a run plan
        (``CogVideoRunPlanOperator`` adds it to each item it prices): the plan checked that the run's
        estimate E fits ``max_total_price``, so a submit within this item's share p reads no other
        instance's spend, and only one beyond it (a retry that pays again) reads them once, to draw on
        the slack. Numbers from 0 to 1e9, the share at most the estimate. Unset: every submit reads
        every instance's spend (fine for a few dozen mapped products).
    :param options: the request's options as one dict, over the arguments of the same name: a mapped
        item's format, e.g. ``{"size": "1080x1920"}`` (ingestion's item ``options``). Only the capability
        table's options (``size``, ``fps``, ``duration``, ``quality``, ``aspect_ratio``, ``style``,
        ``movement_amplitude``), checked like the arguments.
    :param prompt_writer: write the prompt with a chat model on the same account before the submit
        (off when unset): a dict of :class:`~airflow_provider_cogvideo.prompt_writer.PromptWriter`
        settings (``model``, ``instructions``, ``temperature``, ``top_p``, ``max_tokens``, ``attempts``,
        ``max_price_per_call``), e.g. ``{}`` for the defaults (``glm-4-plus``). ``prompt`` is what it
        expands; each writing is kept under ``video_index`` and reused by every later try and run with
        the same inputs (:mod:`~airflow_provider_cogvideo.operators.prompt_writing`). Needs the
        ``amazon`` extra and ``video_index``.
    :param video_index: ``s3://bucket/prefix/`` of the video index (the transfer's): written prompts are
        kept under its ``.prompts/``. Needed with ``prompt_writer``.
    :param durable: keep the job in ``task_state_store`` (Airflow 3.3+) so retries reconnect to it or
        return it. ``False`` opts out, as ``ResumableJobMixin``'s ``durable`` does for Airflow's own
        providers: every try submits (and pays for) a new job.
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
        "spend_plan",
        "options",
        "video_index",
    )
    template_fields_renderers = {
        "metadata": "json",
        "image": "json",
        "extra_body": "json",
        "spend_plan": "json",
        "options": "json",
    }
    operator_extra_links = (CogVideoVideoLink(),)
    ui_color = "#e8f0fe"
    budget_task_ids: list[str] | None = None
    """The task ids whose instances share ``max_total_price`` (None: this task's own); a subclass that
    spreads one budget over several tasks sets it (the review loop's regenerations)."""

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
        spend_plan: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        prompt_writer: dict[str, Any] | None = None,
        video_index: str | None = None,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.prompt_writer = None if prompt_writer is None else checked_writer(prompt_writer).to_dict()
        except AirflowFailException as exc:
            raise ValueError(str(exc)) from None
        if self.prompt_writer is not None and video_index is None:
            raise ValueError("video_index is needed with prompt_writer: written prompts are kept beside the videos")
        self.options = options
        self.video_index = video_index
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
        self.spend_plan = spend_plan
        self.durable = durable
        named = {name: getattr(self, name) for name, _ in OPTION_COLUMNS}
        given = checked_options(options) if isinstance(options, dict) else {}  # an XComArg or template: at run time
        check_literal_options(model, capability_overrides, {**named, **given})

    # ------------------------------------------------------------------ building the request
    def build_request(self) -> PreparedRequest:
        """The validated request, its fingerprint and its summary. Raises ``AirflowFailException`` on bad input."""
        try:
            metadata = rendered_none(self.metadata)
            if metadata is not None and not isinstance(metadata, dict):
                raise CogVideoValidationError("metadata", f"must be a dict, got {type(metadata).__name__}")
            fields = {name: rendered_none(getattr(self, name)) for name in VideoGenerationRequest.api_fields()}
            fields.update(self._options())
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

    def _options(self) -> dict[str, Any]:
        return checked_options(rendered_none(self.options) or {})

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
            budget, plan = checked_budget(self.max_total_price), checked_spend_plan(self.spend_plan)
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid CogVideo request: {exc}") from None
        return SpendLedger(context["ti"], jobs.state, budget, plan, peers=self.budget_task_ids)

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        with failure_recorded(context, about=self.metadata):
            no_video_yet(context)
            prepared = self.build_request()
            if self._is_dry_run():
                return self._dry_run(self.with_written_prompt(prepared, None, dry_run=True))
            jobs = self._job_store(context)
            (ledger := self._ledger(context, jobs)).publish()
            prepared = self.with_written_prompt(prepared, ledger)
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
        with failure_recorded(context, about=self.metadata):
            resubmit = read_event(event, ResubmitEvent)
            prepared, jobs = self.build_request(), self._job_store(context)
            prepared = self.with_written_prompt(prepared, self._ledger(context, jobs))
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
        with failure_recorded(context, about=self.metadata):
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
