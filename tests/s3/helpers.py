"""Small helpers shared by the S3 tests (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

AWS_CONN_ID = "aws_s3test"
COGVIDEO_CONN_ID = "cogvideo_s3test"
STREAM_CONN_ID = "cogvideo_s3stream"
"""A connection whose API is the :class:`GzipFileServer` (downloads may reach a loopback API's own port only)."""
_GZIP_BLOCK = 1024 * 1024


def make_context(**extra: Any) -> dict[str, Any]:
    """The parts of an Airflow task context these operators use."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": mock.MagicMock(), "outlet_events": OutletEventAccessors(), **extra}


def pushed(context: dict[str, Any], key: str) -> Any:
    """The value ``execute`` pushed with ``ti.xcom_push(key=...)``."""
    for call in context["ti"].xcom_push.call_args_list:
        if call.kwargs.get("key") == key:
            return call.kwargs["value"]
    raise AssertionError(f"nothing pushed under {key!r}")


def object_keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def pending_uploads(s3: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


class GzipFileServer:
    """Serves ``/gz/<name>`` as a chunked body (no ``Content-Length``) of ``size`` zeros, gzip-encoded
    and compressed on the fly (a few KB on the wire, as a compressing CDN, or a hostile one, would
    send) or, with ``gzip=False``, as they are. ``sent[name]`` counts the bytes written."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, str, bool]] = {}
        self.sent: Counter[str] = Counter()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="gzip-file-server", daemon=True)
        self._thread.start()

    @property
    def api_base_url(self) -> str:
        """The ``base_url`` of :data:`STREAM_CONN_ID`: with the API on this server, downloads may reach it."""
        return f"{self.base_url}/api/paas/v4"

    def add(self, name: str, size: int, content_type: str = "video/mp4", *, gzip: bool = True) -> str:
        self.files[name] = (size, content_type, gzip)
        return f"{self.base_url}/gz/{name}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _chunk(self, name: str, data: bytes) -> None:
                if data:
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    server.sent[name] += len(data)

            def do_GET(self) -> None:
                name = self.path.split("?", 1)[0].removeprefix("/gz/")
                size, content_type, encoded = server.files[name]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if encoded:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
                block = bytes(_GZIP_BLOCK)
                try:
                    for start in range(0, size, _GZIP_BLOCK):
                        piece = block[: min(_GZIP_BLOCK, size - start)]
                        self._chunk(name, gzip.compress(piece) if encoded else piece)
                    if encoded:
                        self._chunk(name, gzip.flush())
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        return Handler
