"""A tiny local "CDN" for result files, with scripted faults, for transfer tests and benchmarks.

It serves ``/files/<name>`` (bytes given up front, or a synthetic payload of any size generated on
the fly so a 300 MB video costs no memory) and ``GET /api/paas/v4/async-result/<id>`` (the query
endpoint, so ``CogVideoHook.get_task`` can refresh an expired URL against it). Each file has a queue
of faults consumed one per request:

* ``"truncate:N"``: send the full ``Content-Length`` header, then N bytes, then close the socket;
* ``"status:C"``: answer HTTP C (``status:403`` is how an expired signed URL answers).

Binds 127.0.0.1 on a kernel-chosen port; runs in a daemon thread; stop with ``close()``.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_BLOCK = 1024 * 1024


@dataclass
class ServedFile:
    """One file: its bytes (or a synthetic size), content type and pending faults."""

    data: bytes | None
    size: int
    content_type: str
    faults: list[str] = field(default_factory=list)

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            for start in range(0, self.size, _BLOCK):
                yield self.data[start : start + _BLOCK]
            return
        yield from synthetic_chunks(self.size)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for chunk in self.chunks():
            digest.update(chunk)
        return digest.hexdigest()


def synthetic_chunks(size: int, seed: int = 7) -> Iterator[bytes]:
    """``size`` pseudo-random bytes in 1 MiB chunks (one random block, varied per chunk by its index)."""
    block = random.Random(seed).randbytes(_BLOCK)
    index = 0
    sent = 0
    while sent < size:
        chunk = index.to_bytes(8, "big") + block[8:]
        chunk = chunk[: size - sent]
        sent += len(chunk)
        index += 1
        yield chunk


class ResultFileServer:
    """``with ResultFileServer() as server: url = server.add("a.mp4", data)``."""

    def __init__(self) -> None:
        self.files: dict[str, ServedFile] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="result-file-server", daemon=True)
        self._thread.start()

    def __enter__(self) -> ResultFileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def api_base_url(self) -> str:
        """Use as the ``base_url`` extra of a ``cogvideo`` connection."""
        return f"{self.base_url}/api/paas/v4"

    def add(
        self,
        name: str,
        data: bytes | None = None,
        *,
        size: int | None = None,
        content_type: str = "video/mp4",
        faults: list[str] | None = None,
    ) -> str:
        """Serve ``data`` (or ``size`` synthetic bytes) at ``/files/<name>``; returns its URL."""
        if data is None and size is None:
            raise ValueError("give data or size")
        self.files[name] = ServedFile(
            data=data,
            size=len(data) if data is not None else int(size or 0),
            content_type=content_type,
            faults=list(faults or []),
        )
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base_url}/files/{name}"

    def add_task(self, task_id: str, video: str, cover: str | None = None, **fields: Any) -> None:
        """What ``GET async-result/<task_id>`` answers: a SUCCESS with these file names' URLs."""
        entry = {"url": self.url(video), "cover_image_url": self.url(cover) if cover else None}
        self.tasks[task_id] = {"id": task_id, "task_status": "SUCCESS", "video_result": [entry], **fields}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests
                return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests[path] += 1
                if path.startswith("/api/paas/v4/async-result/"):
                    task = server.tasks.get(path.rsplit("/", 1)[1])
                    if task is None:
                        self._json(404, {"error": {"code": "1210", "message": "no such task"}})
                    else:
                        self._json(200, task)
                    return
                served = server.files.get(path.removeprefix("/files/"))
                if served is None:
                    self._json(404, {"error": "not found"})
                    return
                with server._lock:
                    fault = served.faults.pop(0) if served.faults else ""
                if fault.startswith("status:"):
                    self._json(int(fault.split(":", 1)[1]), {"error": "fault"})
                    return
                limit = int(fault.split(":", 1)[1]) if fault.startswith("truncate:") else None
                self.send_response(200)
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(served.size))
                self.end_headers()
                sent = 0
                try:
                    for chunk in served.chunks():
                        if limit is not None and sent + len(chunk) > limit:
                            self.wfile.write(chunk[: limit - sent])
                            break
                        self.wfile.write(chunk)
                        sent += len(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                if limit is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

        return Handler


__all__ = ["ResultFileServer", "ServedFile", "synthetic_chunks"]
