"""A local server that speaks the CogVideoX / Vidu video API, for offline DAG runs, tests and demos.

* :func:`create_app` builds the ASGI app; :func:`running_emulator` serves one on a free port in a
  background thread; ``cogvideo emulator`` serves one from the command line.
* Wire behaviour follows the public API documentation and the official SDKs: both auth modes, per-model
  validation from the shared capability table, tier concurrency (429/1302), lazy task lifecycle,
  real H.264 results (or synthetic payloads), a deterministic ``POST /chat/completions`` for the
  prompt writer, fault injection (refusals, and answer faults after a job was created) and an admin
  API under ``/_emulator/`` (``GET stats``, ``POST reset``, ``GET|PUT|PATCH faults``), which needs a
  token (:data:`ADMIN_TOKEN_HEADER`) when bound off loopback.

Importing this package imports neither PyAV nor Pillow; they load when media is first produced.
"""

from __future__ import annotations

from airflow_provider_cogvideo.emulator.app import ADMIN_PREFIX, ADMIN_TOKEN_HEADER, Emulator, create_app
from airflow_provider_cogvideo.emulator.config import (
    DEFAULT_PREFIX,
    DEFAULT_TEST_KEY,
    ApiKey,
    EmulatorConfig,
    parse_keys,
)
from airflow_provider_cogvideo.emulator.faults import MALFORMED_IDS, FaultConfig, Faults
from airflow_provider_cogvideo.emulator.payload import SyntheticPayload
from airflow_provider_cogvideo.emulator.server import EmulatorHandle, is_loopback, running_emulator, serve

__all__ = [
    "ADMIN_PREFIX",
    "ADMIN_TOKEN_HEADER",
    "DEFAULT_PREFIX",
    "DEFAULT_TEST_KEY",
    "MALFORMED_IDS",
    "ApiKey",
    "Emulator",
    "EmulatorConfig",
    "EmulatorHandle",
    "FaultConfig",
    "Faults",
    "SyntheticPayload",
    "create_app",
    "is_loopback",
    "parse_keys",
    "running_emulator",
    "serve",
]
