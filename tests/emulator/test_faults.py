"""Fault injection (deterministic with a seed), the admin API and the stats."""

from __future__ import annotations

import re

import httpx
import pytest

from airflow_provider_cogvideo.emulator import MALFORMED_IDS, EmulatorConfig, FaultConfig, running_emulator
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


# Answer faults: the submit creates (and bills) the job, then its answer goes wrong.

TASK_ID = r"[1-9]\d{18}"


async def test_created_then_5xx_counts_the_paid_job() -> None:
    faults = FaultConfig(submit_created_error_rate=1, submit_created_error_codes=("502",))
    with running_emulator(EmulatorConfig(seed=2, faults=faults)) as handle:
        async with api_client(handle) as client:
            response = await client.post("videos/generations", json={**BODY, "request_id": "product-1"})
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "502"
    stats = handle.stats()
    assert (stats["submits"], stats["tasks"], stats["in_flight"]) == (1, 1, 1)
    assert stats["request_ids"] == ["product-1"]
    assert stats["answer_faults"] == {"created_error": 1}
    assert stats["rejections"] == {}  # accepted, not refused


async def test_created_then_5xx_words_it_like_a_refusal() -> None:
    """A client must not be able to tell "created, then 500" from "refused with 500" by the body."""
    with running_emulator(EmulatorConfig(seed=2, unlimited=True)) as handle:
        async with api_client(handle) as client:
            handle.faults.set(submit_error_rate=1, error_codes=["500"])
            refused = await client.post("videos/generations", json=BODY)
            handle.faults.set(submit_created_error_rate=1, submit_created_error_codes=["500"])
            created = await client.post("videos/generations", json=BODY)
    assert (refused.status_code, refused.json()) == (created.status_code, created.json())
    assert handle.stats()["submits"] == 1


async def test_created_error_codes_are_picked_by_the_seed() -> None:
    faults = FaultConfig(submit_created_error_rate=1)  # default codes: 500, 502, 504
    codes = []
    for _ in range(2):
        with running_emulator(EmulatorConfig(seed=9, unlimited=True, faults=faults)) as handle:
            async with api_client(handle) as client:
                codes.append([(await client.post("videos/generations", json=BODY)).status_code for _ in range(20)])
    assert codes[0] == codes[1]
    assert set(codes[0]) == {500, 502, 504}
    assert handle.stats()["submits"] == 20


async def test_created_then_lost_drops_the_connection() -> None:
    with running_emulator(EmulatorConfig(seed=2, faults=FaultConfig(submit_lost_rate=1))) as handle:
        async with api_client(handle) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("videos/generations", json={**BODY, "request_id": "product-2"})
            stats = handle.stats()
            handle.faults.clear()
            after = await client.post("videos/generations", json={**BODY, "request_id": "product-3"})
    assert (stats["submits"], stats["in_flight"], stats["request_ids"]) == (1, 1, ["product-2"])
    assert stats["answer_faults"] == {"lost": 1}
    assert after.status_code == 200  # the client recovers on a new connection
    assert handle.stats()["request_ids"] == ["product-2", "product-3"]


async def test_lost_prompts_lose_only_the_answers_of_their_product() -> None:
    """One chosen product's submit is created and its answer lost, whatever the order of submits."""
    with running_emulator(EmulatorConfig(seed=2, faults=FaultConfig(lost_prompts=("Lost Lamp",)))) as handle:
        async with api_client(handle) as client:
            before = await client.post("videos/generations", json={**BODY, "prompt": "A red mug"})
            with pytest.raises(httpx.RemoteProtocolError):
                await client.post("videos/generations", json={**BODY, "prompt": "The lost lamp, turning"})
            after = await client.post("videos/generations", json={**BODY, "prompt": "A blue vase"})
    assert (before.status_code, after.status_code) == (200, 200)
    assert handle.stats()["submits"] == 3 and handle.stats()["answer_faults"] == {"lost": 1}


def _looks_right(kind: str, value: object) -> bool:
    text = value if isinstance(value, str) else ""
    return {
        "slash": bool(re.fullmatch(r"\d{9}/\d{10}", text)),
        "space": bool(re.fullmatch(r"\d{9} \d{10}", text)),
        "dotdot": value == "..",
        "empty": value == "",
        "null": value is None,
        "float": isinstance(value, float) and not value.is_integer(),
        "bool": value is True,
        "object": isinstance(value, dict),
        "list": isinstance(value, list),
    }[kind]


async def test_created_then_malformed_id() -> None:
    with running_emulator(EmulatorConfig(seed=2, unlimited=True)) as handle:
        async with api_client(handle) as client:
            answers = {}
            for kind in MALFORMED_IDS:
                handle.faults.set(submit_malformed_id_rate=1, malformed_id_kinds=[kind])
                answers[kind] = await client.post("videos/generations", json={**BODY, "request_id": kind})
    for kind, response in answers.items():
        assert response.status_code == 200
        answer = response.json()
        assert set(answer) == {"model", "id", "request_id", "task_status"}
        assert (answer["request_id"], answer["task_status"]) == (kind, "PROCESSING")
        assert _looks_right(kind, answer["id"]), (kind, answer["id"])
    stats = handle.stats()
    assert stats["submits"] == len(MALFORMED_IDS)
    assert stats["request_ids"] == list(MALFORMED_IDS)
    assert stats["answer_faults"] == {"malformed_id": len(MALFORMED_IDS)}


async def _answer_kinds(seed: int, n: int = 40) -> list[str]:
    faults = FaultConfig(submit_created_error_rate=0.25, submit_lost_rate=0.25, submit_malformed_id_rate=0.25)
    kinds = []
    with running_emulator(EmulatorConfig(seed=seed, unlimited=True, faults=faults)) as handle:
        async with api_client(handle) as client:
            for _ in range(n):
                try:
                    response = await client.post("videos/generations", json=BODY)
                except httpx.RemoteProtocolError:
                    kinds.append("lost")
                    continue
                if response.status_code >= 500:
                    kinds.append("created_error")
                elif re.fullmatch(TASK_ID, str(response.json()["id"])):
                    kinds.append("ok")
                else:
                    kinds.append("malformed_id")
        stats = handle.stats()
    assert stats["submits"] == n  # every one of them created a paid job
    spoiled = {k: kinds.count(k) for k in ("created_error", "lost", "malformed_id") if k in kinds}
    assert stats["answer_faults"] == spoiled
    return kinds


async def test_answer_faults_share_one_seeded_roll() -> None:
    first, again, other = await _answer_kinds(5), await _answer_kinds(5), await _answer_kinds(6)
    assert first == again
    assert first != other
    assert set(first) == {"ok", "created_error", "lost", "malformed_id"}


async def test_admin_api_sets_answer_faults() -> None:
    with running_emulator(EmulatorConfig(seed=3)) as handle:
        async with httpx.AsyncClient(base_url=handle.url_root) as admin, api_client(handle) as client:
            patch = await admin.patch(
                "/_emulator/faults", json={"submit_malformed_id_rate": 1, "malformed_id_kinds": ["empty"]}
            )
            assert (patch.json()["submit_malformed_id_rate"], patch.json()["malformed_id_kinds"]) == (1, ["empty"])
            assert (await client.post("videos/generations", json=BODY)).json()["id"] == ""
            bad = await admin.patch("/_emulator/faults", json={"submit_created_error_codes": ["1305"]})
            assert (bad.status_code, bad.json()["error"]["code"]) == (400, "1210")
            stats = (await admin.get("/_emulator/stats")).json()
            assert (stats["submits"], stats["answer_faults"]) == (1, {"malformed_id": 1})
            after = (await admin.post("/_emulator/reset")).json()
    assert after["answer_faults"] == {}
