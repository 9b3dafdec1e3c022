"""Result downloads, served like a CDN: no API auth, optional signed expiring URLs, byte ranges.

Errors here are CDN-style XML (as object stores answer), not the API's JSON: a client must not
mistake an expired URL for an API error.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Send

CHUNK_SIZE = 256 * 1024


class UrlSigner:
    """Appends ``?expires=<unix s>&signature=<hmac>`` when a TTL is set; a fresh query re-signs."""

    def __init__(self, ttl: float | None) -> None:
        self.ttl = ttl
        self._key = secrets.token_bytes(32)

    def _signature(self, path: str, expires: str) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, path: str) -> str:
        if self.ttl is None:
            return ""
        expires = str(math.floor(time.time() + self.ttl))
        return f"?expires={expires}&signature={self._signature(path, expires)}"

    def problem(self, path: str, params: Mapping[str, str]) -> str | None:
        """Why this URL may not be served (None: it may)."""
        if self.ttl is None:
            return None
        expires, signature = params.get("expires", ""), params.get("signature", "")
        if not expires.isdigit() or not hmac.compare_digest(signature, self._signature(path, expires)):
            return "Invalid signature"
        if time.time() >= int(expires):
            return "Request has expired"
        return None


def cdn_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>\n'
    return Response(body, status_code=status, media_type="application/xml")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_exclusive)`` of a single ``bytes=`` range; None means "send everything".

    Malformed or multi-range headers are ignored (RFC 9110 allows answering 200 with the whole).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    try:
        if not dash:
            return None
        if not first:
            suffix = int(last)
            if suffix <= 0:
                raise RangeNotSatisfiable
            start, end = max(0, size - suffix), size
        else:
            start, end = int(first), (min(size, int(last) + 1) if last else size)
    except ValueError:
        return None
    if start >= size or end <= start:
        raise RangeNotSatisfiable
    return start, end


class _TruncatedStream(StreamingResponse):
    """Announces the full Content-Length, sends less, then ends without completing the response,
    which makes the server close the connection: what a dropped CDN transfer looks like."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


def ranged_response(
    request: Request,
    size: int,
    media_type: str,
    chunks: Callable[[int, int], Iterator[bytes]],
    truncate_at: Callable[[int], int | None],
) -> Response:
    """200 or 206 with Content-Length (always) and Content-Range; 416 for an impossible range."""
    headers = {"Accept-Ranges": "bytes"}
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = span or (0, size)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    status = 206 if span else 200
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    cut = truncate_at(end - start)
    if cut is not None:
        return _TruncatedStream(chunks(start, start + cut), status, headers, media_type)
    return StreamingResponse(chunks(start, end), status, headers, media_type)


def file_chunks(path: Path) -> Callable[[int, int], Iterator[bytes]]:
    def read(start: int, end: int) -> Iterator[bytes]:
        with path.open("rb") as f:
            f.seek(start)
            remaining = end - start
            while remaining > 0:
                data = f.read(min(CHUNK_SIZE, remaining))
                if not data:
                    return
                remaining -= len(data)
                yield data

    return read
