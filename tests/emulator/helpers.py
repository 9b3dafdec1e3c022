"""Helpers for the emulator tests: raw HTTP (httpx), never the provider's hook, so a wire bug
cannot hide on both sides."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import httpx
import jwt

from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorHandle
from tests.conftest import image_bytes

KEY_ID, SECRET = DEFAULT_TEST_KEY.split(".")
POLL_INTERVAL = 0.05
MAX_POLLS = 400  # a bound on iterations, not a timing assertion


def bearer(credential: str = DEFAULT_TEST_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def make_jwt(key_id: str = KEY_ID, secret: str = SECRET, ttl_ms: int = 210_000, **header: Any) -> str:
    """A token as the official SDKs make it: HS256, sign_type SIGN, millisecond claims."""
    now = int(time.time() * 1000)
    headers = {"alg": "HS256", "sign_type": "SIGN", **header}
    return jwt.encode({"api_key": key_id, "exp": now + ttl_ms, "timestamp": now}, secret, headers=headers)


def data_uri(width: int = 64, height: int = 48, fmt: str = "PNG") -> str:
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(image_bytes(width, height, fmt)).decode()}"


async def wait_done(client: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    """Poll until the task leaves PROCESSING; returns the last answer."""
    for _ in range(MAX_POLLS):
        answer = (await client.get(f"async-result/{task_id}")).json()
        if answer.get("task_status") != "PROCESSING":
            return answer
        await asyncio.sleep(POLL_INTERVAL)
    raise AssertionError(f"task {task_id} still PROCESSING after {MAX_POLLS} polls")


# The first GET of a video renders the MP4 (PyAV): on a loaded 2-core machine that outlasts httpx's 5 s default.
CLIENT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def api_client(handle: EmulatorHandle, credential: str = DEFAULT_TEST_KEY, **kw: Any) -> httpx.AsyncClient:
    kw.setdefault("timeout", CLIENT_TIMEOUT)
    return httpx.AsyncClient(base_url=handle.base_url + "/", headers=bearer(credential), **kw)
