"""How much of a body is read, how fast, and how it is decoded: every body a server sends, an API
answer or a result file, is read within bounds, because any server (the file host, or whoever answers
for the API) may send one built to exhaust memory or to hold a worker forever.

:class:`BodyReader` reads a body one network read at a time (``iter_raw``: never an aggregated
chunk) and after each read checks:

* the size cap, on the bytes received and on the decoded bytes (:data:`MAX_ANSWER_BYTES` for an API
  answer, the caller's cap for a download), so what is held never exceeds the cap by more than one
  read or one decoding step (:data:`DECODE_STEP`);
* the deadline: after a grace period (the connection's ``request_timeout``) the body must have
  arrived at an average of at least ``min_rate`` bytes per second (the ``min_transfer_rate`` extra),
  i.e. ``elapsed <= grace + received / min_rate``; so no body takes longer than
  ``grace + cap / min_rate``. The clock starts when the answer's headers arrive (connecting, sending
  and waiting for them are bounded by httpx's timeouts). A read blocks at most ``request_timeout``,
  so the deadline may be overrun by one read timeout.

Decoding is done here, not by httpx, whose decoder inflates a whole network read at once (a few KB
of gzip can become gigabytes before any count sees them): zlib with ``max_length``, so no step
produces more than :data:`DECODE_STEP` bytes. Downloads ask for ``identity`` and refuse any
``Content-Encoding`` (a result file is stored as sent). API requests ask for ``gzip, deflate``; an
answer may carry one layer of either. More than one layer (``gzip, gzip``) is refused rather than
unwrapped: no server sends it to a client that asked for one, and an intermediate layer could
inflate without producing a byte of the final body. Any other encoding (``br``, ``zstd``) was not
asked for and is refused.

:func:`read_answer` reads an API answer this way; an answer that cannot be read within the bounds is
judged by its status alone.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from airflow_provider_cogvideo.errors import api_error
from airflow_provider_cogvideo.redact import redact_url, scrub
from airflow_provider_cogvideo.sizes import MiB

if TYPE_CHECKING:
    import httpx

MAX_ANSWER_BYTES = 1 * MiB
"""Largest API answer read (decoded). Submit and query answers are JSON objects of a few hundred
bytes to a few KB (a job with its URLs); a thousand times that is still no threat to a triggerer
that polls hundreds of jobs at once."""
DECODE_STEP = 64 * 1024
"""Most bytes one decoding step may produce: the granularity at which a compressed answer is counted."""
API_ACCEPT_ENCODING = "gzip, deflate"
"""What API requests ask for: the encodings this module decodes within bounds."""
_ANSWER_ENCODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_ENCODING_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.+")


def _monotonic() -> float:
    """The clock deadlines read (tests replace it through ``clock=`` or by patching this function)."""
    return time.monotonic()


@dataclass(frozen=True)
class BodyLimits:
    """How much of a body may be read (``max_bytes``, raw and decoded) and how slowly: the average
    rate since the headers must stay at least ``min_rate`` bytes/s once ``grace`` seconds have passed."""

    max_bytes: int
    grace: float
    min_rate: float

    def allowed_seconds(self, received: int) -> float:
        """How long a body of which ``received`` bytes arrived may have taken so far."""
        return self.grace + min(received, self.max_bytes) / self.min_rate


BodyProblem = Literal["too_large", "too_slow", "encoding", "corrupt"]


class BodyRefused(Exception):
    """Why a body was not read to its end; the caller raises it as its own taxonomy's error."""

    def __init__(self, kind: BodyProblem, detail: str, *, received: int) -> None:
        self.kind = kind
        self.detail = detail
        self.received = received
        super().__init__(detail)


def encoding_name(token: str) -> str:
    """A Content-Encoding token as it may be shown: a short token, never arbitrary server text."""
    return token if 0 < len(token) <= 24 and set(token) <= _ENCODING_TOKEN_CHARS else "<unreadable>"


def content_encodings(headers: httpx.Headers) -> list[str]:
    """The layers of ``Content-Encoding`` in the order applied (``identity`` and empty tokens dropped)."""
    tokens = (token.strip().lower() for token in headers.get_list("content-encoding", split_commas=True))
    return [token for token in tokens if token and token != "identity"]


class _Inflater:
    """One layer of gzip or deflate, decoded at most :data:`DECODE_STEP` bytes per step.

    HTTP's ``deflate`` is zlib-wrapped, but some servers send raw deflate: the first two bytes decide,
    as browsers and httpx do."""

    def __init__(self, encoding: str, step: int) -> None:
        self.encoding = encoding
        self._step = step
        self._obj = zlib.decompressobj(_ANSWER_ENCODINGS[encoding])
        self._head: bytes | None = b"" if encoding == "deflate" else None

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._head is not None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, None
            cmf, flg = data[0], data[1]
            if cmf & 0x0F != 8 or (cmf * 256 + flg) % 31:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            while data or not self._obj.eof:
                out = self._obj.decompress(data, self._step)
                data = self._obj.unconsumed_tail
                if out:
                    yield out
                if len(out) < self._step and not data:
                    return  # all input taken and nothing pending (a full step may leave output behind)
        except zlib.error as exc:
            raise BodyRefused("corrupt", f"is not valid {self.encoding} ({exc})", received=0) from None

    def finish(self) -> None:
        if self._head is not None or not self._obj.eof:
            raise BodyRefused("corrupt", f"ended inside its {self.encoding} stream", received=0)


class BodyReader:
    """Counts and decodes a body one network read at a time, within :class:`BodyLimits`.

    ``take(raw)`` after each read: checks the deadline and the caps, yields the decoded pieces (each
    at most one read or :data:`DECODE_STEP`); ``finish()`` at the end. Raises :class:`BodyRefused`."""

    def __init__(
        self,
        limits: BodyLimits,
        *,
        encodings: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.limits = limits
        self._clock = clock or _monotonic
        self.started = self._clock()
        self.received = 0
        self.decoded = 0
        self.largest_piece = 0
        layers = list(encodings)
        if len(layers) > 1:
            shown = ", ".join(encoding_name(layer) for layer in layers)
            raise BodyRefused(
                "encoding",
                f"has {len(layers)} layers of Content-Encoding ({shown}); at most one is decoded",
                received=0,
            )
        if layers and layers[0] not in _ANSWER_ENCODINGS:
            raise BodyRefused(
                "encoding",
                f"has Content-Encoding {encoding_name(layers[0])!r}, which was not asked for "
                f"(Accept-Encoding: {API_ACCEPT_ENCODING})",
                received=0,
            )
        self._inflater = _Inflater(layers[0], DECODE_STEP) if layers else None

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def take(self, raw: bytes) -> Iterator[bytes]:
        """The decoded pieces of one network read, after checking the deadline and the raw cap."""
        self.received += len(raw)
        self._check_deadline()
        if self.received > self.limits.max_bytes:
            raise self._too_large("received")
        if self._inflater is None:
            self.decoded += len(raw)
            self.largest_piece = max(self.largest_piece, len(raw))
            if raw:
                yield raw
            return
        try:
            for piece in self._inflater.feed(raw):
                self.decoded += len(piece)
                self.largest_piece = max(self.largest_piece, len(piece))
                if self.decoded > self.limits.max_bytes:
                    raise self._too_large("decoded")
                yield piece
        except BodyRefused as exc:
            exc.received = self.received
            raise

    def finish(self) -> None:
        """The body ended: one last deadline check, and a compressed body must be complete."""
        self._check_deadline()
        if self._inflater is not None and self.received:
            try:
                self._inflater.finish()
            except BodyRefused as exc:
                exc.received = self.received
                raise

    def _check_deadline(self) -> None:
        elapsed = self.elapsed
        if elapsed > self.limits.allowed_seconds(self.received):
            raise BodyRefused(
                "too_slow",
                f"is too slow: {self.received} bytes in {elapsed:.1f} s, below the minimum average of "
                f"{self.limits.min_rate:g} bytes/s after a grace of {self.limits.grace:g} s "
                "(connection extra min_transfer_rate)",
                received=self.received,
            )

    def _too_large(self, counted: str) -> BodyRefused:
        count = self.received if counted == "received" else self.decoded
        return BodyRefused(
            "too_large",
            f"is over its cap of {self.limits.max_bytes} bytes ({count} bytes {counted} when reading stopped)",
            received=count,
        )


# ---------------------------------------------------------------------------------------------------
# API answers.


class _Answer:
    """An API answer's body as it arrives: read by a :class:`BodyReader` (the answer's encoding, the
    caller's limits) and collected; a body refused by the reader is judged by the status alone (a 2xx
    is an answer that cannot be read: a query's error budget pays, a submit is ambiguous; any other
    status is classified as if its body carried no code)."""

    def __init__(
        self,
        response: httpx.Response,
        limits: BodyLimits,
        secrets: Iterable[str | None],
        clock: Callable[[], float] | None,
    ) -> None:
        self._response = response
        self._secrets = secrets
        self._body = bytearray()
        with self._judged():
            self._reader = BodyReader(limits, encodings=content_encodings(response.headers), clock=clock)

    def take(self, raw: bytes) -> None:
        with self._judged():
            for piece in self._reader.take(raw):
                self._body += piece

    def finish(self) -> httpx.Response:
        """``response`` with its (decoded) body read: the same status, headers (minus the encoding and
        length of the bytes on the wire) and request."""
        import httpx

        with self._judged():
            self._reader.finish()
        response = self._response
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code, headers=headers, content=bytes(self._body), request=response.request
        )

    @contextlib.contextmanager
    def _judged(self) -> Iterator[None]:
        try:
            yield
        except BodyRefused as exc:
            request = self._response.request
            detail = f"the answer to {request.method} {redact_url(str(request.url))} {exc.detail}"
            raise api_error(self._response.status_code, None, scrub(detail, self._secrets)) from None


def read_answer(
    response: httpx.Response,
    limits: BodyLimits,
    *,
    secrets: Iterable[str | None] = (),
    clock: Callable[[], float] | None = None,
) -> httpx.Response:
    """An API answer opened with ``stream=True``, read within ``limits`` and decoded in bounded steps;
    returned complete (``.json()``, ``.content``). Does not close ``response``."""
    answer = _Answer(response, limits, secrets, clock)
    for raw in response.iter_raw():
        answer.take(raw)
    return answer.finish()


async def aread_answer(
    response: httpx.Response,
    limits: BodyLimits,
    *,
    secrets: Iterable[str | None] = (),
    clock: Callable[[], float] | None = None,
) -> httpx.Response:
    """Async :func:`read_answer`."""
    answer = _Answer(response, limits, secrets, clock)
    async for raw in response.aiter_raw():
        answer.take(raw)
    return answer.finish()


__all__ = [
    "API_ACCEPT_ENCODING",
    "DECODE_STEP",
    "MAX_ANSWER_BYTES",
    "BodyLimits",
    "BodyReader",
    "BodyRefused",
    "aread_answer",
    "content_encodings",
    "encoding_name",
    "read_answer",
]
