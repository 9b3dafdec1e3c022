"""CogVideoHook: the API's surface. Submits and queries over sync and pooled async httpx, request
retries, result downloads, waiting for a job, and generating in one call.

The hook owns every byte that crosses the wire. Operators, sensors and triggers call it; they never
build requests themselves. Its parts live beside it, each in one module: the connection, its settings
and the credential (:mod:`.connection`), what an answer means (:mod:`.answers`), which failed submits
are sent again (:mod:`.submit_policy`), how much of any body is read and how fast (:mod:`.bodies`),
where a download may go (:mod:`.addresses`) and how it is fetched (:mod:`.downloads`).

Retries: tenacity waiting by the one :class:`~airflow_provider_cogvideo.backoff.Backoff` policy, on
retryable errors only (the taxonomy in :mod:`airflow_provider_cogvideo.errors`). A submit costs
money, so it follows :data:`~.submit_policy.SUBMIT_POLICY` instead: it is resent only when the answer
proves no job was created (no connection, a 429 or 503 refusal, an expired JWT). An answer that may
follow a created job (another 5xx, a 2xx without a usable job id, a lost answer) raises
:class:`~airflow_provider_cogvideo.errors.CogVideoAmbiguousSubmitError`; with ``resend_submit_on_5xx``
a 5xx is resent with the same ``request_id``, for endpoints known to de-duplicate by it.

Every answer is read within the bounds of :mod:`.bodies`; one that cannot be read within them is
judged by its status alone (a 2xx: an answer that cannot be read, so a query spends its error budget
and a submit is ambiguous). Downloads never send the key and do not trust the URL, which came from an
API answer: every redirect hop is checked and connected to at the address checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from airflow.sdk import BaseHook

from airflow_provider_cogvideo import CONN_TYPE, DEFAULT_CONN_ID, PACKAGE_NAME, __version__, metrics
from airflow_provider_cogvideo.backoff import Backoff, retry_after_seconds
from airflow_provider_cogvideo.capabilities import estimate_price
from airflow_provider_cogvideo.errors import (
    CogVideoAPIError,
    CogVideoAuthError,
    CogVideoConnectionConfigError,
    CogVideoError,
    api_error,
)
from airflow_provider_cogvideo.events import JobEvent, job_error, read_event
from airflow_provider_cogvideo.hooks.addresses import AddressPolicy
from airflow_provider_cogvideo.hooks.answers import asend, checked_job_id, error_fields, queried, send, submitted
from airflow_provider_cogvideo.hooks.bodies import (
    API_ACCEPT_ENCODING,
    MAX_ANSWER_BYTES,
    BodyLimits,
    aread_answer,
    read_answer,
)
from airflow_provider_cogvideo.hooks.connection import (
    CogVideoConnectionSettings,
    Credentials,
    checked_max_retries,
    form_widgets,
    ui_field_behaviour,
)
from airflow_provider_cogvideo.hooks.downloads import MAX_DOWNLOAD_BYTES, Download, open_download
from airflow_provider_cogvideo.hooks.prompt_writing import write_prompt
from airflow_provider_cogvideo.hooks.submit_policy import ambiguous_as_such, resends
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest
from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, JobWatch
from airflow_provider_cogvideo.prepare import prepare_request
from airflow_provider_cogvideo.prompt_writer import WriterInputs, WrittenPrompt
from airflow_provider_cogvideo.redact import scrub
from airflow_provider_cogvideo.validation import checked_wait_settings

if TYPE_CHECKING:
    import httpx

SUBMIT_PATH = "videos/generations"
CHAT_PATH = "chat/completions"
QUERY_PATH = "async-result/{job_id}"
DEFAULT_GENERATE_TIMEOUT = 7200.0
"""How long :meth:`CogVideoHook.generate` waits for a job by default (seconds), as the operator."""
# A job id no real job has: test_connection() queries it, which costs nothing.
PROBE_JOB_ID = "0"
# Connection pools. The sync client serves one task's calls; the async one is shared by every
# trigger of a triggerer's event loop (hundreds of jobs polled at once), so it keeps more sockets.
SYNC_POOL = {"max_connections": 20, "max_keepalive_connections": 10}
ASYNC_POOL = {"max_connections": 100, "max_keepalive_connections": 100}
# A server's Retry-After is honoured up to retry_max_wait, and at least up to this many seconds.
MIN_RETRY_AFTER_CAP = 1.0

_P = ParamSpec("_P")
_R = TypeVar("_R")


# One pooled AsyncClient per (event loop, transport settings and credential): triggers in one
# triggerer loop share connections instead of opening a client per trigger or per poll.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _user_agent() -> str:
    import httpx

    return f"{PACKAGE_NAME}/{__version__} httpx/{httpx.__version__}"


def _blocking(
    coroutine: Callable[Concatenate[CogVideoHook, _P], Awaitable[_R]], doc: str
) -> Callable[Concatenate[CogVideoHook, _P], _R]:
    """The blocking twin of a hook coroutine (``agenerate`` → ``generate``), with the coroutine's
    parameters: one signature, typed and documented once, that ``inspect.signature`` and ``help()``
    show for both.

    The call runs in a fresh event loop (``asyncio.run``: not from inside a running one); the pooled
    async clients of that loop are closed before it ends, as the loop ends with the call."""

    def blocking(self: CogVideoHook, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        async def run() -> _R:
            try:
                return await getattr(self, coroutine.__name__)(*args, **kwargs)
            finally:
                await aclose_clients()

        return asyncio.run(run())

    blocking.__name__ = coroutine.__name__.removeprefix("a")
    blocking.__qualname__ = coroutine.__qualname__.replace(coroutine.__name__, blocking.__name__)
    blocking.__doc__ = doc
    blocking.__wrapped__ = coroutine  # type: ignore[attr-defined]
    return blocking


class CogVideoHook(BaseHook):
    """Talks to the CogVideoX / Vidu video generation API.

    :param cogvideo_conn_id: the connection id (type ``cogvideo``).
    :param max_retries: overrides the connection's ``max_retries`` extra (``0`` = one attempt), within
        the same bounds (0 to 10).
    """

    conn_name_attr = "cogvideo_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "CogVideoX"

    def __init__(self, cogvideo_conn_id: str = DEFAULT_CONN_ID, *, max_retries: int | None = None) -> None:
        super().__init__()
        self.cogvideo_conn_id = cogvideo_conn_id
        self._max_retries_override = checked_max_retries(max_retries)
        self._settings: CogVideoConnectionSettings | None = None
        self._credentials: Credentials | None = None

    # ------------------------------------------------------------------ connection
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form hints for Airflow < 3.2 (3.2+ reads the declarative copy in provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras' form fields for Airflow < 3.2, built from the declarative ``conn-fields`` that
        3.2+ reads (:func:`~.connection.form_widgets`)."""
        return form_widgets()

    def _settings_from_connection(self, conn: Any) -> CogVideoConnectionSettings:
        """The connection's settings; an unusable connection is named in the error (a DAG may use several)."""
        try:
            return CogVideoConnectionSettings.from_fields(
                password=conn.password, host=conn.host, schema=conn.schema, port=conn.port, extra=conn.extra_dejson
            )
        except CogVideoConnectionConfigError as exc:
            raise CogVideoConnectionConfigError(f"connection {self.cogvideo_conn_id!r}: {exc}") from None

    def _adopt(self, settings: CogVideoConnectionSettings) -> CogVideoConnectionSettings:
        if self._max_retries_override is not None:  # already bounded by checked_max_retries
            settings = settings.model_copy(update={"max_retries": self._max_retries_override})
        if settings.ignored_extras:
            self.log.warning(
                "Connection %s: unknown extras ignored: %s", self.cogvideo_conn_id, settings.ignored_extras
            )
        self._settings = settings
        self._credentials = Credentials(settings)
        return settings

    @property
    def settings(self) -> CogVideoConnectionSettings:
        """Connection settings, looked up synchronously once (use :meth:`aget_settings` in a trigger)."""
        if self._settings is None:
            self._adopt(self._settings_from_connection(self.get_connection(self.cogvideo_conn_id)))
        assert self._settings is not None
        return self._settings

    async def aget_settings(self) -> CogVideoConnectionSettings:
        """Connection settings looked up without blocking the event loop (safe in the Airflow 3 triggerer)."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection

            conn = await get_async_connection(self.cogvideo_conn_id, hook=self)
            self._adopt(self._settings_from_connection(conn))
        assert self._settings is not None
        return self._settings

    def _auth_header(self) -> str:
        assert self._credentials is not None
        return self._credentials.header()

    def _request_headers(self) -> dict[str, str]:
        return {
            "Authorization": self._auth_header(),
            "Content-Type": "application/json; charset=UTF-8",
            "Accept": "application/json",
        }

    # ------------------------------------------------------------------ clients
    def _timeout(self, settings: CogVideoConnectionSettings) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(settings.request_timeout, connect=settings.connect_timeout)

    def _client_options(self, settings: CogVideoConnectionSettings) -> dict[str, Any]:
        """What the sync and the pooled async API clients share: the base URL, timeouts and headers."""
        return {
            "base_url": settings.base_url + "/",
            "timeout": self._timeout(settings),
            "headers": {"User-Agent": _user_agent(), "Accept-Encoding": API_ACCEPT_ENCODING},
        }

    @cached_property
    def _client(self) -> httpx.Client:
        import httpx

        return httpx.Client(**self._client_options(self.settings), limits=httpx.Limits(**SYNC_POOL))

    async def _async_client(self) -> httpx.AsyncClient:
        import httpx

        settings = await self.aget_settings()
        loop = asyncio.get_running_loop()
        per_loop = _ASYNC_CLIENTS.setdefault(loop, {})
        client = per_loop.get(settings.transport_key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(**self._client_options(settings), limits=httpx.Limits(**ASYNC_POOL))
            per_loop[settings.transport_key] = client
        return client

    def _answer_limits(self) -> BodyLimits:
        """How much of an API answer is read, and how slowly (the module docstring of :mod:`.bodies`)."""
        settings = self._settings
        assert settings is not None
        return BodyLimits(MAX_ANSWER_BYTES, grace=settings.request_timeout, min_rate=settings.min_transfer_rate)

    def _receive(self, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one API request and read its answer within :meth:`_answer_limits` (read here, one
        network read at a time, not by httpx: its decoder would inflate a compressed read whole)."""
        assert self._credentials is not None
        request = client.build_request(method, path, headers=self._request_headers(), **kwargs)
        response = client.send(request, stream=True)
        try:
            return read_answer(response, self._answer_limits(), secrets=self._credentials.secrets())
        finally:
            response.close()

    async def _areceive(self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Async :meth:`_receive`."""
        assert self._credentials is not None
        request = client.build_request(method, path, headers=self._request_headers(), **kwargs)
        response = await client.send(request, stream=True)
        try:
            return await aread_answer(response, self._answer_limits(), secrets=self._credentials.secrets())
        finally:
            await response.aclose()

    def close(self) -> None:
        """Close the sync client (the async ones are shared per event loop; see :func:`aclose_clients`)."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()

    # ------------------------------------------------------------------ errors and retries
    def _raise_for_answer(self, response: httpx.Response) -> dict[str, Any]:
        """Return the JSON body of a 2xx answer; raise the taxonomy's exception otherwise."""
        settings = self._settings
        assert settings is not None and self._credentials is not None
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        code, message = error_fields(body)
        if response.is_success:  # 2xx without a JSON object: treat as a server fault
            code, message = None, f"unexpected non-JSON answer ({len(response.content)} bytes)"
        # Server text reaches exceptions, XCom and trigger events: without secrets, and capped.
        message = scrub(message or response.reason_phrase or "no message", self._credentials.secrets())
        # An expired JWT (1003) is worth one more attempt: the next one signs a fresh token.
        resign = code == "1003" and settings.auth == "jwt"
        if resign:
            self._credentials.invalidate()
        raise api_error(
            response.status_code,
            code,
            message,
            retry_after_seconds(response.headers.get("retry-after")),
            retryable=True if resign else None,
        )

    @property
    def backoff(self) -> Backoff:
        """The wait between attempts of one request, from the connection's ``retry_*_wait`` extras."""
        settings = self.settings
        return Backoff(
            first=settings.retry_min_wait,
            ceiling=settings.retry_max_wait,
            retry_after_cap=max(settings.retry_max_wait, MIN_RETRY_AFTER_CAP),
        )

    def _resends_submit(self, exc: BaseException) -> bool:
        """Whether a failed submit attempt is sent again (:func:`~.submit_policy.resends`, with the
        connection's ``resend_submit_on_5xx``)."""
        return resends(exc, resend_on_5xx=self.settings.resend_submit_on_5xx)

    def _retry_kwargs(self, retry: Callable[[BaseException], bool]) -> dict[str, Any]:
        from tenacity import retry_if_exception, stop_after_attempt

        settings = self._settings
        assert settings is not None
        attempts = settings.max_retries + 1

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "CogVideo request failed (attempt %d of %d): %s; retrying in %.1f s",
                state.attempt_number,
                attempts,
                exc,
                state.next_action.sleep if state.next_action else 0.0,
            )

        return dict(
            stop=stop_after_attempt(attempts),
            wait=self.backoff,
            retry=retry_if_exception(retry),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(
        self,
        request: Callable[[], httpx.Response],
        read: Callable[[dict[str, Any]], _R],
        *,
        retry: Callable[[BaseException], bool] | None,
    ) -> _R:
        """One ``request``, its answer ``read`` as a job, sent again while ``retry`` says so (None: one
        attempt). Reading is part of the attempt: an answer that cannot be read is retried as its
        error says (a query's, like a 5xx; a submit's, never)."""
        if retry is None:  # one attempt: skip tenacity's machinery (triggers poll thousands of times)
            return read(self._raise_for_answer(send(request)))
        from tenacity import Retrying

        for attempt in Retrying(**self._retry_kwargs(retry)):
            with attempt:
                return read(self._raise_for_answer(send(request)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(
        self,
        request: Callable[[], Awaitable[httpx.Response]],
        read: Callable[[dict[str, Any]], TaskResult],
        *,
        retry: Callable[[BaseException], bool] | None,
    ) -> TaskResult:
        """Async :meth:`_call`."""
        if retry is None:
            return read(self._raise_for_answer(await asend(request)))
        from tenacity import AsyncRetrying

        async for attempt in AsyncRetrying(**self._retry_kwargs(retry)):
            with attempt:
                return read(self._raise_for_answer(await asend(request)))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ API
    def submit(self, request: VideoGenerationRequest) -> TaskResult:
        """``POST /videos/generations``. Returns the new job (status PROCESSING) with its ``id``.

        Resent (the same body, so the same ``request_id``) only as :data:`~.submit_policy.SUBMIT_POLICY`
        allows; an answer that may follow a created job raises ``CogVideoAmbiguousSubmitError``. The
        caller counts a job it keeps with :meth:`record_submit`."""
        self.settings  # noqa: B018 - resolve the connection before timing anything
        body = request.to_body()
        with ambiguous_as_such(request.request_id):
            return self._call(
                lambda: self._receive(self._client, "POST", SUBMIT_PATH, json=body),
                lambda answer: submitted(answer, request),
                retry=self._resends_submit,
            )

    async def asubmit(self, request: VideoGenerationRequest) -> TaskResult:
        """Async :meth:`submit`."""
        client = await self._async_client()
        body = request.to_body()
        with ambiguous_as_such(request.request_id):
            return await self._acall(
                lambda: self._areceive(client, "POST", SUBMIT_PATH, json=body),
                lambda answer: submitted(answer, request),
                retry=self._resends_submit,
            )

    def get_task(self, job_id: str, *, retry: bool = True) -> TaskResult:
        """``GET /async-result/{id}``: the job's status and, on SUCCESS, its video and cover URLs.

        (Named after the API's word for a job, *task*, like the official SDK's method.) A query
        creates nothing, so every retryable error is retried."""
        path = QUERY_PATH.format(job_id=checked_job_id(job_id))
        self.settings  # noqa: B018
        return self._call(
            lambda: self._receive(self._client, "GET", path),
            lambda answer: queried(answer, job_id),
            retry=_retryable if retry else None,
        )

    async def aget_task(self, job_id: str, *, retry: bool = True) -> TaskResult:
        """Async :meth:`get_task`. Triggers pass ``retry=False`` and apply their own error budget."""
        path = QUERY_PATH.format(job_id=checked_job_id(job_id))
        client = await self._async_client()
        return await self._acall(
            lambda: self._areceive(client, "GET", path),
            lambda answer: queried(answer, job_id),
            retry=_retryable if retry else None,
        )

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /chat/completions`` (the same account, auth and answer caps): the answer's JSON.

        A chat call creates no job and costs a few tokens, so it is retried like a query; use
        :meth:`write_prompt` to write a video prompt."""
        self.settings  # noqa: B018
        return self._call(
            lambda: self._receive(self._client, "POST", CHAT_PATH, json=body), lambda answer: answer, retry=_retryable
        )

    def write_prompt(
        self, writer: Any, inputs: WriterInputs, *, image: str | None = None, fallback: str | None = None
    ) -> WrittenPrompt:
        """Write the prompt for one video with a chat model (:mod:`~airflow_provider_cogvideo.prompt_writer`;
        ``writer`` a ``PromptWriter`` or its dict; ``image`` a data URI or URL, read by vision models),
        falling back to ``fallback`` (default ``inputs.prompt``) after ``attempts`` unusable answers or
        a content-policy refusal; transient errors are retried, then raised (:mod:`.prompt_writing`)."""
        return write_prompt(self, writer, inputs, image=image, fallback=fallback)

    def job_url(self, job_id: str) -> str:
        """The job's status URL on the API (needs the key: for logs and tooling, not for a browser)."""
        return f"{self.settings.base_url}/{QUERY_PATH.format(job_id=checked_job_id(job_id))}"

    def price_of(self, model: str | None) -> tuple[float | None, str | None]:
        """List-price estimate for one video of ``model`` on this connection's endpoint."""
        estimate = estimate_price(model, self.settings.base_url)
        return (estimate.amount, estimate.currency) if estimate else (None, None)

    def record_submit(self, job: TaskResult, request: VideoGenerationRequest) -> None:
        """Count a job the API accepted (``cogvideo.submits`` and its list price) and log it: called once
        per job by whoever submitted it (the generate operator, :meth:`agenerate`), after the submit,
        so a job that is paid for is always counted and a refused submit never is."""
        price, currency = self.price_of(job.model)  # the settings are cached by the submit: no lookup
        metrics.incr("cogvideo.submits", model=request.model)
        metrics.count_price(price, currency, model=request.model)
        self.log.info(
            "Submitted job %s (model %s, request_id %s, list price %s %s)",
            job.id,
            job.model,
            job.request_id,
            price,
            currency,
        )

    @contextlib.contextmanager
    def stream_download(self, url: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Iterator[Download]:
        """Open a result URL as a stream (status checked): a :class:`~.downloads.Download` whose
        ``iter_bytes()`` yields the body as it arrives. Never sends the API key: result URLs are public,
        signed CDN links, and the key must not travel to another host.

        The URL comes from the API's answer, so it is not trusted to point anywhere: redirects are
        followed one hop at a time, every hop is checked and connected to at the address checked
        (:class:`~.addresses.AddressPolicy`). The body is refused compressed, stops past ``max_bytes``
        (:class:`~airflow_provider_cogvideo.errors.CogVideoDownloadTooLargeError`) and must arrive
        at the connection's ``min_transfer_rate`` after a grace of ``request_timeout``."""
        settings = self.settings
        with open_download(
            url,
            policy=AddressPolicy.for_api(settings.base_url),
            limits=BodyLimits(max_bytes, grace=settings.request_timeout, min_rate=settings.min_transfer_rate),
            timeout=self._timeout(settings),
            headers={"User-Agent": _user_agent()},
        ) as download:
            yield download

    # ------------------------------------------------------------------ waiting
    async def await_job(self, watch: JobWatch) -> dict[str, Any]:
        """Poll ``watch.job_id`` on ``watch``'s schedule until it ends; returns the one event payload.

        The triggerer runs this (the trigger's loop), and so do the operator's synchronous path and
        :meth:`generate`: one loop, one behaviour. Single-attempt polls: ``watch`` owns the error budget.
        """
        model = watch.model or "unknown"
        while (sleep := watch.next_sleep()) is not None:
            await asyncio.sleep(sleep)
            try:
                job = await self.aget_task(watch.job_id, retry=False)
            except Exception as exc:
                metrics.incr("cogvideo.poll_errors", model=model)
                event = watch.on_error(exc)
            else:
                metrics.incr("cogvideo.polls", model=model)
                event = watch.on_result(job)
            if event is not None:
                if event["status"] == "success":
                    metrics.timing("cogvideo.render_time", event["waited_seconds"], model=model)
                return event
        return watch.timeout_event()

    async def agenerate(
        self,
        *,
        image: str | list[str] | None = None,
        aws_conn_id: str | None = "aws_default",
        timeout: float = DEFAULT_GENERATE_TIMEOUT,
        poll_interval: float | None = None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        **fields: Any,
    ) -> TaskResult:
        """Async :meth:`generate`, with the same arguments (reading ``s3://`` or file images happens in
        a worker thread)."""
        poll_interval, error_budget, timeout = checked_wait_settings(
            poll_interval=poll_interval, error_budget=error_budget, timeout=timeout
        )
        prepared = await asyncio.to_thread(prepare_request, image=image, aws_conn_id=aws_conn_id, **fields)
        job = await self.asubmit(prepared.request)
        assert job.id is not None
        submitted_at = time.time()
        self.record_submit(job, prepared.request)
        watch = JobWatch(
            job.id,
            deadline=submitted_at + (timeout or DEFAULT_GENERATE_TIMEOUT),
            waiting_since=submitted_at,
            model=prepared.request.model,
            poll_interval=poll_interval,
            error_budget=error_budget,
            log=self.log,
        )
        event = read_event(await self.await_job(watch), JobEvent)
        error = job_error(event)
        if error is not None:
            raise error
        return TaskResult.model_validate(event.result)

    generate = _blocking(
        agenerate,
        """Submit one job and wait for it, in one call (for ``@task`` functions): the operator's
        validation, submit policy and poll schedule, without Airflow's deferral (the worker slot is
        held while the video renders) or crash-safe store. A retry of the calling task submits (and
        pays for) a new job: use the operator for that.

        Returns the finished job (a ``TaskResult``: ``id``, ``model``, ``request_id``, ``task_status``,
        ``video_url``, ``cover_image_url``). Raises ``CogVideoValidationError`` before paying
        (``CogVideoMissingExtraError`` when an image needs the ``images`` or ``amazon`` extra),
        ``CogVideoAmbiguousSubmitError`` when a submit may have created a job,
        ``CogVideoJobFailedError`` or ``CogVideoJobTimeoutError`` after waiting
        (:func:`~airflow_provider_cogvideo.events.job_error`).
        Runs :meth:`agenerate` with the same arguments in a fresh event loop (``asyncio.run``), so
        not from inside a running one.

        :param image: one image or a list, as the operator's ``image`` (URL, data URI, base64,
            ``s3://``, path).
        :param aws_conn_id: ``aws`` connection for ``s3://`` images.
        :param timeout: seconds to wait for the job, up to 7 days.
        :param poll_interval: fixed seconds between polls (1 to 3600); unset: the adaptive schedule.
        :param error_budget: consecutive transient poll errors tolerated (0 to 100).
        :param fields: the request's fields, as the operator's: ``model`` (default ``cogvideox-3``),
            ``prompt``, ``quality``, ``with_audio``, ``watermark_enabled``, ``size``, ``fps``,
            ``duration``, ``aspect_ratio``, ``style``, ``movement_amplitude``, ``user_id``,
            ``request_id``, ``extra_body``, ``capability_overrides``; an unknown field is refused.
        """,
    )

    def test_connection(self) -> tuple[bool, str]:
        """Check the key without paying: query a job id that cannot exist.

        The API does not define the answer for an unknown id. A 401 means the key is wrong; a 5xx
        or no answer means the service is unreachable; any other answer (400/404) means the key was
        accepted.
        """
        try:
            settings = self.settings
            self.get_task(PROBE_JOB_ID, retry=False)
        except CogVideoConnectionConfigError as exc:
            return False, str(exc)
        except CogVideoAuthError as exc:
            return False, f"Authentication failed: {exc}"
        except CogVideoAPIError as exc:
            if exc.http_status is not None and exc.http_status >= 500:
                return False, f"Service error: {exc}"
            return True, f"Connection works: {settings.base_url} accepted the key (probe answered {exc.http_status})"
        except CogVideoError as exc:
            return False, f"Cannot reach the API: {exc}"
        return True, f"Connection works: {settings.base_url} accepted the key"


async def aclose_clients() -> None:
    """Close the pooled async clients of the running event loop (tests, benchmarks, shutdown)."""
    loop = asyncio.get_running_loop()
    for client in _ASYNC_CLIENTS.pop(loop, {}).values():
        await client.aclose()


def _retryable(exc: BaseException) -> bool:
    """The retry rule of requests that create nothing (queries): the error table's flag."""
    return isinstance(exc, CogVideoError) and exc.retryable


__all__ = ["CogVideoHook", "aclose_clients"]
