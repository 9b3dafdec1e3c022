"""Test helpers: the pytest plugin, local servers and the harness shared by the demo and the tests.

* :mod:`~.pytest_plugin`: pytest fixtures for offline tests of your own DAGs against the local
  emulator. Installing this package registers it (the ``cogvideo`` entry point in the ``pytest11``
  group): there is nothing to load from a ``conftest.py``.
* :mod:`~.seaweedfs`: a throwaway local S3 server; :mod:`~.result_files`: a local "CDN" for result
  files with scripted faults;
* :mod:`~.products`, :mod:`~.processes`, :mod:`~.airflow_env`: sample product images in S3, child
  process groups, a throwaway Airflow home (what ``cogvideo demo`` and the integration tests share).

This module holds only cheap constants and :func:`connection_json`: importing it (or any module
above but the plugin) imports neither pytest nor the emulator's Starlette and uvicorn, nor Airflow.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorHandle

COGVIDEO_TEST_DURATION = 0.5
"""Seconds a task stays PROCESSING in the fixtures' emulator."""

COGVIDEO_TEST_SEED = 1234


def connection_json(handle: EmulatorHandle) -> str:
    """The Airflow connection (JSON form) that points at ``handle`` with its first key."""
    key = handle.emulator.config.keys[0]
    return json.dumps(
        {"conn_type": "cogvideo", "password": key.value, "extra": {"base_url": handle.base_url, "tier": key.tier}}
    )


def __getattr__(name: str) -> Any:
    # DEFAULT_TEST_KEY belongs to the emulator, whose package imports Starlette: load it on first use.
    if name == "DEFAULT_TEST_KEY":
        from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY

        return DEFAULT_TEST_KEY
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "COGVIDEO_TEST_DURATION",
    "COGVIDEO_TEST_SEED",
    "DEFAULT_TEST_KEY",
    "connection_json",
]
