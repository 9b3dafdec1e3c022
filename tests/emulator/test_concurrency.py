"""Tier concurrency (429/1302 per key and model), unlimited mode, and 200 concurrent pollers."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY
from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, ApiKey, EmulatorConfig, running_emulator
from tests.emulator.helpers import api_client, wait_done

pytestmark = pytest.mark.asyncio

V1_KEY = "tier1.secret-of-the-v1-key"


def body(model: str = "cogvideox-3", **fields: str) -> dict[str, str]:
    return {"model": model, "prompt": "a kite over a beach", **fields}


async def test_tier_limit_per_key_and_model() -> None:
    config = EmulatorConfig(keys=(ApiKey.parse(DEFAULT_TEST_KEY), ApiKey.parse(V1_KEY + ":V1")), duration=0.5)
    with running_emulator(config) as handle:
        async with api_client(handle) as v0, api_client(handle, V1_KEY) as v1:
            accepted = [await v0.post("videos/generations", json=body()) for _ in range(TIER_CONCURRENCY["V0"])]
            assert all(r.status_code == 200 for r in accepted)

            over = await v0.post("videos/generations", json=body())
            assert over.status_code == 429
            assert over.headers["content-type"] == "application/json"
            assert over.json()["error"]["code"] == "1302"
            assert "retry-after" not in over.headers  # the real service sends none

            # Other models of the same key and the same model of another key have their own slots.
            assert (await v0.post("videos/generations", json=body("cogvideox-flash"))).status_code == 200
            v1_answers = [await v1.post("videos/generations", json=body()) for _ in range(TIER_CONCURRENCY["V1"] + 1)]
            assert [r.status_code for r in v1_answers] == [200] * TIER_CONCURRENCY["V1"] + [429]

            # A finished task frees its slot.
            await wait_done(v0, accepted[0].json()["id"])
            assert (await v0.post("videos/generations", json=body())).status_code == 200

        stats = handle.stats()
    key_id = DEFAULT_TEST_KEY.split(".")[0]
    assert stats["max_in_flight_by_key_model"][f"{key_id}/cogvideox-3"] == TIER_CONCURRENCY["V0"]
    assert stats["max_in_flight_by_key_model"]["tier1/cogvideox-3"] == TIER_CONCURRENCY["V1"]
    assert stats["rejections"]["1302"] == 2


async def test_retry_after_on_429_when_configured() -> None:
    with running_emulator(EmulatorConfig(duration=60)) as handle:
        handle.faults.set(retry_after=3)
        async with api_client(handle) as client:
            answers = [await client.post("videos/generations", json=body()) for _ in range(TIER_CONCURRENCY["V0"] + 1)]
    assert answers[-1].status_code == 429
    assert answers[-1].headers["retry-after"] == "3"


async def test_unlimited_mode() -> None:
    with running_emulator(EmulatorConfig(duration=60, unlimited=True)) as handle:
        async with api_client(handle) as client:
            answers = await asyncio.gather(*(client.post("videos/generations", json=body()) for _ in range(60)))
        stats = handle.stats()
    assert {r.status_code for r in answers} == {200}
    assert stats["max_in_flight"] == stats["in_flight"] == 60
    assert len({r.json()["id"] for r in answers}) == 60


async def test_200_concurrent_pollers_stay_correct() -> None:
    """Each poller sees only its own task: right id, model and request_id, its own result URL."""
    models = ["cogvideox-3", "cogvideox-2", "cogvideox-flash", "viduq1-text"]
    n = 200
    config = EmulatorConfig(duration=0.3, jitter=0.5, seed=99, unlimited=True)
    with running_emulator(config) as handle:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with api_client(handle, limits=limits, timeout=30) as client:
            submitted = await asyncio.gather(
                *(
                    client.post("videos/generations", json=body(models[i % len(models)], request_id=f"req-{i:04d}"))
                    for i in range(n)
                )
            )
            tasks = [(f"req-{i:04d}", models[i % len(models)], r.json()["id"]) for i, r in enumerate(submitted)]
            assert len({task_id for _, _, task_id in tasks}) == n

            poll_counts = [0] * n
            stagger = random.Random(1)

            async def poller(i: int) -> dict:
                request_id, model, task_id = tasks[i]
                await asyncio.sleep(stagger.random() * 0.1)
                while True:
                    response = await client.get(f"async-result/{task_id}")
                    poll_counts[i] += 1
                    answer = response.json()
                    assert response.status_code == 200, answer
                    assert (answer["id"], answer["model"], answer["request_id"]) == (task_id, model, request_id)
                    if answer["task_status"] != "PROCESSING":
                        return answer
                    assert poll_counts[i] < 400, "task never finished"
                    await asyncio.sleep(0.1)

            results = await asyncio.gather(*(poller(i) for i in range(n)))
        stats = handle.stats()

    for (_, _, task_id), answer in zip(tasks, results, strict=True):
        assert answer["task_status"] == "SUCCESS"
        assert answer["video_result"][0]["url"].endswith(f"/files/video/{task_id}_0.mp4")
    assert stats["submits"] == n
    assert stats["polls"] == sum(poll_counts)
    assert sorted(stats["request_ids"]) == sorted(r for r, _, _ in tasks)
    assert stats["rejections"] == {}
