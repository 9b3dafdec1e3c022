"""What may be shown: URLs without their signatures, server text without secrets and within a length.

Everything this provider writes where people or other systems read it (task logs, XCom, trigger
events, exception messages, manifests) goes through these functions first:

* result and image URLs carry signed query strings (``X-Amz-Signature``, ``X-Amz-Security-Token``,
  ``Expires``...): :func:`redact_url` keeps the scheme, host and path and drops the query and any
  ``user:password@``;
* server-provided text may echo the request, and so the key or a token: :func:`scrub` replaces every
  secret given and caps the length, so a hostile server cannot flood logs or XCom rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MAX_SERVER_TEXT = 500
"""Characters of server-provided text kept in messages (error bodies, FAIL reasons)."""
REDACTED = "***"


def redact_url(url: str) -> str:
    """``https://host/path`` of a URL: no query string (signatures), no fragment, no credentials."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + ("?<redacted>" if parts.query else "")


def scrub(text: str, secrets: Iterable[str | None], *, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` with every non-empty secret replaced and cut to ``limit`` characters."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


__all__ = ["MAX_SERVER_TEXT", "redact_url", "scrub"]
