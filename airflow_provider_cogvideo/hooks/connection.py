"""The ``cogvideo`` connection: its fields and extras validated into settings, the base-URL rule, and
the credential every API request carries (the API key, or a short-lived JWT signed with it).

:class:`~airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook` reads a connection through this
module only; the connection form is built here from the provider info's declarative fields.

Connection (``conn_type="cogvideo"``, default id ``cogvideo_default``)
-----------------------------------------------------------------------
* ``password``: the API key ``<id>.<secret>`` (:func:`split_key`).
* Base URL, one rule (:func:`resolve_base_url`):

  1. extra ``base_url`` (a full URL) wins when set;
  2. otherwise ``host`` (optionally with ``http://``/``https://``, and a port), ``port`` and
     ``schema`` (the path: in the URI form of a connection the path lands in ``schema``) are
     combined. The scheme defaults to ``https``, or ``http`` for loopback hosts (a local emulator).
     The path defaults to ``api/paas/v4``;
  3. no host at all: ``https://open.bigmodel.cn/api/paas/v4``.

  A URL with ``user:password@`` is refused: credentials there would end up in logs and links.
* extras: ``tier`` (V0..V3, default V0: the single source of truth for concurrency), ``auth``
  (``api_key`` default: the key is the Bearer credential; ``jwt``: a short-lived HS256 token),
  ``resend_submit_on_5xx`` (default false: see :mod:`.submit_policy`) and the numbers of
  :data:`airflow_provider_cogvideo.NUMBER_EXTRAS` (timeouts, retries, waits, JWT lifetime, the
  minimum transfer rate), each bounded: a value out of range fails with a message naming the extra,
  the value and the range.

The key never shows: it is registered with Airflow's secrets masker before anything is validated,
every error is scrubbed of it (and of its secret part), and a JWT is masked whole and in its parts
(a server may echo a token split at its dots).
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
import warnings
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_provider_cogvideo import NUMBER_EXTRAS, RESEND_SUBMIT_ON_5XX
from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY
from airflow_provider_cogvideo.errors import CogVideoConnectionConfigError, CogVideoValidationError
from airflow_provider_cogvideo.hooks.addresses import is_loopback_host
from airflow_provider_cogvideo.redact import HTTP_SCHEMES, authority, scrub

DEFAULT_HOST = "open.bigmodel.cn"
DEFAULT_PATH = "api/paas/v4"
DEFAULT_BASE_URL = f"https://{DEFAULT_HOST}/{DEFAULT_PATH}"
KNOWN_EXTRAS = frozenset({"base_url", "tier", "auth", RESEND_SUBMIT_ON_5XX, *NUMBER_EXTRAS})
"""Every extra the hook reads (the connection form shows each; any other is ignored with a warning)."""


# ---------------------------------------------------------------------------------------------------
# The key and the base URL.


def split_key(api_key: str) -> tuple[str, str]:
    """An API key ``<id>.<secret>`` as its id and its secret: the text before and after the first dot
    (the secret is empty when there is no dot)."""
    key_id, _, secret = api_key.partition(".")
    return key_id, secret


def resolve_base_url(host: str | None, schema: str | None, port: int | None, base_url: str | None) -> str:
    """The API base URL from a connection's fields (the documented rule; see the module docstring)."""
    if base_url:
        return _checked_base_url(base_url.strip().rstrip("/"), "extra base_url")
    host = (host or "").strip() or DEFAULT_HOST
    scheme = ""
    if "://" in host:
        scheme, _, host = host.partition("://")
        if scheme not in HTTP_SCHEMES:
            raise CogVideoConnectionConfigError(f"host scheme must be http or https, got {scheme!r}")
    host, _, host_path = host.partition("/")  # a host such as "api.z.ai/api/paas/v4"
    hostname, own_port = _host_and_port(host, "connection host")
    if not scheme:
        scheme = "http" if is_loopback_host(hostname) else "https"
    path = (schema or "").strip().strip("/") or host_path.strip("/") or DEFAULT_PATH
    return _checked_base_url(f"{scheme}://{authority(hostname, own_port or port)}/{path}", "connection host")


def _host_and_port(host: str, origin: str) -> tuple[str, int | None]:
    """A connection's host field (``api.z.ai``, ``localhost:8000``, ``[::1]:8000``, or an IPv6 address
    without brackets) as the host and the port written in it; checked as a URL's authority is."""
    try:
        return str(ipaddress.ip_address(host)), None
    except ValueError:
        pass  # a name, or an address in brackets, either with a port
    parts = urlsplit(_checked_base_url(f"https://{host}", origin))
    return parts.hostname or "", parts.port


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
    if parts.scheme not in HTTP_SCHEMES or not parts.hostname:
        raise CogVideoConnectionConfigError(f"{origin} must be a full http(s) URL such as {DEFAULT_BASE_URL!r}")
    return url


# ---------------------------------------------------------------------------------------------------
# Settings.


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
        given = {name: extra[name] for name in KNOWN_EXTRAS - {"base_url"} if extra.get(name) not in (None, "")}
        try:
            base_url = resolve_base_url(host, schema, port, extra.get("base_url"))
        except CogVideoConnectionConfigError as exc:
            error = _scrubbed(exc, secrets)
        else:
            return cls(
                base_url=base_url,
                api_key=api_key,
                ignored_extras=tuple(sorted(set(extra) - KNOWN_EXTRAS)),
                **given,
            )
        raise error

    @field_validator("api_key")
    @classmethod
    def _key_format(cls, v: str) -> str:
        key_id, secret = split_key(v)
        if not key_id or not secret or "." in secret:
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
        return split_key(self.api_key)[0]

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
    """What of a connection password must never be shown: the whole key and its secret part,
    whatever its form (a malformed key is still somebody's secret)."""
    return tuple(dict.fromkeys(s for s in (api_key, split_key(api_key)[1]) if s))


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


def checked_max_retries(value: int | None) -> int | None:
    """The hook's ``max_retries`` argument, held to the same bounds as the extra."""
    bounds = NUMBER_EXTRAS["max_retries"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not bounds.minimum <= value <= bounds.maximum:
        raise CogVideoValidationError("max_retries", f"must be {bounds.allowed()}, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------------
# The credential.


class Credentials:
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
        return *_key_secrets(self._settings.api_key), *_token_secrets(self._token)

    def _sign(self, now: float) -> str:
        import jwt

        key_id, secret = split_key(self._settings.api_key)
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
        for part in _token_secrets(token):
            _mask(part)
        return token


def _token_secrets(token: str | None) -> tuple[str, ...]:
    """A JWT as what must not be shown: the whole token, its payload and its signature (not the
    header: ``{"alg": "HS256", "sign_type": "SIGN"}``, the same in every token, hides nothing)."""
    if not token:
        return ()
    _header, _, rest = token.partition(".")
    payload, _, signature = rest.partition(".")
    return tuple(part for part in (token, payload, signature) if part)


# ---------------------------------------------------------------------------------------------------
# The connection form of Airflow < 3.2 (3.2+ reads the declarative copy in the provider info).


def ui_field_behaviour() -> dict[str, Any]:
    """The form's hidden fields, labels and placeholders, from the provider info."""
    from airflow_provider_cogvideo import get_provider_info

    behaviour = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    return {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }


def form_widgets() -> dict[str, Any]:
    """The extras' form fields, built from the declarative ``conn-fields`` that 3.2+ reads (one
    definition: the same labels, descriptions, choices and types on every version).

    Airflow 3.1's UI shows a field per widget with its description; numbers with a fractional range
    are text fields (3.1 accepts only string, integer, password and boolean fields) and the settings
    enforce their bounds when the connection is used."""
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
        widgets[name] = field_class(label, validators=validators, widget=BS3TextFieldWidget(), description=description)
    return widgets


__all__ = [
    "DEFAULT_BASE_URL",
    "KNOWN_EXTRAS",
    "CogVideoConnectionSettings",
    "Credentials",
    "checked_max_retries",
    "form_widgets",
    "resolve_base_url",
    "split_key",
    "ui_field_behaviour",
]
