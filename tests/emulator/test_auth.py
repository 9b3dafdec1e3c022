"""Both auth modes and the documented 401 codes; the key never leaks."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import jwt
import pytest

from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorHandle
from tests.emulator.helpers import KEY_ID, SECRET, make_jwt

pytestmark = pytest.mark.asyncio

BODY = {"model": "cogvideox-flash", "prompt": "a lighthouse at night"}


async def _submit(handle: EmulatorHandle, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=handle.base_url + "/") as client:
        return await client.post("videos/generations", json=BODY, headers=headers)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(lambda: f"Bearer {DEFAULT_TEST_KEY}", id="bearer-key"),
        pytest.param(lambda: f"bearer {DEFAULT_TEST_KEY}", id="lowercase-bearer"),
        pytest.param(lambda: DEFAULT_TEST_KEY, id="bare-key"),
        # Signed when the test runs, not when it is collected: a token lives 210 s, a suite longer.
        pytest.param(lambda: f"Bearer {make_jwt()}", id="bearer-jwt"),
        pytest.param(make_jwt, id="bare-jwt"),
    ],
)
async def test_accepted_credentials(shared_emulator: EmulatorHandle, authorization: Callable[[], str]) -> None:
    response = await _submit(shared_emulator, {"Authorization": authorization()})
    assert response.status_code == 200, response.text


def _forged_signature() -> str:
    head, claims, _ = make_jwt().split(".")
    return f"{head}.{claims}.{make_jwt(secret='x' * 40).split('.')[2]}"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "1001", id="no-header"),
        pytest.param({"Authorization": "Bearer"}, "1001", id="bearer-without-credential"),
        pytest.param({"Authorization": f"Bearer {KEY_ID}.wrong-secret"}, "1000", id="wrong-secret"),
        pytest.param({"Authorization": f"Bearer nobody.{SECRET}"}, "1000", id="unknown-key-id"),
        pytest.param({"Authorization": "Bearer no-dot-at-all"}, "1002", id="malformed-key"),
        pytest.param({"Authorization": "Bearer a.b.c"}, "1002", id="malformed-jwt"),
        pytest.param({"Authorization": f"Bearer {make_jwt(ttl_ms=-1000)}"}, "1003", id="expired-jwt"),
        pytest.param({"Authorization": f"Bearer {make_jwt(secret='y' * 40)}"}, "1002", id="wrong-jwt-secret"),
        pytest.param({"Authorization": f"Bearer {_forged_signature()}"}, "1002", id="forged-signature"),
        pytest.param({"Authorization": f"Bearer {make_jwt(key_id='nobody')}"}, "1000", id="jwt-unknown-key"),
    ],
)
async def test_rejected_credentials(shared_emulator: EmulatorHandle, headers: dict[str, str], code: str) -> None:
    response = await _submit(shared_emulator, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


async def test_jwt_needs_sign_type_sign(shared_emulator: EmulatorHandle) -> None:
    token = jwt.encode({"api_key": KEY_ID, "exp": 2**45, "timestamp": 0}, SECRET, headers={"sign_type": "NONE"})
    response = await _submit(shared_emulator, {"Authorization": f"Bearer {token}"})
    assert response.json()["error"]["code"] == "1002"


async def test_jwt_exp_is_milliseconds(shared_emulator: EmulatorHandle) -> None:
    """A seconds-based exp (a common client bug) is long past when read as milliseconds."""
    import time

    token = jwt.encode(
        {"api_key": KEY_ID, "exp": int(time.time()) + 3600, "timestamp": int(time.time())},
        SECRET,
        headers={"sign_type": "SIGN"},
    )
    response = await _submit(shared_emulator, {"Authorization": f"Bearer {token}"})
    assert response.json()["error"]["code"] == "1003"


async def test_queries_need_auth_too(shared_emulator: EmulatorHandle) -> None:
    async with httpx.AsyncClient(base_url=shared_emulator.base_url + "/") as client:
        response = await client.get("async-result/1234567890123456789")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "1001")


async def test_the_key_never_leaks(shared_emulator: EmulatorHandle, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = make_jwt()
    wrong = f"{KEY_ID}.wrong-secret-value"
    answers = [
        await _submit(shared_emulator, {"Authorization": f"Bearer {DEFAULT_TEST_KEY}"}),
        await _submit(shared_emulator, {"Authorization": f"Bearer {token}"}),
        await _submit(shared_emulator, {"Authorization": f"Bearer {wrong}"}),
    ]
    async with httpx.AsyncClient(base_url=shared_emulator.url_root) as client:
        admin = [(await client.get(f"/_emulator/{p}")).text for p in ("stats", "faults")]
    seen = "\n".join([*(r.text for r in answers), *(str(r.headers) for r in answers), *admin, caplog.text])
    for secret in (SECRET, token, "wrong-secret-value"):
        assert secret not in seen
    assert SECRET not in repr(shared_emulator.emulator.config)
