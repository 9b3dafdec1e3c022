"""CogVideoHook: authentication, HTTP (sync and async), retries and result downloads.

The hook owns every byte that crosses the wire. Operators, sensors and triggers call it; they never
build requests themselves.

Connection (``conn_type="cogvideo"``, default id ``cogvideo_default``)
-----------------------------------------------------------------------
* ``password``: the API key ``<id>.<secret>``.
* Base URL, one rule (:func:`resolve_base_url`):

  1. extra ``base_url`` (a full URL) wins when set;
  2. otherwise ``host`` (optionally with ``http://``/``https://``), ``port`` and ``schema`` (the
     path: in the URI form of a connection the path lands in ``schema``) are combined. The scheme
     defaults to ``https``, or ``http`` for loopback hosts (a local emulator). The path defaults to
     ``api/paas/v4``;
  3. no host at all: ``https://open.bigmodel.cn/api/paas/v4``.

* extras: ``tier`` (V0..V3, default V0: the single source of truth for concurrency), ``auth``
  (``api_key`` default: the key is the Bearer credential; ``jwt``: a short-lived HS256 token),
  ``request_timeout`` (s, default 60), ``connect_timeout`` (s, default 10), ``max_retries``
  (default 3), ``retry_min_wait`` / ``retry_max_wait`` (s, default 1 / 30), ``jwt_ttl_seconds``
  (default 210, as the official SDK).

Retries: tenacity, exponential backoff with full jitter, honouring ``Retry-After`` when present, on
retryable errors only (the taxonomy in :mod:`airflow_provider_cogvideo.errors`). A submit is retried
only when the request surely did not reach the server (connect errors) or the server answered with a
retryable error; a submit whose answer was lost raises
:class:`~airflow_provider_cogvideo.errors.CogVideoAmbiguousSubmitError` instead, because resending it
could create (and bill) a second job.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import re
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_provider_cogvideo import CONN_TYPE, DEFAULT_CONN_ID, PACKAGE_NAME, __version__
from airflow_provider_cogvideo.backoff import Backoff, retry_after_seconds
from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY, estimate_price
from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoAPIError,
    CogVideoAuthError,
    CogVideoConnectionConfigError,
    CogVideoDownloadError,
    CogVideoError,
    CogVideoTransportError,
    CogVideoValidationError,
    api_error,
)
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest

if TYPE_CHECKING:
    import httpx

DEFAULT_HOST = "open.bigmodel.cn"
DEFAULT_PATH = "api/paas/v4"
DEFAULT_BASE_URL = f"https://{DEFAULT_HOST}/{DEFAULT_PATH}"
SUBMIT_PATH = "videos/generations"
QUERY_PATH = "async-result/{job_id}"
# A job id no real job has: test_connection() queries it, which costs nothing.
PROBE_JOB_ID = "0"
_JOB_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Connection pools. The sync client serves one task's calls; the async one is shared by every
# trigger of a triggerer's event loop (hundreds of jobs polled at once), so it keeps more sockets.
SYNC_POOL = {"max_connections": 20, "max_keepalive_connections": 10}
ASYNC_POOL = {"max_connections": 100, "max_keepalive_connections": 100}
# A server's Retry-After is honoured up to retry_max_wait, and at least up to this many seconds.
MIN_RETRY_AFTER_CAP = 1.0
_KNOWN_EXTRAS = frozenset(
    {
        "base_url",
        "tier",
        "auth",
        "request_timeout",
        "connect_timeout",
        "max_retries",
        "retry_min_wait",
        "retry_max_wait",
        "jwt_ttl_seconds",
    }
)


def resolve_base_url(host: str | None, schema: str | None, port: int | None, base_url: str | None) -> str:
    """The API base URL from a connection's fields (the documented rule; see the module docstring)."""
    if base_url:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CogVideoConnectionConfigError(
                f"extra base_url must be a full http(s) URL such as {DEFAULT_BASE_URL!r}"
            )
        return base_url.strip().rstrip("/")
    host = (host or "").strip()
    if not host:
        host = DEFAULT_HOST
    scheme = ""
    if "://" in host:
        scheme, _, host = host.partition("://")
        if scheme not in ("http", "https"):
            raise CogVideoConnectionConfigError(f"host scheme must be http or https, got {scheme!r}")
    host_path = ""
    if "/" in host:  # a host such as "api.z.ai/api/paas/v4"
        host, _, host_path = host.partition("/")
    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if not scheme:
        scheme = "http" if _is_loopback(hostname) else "https"
    netloc = f"{host}:{port}" if port and ":" not in host else host
    path = (schema or "").strip().strip("/") or host_path.strip("/") or DEFAULT_PATH
    return f"{scheme}://{netloc}/{path}"


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def _mask(secret: str) -> None:
    """Register a value with Airflow's secrets masker, so it never shows up in task logs."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older SDK layouts
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    mask_secret(secret)


@dataclass(frozen=True)
class CogVideoConnectionSettings:
    """A validated view of the Airflow connection. ``api_key`` never appears in ``repr``."""

    base_url: str
    api_key: str = field(repr=False)
    tier: str = "V0"
    auth: Literal["api_key", "jwt"] = "api_key"
    request_timeout: float = 60.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    retry_min_wait: float = 1.0
    retry_max_wait: float = 30.0
    jwt_ttl_seconds: float = 210.0
    ignored_extras: tuple[str, ...] = ()

    @classmethod
    def from_fields(
        cls,
        *,
        password: str | None,
        host: str | None = None,
        schema: str | None = None,
        port: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> CogVideoConnectionSettings:
        """Validate connection fields; errors name the field and never echo the key."""
        extra = dict(extra or {})
        api_key = (password or "").strip()
        key_id, dot, secret = api_key.partition(".")
        if not dot or not key_id or not secret or "." in secret:
            raise CogVideoConnectionConfigError(
                "connection password must be the API key in the form '<id>.<secret>' "
                "(exactly one dot, both parts non-empty)"
            )
        tier = str(extra.get("tier") or "V0").upper()
        if tier not in TIER_CONCURRENCY:
            raise CogVideoConnectionConfigError(
                f"extra tier must be one of {sorted(TIER_CONCURRENCY)}, got {extra.get('tier')!r}"
            )
        auth = str(extra.get("auth") or "api_key").lower()
        if auth not in ("api_key", "jwt"):
            raise CogVideoConnectionConfigError(f"extra auth must be 'api_key' or 'jwt', got {extra.get('auth')!r}")

        def number(name: str, default: float, *, minimum: float, integer: bool = False) -> Any:
            raw = extra.get(name)
            if raw is None or raw == "":
                return default
            try:
                value = int(raw) if integer else float(raw)
            except (TypeError, ValueError):
                raise CogVideoConnectionConfigError(f"extra {name} must be a number, got {raw!r}") from None
            if value < minimum:
                raise CogVideoConnectionConfigError(f"extra {name} must be >= {minimum}, got {raw!r}")
            return value

        settings = cls(
            base_url=resolve_base_url(host, schema, port, extra.get("base_url")),
            api_key=api_key,
            tier=tier,
            auth=auth,  # type: ignore[arg-type]
            request_timeout=number("request_timeout", 60.0, minimum=1.0),
            connect_timeout=number("connect_timeout", 10.0, minimum=0.5),
            max_retries=number("max_retries", 3, minimum=0, integer=True),
            retry_min_wait=number("retry_min_wait", 1.0, minimum=0.0),
            retry_max_wait=number("retry_max_wait", 30.0, minimum=0.0),
            jwt_ttl_seconds=number("jwt_ttl_seconds", 210.0, minimum=30.0),
            ignored_extras=tuple(sorted(set(extra) - _KNOWN_EXTRAS)),
        )
        _mask(api_key)
        _mask(secret)
        return settings

    @property
    def key_id(self) -> str:
        return self.api_key.partition(".")[0]

    @property
    def concurrency(self) -> int:
        """Jobs in flight per model allowed by the account's tier."""
        return TIER_CONCURRENCY[self.tier]

    @property
    def transport_key(self) -> tuple[Any, ...]:
        """What distinguishes one pooled HTTP client from another (never the key)."""
        return (self.base_url, self.request_timeout, self.connect_timeout)


class _Credentials:
    """Produces the Authorization header: the raw key, or a cached HS256 JWT refreshed before expiry."""

    # Refresh a token this long before it expires, so a request never carries a nearly dead one.
    REFRESH_MARGIN_SECONDS = 30.0

    def __init__(self, settings: CogVideoConnectionSettings) -> None:
        self._settings = settings
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._lock = threading.Lock()

    def header(self) -> str:
        if self._settings.auth == "api_key":
            return f"Bearer {self._settings.api_key}"
        with self._lock:
            now = time.time()
            if self._token is None or now >= self._token_expires_at - self.REFRESH_MARGIN_SECONDS:
                self._token = self._sign(now)
                self._token_expires_at = now + self._settings.jwt_ttl_seconds
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        """Forget the cached token (after a 1003 'token expired' answer)."""
        with self._lock:
            self._token = None

    def _sign(self, now: float) -> str:
        import jwt

        key_id, _, secret = self._settings.api_key.partition(".")
        now_ms = int(now * 1000)
        with warnings.catch_warnings():
            # The service issues the secret; PyJWT's advice to use a 32-byte HMAC key cannot be followed.
            warnings.simplefilter("ignore")
            token = jwt.encode(
                {"api_key": key_id, "timestamp": now_ms, "exp": now_ms + int(self._settings.jwt_ttl_seconds * 1000)},
                secret,
                algorithm="HS256",
                headers={"alg": "HS256", "sign_type": "SIGN"},
            )
        _mask(token)
        return token


# One pooled AsyncClient per (event loop, transport settings): triggers in one triggerer loop share
# connections instead of opening a client per trigger or per poll.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _user_agent() -> str:
    import httpx

    return f"{PACKAGE_NAME}/{__version__} httpx/{httpx.__version__}"


def _scrub(text: str, settings: CogVideoConnectionSettings) -> str:
    """Remove the key and its secret from server-provided text before it reaches an exception."""
    secret = settings.api_key.partition(".")[2]
    return text.replace(settings.api_key, "***").replace(secret, "***") if secret else text


class CogVideoHook(BaseHook):
    """Talks to the CogVideoX / Vidu video generation API.

    :param cogvideo_conn_id: Airflow connection id (type ``cogvideo``).
    :param max_retries: override the connection's retry count (``0`` = one attempt).
    """

    conn_name_attr = "cogvideo_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "CogVideoX"

    def __init__(self, cogvideo_conn_id: str = DEFAULT_CONN_ID, *, max_retries: int | None = None) -> None:
        super().__init__()
        self.cogvideo_conn_id = cogvideo_conn_id
        self._max_retries_override = max_retries
        self._settings: CogVideoConnectionSettings | None = None
        self._credentials: _Credentials | None = None

    # ------------------------------------------------------------------ connection
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Form hints for Airflow < 3.2 (3.2+ reads the declarative copy in provider info)."""
        from airflow_provider_cogvideo import get_provider_info

        behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
        return {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        }

    @staticmethod
    def _settings_from_connection(conn: Any) -> CogVideoConnectionSettings:
        return CogVideoConnectionSettings.from_fields(
            password=conn.password, host=conn.host, schema=conn.schema, port=conn.port, extra=conn.extra_dejson
        )

    def _adopt(self, settings: CogVideoConnectionSettings) -> CogVideoConnectionSettings:
        if self._max_retries_override is not None:
            settings = dataclasses.replace(settings, max_retries=self._max_retries_override)
        if settings.ignored_extras:
            self.log.warning(
                "Connection %s: unknown extras ignored: %s", self.cogvideo_conn_id, settings.ignored_extras
            )
        self._settings = settings
        self._credentials = _Credentials(settings)
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

    @cached_property
    def _client(self) -> httpx.Client:
        import httpx

        settings = self.settings
        return httpx.Client(
            base_url=settings.base_url + "/",
            timeout=self._timeout(settings),
            headers={"User-Agent": _user_agent()},
            limits=httpx.Limits(**SYNC_POOL),
        )

    async def _async_client(self) -> httpx.AsyncClient:
        import httpx

        settings = await self.aget_settings()
        loop = asyncio.get_running_loop()
        per_loop = _ASYNC_CLIENTS.setdefault(loop, {})
        client = per_loop.get(settings.transport_key)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(
                base_url=settings.base_url + "/",
                timeout=self._timeout(settings),
                headers={"User-Agent": _user_agent()},
                limits=httpx.Limits(**ASYNC_POOL),
            )
            per_loop[settings.transport_key] = client
        return client

    def close(self) -> None:
        """Close the sync client (the async ones are shared per event loop; see :func:`aclose_clients`)."""
        if "_client" in self.__dict__:
            self.__dict__.pop("_client").close()

    # ------------------------------------------------------------------ errors and retries
    def _raise_for_answer(self, response: httpx.Response) -> dict[str, Any]:
        """Return the JSON body of a 2xx answer; raise the taxonomy's exception otherwise."""
        settings = self._settings
        assert settings is not None
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        code, message = _error_fields(body)
        if response.is_success:  # 2xx without a JSON object: treat as a server fault
            code, message = None, f"unexpected non-JSON answer ({len(response.content)} bytes)"
        message = _scrub(message or response.reason_phrase or "no message", settings)
        # An expired JWT (1003) is worth one more attempt: the next one signs a fresh token.
        resign = code == "1003" and settings.auth == "jwt"
        if resign and self._credentials is not None:
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

    def _retry_kwargs(self) -> dict[str, Any]:
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
            retry=retry_if_exception(lambda e: isinstance(e, CogVideoError) and e.retryable),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _call(self, send: Callable[[], httpx.Response], *, submit_request_id: str | None, retry: bool) -> dict:
        if not retry:  # one attempt: skip tenacity's machinery (triggers poll thousands of times)
            return self._raise_for_answer(_send_sync(send, submit_request_id))
        from tenacity import Retrying

        for attempt in Retrying(**self._retry_kwargs()):
            with attempt:
                return self._raise_for_answer(_send_sync(send, submit_request_id))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(
        self, send: Callable[[], Awaitable[httpx.Response]], *, submit_request_id: str | None, retry: bool
    ) -> dict:
        if not retry:
            return self._raise_for_answer(await _send_async(send, submit_request_id))
        from tenacity import AsyncRetrying

        async for attempt in AsyncRetrying(**self._retry_kwargs()):
            with attempt:
                return self._raise_for_answer(await _send_async(send, submit_request_id))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ API
    def submit(self, request: VideoGenerationRequest) -> TaskResult:
        """``POST /videos/generations``. Returns the new job (status PROCESSING) with its ``id``."""
        self.settings  # noqa: B018 - resolve the connection before timing anything
        body = request.to_body()
        answer = self._call(
            lambda: self._client.post(SUBMIT_PATH, json=body, headers=self._request_headers()),
            submit_request_id=request.request_id,
            retry=True,
        )
        return _submitted(answer, request)

    async def asubmit(self, request: VideoGenerationRequest) -> TaskResult:
        """Async :meth:`submit`."""
        client = await self._async_client()
        body = request.to_body()
        answer = await self._acall(
            lambda: client.post(SUBMIT_PATH, json=body, headers=self._request_headers()),
            submit_request_id=request.request_id,
            retry=True,
        )
        return _submitted(answer, request)

    def get_task(self, job_id: str, *, retry: bool = True) -> TaskResult:
        """``GET /async-result/{id}``: the job's status and, on SUCCESS, its video and cover URLs.

        (Named after the API's word for a job, *task*, like the official SDK's method.)"""
        path = QUERY_PATH.format(job_id=_checked_job_id(job_id))
        self.settings  # noqa: B018
        answer = self._call(
            lambda: self._client.get(path, headers=self._request_headers()), submit_request_id=None, retry=retry
        )
        return _queried(answer, job_id)

    async def aget_task(self, job_id: str, *, retry: bool = True) -> TaskResult:
        """Async :meth:`get_task`. Triggers pass ``retry=False`` and apply their own error budget."""
        path = QUERY_PATH.format(job_id=_checked_job_id(job_id))
        client = await self._async_client()
        answer = await self._acall(
            lambda: client.get(path, headers=self._request_headers()), submit_request_id=None, retry=retry
        )
        return _queried(answer, job_id)

    def job_url(self, job_id: str) -> str:
        """The job's status URL on the API (needs the key: for logs and tooling, not for a browser)."""
        return f"{self.settings.base_url}/{QUERY_PATH.format(job_id=_checked_job_id(job_id))}"

    def price_of(self, model: str | None) -> tuple[float | None, str | None]:
        """List-price estimate for one video of ``model`` on this connection's endpoint."""
        estimate = estimate_price(model, self.settings.base_url)
        return (estimate.amount, estimate.currency) if estimate else (None, None)

    @contextlib.contextmanager
    def stream_download(self, url: str) -> Iterator[httpx.Response]:
        """Open a result URL as a stream (status checked). Never sends the API key: result URLs are
        public, signed CDN links, and the key must not travel to another host."""
        import httpx

        settings = self.settings
        if not url.startswith(("http://", "https://")):
            raise CogVideoDownloadError(f"not an http(s) URL: {url!r}")
        with httpx.Client(
            timeout=self._timeout(settings), headers={"User-Agent": _user_agent()}, follow_redirects=True
        ) as client:
            try:
                with client.stream("GET", url) as response:
                    if not response.is_success:
                        raise CogVideoDownloadError(
                            f"download of {_redact_query(url)} answered HTTP {response.status_code}",
                            http_status=response.status_code,
                            retryable=response.status_code >= 500,
                        )
                    yield response
            except httpx.TransportError as exc:
                raise CogVideoDownloadError(
                    f"download of {_redact_query(url)} failed: {type(exc).__name__}", retryable=True
                ) from exc

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


def _checked_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise CogVideoValidationError("job_id", f"must be 1-128 letters, digits, '.', '_' or '-', got {job_id!r}")
    return job_id


def _redact_query(url: str) -> str:
    """URLs of result files carry signatures in the query string: keep them out of messages."""
    return url.split("?", 1)[0]


def _error_fields(body: Any) -> tuple[str | None, str | None]:
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


def _transport_failure(exc: Exception, submit_request_id: str | None) -> CogVideoError:
    """Classify an exception raised before an answer arrived.

    For a submit, only failures that happen before the request leaves this machine are safe to
    retry; a lost answer (read timeout, dropped connection) is ambiguous.
    """
    name = type(exc).__name__
    if submit_request_id is not None and not _sent_nothing(exc):
        return CogVideoAmbiguousSubmitError(submit_request_id, name)
    return CogVideoTransportError(f"request failed before an answer arrived: {name}")


def _send_sync(send: Callable[[], httpx.Response], submit_request_id: str | None) -> httpx.Response:
    import httpx

    try:
        return send()
    except httpx.TransportError as exc:
        raise _transport_failure(exc, submit_request_id) from exc


async def _send_async(send: Callable[[], Awaitable[httpx.Response]], submit_request_id: str | None) -> httpx.Response:
    import httpx

    try:
        return await send()
    except httpx.TransportError as exc:
        raise _transport_failure(exc, submit_request_id) from exc


def _submitted(answer: dict[str, Any], request: VideoGenerationRequest) -> TaskResult:
    job = TaskResult.model_validate(answer)
    if not job.id:  # accepted, maybe billed, but untrackable: as ambiguous as a lost answer
        raise CogVideoAmbiguousSubmitError(request.request_id, "the submit answer carried no job id")
    if job.model is None or job.request_id is None:
        job = job.model_copy(
            update={"model": job.model or request.model, "request_id": job.request_id or request.request_id}
        )
    return job


def _queried(answer: dict[str, Any], job_id: str) -> TaskResult:
    job = TaskResult.model_validate(answer)
    return job if job.id else job.model_copy(update={"id": job_id})


__all__ = [
    "DEFAULT_BASE_URL",
    "CogVideoConnectionSettings",
    "CogVideoHook",
    "aclose_clients",
    "resolve_base_url",
]
