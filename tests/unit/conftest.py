"""Fixtures for fast unit tests: connections from env vars, the API mocked with respx, hooks on those
connections, moto's S3, a fake task_state_store, a fake ti, and a trigger run as the triggerer runs it."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx
    import respx

    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

API_KEY = "testkeyid.testsecretvalue"
BASE_URL = "http://cogvideo.test/api/paas/v4"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_poll_floor: keep the 1 s floor on poll_interval (tests of the bound)")


@pytest.fixture(autouse=True)
def _fast_mocked_polls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests answer polls from respx in microseconds: let them poll every few ms instead of
    waiting out the 1 s floor that protects a real API (tests marked ``real_poll_floor`` keep it)."""
    if request.node.get_closest_marker("real_poll_floor") is None:
        from airflow_provider_cogvideo import validation

        monkeypatch.setattr(validation, "POLL_INTERVAL_RANGE", (0.001, validation.POLL_INTERVAL_RANGE[1]))


@pytest.fixture
def make_conn(monkeypatch: pytest.MonkeyPatch):
    """Install a cogvideo connection (JSON form) under the given id; returns the id."""

    def install(conn_id: str = "cogvideo_default", *, password: str = API_KEY, **fields: Any) -> str:
        extra = {"base_url": BASE_URL, "retry_min_wait": 0.001, "retry_max_wait": 0.002}
        extra.update(fields.pop("extra", {}))
        conn = {"conn_type": "cogvideo", "password": password, "extra": extra, **fields}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return install


@pytest.fixture
def conn_without_retries(make_conn) -> str:
    """The default connection with ``max_retries`` 0: one attempt per request, so an operator's or a
    sensor's test sees the first answer's outcome."""
    return make_conn(extra={"max_retries": 0})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """The API at :data:`BASE_URL`, mocked: routes are added by each test; a route left uncalled is fine."""
    import respx

    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A boto3 S3 client on moto's in-memory S3 (no bucket yet), and the connection ``aws_test`` to it."""
    boto3 = pytest.importorskip("boto3")
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TEST", json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}))
    with mock_aws():
        yield boto3.client("s3")


@pytest.fixture
def hook_for(make_conn) -> Callable[..., CogVideoHook]:
    """``hook_for(**extra)``: a hook on the default connection with these extras (``base_url`` too)."""
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

    def build(**extra: Any) -> CogVideoHook:
        make_conn(extra=extra)
        return CogVideoHook()

    return build


@pytest.fixture
def hook(hook_for) -> CogVideoHook:
    """A hook on the default connection (the mocked API at :data:`BASE_URL`)."""
    return hook_for()


def error_answer(
    status: int, code: str | None = None, message: str = "refused", headers: dict[str, str] | None = None
) -> httpx.Response:
    """An error answer as the API sends one (``{"error": {"code", "message"}}``); without a code, the
    HTML page a gateway sends."""
    import httpx

    if code is None:
        return httpx.Response(status, text=f"<html>{status}</html>", headers=headers)
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


def first_event(trigger: Any) -> dict[str, Any]:
    """As the triggerer does: rebuild the trigger from ``serialize()`` (a round trip), run it to its
    first event, close the pooled clients; the event's payload."""
    from airflow_provider_cogvideo.hooks.cogvideo import aclose_clients

    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    trigger_class = getattr(importlib.import_module(module), name)

    async def run() -> dict[str, Any]:
        event = await anext(trigger_class(**kwargs).run())
        await aclose_clients()
        return event.payload

    return asyncio.run(run())


class FakeStateStore:
    """Stands in for Airflow 3.3's task_state_store (same get/set/delete surface)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.history: list[tuple[str, str, Any]] = []

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any, **_: Any) -> None:
        json.dumps(value)  # the real store only takes JSON
        self.history.append(("set", key, value))
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.history.append(("delete", key, None))
        self.data.pop(key, None)


class FakeTI:
    """One task instance's own XComs (push, and pull back what this task instance pushed)."""

    task_id = "generate"
    map_index = -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.start_date = None

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)
        self.xcom[key] = value

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        """This task instance's own XComs (without ``map_indexes``, like Airflow's "all map indexes",
        which for one unmapped task instance is its one value)."""
        assert task_ids == self.task_id and map_indexes in (None, self.map_index), "only this task instance's own"
        return json.loads(json.dumps(self.xcom[key])) if key in self.xcom else None


@pytest.fixture
def state_store() -> FakeStateStore:
    return FakeStateStore()


@pytest.fixture
def context(state_store: FakeStateStore) -> dict[str, Any]:
    return {"ti": FakeTI(), "task_state_store": state_store}
