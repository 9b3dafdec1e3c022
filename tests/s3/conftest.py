"""Fixtures for tests against a real S3 server: one SeaweedFS for the session, one bucket per test.

Connections are defined through ``AIRFLOW_CONN_*`` environment variables (no metadata DB needed):
``aws_s3test`` points S3Hook at SeaweedFS, ``cogvideo_s3test`` points CogVideoHook at a local
result-file server (downloads need no key; ``get_task`` is answered by the same server), and
``cogvideo_s3stream`` at the chunked/gzip file server (a loopback API opens only its own port to downloads).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from airflow_provider_cogvideo.testing.result_files import ResultFileServer
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS
from tests.s3.helpers import AWS_CONN_ID, COGVIDEO_CONN_ID, STREAM_CONN_ID, GzipFileServer


@pytest.fixture(scope="session")
def result_server() -> Iterator[ResultFileServer]:
    with ResultFileServer() as server:
        yield server


@pytest.fixture(scope="session")
def gzip_server() -> Iterator[GzipFileServer]:
    server = GzipFileServer()
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def _connections(seaweedfs: SeaweedFS, result_server: ResultFileServer, gzip_server: GzipFileServer) -> Iterator[None]:
    def cogvideo(base_url: str) -> str:
        extra = {"base_url": base_url, "max_retries": 0, "request_timeout": 10}
        return json.dumps({"conn_type": "cogvideo", "password": "s3test.secretkey", "extra": extra})

    env = {
        **seaweedfs.airflow_connection_uri_env(AWS_CONN_ID),
        f"AIRFLOW_CONN_{COGVIDEO_CONN_ID.upper()}": cogvideo(result_server.api_base_url),
        f"AIRFLOW_CONN_{STREAM_CONN_ID.upper()}": cogvideo(gzip_server.api_base_url),
    }
    with mock.patch.dict(os.environ, env):
        yield


@pytest.fixture
def s3(seaweedfs: SeaweedFS) -> Any:
    return seaweedfs.boto3_client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
