"""Bound off loopback, the emulator warns and locks its admin API with a token; on loopback it stays open."""

from __future__ import annotations

import logging

import httpx
import pytest

from airflow_provider_cogvideo.emulator import (
    ADMIN_TOKEN_HEADER,
    DEFAULT_TEST_KEY,
    EmulatorConfig,
    is_loopback,
    running_emulator,
)
from tests.emulator.helpers import api_client

BODY = {"model": "cogvideox-3", "prompt": "a windmill"}
ALL_INTERFACES = "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LocalHost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "emulator.example.com", ""])
def test_other_hosts_count_as_exposed(host: str) -> None:
    assert not is_loopback(host)


async def _admin_statuses(root: str, token: str) -> tuple[int, int, int]:
    async with httpx.AsyncClient(base_url=root) as admin:
        missing = await admin.get("/_emulator/stats")
        wrong = await admin.post("/_emulator/reset", headers={ADMIN_TOKEN_HEADER: token + "x"})
        right = await admin.get("/_emulator/faults", headers={ADMIN_TOKEN_HEADER: token})
    assert missing.json()["error"]["code"] == "1000"
    return missing.status_code, wrong.status_code, right.status_code


@pytest.mark.asyncio
async def test_exposed_emulator_warns_and_generates_an_admin_token(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, "airflow_provider_cogvideo.emulator"),
        running_emulator(EmulatorConfig(), host=ALL_INTERFACES) as handle,
    ):
        token = handle.emulator.config.admin_token
        assert token and handle.admin_headers == {ADMIN_TOKEN_HEADER: token}
        statuses = await _admin_statuses(handle.url_root, token)
        async with api_client(handle) as client:
            assert (await client.post("videos/generations", json=BODY)).status_code == 200
        assert handle.stats()["submits"] == 1  # in-process access needs no token
    assert statuses == (401, 401, 200)
    err = capsys.readouterr().err
    assert "WARNING" in err and f"bound to {ALL_INTERFACES}" in err and "fake videos" in err
    assert err.count(token) == 1  # printed once, never logged
    assert DEFAULT_TEST_KEY.split(".")[1] not in err
    assert any("reachable from other machines" in r.getMessage() for r in caplog.records)
    assert not any(token in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_exposed_emulator_keeps_a_given_token_unprinted(capsys: pytest.CaptureFixture[str]) -> None:
    with running_emulator(EmulatorConfig(admin_token="given-token"), host=ALL_INTERFACES) as handle:
        statuses = await _admin_statuses(handle.url_root, "given-token")
    assert statuses == (401, 401, 200)
    err = capsys.readouterr().err
    assert "WARNING" in err and "given-token" not in err


@pytest.mark.asyncio
async def test_loopback_admin_api_is_open_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    with running_emulator(EmulatorConfig()) as handle:
        assert handle.admin_headers == {}
        async with httpx.AsyncClient(base_url=handle.url_root) as admin:
            assert (await admin.get("/_emulator/stats")).status_code == 200
    assert capsys.readouterr().err == ""


@pytest.mark.asyncio
async def test_a_token_is_enforced_on_loopback_too() -> None:
    with running_emulator(EmulatorConfig(admin_token="local-token")) as handle:
        statuses = await _admin_statuses(handle.url_root, "local-token")
    assert statuses == (401, 401, 200)


def test_admin_token_must_be_a_header_value() -> None:
    for bad in ("", "with space", "tab\there", "ünïcode"):
        with pytest.raises(ValueError, match="admin_token"):
            EmulatorConfig(admin_token=bad)
    assert "s3cret-token" not in repr(EmulatorConfig(admin_token="s3cret-token"))
