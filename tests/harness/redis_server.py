"""A throwaway Redis server (the Celery broker of the distributed test and the benchmarks).

Debian's ``redis-server`` on a free port, bound to 127.0.0.1, with persistence off (no RDB
snapshots, no append-only file: a broker for one test run), in its own process group and stopped by
that group.

Importing this module imports nothing outside the standard library (readiness is a raw ``PING``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_cogvideo.testing.processes import log_tail, stop_group
from airflow_provider_cogvideo.testing.seaweedfs import free_ports

HOST = "127.0.0.1"


class RedisError(RuntimeError):
    """The server could not be started."""


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
    )
    if not found:
        raise RedisError("redis-server was not found: apt-get install redis-server")
    return found


def ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Redis server answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = HOST
    _dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:PORT/DB`` (Celery's ``broker_url``)."""
        return f"redis://{self.host}:{self.port}/{db}"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the server's process group, SIGKILL if it lingers. Safe to call twice."""
        stop_group(self.process, grace=grace)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def start_redis(*, timeout: float = 30.0) -> RedisServer:
    """``redis-server`` on a free port with persistence off; returns once it answers PING."""
    binary = redis_binary()
    workdir = tempfile.TemporaryDirectory(prefix="cogvideo-redis-")
    last = "not started"
    for _attempt in range(3):
        (port,) = free_ports(1)
        log_path = Path(workdir.name) / f"redis-{port}.log"
        argv = [
            binary,
            "--port", str(port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", workdir.name,
            "--logfile", str(log_path),
            "--daemonize", "no",
        ]  # fmt: skip
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        server = RedisServer(process=process, port=port, log_path=log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if ping(HOST, port):
                server._dir = workdir
                return server
            time.sleep(0.05)
        last = f"exit code {process.poll()}; log:\n{log_tail(log_path, 20)}"
        server.stop()
    workdir.cleanup()
    raise RedisError(f"redis-server did not start after 3 attempts: {last}")


@contextmanager
def running_redis(*, timeout: float = 30.0) -> Iterator[RedisServer]:
    """``with running_redis() as redis: ...``: a server for the block, stopped (group-killed) after."""
    server = start_redis(timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


__all__ = ["RedisError", "RedisServer", "ping", "redis_binary", "running_redis", "start_redis"]
