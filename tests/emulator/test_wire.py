"""Routes, JSON shapes and the task lifecycle, as the official SDKs see them."""

from __future__ import annotations

import re

import httpx
import pytest

from airflow_provider_cogvideo.emulator import ApiKey, EmulatorConfig, running_emulator
from tests.emulator.helpers import api_client, wait_done

pytestmark = pytest.mark.asyncio

# What zhipuai 2.1.5 sends for a text-to-video call: every unset field as null, plus SDK-only keys.
SDK_STYLE_BODY = {
    "model": "cogvideox-3",
    "prompt": "a red fox in the snow",
    "image_url": None,
    "quality": None,
    "with_audio": None,
    "size": None,
    "duration": None,
    "fps": None,
    "request_id": None,
    "user_id": None,
    "sensitive_word_check": {"type": "ALL", "status": "ENABLE"},
    "off_peak": None,
}


async def test_submit_then_query_until_success(api: httpx.AsyncClient) -> None:
    response = await api.post("videos/generations", json={**SDK_STYLE_BODY, "request_id": "my-request-1"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    submitted = response.json()
    assert set(submitted) == {"model", "id", "request_id", "task_status"}
    assert re.fullmatch(r"[1-9]\d{18}", submitted["id"])
    assert submitted["request_id"] == "my-request-1"
    assert submitted["task_status"] == "PROCESSING"

    first = (await api.get(f"async-result/{submitted['id']}")).json()
    assert first["task_status"] == "PROCESSING"
    assert "video_result" not in first

    done = await wait_done(api, submitted["id"])
    assert done["task_status"] == "SUCCESS"
    assert (done["id"], done["model"], done["request_id"]) == (submitted["id"], "cogvideox-3", "my-request-1")
    [result] = done["video_result"]
    assert result["url"].endswith(f"/files/video/{submitted['id']}_0.mp4")
    assert result["cover_image_url"].endswith(f"/files/video_cover/{submitted['id']}_cover_0.png")


async def test_request_id_is_generated_when_absent(api: httpx.AsyncClient) -> None:
    submitted = (await api.post("videos/generations", json=SDK_STYLE_BODY)).json()
    assert submitted["request_id"]


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_trailing_slash_is_accepted(api: httpx.AsyncClient, suffix: str) -> None:
    submitted = await api.post("videos/generations" + suffix, json=SDK_STYLE_BODY)
    assert submitted.status_code == 200
    polled = await api.get(f"async-result/{submitted.json()['id']}{suffix}")
    assert polled.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "nope", 404),
        ("POST", "embeddings", 404),
        ("GET", "videos/generations", 405),
        ("DELETE", "async-result/123", 405),
    ],
)
async def test_other_paths_answer_the_nested_error(api: httpx.AsyncClient, method: str, path: str, status: int) -> None:
    response = await api.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == str(status)


async def test_invalid_json_is_1210(api: httpx.AsyncClient) -> None:
    response = await api.post("videos/generations", content=b"{not json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "1210")


async def test_unknown_task_id_is_400_1214(api: httpx.AsyncClient) -> None:
    response = await api.get("async-result/1234567890123456789")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "1214", "message": response.json()["error"]["message"]}}


async def test_unknown_task_status_can_be_404() -> None:
    with running_emulator(EmulatorConfig(unknown_task_http_status=404)) as handle:
        async with api_client(handle) as client:
            response = await client.get("async-result/42")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "1214")


async def test_another_keys_task_is_not_found() -> None:
    config = EmulatorConfig(keys=(*EmulatorConfig().keys, ApiKey.parse("other.secretsecret")), duration=60)
    with running_emulator(config) as handle:
        async with api_client(handle) as owner, api_client(handle, "other.secretsecret") as stranger:
            task_id = (await owner.post("videos/generations", json=SDK_STYLE_BODY)).json()["id"]
            assert (await owner.get(f"async-result/{task_id}")).status_code == 200
            response = await stranger.get(f"async-result/{task_id}")
    assert response.json()["error"]["code"] == "1214"


async def test_custom_prefix() -> None:
    with running_emulator(EmulatorConfig(prefix="api/coding/paas/v4/")) as handle:
        assert handle.base_url.endswith("/api/coding/paas/v4")
        async with api_client(handle) as client:
            assert (await client.post("videos/generations", json=SDK_STYLE_BODY)).status_code == 200
