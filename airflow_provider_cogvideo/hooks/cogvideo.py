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

  A URL with ``user:password@`` is refused: credentials there would end up in logs and links.
* extras: ``tier`` (V0..V3, default V0: the single source of truth for concurrency), ``auth``
  (``api_key`` default: the key is the Bearer credential; ``jwt``: a short-lived HS256 token),
  ``resend_submit_on_5xx`` (default false, see below) and the numbers of
  :data:`airflow_provider_cogvideo.NUMBER_EXTRAS` (timeouts, retries, waits, JWT lifetime, the
  minimum transfer rate), each bounded: a value out of range fails with a message naming the extra,
  the value and the range.

Retries: tenacity waiting by the one :class:`~airflow_provider_cogvideo.backoff.Backoff` policy, on
retryable errors only (the taxonomy in :mod:`airflow_provider_cogvideo.errors`). A submit costs
money, so it follows :data:`~airflow_provider_cogvideo.errors.SUBMIT_POLICY` instead: it is resent
only when the answer proves no job was created (no connection, a 429 or 503 refusal, an expired
JWT). An answer that may follow a created job (another 5xx, a 2xx without a usable job id, a lost
answer) raises :class:`~airflow_provider_cogvideo.errors.CogVideoAmbiguousSubmitError`; with
``resend_submit_on_5xx`` a 5xx is resent with the same ``request_id``, for endpoints known to
de-duplicate by it.

Every answer is read within bounds (:mod:`.downloads`): an API answer at most
:data:`~.downloads.MAX_ANSWER_BYTES` decoded (gzip or deflate, one layer, decoded in bounded steps),
a download at most its cap and never compressed, each at no less than the ``min_transfer_rate`` extra
on average after a grace of ``request_timeout``. An answer that cannot be read within them is judged
by its status alone (a 2xx: an answer that cannot be read, so a query spends its error budget and a
submit is ambiguous).

Downloads follow redirects one hop at a time and check every hop before sending to it: http(s) only,
no https to http downgrade, at most :data:`~.downloads.MAX_DOWNLOAD_REDIRECTS`, no address in the
refused networks of :mod:`.downloads` (private, loopback, link-local, CGNAT, multicast, reserved...),
and the connection goes to the address that was checked (no DNS rebinding). With the API on loopback
(the local emulator) downloads may reach exactly its address and port. Downloads use no environment
proxy: a proxy would resolve the name itself, out of reach of the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import re
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from airflow.sdk import BaseHook
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_provider_cogvideo import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    NUMBER_EXTRAS,
    PACKAGE_NAME,
    RESEND_SUBMIT_ON_5XX,
    __version__,
    metrics,
)
from airflow_provider_cogvideo.backoff import Backoff, retry_after_seconds
from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY, estimate_price
from airflow_provider_cogvideo.errors import (
    SUBMIT_POLICY,
    CogVideoAmbiguousSubmitError,
    CogVideoAPIError,
    CogVideoAuthError,
    CogVideoConnectionConfigError,
    CogVideoError,
    CogVideoJobFailedError,
    CogVideoJobTimeoutError,
    CogVideoTransportError,
    CogVideoUnexpectedAnswerError,
    CogVideoValidationError,
    api_error,
    submit_answer,
)
from airflow_provider_cogvideo.events import JobEvent, read_event
from airflow_provider_cogvideo.hooks.downloads import (
    API_ACCEPT_ENCODING,
    MAX_ANSWER_BYTES,
    MAX_DOWNLOAD_BYTES,
    AddressPolicy,
    BodyLimits,
    Download,
    aread_answer,
    open_download,
    read_answer,
)
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest
from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, JobWatch, checked_wait_settings
from airflow_provider_cogvideo.prepare import prepare_request
from airflow_provider_cogvideo.redact import scrub

if TYPE_CHECKING:
    import httpx

DEFAULT_HOST = "open.bigmodel.cn"
DEFAULT_PATH = "api/paas/v4"
DEFAULT_BASE_URL = f"https://{DEFAULT_HOST}/{DEFAULT_PATH}"
SUBMIT_PATH = "videos/generations"
DEFAULT_GENERATE_TIMEOUT = 7200.0
"""How long :meth:`CogVideoHook.generate` waits for a job by default (seconds), as the operator."""
QUERY_PATH = "async-result/{job_id}"
# A job id no real job has: test_connection() queries it, which costs nothing.
PROBE_JOB_ID = "0"
# Letters, digits, '.', '_', '-'; not dots only: "." and ".." would walk up the query path.
_JOB_ID_RE = re.compile(r"(?!\.+\Z)[A-Za-z0-9_.-]{1,128}")
# Connection pools. The sync client serves one task's calls; the async one is shared by every
# trigger of a triggerer's event loop (hundreds of jobs polled at once), so it keeps more sockets.
SYNC_POOL = {"max_connections": 20, "max_keepalive_connections": 10}
ASYNC_POOL = {"max_connections": 100, "max_keepalive_connections": 100}
# A server's Retry-After is honoured up to retry_max_wait, and at least up to this many seconds.
MIN_RETRY_AFTER_CAP = 1.0
_KNOWN_EXTRAS = frozenset({"base_url", "tier", "auth", RESEND_SUBMIT_ON_5XX, *NUMBER_EXTRAS})


def resolve_base_url(host: str | None, schema: str | None, port: int | None, base_url: str | None) -> str:
    """The API base URL from a connection's fields (the documented rule; see the module docstring)."""
    if base_url:
        return _checked_base_url(base_url.strip().rstrip("/"), "extra base_url")
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
    return _checked_base_url(f"{scheme}://{netloc}/{path}", "connection host")


def _checked_base_url(url: str, origin: str) -> str:
    """``url`` if it is a usable API base; the error never echoes it (it may hold credentials)."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise CogVideoConnectionConfigError(
            f"{origin} must not contain credentials (user:password@host): the API key goes in the connection password"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise CogVideoConnectionConfigError(f"{origin} has a port that is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CogVideoConnectionConfigError(f"{origin} must be a full http(s) URL such as {DEFAULT_BASE_URL!r}")
    return url


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


def _number_extra(name: str) -> Any:
    """A settings field bounded by its row of :data:`NUMBER_EXTRAS` (the form shows the same bounds)."""
    extra = NUMBER_EXTRAS[name]
    return Field(extra.default, ge=extra.minimum, le=extra.maximum)


class CogVideoConnectionSettings(BaseModel):
    """A validated, immutable view of the Airflow connection. ``api_key`` never appears in ``repr``.

    Every field is checked when the settings are built, from a connection (:meth:`from_fields`) or
    directly: numbers are finite and within :data:`NUMBER_EXTRAS`' bounds (integers stay integers,
    ``2.9`` retries is refused, not truncated), booleans are booleans. Errors are
    :class:`CogVideoConnectionConfigError` naming the extra, and they never echo the key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)

    base_url: str
    api_key: str = Field(repr=False)
    tier: str = "V0"
    auth: Literal["api_key", "jwt"] = "api_key"
    request_timeout: float = _number_extra("request_timeout")
    connect_timeout: float = _number_extra("connect_timeout")
    max_retries: int = _number_extra("max_retries")
    retry_min_wait: float = _number_extra("retry_min_wait")
    retry_max_wait: float = _number_extra("retry_max_wait")
    jwt_ttl_seconds: float = _number_extra("jwt_ttl_seconds")
    min_transfer_rate: int = _number_extra("min_transfer_rate")
    resend_submit_on_5xx: bool = False
    ignored_extras: tuple[str, ...] = ()

    def __init__(self, **fields: Any) -> None:
        """Validate; pydantic's complaint becomes a :class:`CogVideoConnectionConfigError` scrubbed of the
        key and its secret (raised outside the ``except``: no traceback holds the unscrubbed original)."""
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            error = _config_error(exc, _key_secrets(str(fields.get("api_key") or "")))
        else:
            return
        raise error

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
        """Validate connection fields; errors name the field and never echo the key.

        The key (and its secret part) is registered with the secrets masker first, before anything is
        validated: a key pasted by mistake into an extra (``tier``, ``auth``...) is masked in the log
        of the failure too, and every error is scrubbed of it."""
        extra = dict(extra or {})
        api_key = (password or "").strip()
        secrets = _key_secrets(api_key)
        for secret in secrets:
            _mask(secret)
        # An extra left empty in the form arrives as "" or None: it means "the default".
        given = {name: extra[name] for name in _KNOWN_EXTRAS - {"base_url"} if extra.get(name) not in (None, "")}
        try:
            base_url = resolve_base_url(host, schema, port, extra.get("base_url"))
        except CogVideoConnectionConfigError as exc:
            error = _scrubbed(exc, secrets)
        else:
            return cls(
                base_url=base_url,
                api_key=api_key,
                ignored_extras=tuple(sorted(set(extra) - _KNOWN_EXTRAS)),
                **given,
            )
        raise error

    @field_validator("api_key")
    @classmethod
    def _key_format(cls, v: str) -> str:
        key_id, dot, secret = v.partition(".")
        if not dot or not key_id or not secret or "." in secret:
            raise CogVideoConnectionConfigError(
                "connection password must be the API key in the form '<id>.<secret>' "
                "(exactly one dot, both parts non-empty)"
            )
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        return _checked_base_url(v, "base_url")

    @field_validator("tier", mode="before")
    @classmethod
    def _tier(cls, v: Any) -> str:
        tier = str(v).upper()
        if tier not in TIER_CONCURRENCY:
            raise CogVideoConnectionConfigError(f"extra tier must be one of {sorted(TIER_CONCURRENCY)}, got {v!r}")
        return tier

    @field_validator("auth", mode="before")
    @classmethod
    def _auth(cls, v: Any) -> str:
        auth = str(v).lower()
        if auth not in ("api_key", "jwt"):
            raise CogVideoConnectionConfigError(f"extra auth must be 'api_key' or 'jwt', got {v!r}")
        return auth

    @field_validator(*NUMBER_EXTRAS, mode="before")
    @classmethod
    def _not_a_bool(cls, v: Any) -> Any:
        """``true`` is no number of seconds (pydantic would read it as 1)."""
        if isinstance(v, bool):
            raise ValueError("a boolean is not a number")
        return v

    @field_validator(RESEND_SUBMIT_ON_5XX, mode="before")
    @classmethod
    def _boolean(cls, v: Any) -> Any:
        """``true``/``false``, or those words as the URI form of a connection gives them; nothing else."""
        if isinstance(v, str) and v.strip().lower() in ("true", "false"):
            return v.strip().lower() == "true"
        if not isinstance(v, bool):
            raise ValueError("not a boolean")
        return v

    @model_validator(mode="after")
    def _waits_in_order(self) -> CogVideoConnectionSettings:
        if self.retry_max_wait < self.retry_min_wait:
            raise CogVideoConnectionConfigError(
                f"extra retry_max_wait ({self.retry_max_wait:g}) must be >= retry_min_wait ({self.retry_min_wait:g})"
            )
        return self

    @property
    def key_id(self) -> str:
        return self.api_key.partition(".")[0]

    @property
    def concurrency(self) -> int:
        """Jobs in flight per model allowed by the account's tier."""
        return TIER_CONCURRENCY[self.tier]

    @property
    def transport_key(self) -> tuple[Any, ...]:
        """What distinguishes one pooled HTTP client from another.

        The credential is part of it (as a hash, never the key): two connections with different keys
        must not share a client, whose cookie jar a server may tie to the account."""
        credential = hashlib.sha256(self.api_key.encode()).hexdigest()
        return (self.base_url, self.request_timeout, self.connect_timeout, credential)


def _key_secrets(api_key: str) -> tuple[str, ...]:
    """What of a connection password must never be shown: the whole key and its secret part (the
    text after the first dot), whatever its form (a malformed key is still somebody's secret)."""
    return tuple(dict.fromkeys(s for s in (api_key, api_key.partition(".")[2]) if s))


def _scrubbed(exc: CogVideoConnectionConfigError, secrets: Iterable[str]) -> CogVideoConnectionConfigError:
    """A copy of ``exc`` whose message holds none of ``secrets`` (a validator may echo a value, and a
    value may be the key pasted into the wrong field)."""
    return CogVideoConnectionConfigError(scrub(str(exc), secrets, limit=1000))


def _config_error(exc: ValidationError, secrets: Iterable[str]) -> CogVideoConnectionConfigError:
    """pydantic's first complaint as the connection error it means; values shown are scrubbed of the key."""
    secrets = tuple(secrets)
    err = exc.errors(include_url=False)[0]
    original = (err.get("ctx") or {}).get("error")
    name = str(err["loc"][0]) if err["loc"] else "connection"
    if isinstance(original, CogVideoConnectionConfigError):
        # The key's own complaint never echoes it (and its fixed words are no secret); any other
        # field's may echo a value, and a value may be the key pasted into the wrong field.
        return original if name == "api_key" else _scrubbed(original, secrets)
    shown = scrub(repr(err.get("input")), secrets, limit=80)
    if name in NUMBER_EXTRAS:
        return CogVideoConnectionConfigError(f"extra {name} must be {NUMBER_EXTRAS[name].allowed()}, got {shown}")
    if name == RESEND_SUBMIT_ON_5XX:
        return CogVideoConnectionConfigError(f"extra {name} must be true or false, got {shown}")
    return CogVideoConnectionConfigError(f"connection field {name}: {err['msg']}")  # no value: it may be the key


def _checked_max_retries(value: int | None) -> int | None:
    """The hook's ``max_retries`` argument, held to the same bounds as the extra."""
    bounds = NUMBER_EXTRAS["max_retries"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not bounds.minimum <= value <= bounds.maximum:
        raise CogVideoValidationError("max_retries", f"must be {bounds.allowed()}, got {value!r}")
    return value


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

    def secrets(self) -> tuple[str | None, ...]:
        """Everything a server could echo that must not be shown: the key, its secret, the current JWT
        whole and its payload and signature apart (a server may echo a token split at its dots; the
        header is the public constant every token starts with, not a secret)."""
        return self._settings.api_key, self._settings.api_key.partition(".")[2], *_token_secrets(self._token)

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
        for secret in _token_secrets(token):
            _mask(secret)
        return token


def _token_secrets(token: str | None) -> tuple[str, ...]:
    """A JWT as what must not be shown: the whole token, its payload and its signature (not the
    header: ``{"alg": "HS256", "sign_type": "SIGN"}``, the same in every token, hides nothing)."""
    if not token:
        return ()
    _header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    return tuple(part for part in (token, payload, signature) if part)


# One pooled AsyncClient per (event loop, transport settings and credential): triggers in one
# triggerer loop share connections instead of opening a client per trigger or per poll.
_ASYNC_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def _user_agent() -> str:
    import httpx

    return f"{PACKAGE_NAME}/{__version__} httpx/{httpx.__version__}"


class CogVideoHook(BaseHook):
    """Talks to the CogVideoX / Vidu video generation API.

    :param cogvideo_conn_id: Airflow connection id (type ``cogvideo``).
    :param max_retries: override the connection's retry count (``0`` = one attempt), within the
        same bounds as the ``max_retries`` extra.
    """

    conn_name_attr = "cogvideo_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "CogVideoX"

    def __init__(self, cogvideo_conn_id: str = DEFAULT_CONN_ID, *, max_retries: int | None = None) -> None:
        super().__init__()
        self.cogvideo_conn_id = cogvideo_conn_id
        self._max_retries_override = _checked_max_retries(max_retries)
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

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras' form fields for Airflow < 3.2, built from the declarative ``conn-fields`` that
        3.2+ reads (one definition: the same labels, descriptions, choices and types on every version).

        Airflow 3.1's UI shows a field per widget with its description; numbers with a fractional
        range are text fields (3.1 accepts only string, integer, password and boolean fields) and the
        hook enforces their bounds when the connection is used."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import Optional, any_of

        from airflow_provider_cogvideo import get_provider_info

        widgets: dict[str, Any] = {}
        for name, spec in get_provider_info()["connection-types"][0]["conn-fields"].items():
            schema, label, description = spec["schema"], lazy_gettext(spec["label"]), spec.get("description", "")
            if "boolean" in schema["type"]:
                widgets[name] = BooleanField(label, description=description, default=schema.get("default", False))
                continue
            validators: list[Any] = [Optional()]
            if "enum" in schema:
                validators.append(any_of([value for value in schema["enum"] if value is not None]))
            field_class = IntegerField if "integer" in schema["type"] else StringField
            widgets[name] = field_class(
                label, validators=validators, widget=BS3TextFieldWidget(), description=description
            )
        return widgets

    def _settings_from_connection(self, conn: Any) -> CogVideoConnectionSettings:
        """The connection's settings; an unusable connection is named in the error (a DAG may use several)."""
        try:
            return CogVideoConnectionSettings.from_fields(
                password=conn.password, host=conn.host, schema=conn.schema, port=conn.port, extra=conn.extra_dejson
            )
        except CogVideoConnectionConfigError as exc:
            raise CogVideoConnectionConfigError(f"connection {self.cogvideo_conn_id!r}: {exc}") from None

    def _adopt(self, settings: CogVideoConnectionSettings) -> CogVideoConnectionSettings:
        if self._max_retries_override is not None:  # already bounded by _checked_max_retries
            settings = settings.model_copy(update={"max_retries": self._max_retries_override})
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
            headers={"User-Agent": _user_agent(), "Accept-Encoding": API_ACCEPT_ENCODING},
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
                headers={"User-Agent": _user_agent(), "Accept-Encoding": API_ACCEPT_ENCODING},
                limits=httpx.Limits(**ASYNC_POOL),
            )
            per_loop[settings.transport_key] = client
        return client

    def _answer_limits(self) -> BodyLimits:
        """How much of an API answer is read, and how slowly (the module docstring of :mod:`.downloads`)."""
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
        code, message = _error_fields(body)
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
        """Whether a failed submit attempt is sent again: :data:`SUBMIT_POLICY`'s decision, where the
        connection's ``resend_submit_on_5xx`` turns the 5xx row into a resend."""
        if not isinstance(exc, CogVideoAPIError | CogVideoTransportError):
            return False
        answer = submit_answer(exc)
        if answer == "server_error" and self.settings.resend_submit_on_5xx:
            return True
        return SUBMIT_POLICY[answer].decision == "resend"

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
        send: Callable[[], httpx.Response],
        read: Callable[[dict[str, Any]], TaskResult],
        *,
        retry: Callable[[BaseException], bool] | None,
    ) -> TaskResult:
        """One request, its answer ``read`` as a job, sent again while ``retry`` says so (None: one
        attempt). Reading is part of the attempt: an answer that cannot be read is retried as its
        error says (a query's, like a 5xx; a submit's, never)."""
        if retry is None:  # one attempt: skip tenacity's machinery (triggers poll thousands of times)
            return read(self._raise_for_answer(_send_sync(send)))
        from tenacity import Retrying

        for attempt in Retrying(**self._retry_kwargs(retry)):
            with attempt:
                return read(self._raise_for_answer(_send_sync(send)))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acall(
        self,
        send: Callable[[], Awaitable[httpx.Response]],
        read: Callable[[dict[str, Any]], TaskResult],
        *,
        retry: Callable[[BaseException], bool] | None,
    ) -> TaskResult:
        """Async :meth:`_call`."""
        if retry is None:
            return read(self._raise_for_answer(await _send_async(send)))
        from tenacity import AsyncRetrying

        async for attempt in AsyncRetrying(**self._retry_kwargs(retry)):
            with attempt:
                return read(self._raise_for_answer(await _send_async(send)))
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ API
    def submit(self, request: VideoGenerationRequest) -> TaskResult:
        """``POST /videos/generations``. Returns the new job (status PROCESSING) with its ``id``.

        Resent (the same body, so the same ``request_id``) only as :data:`SUBMIT_POLICY` allows;
        an answer that may follow a created job raises :class:`CogVideoAmbiguousSubmitError`."""
        self.settings  # noqa: B018 - resolve the connection before timing anything
        body = request.to_body()
        with _ambiguous_as_such(request):
            return self._call(
                lambda: self._receive(self._client, "POST", SUBMIT_PATH, json=body),
                lambda answer: _submitted(answer, request),
                retry=self._resends_submit,
            )

    async def asubmit(self, request: VideoGenerationRequest) -> TaskResult:
        """Async :meth:`submit`."""
        client = await self._async_client()
        body = request.to_body()
        with _ambiguous_as_such(request):
            return await self._acall(
                lambda: self._areceive(client, "POST", SUBMIT_PATH, json=body),
                lambda answer: _submitted(answer, request),
                retry=self._resends_submit,
            )

    def get_task(self, job_id: str, *, retry: bool = True) -> TaskResult:
        """``GET /async-result/{id}``: the job's status and, on SUCCESS, its video and cover URLs.

        (Named after the API's word for a job, *task*, like the official SDK's method.) A query
        creates nothing, so every retryable error is retried."""
        path = QUERY_PATH.format(job_id=_checked_job_id(job_id))
        self.settings  # noqa: B018
        return self._call(
            lambda: self._receive(self._client, "GET", path),
            lambda answer: _queried(answer, job_id),
            retry=_retryable if retry else None,
        )

    async def aget_task(self, job_id: str, *, retry: bool = True) -> TaskResult:
        """Async :meth:`get_task`. Triggers pass ``retry=False`` and apply their own error budget."""
        path = QUERY_PATH.format(job_id=_checked_job_id(job_id))
        client = await self._async_client()
        return await self._acall(
            lambda: self._areceive(client, "GET", path),
            lambda answer: _queried(answer, job_id),
            retry=_retryable if retry else None,
        )

    def job_url(self, job_id: str) -> str:
        """The job's status URL on the API (needs the key: for logs and tooling, not for a browser)."""
        return f"{self.settings.base_url}/{QUERY_PATH.format(job_id=_checked_job_id(job_id))}"

    def price_of(self, model: str | None) -> tuple[float | None, str | None]:
        """List-price estimate for one video of ``model`` on this connection's endpoint."""
        estimate = estimate_price(model, self.settings.base_url)
        return (estimate.amount, estimate.currency) if estimate else (None, None)

    @contextlib.contextmanager
    def stream_download(self, url: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Iterator[Download]:
        """Open a result URL as a stream (status checked): a :class:`~.downloads.Download` whose
        ``iter_bytes()`` yields the body as it arrives. Never sends the API key: result URLs are public,
        signed CDN links, and the key must not travel to another host.

        The URL comes from the API's answer, so it is not trusted to point anywhere: redirects are
        followed one hop at a time, every hop is checked and connected to at the address checked
        (:class:`~.downloads.AddressPolicy`). The body is refused compressed, stops past ``max_bytes``
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

    def generate(
        self,
        *,
        image: str | list[str] | None = None,
        aws_conn_id: str | None = "aws_default",
        timeout: float = DEFAULT_GENERATE_TIMEOUT,
        poll_interval: float | None = None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        **fields: Any,
    ) -> TaskResult:
        """Submit one job and wait for it, in one call (for ``@task`` functions): the operator's
        validation, submit policy and poll schedule, without Airflow's deferral or crash-safe store.

        ``fields`` are the request's (``model``, ``prompt``, ``size``, ``fps``...; ``image`` as for the
        operator). Returns the finished job (``video_url``, ``cover_image_url``). Raises
        ``CogVideoValidationError`` before paying (``CogVideoMissingExtraError`` when an image needs
        the ``images`` or ``amazon`` extra), ``CogVideoAmbiguousSubmitError`` when a submit may
        have created a job, ``CogVideoJobFailedError`` or ``CogVideoJobTimeoutError`` after waiting.
        A retry of the calling task submits (and pays for) a new job: use the operator for that.
        """

        async def submit_and_wait() -> TaskResult:
            try:
                return await self.agenerate(
                    image=image,
                    aws_conn_id=aws_conn_id,
                    timeout=timeout,
                    poll_interval=poll_interval,
                    error_budget=error_budget,
                    **fields,
                )
            finally:
                await aclose_clients()

        return asyncio.run(submit_and_wait())

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
        """Async :meth:`generate` (reading ``s3://`` or file images happens in a worker thread)."""
        poll_interval, error_budget, timeout = checked_wait_settings(
            poll_interval=poll_interval, error_budget=error_budget, timeout=timeout
        )
        prepared = await asyncio.to_thread(prepare_request, image=image, aws_conn_id=aws_conn_id, **fields)
        job = await self.asubmit(prepared.request)
        assert job.id is not None
        submitted_at = time.time()
        price, currency = self.price_of(job.model)  # the settings are cached by the submit: no lookup
        metrics.incr("cogvideo.submits", model=prepared.request.model)
        metrics.count_price(price, currency, model=prepared.request.model)
        self.log.info("Submitted job %s (%s), list price %s %s", job.id, job.model, price, currency)
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
        if event.status == "success":
            return TaskResult.model_validate(event.result)
        if event.status == "timeout" or not event.is_final:
            raise CogVideoJobTimeoutError(event.message, job_id=job.id, event=event.payload())
        raise CogVideoJobFailedError(event.message, job_id=job.id, event=event.payload())

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


@contextlib.contextmanager
def _ambiguous_as_such(request: VideoGenerationRequest) -> Iterator[None]:
    """A submit's last failure, raised as :data:`SUBMIT_POLICY` classes it: a failure whose row is
    ambiguous (a job may exist) becomes :class:`CogVideoAmbiguousSubmitError`, named by request_id."""
    try:
        yield
    except (CogVideoAPIError, CogVideoTransportError) as exc:
        if SUBMIT_POLICY[submit_answer(exc)].decision != "ambiguous":
            raise
        raise CogVideoAmbiguousSubmitError(request.request_id, str(exc)) from exc


def _checked_job_id(job_id: str) -> str:
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise CogVideoValidationError(
            "job_id",
            "must be 1-128 letters, digits, '.', '_' or '-', and not dots only; "
            f"got {scrub(repr(job_id), (), limit=80)}",
        )
    return job_id


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


def _transport_failure(exc: Exception) -> CogVideoTransportError:
    """An exception raised before an answer arrived, with whether the request may have reached the
    server (the submit policy resends only those that cannot have)."""
    return CogVideoTransportError(
        f"request failed before an answer arrived: {type(exc).__name__}", may_have_arrived=not _sent_nothing(exc)
    )


def _send_sync(send: Callable[[], httpx.Response]) -> httpx.Response:
    import httpx

    try:
        return send()
    except httpx.TransportError as exc:
        raise _transport_failure(exc) from exc


async def _send_async(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    import httpx

    try:
        return await send()
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


def _submitted(answer: dict[str, Any], request: VideoGenerationRequest) -> TaskResult:
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
        _checked_job_id(job.id)
    except CogVideoValidationError as exc:
        raise CogVideoAmbiguousSubmitError(request.request_id, f"the submit answer's {exc}") from None
    if job.model is None or job.request_id is None:
        job = job.model_copy(
            update={"model": job.model or request.model, "request_id": job.request_id or request.request_id}
        )
    return job


def _queried(answer: dict[str, Any], job_id: str) -> TaskResult:
    """The job a 2xx query answer describes; one that cannot be read is retryable like a 5xx (a query
    creates nothing), so the poll error budget decides how long to put up with it."""
    job = _read_job(answer)
    return job if job.id else job.model_copy(update={"id": job_id})


__all__ = [
    "DEFAULT_BASE_URL",
    "CogVideoConnectionSettings",
    "CogVideoHook",
    "aclose_clients",
    "resolve_base_url",
]
