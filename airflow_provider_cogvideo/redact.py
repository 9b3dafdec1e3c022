"""What may be shown: URLs without their signatures, server text without secrets and within a length.

Everything this provider writes where people or other systems read it (task logs, XCom, trigger
events, exception messages, manifests) goes through these functions first:

* result and image URLs carry signed query strings (``X-Amz-Signature``, ``X-Amz-Security-Token``,
  ``Expires``...): :func:`redact_url` keeps the scheme, host and path and drops the query and any
  ``user:password@``, whatever the scheme (``https``, ``ftp``, ``s3``...); :func:`has_credentials`
  tells a URL that carries a ``user:password@`` (refused as a result URL, wherever one is read);
* server-provided text may echo the request, and so the key or a token: :func:`scrub` replaces every
  secret given and caps the length, so a hostile server cannot flood logs or XCom rows;
* any text quoted in a message (a refused value, a path, a base64 blob) is cut by :func:`shorten`,
  which says how much was left out; a refused value is quoted by :func:`shown_value` (URLs redacted
  first), and text that may hold URLs among other words is stored through :func:`redact_urls`.

The two URL facts that showing a URL needs live here too, for every module that reads URLs: whether
text is an http(s) URL (:func:`is_http_url`, :data:`HTTP_SCHEMES`) and how a host and port are
written in one (:func:`authority`: an IPv6 address in brackets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

MAX_SERVER_TEXT = 500
"""Characters of server-provided text kept in messages (error bodies, FAIL reasons)."""
MAX_SHOWN_VALUE = 200
"""Characters of a refused value kept in a message (:func:`shown_value`)."""
REDACTED = "***"
HTTP_SCHEMES = ("http", "https")
"""The schemes the API, its result URLs and image URLs use, as :func:`urllib.parse.urlsplit` gives them."""
_HTTP_PREFIXES = tuple(f"{scheme}://" for scheme in HTTP_SCHEMES)


_URL_RE = re.compile(r"(\s*[A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)([^?#]*)(?:\?([^#]*))?", re.DOTALL)
"""``scheme://authority/path?query`` of any scheme (``https``, ``ftp``, ``s3``...), read without
trusting the authority: it is cut at its last ``@``, so no ``user:password`` survives a host or port
that does not parse."""
_URL_IN_TEXT_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
"""A URL inside other text: from its scheme to the first blank, quote or angle bracket."""


def is_http_url(text: str) -> bool:
    """Whether ``text`` is written as an http(s) URL: it starts with ``http://`` or ``https://``, in
    lower case and without leading blanks (callers strip first where blanks are allowed)."""
    return text.startswith(_HTTP_PREFIXES)


def authority(host: str, port: int | None = None) -> str:
    """``host[:port]`` as a URL writes it: an IPv6 address in brackets (``[::1]:8080``), a name or an
    IPv4 address as it is."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


def redact_url(url: str) -> str:
    """``scheme://host/path`` of a URL of any scheme: no query string (signatures), no fragment, no
    ``user:password@`` (``ftp://user:pw@host/v.mp4`` → ``ftp://host/v.mp4``, ``s3://AKIA:secret@bucket/key``
    → ``s3://bucket/key``). Text that is no ``scheme://`` URL is returned as is."""
    if not isinstance(url, str):
        return url
    match = _URL_RE.match(url)
    if match is None:
        return url
    scheme, shown_authority, path, query = match.groups()
    host = shown_authority.rpartition("@")[2]
    if scheme.strip().lower().removesuffix("://") in HTTP_SCHEMES:
        host = _http_host(url, host)
    return f"{scheme}{host}{path}" + ("?<redacted>" if query else "")


def _http_host(url: str, shown: str) -> str:
    """An http(s) URL's ``host[:port]`` as :func:`urllib.parse.urlsplit` reads it (lower case, IPv6 in
    brackets), or ``shown`` (the authority after its last ``@``) when it does not parse."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return shown
    return authority(host, port)


def redact_urls(text: str) -> str:
    """``text`` with every URL in it (any scheme) passed through :func:`redact_url`: for text that may
    hold URLs among other words (a product field stored as object metadata, a refused value)."""
    return _URL_IN_TEXT_RE.sub(lambda match: redact_url(match[0]), text)


def shown_value(value: Any, limit: int = MAX_SHOWN_VALUE) -> str:
    """A value quoted in a message (its ``repr``): text that is a URL redacted whole (no credentials,
    even with a blank in the password; no query), URLs inside other text redacted one by one, then
    :func:`shorten` to ``limit`` characters."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and redact_url(text) != text:
        return shorten(repr(redact_url(text)), limit)
    return shorten(redact_urls(repr(value)), limit)


def has_credentials(url: str) -> bool:
    """Whether ``url`` (any scheme) carries ``user[:password]@`` in its authority. No result or image
    URL may: the password would travel wherever the URL does (XCom, logs, object metadata)."""
    match = _URL_RE.match(url) if isinstance(url, str) else None
    return match is not None and "@" in match[2]


def shorten(text: str, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` cut to ``limit`` characters for a message, saying how many were left out: a message
    names what was wrong, it does not carry a whole blob, path or server body."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def scrub(text: str, secrets: Iterable[str | None], *, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` with every non-empty secret replaced, then :func:`shorten` to ``limit`` characters."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return shorten(text, limit)


__all__ = [
    "HTTP_SCHEMES",
    "MAX_SERVER_TEXT",
    "MAX_SHOWN_VALUE",
    "authority",
    "has_credentials",
    "is_http_url",
    "redact_url",
    "redact_urls",
    "scrub",
    "shorten",
    "shown_value",
]
