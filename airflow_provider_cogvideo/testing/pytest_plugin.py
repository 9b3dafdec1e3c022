"""pytest plugin: test your own CogVideoX pipelines offline against the local emulator.

Installing the package registers this module with pytest (entry point ``cogvideo`` in the
``pytest11`` group), so its fixtures are available in every suite of the environment: do not list
it in ``pytest_plugins`` as well (pytest refuses to register one module under two names). With
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, load it with ``-p cogvideo``; ``-p no:cogvideo`` turns it off.

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

pytest loads this module at start-up, before any ``conftest.py`` (which may set ``AIRFLOW_HOME``):
it imports neither Airflow, PyAV, Pillow nor the emulator; the emulator loads when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.testing import COGVIDEO_TEST_DURATION, COGVIDEO_TEST_SEED, connection_json

if TYPE_CHECKING:
    from airflow_provider_cogvideo.emulator import EmulatorConfig, EmulatorHandle


def _test_config() -> EmulatorConfig:
    from airflow_provider_cogvideo.emulator import EmulatorConfig

    return EmulatorConfig(duration=COGVIDEO_TEST_DURATION, jitter=0.0, seed=COGVIDEO_TEST_SEED)


@pytest.fixture
def cogvideo_emulator_config() -> EmulatorConfig:
    return _test_config()


@pytest.fixture
def cogvideo_emulator(cogvideo_emulator_config: EmulatorConfig) -> Iterator[EmulatorHandle]:
    from airflow_provider_cogvideo.emulator import running_emulator

    with running_emulator(cogvideo_emulator_config) as handle:
        yield handle


@pytest.fixture(scope="session")
def _cogvideo_shared_emulator() -> Iterator[EmulatorHandle]:
    from airflow_provider_cogvideo.emulator import running_emulator

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
