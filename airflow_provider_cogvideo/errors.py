"""Error taxonomy: the exception tree, and one table from API business code / HTTP status to a class.

Every exception derives from :class:`CogVideoError`, so a DAG author can catch the provider's errors
in one place; the branches say what went wrong and so what to do about it::

    CogVideoError                         base; ``retryable`` says whether trying again can help
    ├── CogVideoValidationError           (also ValueError) refused before anything was sent
    ├── CogVideoConnectionConfigError     (also ValueError) the Airflow connection is unusable
    ├── CogVideoMissingExtraError         (also ImportError) an optional extra is not installed
    ├── CogVideoAPIError                  the API answered with an error (code, HTTP status)
    │   ├── CogVideoAuthError             401 / 1000-1005
    │   ├── CogVideoAccountError          1100-1121, 1304, 1308+: cannot pay, locked, quota
    │   ├── CogVideoBadRequestError       400 / 1210-1215, 1261
    │   ├── CogVideoPermissionError       403 / 1220-1222
    │   ├── CogVideoNotFoundError         404
    │   ├── CogVideoDuplicateRequestError 1231
    │   ├── CogVideoContentPolicyError    1300/1301
    │   ├── CogVideoRateLimitError        429 / 1302, 1303, 1305 (retryable)
    │   ├── CogVideoServerError           5xx / 500, 1200, 1230, 1234 (retryable)
    │   └── CogVideoUnexpectedAnswerError a 2xx that cannot be read as a job (retryable for queries)
    ├── CogVideoTransportError            no answer arrived (retryable)
    ├── CogVideoAmbiguousSubmitError      a submit may have created a job: never resent blindly
    ├── CogVideoDownloadError             a result file could not be downloaded completely
    │   └── CogVideoDownloadTooLargeError the file grew past its size cap as it streamed
    └── CogVideoJobError                  how waiting for a job ended (``CogVideoHook.generate``)
        ├── CogVideoJobFailedError        FAIL, or the job cannot be followed (key refused, unknown job)
        └── CogVideoJobTimeoutError       the deadline passed (the job keeps running) (retryable)

``retryable`` is decided when the exception is built (from the table below, or by the class) and
never changed afterwards: whoever catches one can trust it.

:data:`API_ERROR_CODES` is the single source of truth for API answers: the hook reads it to pick the
exception class and decide whether to retry, the emulator reads it to answer with the right HTTP
status and message, and the README's error table is generated from it (:mod:`.docs`).
Retryability follows the API's documented error codes: a rate limit, an overload or a server error
is worth trying again; a refused key, a bad request or an empty balance is not.

``retryable`` is what queries follow (they create nothing). A submit costs money, and some failures
may follow a job that *was* created: whether one is sent again is the submit policy's decision
(:mod:`airflow_provider_cogvideo.hooks.submit_policy`), which reads these classes and fields.

No exception here ever carries the API key: messages come from the server's error body (scrubbed
of the key by the hook) plus the code and status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CogVideoError(Exception):
    """Base class of every error this provider raises.

    Every error survives ``pickle`` with its message and fields (Celery results, the triggerer's and
    executors' process boundaries): Python's default rebuilds an exception by calling its class with
    ``args``, which fails for the keyword fields below, so each is rebuilt from its state instead.
    """

    retryable: bool = False
    """Whether the same call may succeed later. A class default, set per instance where it varies."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuilt, (type(self), self.args, dict(self.__dict__))


def _rebuilt(cls: type[CogVideoError], args: tuple[Any, ...], state: dict[str, Any]) -> CogVideoError:
    """An unpickled error: the same class, ``args`` and fields, without running ``__init__`` again
    (which would rebuild the message from fields that are already in it)."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class CogVideoValidationError(CogVideoError, ValueError):
    """A request that would be refused (and might be billed) if sent: raised before anything is sent.

    ``field`` names the offending request field; the message says the value and what is allowed.
    """

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        self.reason = message
        super().__init__(f"{field_name}: {message}")


class CogVideoConnectionConfigError(CogVideoError, ValueError):
    """The Airflow connection is unusable (bad key format, unknown tier, bad URL...). Never retried."""


class CogVideoMissingExtraError(CogVideoError, ImportError):
    """What was asked needs an optional extra (``pip install 'airflow-provider-cogvideo[<extra>]'``)
    that is not installed, or does not import. Never retried: nothing was sent, and trying again
    in the same environment fails the same way.

    ``extras`` names the missing extras, ``needed_for`` what needed them (an operator, an image);
    raised by :func:`airflow_provider_cogvideo.extras.require_extra`.
    """

    def __init__(self, message: str, *, extras: tuple[str, ...], needed_for: str) -> None:
        self.extras = extras
        self.needed_for = needed_for
        super().__init__(message)


class CogVideoAPIError(CogVideoError):
    """The API answered with an error body (or a non-2xx status)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.http_status = http_status
        self.api_message = message
        self.retryable = retryable
        self.retry_after = retry_after
        label = f"code {code}" if code else "no code"
        super().__init__(f"CogVideo API error ({label}, HTTP {http_status}): {message}")


class CogVideoAuthError(CogVideoAPIError):
    """401 / codes 1000-1005: the key is wrong, missing or expired."""


class CogVideoAccountError(CogVideoAPIError):
    """The account cannot pay or is locked (1100-1121, 1304, 1308+): retrying will not help."""


class CogVideoBadRequestError(CogVideoAPIError):
    """400 / 1210-1215, 1261: the request was refused as invalid."""


class CogVideoPermissionError(CogVideoAPIError):
    """403 / 1220-1222: no permission for this API or model."""


class CogVideoNotFoundError(CogVideoAPIError):
    """404: unknown path or task id."""


class CogVideoDuplicateRequestError(CogVideoAPIError):
    """1231: a request with this request_id already exists (treat as already submitted)."""


class CogVideoContentPolicyError(CogVideoAPIError):
    """1300/1301: the prompt, image or output was blocked by content policy. Never retried."""


class CogVideoRateLimitError(CogVideoAPIError):
    """429 with 1302/1303/1305: too many tasks in flight or too many requests. Retry later."""


class CogVideoServerError(CogVideoAPIError):
    """5xx / 500, 1200, 1230, 1234: the service failed. Retry with backoff."""


class CogVideoUnexpectedAnswerError(CogVideoAPIError):
    """A 2xx answer that cannot be read as what was asked: not a JSON object, or a field of the wrong
    type (an ``id`` that is a number with a fraction, a boolean or an object; ``task_status: null``...).

    For a query it is retryable like a 5xx (a query creates nothing, so trying again costs only the
    poll error budget). For a submit it is never resent: the server took the request and may have
    created a job, so :data:`~airflow_provider_cogvideo.hooks.submit_policy.SUBMIT_POLICY` files it
    under ``no_job_id`` (ambiguous)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status, retryable=retryable, retry_after=retry_after)


class CogVideoTransportError(CogVideoError):
    """The request never got an answer (connect error, timeout, dropped connection).

    ``may_have_arrived`` is False only when the failure happened before the request left this
    machine (no connection, no pool slot): the submit policy resends only those.
    """

    retryable = True

    def __init__(self, message: str, *, may_have_arrived: bool) -> None:
        self.may_have_arrived = may_have_arrived
        super().__init__(message)


class CogVideoAmbiguousSubmitError(CogVideoError):
    """A submit was sent but its answer was lost: a job may or may not exist (and be billed).

    Never retried blindly: resubmitting could pay twice. The ``request_id`` identifies the request
    in the provider's console/bills; the API cannot look a job up by it.
    """

    def __init__(self, request_id: str, cause: str) -> None:
        self.request_id = request_id
        super().__init__(
            f"submit outcome unknown for request_id={request_id!r} ({cause}); a job may have been "
            "created and billed. Not resubmitted automatically: look for that request_id in the "
            "console's usage/billing records (BigModel or Z.AI) before submitting again."
        )


class CogVideoJobError(CogVideoError):
    """Waiting for a job ended without a video; ``job_id`` names the job and ``event`` says how."""

    def __init__(self, message: str, *, job_id: str, event: dict | None = None) -> None:
        self.job_id = job_id
        self.event = event or {}
        super().__init__(message)


class CogVideoJobFailedError(CogVideoJobError):
    """The job ended with task_status FAIL, or it cannot be followed (refused key, unknown job)."""


class CogVideoJobTimeoutError(CogVideoJobError):
    """The wait's deadline passed, or polls kept failing; the job itself may still finish."""

    retryable = True


class CogVideoDownloadError(CogVideoError):
    """A result file could not be downloaded completely.

    ``url_expired`` is set for answers that mean "this signed URL is no longer valid" (403/404/410):
    the caller should query the job again for a fresh URL. ``retryable`` covers dropped streams.
    """

    def __init__(self, message: str, *, http_status: int | None = None, retryable: bool = False) -> None:
        self.http_status = http_status
        self.retryable = retryable
        self.url_expired = http_status in (403, 404, 410)
        super().__init__(message)


class CogVideoDownloadTooLargeError(CogVideoDownloadError):
    """A result file grew past the size cap it was read under, counted as it streamed: never retried
    (the same file is as big next time). ``max_bytes`` is the cap, ``received`` the count when
    reading stopped (at most one network read past the cap)."""

    def __init__(self, message: str, *, max_bytes: int, received: int) -> None:
        self.max_bytes = max_bytes
        self.received = received
        super().__init__(message)


@dataclass(frozen=True)
class ApiErrorCode:
    """One row of the taxonomy."""

    code: str
    http_status: int
    exception: type[CogVideoAPIError]
    retryable: bool
    message: str


def _rows(
    codes: tuple[str, ...], status: int, exc: type[CogVideoAPIError], retryable: bool, message: str
) -> list[ApiErrorCode]:
    return [ApiErrorCode(c, status, exc, retryable, message) for c in codes]


API_ERROR_CODES: dict[str, ApiErrorCode] = {
    row.code: row
    for row in [
        ApiErrorCode("500", 500, CogVideoServerError, True, "Internal server error"),
        ApiErrorCode("1000", 401, CogVideoAuthError, False, "Authentication failed"),
        ApiErrorCode("1001", 401, CogVideoAuthError, False, "No Authorization header was sent"),
        ApiErrorCode("1002", 401, CogVideoAuthError, False, "Authorization token is invalid"),
        ApiErrorCode("1003", 401, CogVideoAuthError, False, "Authorization token has expired"),
        ApiErrorCode("1004", 401, CogVideoAuthError, False, "Authorization token verification failed"),
        ApiErrorCode("1005", 401, CogVideoAuthError, False, "Two-factor login required"),
        ApiErrorCode("1100", 429, CogVideoAccountError, False, "Account read/write error"),
        ApiErrorCode("1110", 429, CogVideoAccountError, False, "Account is inactive"),
        ApiErrorCode("1111", 429, CogVideoAccountError, False, "Account does not exist"),
        ApiErrorCode("1112", 429, CogVideoAccountError, False, "Account is locked"),
        ApiErrorCode("1113", 429, CogVideoAccountError, False, "Account is in arrears: no balance"),
        ApiErrorCode("1120", 429, CogVideoAccountError, True, "Cannot access the account right now, try later"),
        ApiErrorCode("1121", 429, CogVideoAccountError, False, "Account locked for violations"),
        ApiErrorCode("1200", 500, CogVideoServerError, True, "API call error"),
        ApiErrorCode("1210", 400, CogVideoBadRequestError, False, "Bad request parameters"),
        ApiErrorCode("1211", 400, CogVideoBadRequestError, False, "Model does not exist"),
        ApiErrorCode("1212", 400, CogVideoBadRequestError, False, "Model does not support this method"),
        ApiErrorCode("1213", 400, CogVideoBadRequestError, False, "A required field was not received"),
        ApiErrorCode("1214", 400, CogVideoBadRequestError, False, "A field is invalid"),
        ApiErrorCode("1215", 400, CogVideoBadRequestError, False, "Two fields cannot both be set"),
        ApiErrorCode("1220", 403, CogVideoPermissionError, False, "No permission for this API"),
        ApiErrorCode("1221", 400, CogVideoPermissionError, False, "API is offline"),
        ApiErrorCode("1222", 400, CogVideoPermissionError, False, "API does not exist"),
        ApiErrorCode("1230", 500, CogVideoServerError, True, "API call process error"),
        ApiErrorCode("1231", 400, CogVideoDuplicateRequestError, False, "You already have a request with this id"),
        ApiErrorCode("1234", 500, CogVideoServerError, True, "Network error"),
        ApiErrorCode("1261", 400, CogVideoBadRequestError, False, "Prompt is too long"),
        ApiErrorCode("1300", 400, CogVideoContentPolicyError, False, "Blocked by API policy"),
        ApiErrorCode("1301", 400, CogVideoContentPolicyError, False, "Unsafe or sensitive content"),
        ApiErrorCode("1302", 429, CogVideoRateLimitError, True, "Concurrency limit of this API reached"),
        ApiErrorCode("1303", 429, CogVideoRateLimitError, True, "Request frequency of this API too high"),
        ApiErrorCode("1304", 429, CogVideoAccountError, False, "Daily call quota reached"),
        ApiErrorCode("1305", 429, CogVideoRateLimitError, True, "This model is overloaded, try later"),
        ApiErrorCode("1308", 429, CogVideoAccountError, False, "Usage cap reached until the next reset"),
        ApiErrorCode("1309", 429, CogVideoAccountError, False, "Plan expired"),
        *_rows(tuple(str(c) for c in range(1310, 1322)), 429, CogVideoAccountError, False, "Quota exhausted"),
    ]
}

# When the body has no (known) business code, the HTTP status decides.
HTTP_STATUS_FALLBACK: dict[int, tuple[type[CogVideoAPIError], bool]] = {
    400: (CogVideoBadRequestError, False),
    401: (CogVideoAuthError, False),
    403: (CogVideoPermissionError, False),
    404: (CogVideoNotFoundError, False),
    408: (CogVideoServerError, True),
    409: (CogVideoServerError, True),
    429: (CogVideoRateLimitError, True),
    434: (CogVideoPermissionError, False),
    435: (CogVideoBadRequestError, False),
}


def classify(http_status: int, code: str | None) -> tuple[type[CogVideoAPIError], bool]:
    """Exception class and retryability for an error answer: the code's row first, then the status
    (a 2xx that reaches here could not be read: an unexpected answer)."""
    if 200 <= http_status < 300:
        return CogVideoUnexpectedAnswerError, True
    row = API_ERROR_CODES.get(code or "")
    if row is not None:
        return row.exception, row.retryable
    if http_status in HTTP_STATUS_FALLBACK:
        return HTTP_STATUS_FALLBACK[http_status]
    if http_status >= 500:
        return CogVideoServerError, True
    return CogVideoAPIError, False


def api_error(
    http_status: int,
    code: str | None,
    message: str,
    retry_after: float | None = None,
    *,
    retryable: bool | None = None,
) -> CogVideoAPIError:
    """Build the right exception for an error answer; ``retryable`` overrides the table's decision
    (the hook knows that an expired JWT, 1003, is worth one more attempt with a fresh token)."""
    exc_cls, table_retryable = classify(http_status, code)
    return exc_cls(
        message,
        code=code,
        http_status=http_status,
        retryable=table_retryable if retryable is None else retryable,
        retry_after=retry_after,
    )


__all__ = [
    "API_ERROR_CODES",
    "CogVideoAPIError",
    "CogVideoAccountError",
    "CogVideoAmbiguousSubmitError",
    "CogVideoAuthError",
    "CogVideoBadRequestError",
    "CogVideoConnectionConfigError",
    "CogVideoContentPolicyError",
    "CogVideoDownloadError",
    "CogVideoDownloadTooLargeError",
    "CogVideoDuplicateRequestError",
    "CogVideoError",
    "CogVideoJobError",
    "CogVideoJobFailedError",
    "CogVideoJobTimeoutError",
    "CogVideoMissingExtraError",
    "CogVideoNotFoundError",
    "CogVideoPermissionError",
    "CogVideoRateLimitError",
    "CogVideoServerError",
    "CogVideoTransportError",
    "CogVideoUnexpectedAnswerError",
    "CogVideoValidationError",
    "api_error",
    "classify",
]
