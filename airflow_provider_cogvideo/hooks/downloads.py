"""Result downloads: a URL from an API answer opened as a checked, bounded stream.

The URL is not trusted to point anywhere. Redirects are followed one hop at a time (at most
:data:`MAX_DOWNLOAD_REDIRECTS`, never https to http), and every hop is checked before anything is
sent to it (:class:`~.addresses.AddressPolicy`: http(s) only, no refused network). The body is read
as :mod:`.bodies` reads any body: one network read at a time, within a size cap and a deadline;
downloads ask for ``identity`` and refuse a compressed body (a result file is stored as sent).

The connection goes to the address that was checked: the transport's network backend connects only to
the addresses pinned for that host and port when it was checked, so a name that resolves to a public
address for the check and to ``127.0.0.1`` a moment later (DNS rebinding) still reaches the public
one. The URL, and so the ``Host`` header, TLS SNI and certificate verification, keep the host name.

Proxies: downloads ignore the environment's proxy settings (``trust_env=False``) and ``.netrc``. A
proxy resolves the host name itself, so the address checked would say nothing about where the
request goes; a deployment that must egress through a proxy has to allow the result hosts on its
firewall instead. API requests are unchanged (they go to the configured base URL and may use a proxy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_cogvideo.errors import CogVideoDownloadError, CogVideoDownloadTooLargeError
from airflow_provider_cogvideo.hooks.addresses import AddressPolicy, Target
from airflow_provider_cogvideo.hooks.bodies import BodyLimits, BodyReader, BodyRefused, content_encodings, encoding_name
from airflow_provider_cogvideo.redact import authority, redact_url
from airflow_provider_cogvideo.sizes import GiB

if TYPE_CHECKING:
    import ssl

    import httpx

MAX_DOWNLOAD_REDIRECTS = 5
"""Redirect hops a result download may take (CDNs use one or two)."""
MAX_DOWNLOAD_BYTES = 4 * GiB
""":meth:`~.cogvideo.CogVideoHook.stream_download`'s default cap; the transfer passes its own."""
DOWNLOAD_ACCEPT_ENCODING = "identity"


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
            raise CogVideoDownloadError(f"download refused: {authority(host, port)} was not checked before connecting")
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
    ours (``tests/unit/hooks/test_downloads.py`` checks on the wire that connections go where pinned)."""
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


class Download:
    """An opened result download: the final answer's status and headers, and its body read within a
    size cap and a deadline (:class:`~.bodies.BodyReader`, one network read at a time)."""

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
    """GET ``url`` as a checked stream: every hop checked and pinned (:meth:`~.addresses.AddressPolicy.check`),
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
                    f"{', '.join(encoding_name(e) for e in encodings)!r}, which was not asked for "
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


__all__ = ["DOWNLOAD_ACCEPT_ENCODING", "MAX_DOWNLOAD_BYTES", "MAX_DOWNLOAD_REDIRECTS", "Download", "open_download"]
