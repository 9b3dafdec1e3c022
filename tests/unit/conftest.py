"""Fixtures for fast unit tests: connections from env vars, a fake task_state_store, a fake ti."""

from __future__ import annotations

import json
from typing import Any

import pytest

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
