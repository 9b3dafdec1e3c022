"""A tiny HTTP/1.1 server on 127.0.0.1 for tests where the wire matters (bytes dripped one at a time,
chunked bodies, TLS with SNI): each test says what a connection is answered with, byte for byte."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field

import httpx

Respond = Callable[[str, str], Iterable[bytes]]
"""``(method, path) -> pieces``: the raw bytes written back, one ``sendall`` per piece."""


@dataclass
class Seen:
    """What the server saw of one request."""

    request_line: str
    headers: dict[str, str]
    sni: str | None = None


@dataclass
class LocalServer:
    """``with LocalServer(respond) as server: ...``; ``server.port``, ``server.seen``, ``server.sent``."""

    respond: Respond
    tls: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    sent: int = 0

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        self._sock.settimeout(0.05)  # accept() wakes up to see a stop
        self._stop = threading.Event()
        self._sni: list[str | None] = []
        if self.tls is not None:
            self.tls.sni_callback = lambda _obj, name, _ctx: self._sni.append(name)
        self._thread = threading.Thread(target=self._serve, name="local-test-server", daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            sni = self._sni[-1] if self._sni else None
            self.seen.append(Seen(lines[0], {k.lower(): v for k, v in headers.items()}, sni))
            method, path, _ = lines[0].split(" ", 2)
            for piece in self.respond(method, path):
                conn.sendall(piece)
                self.sent += len(piece)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


def head(status: str = "200 OK", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def drip(body: bytes, every: float) -> Iterator[bytes]:
    """``body`` one byte at a time, ``every`` seconds apart (a slow or hostile host)."""
    for index in range(len(body)):
        yield body[index : index + 1]
        time.sleep(every)


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` in HTTP/1.1 chunked framing."""
    for piece in pieces:
        if piece:
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def gzip_stream(size: int, *, prefix: bytes = b"", block: int = 1024 * 1024) -> Iterator[bytes]:
    """A gzip member decoding to ``prefix`` then zeros up to ``size`` bytes, compressed as it goes (the
    whole never exists on either side)."""
    gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
    yield gzip.compress(prefix)
    zeros = bytes(block)
    for start in range(len(prefix), size, block):
        yield gzip.compress(zeros[: min(block, size - start)])
    yield gzip.flush()


def gzip_bytes(size: int, *, prefix: bytes = b"", suffix: bytes = b"", layers: int = 1, fill: bytes = b"\0") -> bytes:
    """``prefix`` + ``fill`` repeated + ``suffix`` (``size`` bytes in all), gzipped ``layers`` times."""
    gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [gzip.compress(prefix)]
    block = fill * (1024 * 1024 // len(fill))
    remaining = size - len(prefix) - len(suffix)
    while remaining > 0:
        out.append(gzip.compress(block[: min(len(block), remaining)]))
        remaining -= len(block)
    out += [gzip.compress(suffix), gzip.flush()]
    data = b"".join(out)
    for _ in range(layers - 1):
        again = zlib.compressobj(9, zlib.DEFLATED, 31)
        data = again.compress(data) + again.flush()
    return data


class RawBody(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A mocked answer's bytes as they travel (respx pre-reads, and so decodes, an ``httpx.ByteStream``
    when it matches a route: a test of what the client decodes must not let the mock do it first)."""

    def __init__(self, data: bytes, piece: int | None = None) -> None:
        self._data = data
        self._piece = piece or max(len(data), 1)

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self._data), self._piece):
            yield self._data[start : start + self._piece]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self:
            yield piece
