"""What the API's answers mean: a job read from a 2xx, the code and message of an error body, and a
request that got no answer at all (and whether it may have reached the server).

:mod:`.downloads` reads an answer's bytes within bounds; this module reads what they say, and never
trusts them: a job id goes into the next request's URL only once checked, and a field that cannot be
read is named without its value (which may echo the request). The hook
(:class:`~airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook`) sends and retries; what a failed
submit means for sending it again is :mod:`.submit_policy`'s.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoTransportError,
    CogVideoUnexpectedAnswerError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest
from airflow_provider_cogvideo.redact import shorten

if TYPE_CHECKING:
    import httpx

_JOB_ID_RE = re.compile(r"(?!\.+\Z)[A-Za-z0-9_.-]{1,128}")
"""Letters, digits, '.', '_', '-'; not dots only: "." and ".." would walk up the query path."""


def checked_job_id(job_id: str) -> str:
    """``job_id`` if it may go into a query's URL path, else :class:`CogVideoValidationError`."""
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise CogVideoValidationError(
            "job_id",
            f"must be 1-128 letters, digits, '.', '_' or '-', and not dots only; got {shorten(repr(job_id), 80)}",
        )
    return job_id


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """``{"error": {"code", "message"}}`` (the real shape) plus the variants other clients tolerate."""
    if not isinstance(body, dict):
        return None, None
    err = body.get("error")
    if isinstance(err, dict):
        code, message = err.get("code"), err.get("message")
    else:
        code = body.get("code")
        message = err if isinstance(err, str) else body.get("message") or body.get("msg")
    return (str(code) if code is not None else None), (str(message) if message is not None else None)


def _sent_nothing(exc: Exception) -> bool:
    """True for httpx failures that happen before a request leaves this machine, told apart by type
    (as httpx's own ``map_exceptions`` does): no connection, no pool slot, no usable proxy or scheme."""
    import httpx

    return isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.ProxyError | httpx.UnsupportedProtocol,
    )


def _transport_failure(exc: Exception) -> CogVideoTransportError:
    """An exception raised before an answer arrived, with whether the request may have reached the
    server (the submit policy resends only those that cannot have)."""
    return CogVideoTransportError(
        f"request failed before an answer arrived: {type(exc).__name__}", may_have_arrived=not _sent_nothing(exc)
    )


def send(request: Callable[[], httpx.Response]) -> httpx.Response:
    """``request()``'s answer; httpx's failure to get one raised as :class:`CogVideoTransportError`."""
    import httpx

    try:
        return request()
    except httpx.TransportError as exc:
        raise _transport_failure(exc) from exc


async def asend(request: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Async :func:`send`."""
    import httpx

    try:
        return await request()
    except httpx.TransportError as exc:
        raise _transport_failure(exc) from exc


def _read_job(answer: dict[str, Any]) -> TaskResult:
    """A 2xx answer as a job, or :class:`CogVideoUnexpectedAnswerError` naming the first field that
    could not be read (never pydantic's own error, and never the value: it may echo the request)."""
    try:
        return TaskResult.model_validate(answer)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in err["loc"]) or "answer"
        problem = err["msg"]
    # Raised outside the except: pydantic's error holds the value, which no chained context may carry.
    raise CogVideoUnexpectedAnswerError(f"the answer's {where!r} could not be read ({problem})", http_status=200)


def submitted(answer: dict[str, Any], request: VideoGenerationRequest) -> TaskResult:
    """The job a 2xx submit answer describes. An answer that cannot be read as a job, or without a
    job id that queries could use, may follow a created (and billed) job that cannot be tracked: as
    ambiguous as a lost answer, never resent (and never left to Airflow's retries)."""
    try:
        job = _read_job(answer)
    except CogVideoUnexpectedAnswerError as exc:
        raise CogVideoAmbiguousSubmitError(request.request_id, exc.api_message) from None
    if not job.id:
        raise CogVideoAmbiguousSubmitError(request.request_id, "the submit answer carried no job id")
    try:
        checked_job_id(job.id)
    except CogVideoValidationError as exc:
        raise CogVideoAmbiguousSubmitError(request.request_id, f"the submit answer's {exc}") from None
    if job.model is None or job.request_id is None:
        job = job.model_copy(
            update={"model": job.model or request.model, "request_id": job.request_id or request.request_id}
        )
    return job


def queried(answer: dict[str, Any], job_id: str) -> TaskResult:
    """The job a 2xx query answer describes; one that cannot be read is retryable like a 5xx (a query
    creates nothing), so the poll error budget decides how long to put up with it."""
    job = _read_job(answer)
    return job if job.id else job.model_copy(update={"id": job_id})


__all__ = ["asend", "checked_job_id", "error_fields", "queried", "send", "submitted"]
