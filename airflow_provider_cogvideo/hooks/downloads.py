"""Reading what a server sends without trusting it: where a result download may go, and how much of
any body (a result file or an API answer) is read, how fast, and how it is decoded.

The hook calls this module; nothing here knows about jobs or the connection beyond the numbers it is
given. Two threats shape it: the result URL comes from an API answer, so it may point anywhere; and
any server (the file host, or whoever answers for the API) may send a body built to exhaust memory or
to hold a worker forever.

Where a download may go
-----------------------
Only http(s), redirects followed one hop at a time (at most :data:`MAX_DOWNLOAD_REDIRECTS`, never
https to http), and every hop's host resolved and checked against an explicit table of refused
networks (:data:`REFUSED_V4`, :data:`REFUSED_V6`; IPv6 forms that embed an IPv4 address, such as
6to4, NAT64 or IPv4-mapped, are judged by the embedded address). The table is written out here rather
than read from ``ipaddress``' ``is_private``/``is_global``, whose answers changed between Python 3.10
and 3.13. Every address the name resolves to must pass.

The connection goes to the address that was checked: the transport's network backend connects only to
the address pinned for that host and port when it was checked, so a name that resolves to a public
address for the check and to ``127.0.0.1`` a moment later (DNS rebinding) still reaches the public
one. The URL, and so the ``Host`` header, TLS SNI and certificate verification, keep the host name.

With a local emulator as the API (a loopback base URL), downloads may reach exactly the API's own
address and port, nothing else on loopback.

Proxies: downloads ignore the environment's proxy settings (``trust_env=False``) and ``.netrc``. A
proxy resolves the host name itself, so the address checked here would say nothing about where the
request goes; a deployment that must egress through a proxy has to allow the result hosts on its
firewall instead. API requests are unchanged (they go to the configured base URL and may use a proxy).

How much, how fast, how decoded
-------------------------------
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
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from airflow_provider_cogvideo.capabilities import MiB
from airflow_provider_cogvideo.errors import (
    CogVideoDownloadError,
    CogVideoDownloadTooLargeError,
    api_error,
)
from airflow_provider_cogvideo.redact import redact_url, scrub

if TYPE_CHECKING:
    import ssl

    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_DOWNLOAD_REDIRECTS = 5
"""Redirect hops a result download may take (CDNs use one or two)."""
MAX_DOWNLOAD_BYTES = 4 * 1024 * MiB
""":meth:`~.cogvideo.CogVideoHook.stream_download`'s default cap; the transfer passes its own."""
MAX_ANSWER_BYTES = 1 * MiB
"""Largest API answer read (decoded). Submit and query answers are JSON objects of a few hundred
bytes to a few KB (a job with its URLs); a thousand times that is still no threat to a triggerer
that polls hundreds of jobs at once."""
DECODE_STEP = 64 * 1024
"""Most bytes one decoding step may produce: the granularity at which a compressed answer is counted."""
API_ACCEPT_ENCODING = "gzip, deflate"
"""What API requests ask for: the encodings this module decodes within bounds."""
DOWNLOAD_ACCEPT_ENCODING = "identity"
_ANSWER_ENCODINGS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_ENCODING_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.+")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _monotonic() -> float:
    """The clock deadlines read (tests replace it through ``clock=`` or by patching this function)."""
    return time.monotonic()


# ---------------------------------------------------------------------------------------------------
# Addresses: which networks a download may not reach.

REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 itself
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),  # shared address space, inside a provider's network
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # cloud metadata services live here
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # the deprecated 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
"""IPv4 networks a download may not reach, first match wins; every other IPv4 address is public."""

REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "private"),  # local-use NAT64 (RFC 8215): translates into a local network
        ("100::/64", "reserved"),  # discard-only
        ("2001::/32", "reserved"),  # Teredo: a tunnel to an IPv4 address hidden in the address
        ("2001:2::/48", "benchmarking"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "private"),  # unique local
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local (deprecated)
        ("ff00::/8", "multicast"),
    )
)
"""IPv6 networks a download may not reach (checked before the embedded forms below)."""


def _low32(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _6to4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)


EMBEDDED_V4: tuple[tuple[ipaddress.IPv6Network, str, Callable[[ipaddress.IPv6Address], ipaddress.IPv4Address]], ...]
EMBEDDED_V4 = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped", _low32),
    (ipaddress.IPv6Network("::/96"), "IPv4-compatible", _low32),
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64", _low32),
    (ipaddress.IPv6Network("2002::/16"), "6to4", _6to4),
)
"""IPv6 forms that carry an IPv4 address: judged by :data:`REFUSED_V4` on the embedded address."""

GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
"""Outside it (and the forms above) an IPv6 address is unassigned or special: refused as reserved."""


def refused_kind(address: IPAddress) -> tuple[str, str] | None:
    """Why ``address`` is no place for a download: ``(kind, note)`` (``note`` names an embedded IPv4
    address), or None for a public address. Decided by the tables above only."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, kind in REFUSED_V4:
            if address in network:
                return kind, ""
        return None
    for network, kind in REFUSED_V6:
        if address in network:
            return kind, ""
    for network, form, embedded in EMBEDDED_V4:
        if address in network:
            inner = embedded(address)
            found = refused_kind(inner)
            return (found[0], f"{form} {inner}") if found else None
    if address not in GLOBAL_UNICAST_V6:
        return "reserved", ""
    return None


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is (how a dual-stack socket reaches it)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def resolve(hostname: str, shown: str) -> list[IPAddress]:
    """The addresses a host name stands for: itself if literal, else what the resolver says."""
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CogVideoDownloadError(f"download of {shown}: cannot resolve {hostname}", retryable=True) from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
    if not addresses:
        raise CogVideoDownloadError(f"download of {shown}: cannot resolve {hostname}", retryable=True)
    return addresses


@dataclass(frozen=True)
class Target:
    """A checked hop: the host as the transport will name it, its port, and the addresses (all
    checked) to connect to, in the resolver's order."""

    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class AddressPolicy:
    """Where downloads may go: public addresses, plus ``allowed`` (address, port) pairs: the API's own
    when it runs on loopback (the local emulator hands out its own URLs)."""

    allowed: frozenset[tuple[IPAddress, int]] = frozenset()

    @classmethod
    def for_api(cls, base_url: str) -> AddressPolicy:
        """The policy of a connection: with a loopback API, exactly its address(es) and port."""
        parts = urlsplit(base_url)
        hostname = parts.hostname or ""
        if hostname != "localhost" and not _is_loopback_literal(hostname):
            return cls()
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
        try:
            addresses = resolve(hostname, redact_url(base_url))
        except CogVideoDownloadError:
            return cls()
        return cls(frozenset((_plain(address), port) for address in addresses if _kind(address) == "loopback"))

    def check(self, url: str) -> Target:
        """``url``'s host, resolved and checked; a refusal is a non-retryable :class:`CogVideoDownloadError`
        that names the host and address (never the query string: it holds signatures)."""
        import httpx

        shown = redact_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
            raw_host = httpx.URL(url).raw_host.decode("ascii")
        except (ValueError, httpx.InvalidURL, UnicodeError):
            raw_host, parts, port = "", None, None
        if parts is None or parts.scheme not in _DEFAULT_PORTS or not parts.hostname or not raw_host:
            raise CogVideoDownloadError(f"download refused: not an http(s) URL: {scrub(shown, (), limit=200)}")
        port = port or _DEFAULT_PORTS[parts.scheme]
        addresses = resolve(raw_host, shown)
        for address in addresses:
            if (_plain(address), port) in self.allowed:
                continue
            found = refused_kind(address)
            if found:
                kind, note = found
                detail = f"{address}, {note}" if note else str(address)
                raise CogVideoDownloadError(
                    f"download of {shown} refused: {parts.hostname} is a {kind} address ({detail})"
                )
        return Target(host=raw_host.lower(), port=port, addresses=tuple(str(_plain(a)) for a in addresses))


def _kind(address: IPAddress) -> str | None:
    found = refused_kind(address)
    return found[0] if found else None


def _is_loopback_literal(hostname: str) -> bool:
    try:
        return _kind(ipaddress.ip_address(hostname.strip("[]"))) == "loopback"
    except ValueError:
        return False


class _PinnedBackend:
    """httpcore's network backend, connecting only to the address checked for a host and port.

    httpcore hands ``connect_tcp`` the URL's host; this backend takes the addresses pinned for it
    instead of resolving again (trying them in turn, as ``socket.create_connection`` does with a
    resolver's answer), and refuses a host that was never checked. TLS is then started by httpcore
    with the host name as SNI and for certificate verification (``server_hostname``)."""

    def __init__(self) -> None:
        import httpcore

        self._inner = httpcore.SyncBackend()
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, target: Target) -> None:
        self._pins[(target.host, target.port)] = target.addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        import httpcore

        addresses = self._pins.get((host.lower(), port))
        if not addresses:
            raise CogVideoDownloadError(f"download refused: {host}:{port} was not checked before connecting")
        for index, address in enumerate(addresses):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise CogVideoDownloadError("download refused: no Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _pinned_transport(backend: _PinnedBackend, verify: ssl.SSLContext | bool) -> httpx.HTTPTransport:
    """httpx's transport over a connection pool that connects through ``backend``.

    ``HTTPTransport`` takes no network backend, so its pool is replaced by one built the same way with
    ours (``tests/unit/test_downloads.py`` checks on the wire that connections go where pinned)."""
    import httpcore
    import httpx

    ssl_context = httpx.create_ssl_context(verify=verify)
    transport = httpx.HTTPTransport(verify=ssl_context)
    transport._pool = httpcore.ConnectionPool(  # httpx has no network_backend argument: see the docstring
        ssl_context=ssl_context,
        max_connections=4,
        max_keepalive_connections=2,
        keepalive_expiry=5.0,
        network_backend=backend,
    )
    return transport


# ---------------------------------------------------------------------------------------------------
# Bodies: how much, how fast, decoded in bounded steps.


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


def _encoding_name(token: str) -> str:
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
            shown = ", ".join(_encoding_name(layer) for layer in layers)
            raise BodyRefused(
                "encoding",
                f"has {len(layers)} layers of Content-Encoding ({shown}); at most one is decoded",
                received=0,
            )
        if layers and layers[0] not in _ANSWER_ENCODINGS:
            raise BodyRefused(
                "encoding",
                f"has Content-Encoding {_encoding_name(layers[0])!r}, which was not asked for "
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
# Downloads.


class Download:
    """An opened result download: the final answer's status and headers, and its body read within a
    size cap and a deadline (:class:`BodyReader`, one network read at a time)."""

    def __init__(self, response: httpx.Response, reader: BodyReader, shown: str) -> None:
        self._response = response
        self.reader = reader
        self.shown = shown
        self.headers = response.headers
        self.status_code = response.status_code
        self.url = str(response.url)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body, as it arrives (``chunk_size``: regrouped into pieces of that size, after the checks).

        Raises :class:`CogVideoDownloadTooLargeError` past the cap and a non-retryable
        :class:`CogVideoDownloadError` when too slow; a dropped connection raises httpx's error (the
        hook's context manager turns it into a retryable :class:`CogVideoDownloadError`)."""
        pieces = self._pieces()
        if chunk_size is None:
            yield from pieces
            return
        buffer = bytearray()
        for piece in pieces:
            buffer += piece
            while len(buffer) >= chunk_size:
                yield bytes(buffer[:chunk_size])
                del buffer[:chunk_size]
        if buffer:
            yield bytes(buffer)

    def _pieces(self) -> Iterator[bytes]:
        try:
            for raw in self._response.iter_raw():
                yield from self.reader.take(raw)
            self.reader.finish()
        except BodyRefused as exc:
            if exc.kind == "too_large":
                raise CogVideoDownloadTooLargeError(
                    f"download of {self.shown} stopped: {exc.detail}",
                    max_bytes=self.reader.limits.max_bytes,
                    received=exc.received,
                ) from None
            raise CogVideoDownloadError(f"download of {self.shown} {exc.detail}; not retried") from None


@contextlib.contextmanager
def open_download(
    url: str,
    *,
    policy: AddressPolicy,
    limits: BodyLimits,
    timeout: httpx.Timeout,
    headers: dict[str, str],
    verify: ssl.SSLContext | bool = True,
    clock: Callable[[], float] | None = None,
) -> Iterator[Download]:
    """GET ``url`` as a checked stream: every hop checked and pinned (:meth:`AddressPolicy.check`),
    status 2xx, no ``Content-Encoding``; yields a :class:`Download`. Never sends credentials: only
    ``headers`` (a User-Agent) travel, and no environment proxy or ``.netrc`` is used."""
    import httpx

    backend = _PinnedBackend()
    with httpx.Client(
        transport=_pinned_transport(backend, verify),
        timeout=timeout,
        headers={**headers, "Accept-Encoding": DOWNLOAD_ACCEPT_ENCODING},
        follow_redirects=False,
        trust_env=False,
    ) as client:
        response = _follow(client, backend, url, policy)
        shown = redact_url(str(response.url))
        try:
            if not response.is_success:
                raise CogVideoDownloadError(
                    f"download of {shown} answered HTTP {response.status_code}",
                    http_status=response.status_code,
                    retryable=response.status_code >= 500,
                )
            encodings = content_encodings(response.headers)
            if encodings:
                raise CogVideoDownloadError(
                    f"download of {shown} refused: the server sent Content-Encoding "
                    f"{', '.join(_encoding_name(e) for e in encodings)!r}, which was not asked for "
                    f"(Accept-Encoding: {DOWNLOAD_ACCEPT_ENCODING}); a compressed body is not read"
                )
            yield Download(response, BodyReader(limits, clock=clock), shown)
        except httpx.TransportError as exc:
            raise CogVideoDownloadError(f"download of {shown} failed: {type(exc).__name__}", retryable=True) from exc
        finally:
            response.close()


def _follow(client: httpx.Client, backend: _PinnedBackend, url: str, policy: AddressPolicy) -> httpx.Response:
    """GET ``url`` as a stream, following up to :data:`MAX_DOWNLOAD_REDIRECTS` redirects by hand so that
    every hop is checked, and its address pinned, before anything is sent to it. Returns the first
    answer that is not a redirect."""
    import httpx

    target = url
    for _ in range(MAX_DOWNLOAD_REDIRECTS + 1):
        backend.pin(policy.check(target))
        try:
            response = client.send(client.build_request("GET", target), stream=True)
        except httpx.TransportError as exc:
            raise CogVideoDownloadError(
                f"download of {redact_url(target)} failed: {type(exc).__name__}", retryable=True
            ) from exc
        if not response.has_redirect_location:
            return response
        response.close()
        hop = str(response.url.join(response.headers["location"]))
        if urlsplit(target).scheme == "https" and urlsplit(hop).scheme != "https":
            raise CogVideoDownloadError(
                f"download of {redact_url(url)} refused: {redact_url(target)} redirects from https to {redact_url(hop)}"
            )
        target = hop
    raise CogVideoDownloadError(f"download of {redact_url(url)} refused: more than {MAX_DOWNLOAD_REDIRECTS} redirects")


# ---------------------------------------------------------------------------------------------------
# API answers.


def _answer_reader(response: httpx.Response, limits: BodyLimits, clock: Callable[[], float] | None) -> BodyReader:
    return BodyReader(limits, encodings=content_encodings(response.headers), clock=clock)


def _answer_failure(response: httpx.Response, exc: BodyRefused, secrets: Iterable[str | None]) -> Exception:
    """A body that could not be read within the limits is judged by its status alone: a 2xx is an
    answer that cannot be read (a query's error budget pays, a submit is ambiguous), any other status
    is classified as if its body carried no code."""
    request = response.request
    message = scrub(f"the answer to {request.method} {redact_url(str(request.url))} {exc.detail}", secrets)
    return api_error(response.status_code, None, message)


def _completed(response: httpx.Response, body: bytes) -> httpx.Response:
    """``response`` with its (decoded) body read: the same status, headers (minus the encoding and
    length of the bytes on the wire) and request."""
    import httpx

    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(response.status_code, headers=headers, content=body, request=response.request)


def read_answer(
    response: httpx.Response,
    limits: BodyLimits,
    *,
    secrets: Iterable[str | None] = (),
    clock: Callable[[], float] | None = None,
) -> httpx.Response:
    """An API answer opened with ``stream=True``, read within ``limits`` and decoded in bounded steps;
    returned complete (``.json()``, ``.content``). Does not close ``response``."""
    body = bytearray()
    try:
        reader = _answer_reader(response, limits, clock)
        for raw in response.iter_raw():
            for piece in reader.take(raw):
                body += piece
        reader.finish()
    except BodyRefused as exc:
        raise _answer_failure(response, exc, secrets) from None
    return _completed(response, bytes(body))


async def aread_answer(
    response: httpx.Response,
    limits: BodyLimits,
    *,
    secrets: Iterable[str | None] = (),
    clock: Callable[[], float] | None = None,
) -> httpx.Response:
    """Async :func:`read_answer`."""
    body = bytearray()
    try:
        reader = _answer_reader(response, limits, clock)
        async for raw in response.aiter_raw():
            for piece in reader.take(raw):
                body += piece
        reader.finish()
    except BodyRefused as exc:
        raise _answer_failure(response, exc, secrets) from None
    return _completed(response, bytes(body))


__all__ = [
    "API_ACCEPT_ENCODING",
    "DECODE_STEP",
    "MAX_ANSWER_BYTES",
    "MAX_DOWNLOAD_BYTES",
    "MAX_DOWNLOAD_REDIRECTS",
    "REFUSED_V4",
    "REFUSED_V6",
    "AddressPolicy",
    "BodyLimits",
    "BodyReader",
    "Download",
    "aread_answer",
    "open_download",
    "read_answer",
    "refused_kind",
]
