"""Fixtures for the emulator tests (helpers live in helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from airflow_provider_cogvideo.emulator import EmulatorConfig, EmulatorHandle, running_emulator
from tests.emulator.helpers import api_client


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[EmulatorHandle]:
    """One unlimited emulator for a module's read-mostly tests (tasks finish after 0.2 s)."""
    with running_emulator(EmulatorConfig(duration=0.2, jitter=0.0, seed=7, unlimited=True)) as handle:
        yield handle


@pytest_asyncio.fixture
async def api(shared_emulator: EmulatorHandle) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(shared_emulator) as client:
        yield client
