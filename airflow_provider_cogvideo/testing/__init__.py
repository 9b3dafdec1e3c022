"""pytest plugin: test your own CogVideoX pipelines offline against the local emulator.

Load it from a ``conftest.py``::

    pytest_plugins = ["airflow_provider_cogvideo.testing"]

Fixtures:

* ``cogvideo_emulator`` — a fresh emulator on a free 127.0.0.1 port for one test (tasks finish
  after ``COGVIDEO_TEST_DURATION`` seconds); returns an :class:`EmulatorHandle` (``base_url``,
  ``stats()``, ``faults``, ``reset()``).
* ``cogvideo_emulator_config`` — the :class:`EmulatorConfig` it is started with; override this
  fixture in your conftest to change durations, keys, faults or the seed.
* ``cogvideo_emulator_session`` — one emulator shared by the whole session (reset before each
  test that uses it): cheaper when many tests only need a server.
* ``cogvideo_conn`` — points the ``cogvideo_default`` Airflow connection (an environment variable,
  so no database) at ``cogvideo_emulator`` with :data:`DEFAULT_TEST_KEY`; returns the conn id.

Importing this module does not import Airflow, PyAV or Pillow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, EmulatorHandle, running_emulator

COGVIDEO_TEST_DURATION = 0.5
"""Seconds a task stays PROCESSING in the fixtures' emulator."""

COGVIDEO_TEST_SEED = 1234


def connection_json(handle: EmulatorHandle) -> str:
    """The Airflow connection (JSON form) that points at ``handle`` with its first key."""
    key = handle.emulator.config.keys[0]
    return json.dumps(
        {"conn_type": "cogvideo", "password": key.value, "extra": {"base_url": handle.base_url, "tier": key.tier}}
    )


def _test_config() -> EmulatorConfig:
    return EmulatorConfig(duration=COGVIDEO_TEST_DURATION, jitter=0.0, seed=COGVIDEO_TEST_SEED)


@pytest.fixture
def cogvideo_emulator_config() -> EmulatorConfig:
    return _test_config()


@pytest.fixture
def cogvideo_emulator(cogvideo_emulator_config: EmulatorConfig) -> Iterator[EmulatorHandle]:
    with running_emulator(cogvideo_emulator_config) as handle:
        yield handle


@pytest.fixture(scope="session")
def _cogvideo_shared_emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(_test_config()) as handle:
        yield handle


@pytest.fixture
def cogvideo_emulator_session(_cogvideo_shared_emulator: EmulatorHandle) -> EmulatorHandle:
    _cogvideo_shared_emulator.reset()
    return _cogvideo_shared_emulator


@pytest.fixture
def cogvideo_conn(cogvideo_emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}", connection_json(cogvideo_emulator))
    return DEFAULT_CONN_ID


__all__ = [
    "COGVIDEO_TEST_DURATION",
    "COGVIDEO_TEST_SEED",
    "DEFAULT_TEST_KEY",
    "connection_json",
]
