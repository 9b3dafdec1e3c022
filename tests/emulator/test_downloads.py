"""Synthetic payloads of any size and signed, expiring result URLs."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig, SyntheticPayload, running_emulator
from tests.emulator.helpers import api_client

pytestmark = pytest.mark.asyncio

BODY = {"model": "cogvideox-flash", "prompt": "bytes"}
GiB = 1024**3


async def _result(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    task_id = (await client.post("videos/generations", json=BODY)).json()["id"]
    return task_id, (await client.get(f"async-result/{task_id}")).json()["video_result"][0]


async def test_synthetic_payload_streams_exact_deterministic_bytes() -> None:
    size = 48 * 1024 * 1024 + 3
    with running_emulator(EmulatorConfig(duration=0, seed=11, payload_bytes=size)) as handle:
        async with api_client(handle, timeout=60) as client:
            task_id, result = await _result(client)
            digest, received = hashlib.sha256(), 0
            async with client.stream("GET", result["url"]) as response:
                assert response.headers["content-length"] == str(size)
                async for chunk in response.aiter_bytes():
                    digest.update(chunk)
                    received += len(chunk)
            _, other = await _result(client)
            other_head = (await client.get(other["url"], headers={"Range": "bytes=0-63"})).content
            cover = await client.get(result["cover_image_url"])

    expected = hashlib.sha256()
    for chunk in SyntheticPayload(11, size).chunks(task_id):
        expected.update(chunk)
    assert received == size
    assert digest.hexdigest() == expected.hexdigest()
    assert other_head != b"".join(SyntheticPayload(11, size).chunks(task_id, 0, 64))  # tasks differ
    assert cover.headers["content-type"] == "image/png"  # covers stay real images


async def test_one_gib_payload_without_holding_it() -> None:
    """Size and ranges of a 1 GiB payload, checked without transferring all of it."""
    with running_emulator(EmulatorConfig(duration=0, seed=2, payload_bytes=GiB)) as handle:
        async with api_client(handle) as client:
            task_id, result = await _result(client)
            head = await client.head(result["url"])
            tail = await client.get(result["url"], headers={"Range": "bytes=-100000"})
    assert head.headers["content-length"] == str(GiB)
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes {GiB - 100000}-{GiB - 1}/{GiB}"
    assert tail.content == b"".join(SyntheticPayload(2, GiB).chunks(task_id, GiB - 100000))


async def test_signed_urls_expire_and_a_fresh_query_signs_again() -> None:
    with running_emulator(EmulatorConfig(duration=0, url_ttl=3600)) as handle:
        async with api_client(handle) as client:
            _, result = await _result(client)
            assert (await client.get(result["cover_image_url"])).status_code == 200

            parts = urlsplit(result["url"])
            query = parse_qs(parts.query)
            assert set(query) == {"expires", "signature"}
            tampered = f"{parts.scheme}://{parts.netloc}{parts.path}?expires=1&signature={query['signature'][0]}"
            unsigned = f"{parts.scheme}://{parts.netloc}{parts.path}"
            for url in (tampered, unsigned):
                denied = await client.get(url)
                assert denied.status_code == 403
                assert denied.headers["content-type"] == "application/xml"
                assert b"<Code>AccessDenied</Code>" in denied.content


async def test_expired_url_is_403_until_queried_again() -> None:
    with running_emulator(EmulatorConfig(duration=0, url_ttl=0)) as handle:
        async with api_client(handle) as client:
            task_id, result = await _result(client)
            expired = await client.get(result["cover_image_url"])
            handle.emulator.signer.ttl = 3600  # as if the client re-queried within a day
            fresh = (await client.get(f"async-result/{task_id}")).json()["video_result"][0]
            renewed = await client.get(fresh["cover_image_url"])
    assert expired.status_code == 403
    assert b"expired" in expired.content
    assert renewed.status_code == 200
