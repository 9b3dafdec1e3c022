"""Fault injection (deterministic with a seed), the admin API and the stats."""

from __future__ import annotations

import httpx
import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig, FaultConfig, running_emulator
from tests.emulator.helpers import api_client, wait_done

pytestmark = pytest.mark.asyncio

BODY = {"model": "cogvideox-3", "prompt": "a windmill"}


async def _statuses(seed: int, n: int = 40) -> list[tuple[int, str | None]]:
    faults = FaultConfig(submit_error_rate=0.5, error_codes=("500", "503", "1305"))
    with running_emulator(EmulatorConfig(seed=seed, unlimited=True, faults=faults)) as handle:
        async with api_client(handle) as client:
            answers = [await client.post("videos/generations", json=BODY) for _ in range(n)]
    return [(r.status_code, r.json().get("error", {}).get("code")) for r in answers]


async def test_faults_are_deterministic_with_a_seed() -> None:
    first, again, other = await _statuses(5), await _statuses(5), await _statuses(6)
    assert first == again
    assert first != other
    kinds = set(first)
    assert {(500, "500"), (503, "503"), (429, "1305"), (200, None)} <= kinds


async def test_changing_faults_restarts_the_sequence() -> None:
    with running_emulator(EmulatorConfig(seed=1, unlimited=True)) as handle:
        async with api_client(handle) as client:
            runs = []
            for _ in range(2):
                handle.faults.set(poll_error_rate=0.5, error_codes=["503"])
                runs.append([(await client.get("async-result/1")).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {503, 400}


async def test_injected_errors_have_the_wire_form() -> None:
    with running_emulator(EmulatorConfig(faults=FaultConfig(poll_error_rate=1, error_codes=("1305",)))) as handle:
        async with api_client(handle) as client:
            task_id = (await client.post("videos/generations", json=BODY)).json()["id"]
            response = await client.get(f"async-result/{task_id}")
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "1305"


async def test_forced_fail_with_and_without_a_reason() -> None:
    with running_emulator(EmulatorConfig(duration=0.1, faults=FaultConfig(fail_rate=1))) as handle:
        async with api_client(handle) as client:
            plain = await wait_done(client, (await client.post("videos/generations", json=BODY)).json()["id"])
            handle.faults.update(fail_reason="moderation blocked the output", fail_code="1301")
            reasoned = await wait_done(client, (await client.post("videos/generations", json=BODY)).json()["id"])
    assert plain["task_status"] == "FAIL"
    assert set(plain) == {"model", "id", "request_id", "task_status"}
    assert reasoned["error"] == {"code": "1301", "message": "moderation blocked the output"}
    assert "video_result" not in reasoned


async def test_blocked_prompts_get_1301() -> None:
    with running_emulator(EmulatorConfig(faults=FaultConfig(blocked_prompts=("forbidden",)))) as handle:
        async with api_client(handle) as client:
            blocked = await client.post("videos/generations", json={**BODY, "prompt": "A FORBIDDEN scene"})
            fine = await client.post("videos/generations", json=BODY)
    assert (blocked.status_code, blocked.json()["error"]["code"]) == (400, "1301")
    assert fine.status_code == 200


async def test_slow_responses_still_answer() -> None:
    faults = FaultConfig(delay_seconds=0.2, delay_ops=("poll",))
    with running_emulator(EmulatorConfig(duration=0, faults=faults)) as handle:
        async with api_client(handle) as client:
            task_id = (await client.post("videos/generations", json=BODY)).json()["id"]
            assert (await client.get(f"async-result/{task_id}")).json()["task_status"] == "SUCCESS"
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"async-result/{task_id}", timeout=0.01)


async def _read_into(client: httpx.AsyncClient, url: str, sink: bytearray) -> None:
    async with client.stream("GET", url) as response:
        assert response.headers["content-length"] == "1000000"
        async for chunk in response.aiter_raw():
            sink.extend(chunk)


async def test_truncated_download_is_short_of_content_length() -> None:
    with running_emulator(EmulatorConfig(duration=0, payload_bytes=1_000_000)) as handle:
        async with api_client(handle) as client:
            task_id = (await client.post("videos/generations", json=BODY)).json()["id"]
            url = (await client.get(f"async-result/{task_id}")).json()["video_result"][0]["url"]
            handle.faults.set(truncate_rate=1, truncate_ratio=0.25)
            received = bytearray()
            with pytest.raises(httpx.RemoteProtocolError):
                await _read_into(client, url, received)
            handle.faults.clear()
            assert len((await client.get(url)).content) == 1_000_000
    assert len(received) == 250_000


async def test_download_errors() -> None:
    with running_emulator(EmulatorConfig(duration=0)) as handle:
        async with api_client(handle) as client:
            task_id = (await client.post("videos/generations", json=BODY)).json()["id"]
            cover = (await client.get(f"async-result/{task_id}")).json()["video_result"][0]["cover_image_url"]
            handle.faults.set(download_error_rate=1, error_codes=["503"])
            response = await client.get(cover)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/xml"


async def test_admin_api() -> None:
    with running_emulator(EmulatorConfig(duration=60, seed=3)) as handle:
        async with httpx.AsyncClient(base_url=handle.url_root) as admin, api_client(handle) as client:
            put = await admin.put("/_emulator/faults", json={"blocked_prompts": ["nope"], "retry_after": 2})
            assert put.json()["blocked_prompts"] == ["nope"]
            patch = await admin.patch("/_emulator/faults", json={"fail_rate": 0.5})
            assert (patch.json()["fail_rate"], patch.json()["retry_after"]) == (0.5, 2)
            assert (await admin.get("/_emulator/faults")).json() == handle.faults.current.to_dict()
            bad = await admin.put("/_emulator/faults", json={"no_such_fault": 1})
            assert (bad.status_code, bad.json()["error"]["code"]) == (400, "1210")
            assert (await admin.put("/_emulator/faults", json={"fail_rate": 2})).status_code == 400

            await client.post("videos/generations", json={**BODY, "request_id": "dup-1"})
            await client.post("videos/generations", json={**BODY, "request_id": "dup-1"})
            await client.post("videos/generations", json={**BODY, "prompt": "nope"})
            await client.get("async-result/1")
            stats = (await admin.get("/_emulator/stats")).json()
            assert stats["submits"] == 2
            assert stats["request_ids"] == ["dup-1", "dup-1"]
            assert stats["rejections"] == {"1301": 1, "1214": 1}
            assert stats["in_flight"] == 2 and stats["seed"] == 3

            after = (await admin.post("/_emulator/reset")).json()
    assert (after["submits"], after["tasks"], after["request_ids"], after["rejections"]) == (0, 0, [], {})
    assert after["faults"] == FaultConfig().to_dict()
