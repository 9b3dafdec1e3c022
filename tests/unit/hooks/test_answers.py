"""API answers against a hostile server: a size cap counted on decoded bytes as they are read (zlib
with ``max_length``, never httpx's whole-read decoder), one layer of gzip/deflate at most, encodings
not asked for refused, and a deadline from the minimum rate. How each failure is classed: a query's
is retryable (the poll error budget pays, as for a 5xx), a submit's is ambiguous (a job may exist).

Memory is asserted with ``tracemalloc`` around reading a bomb; time with a fake clock."""

from __future__ import annotations

import json
import tracemalloc
import zlib
from collections.abc import Iterator

import httpx
import pytest
import respx

from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoAPIError,
    CogVideoServerError,
)
from airflow_provider_cogvideo.hooks import bodies
from airflow_provider_cogvideo.hooks.bodies import MAX_ANSWER_BYTES, BodyLimits, BodyReader
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook, aclose_clients
from airflow_provider_cogvideo.models import VideoGenerationRequest

from ..conftest import BASE_URL
from ..local_server import LocalServer, RawBody, chunked, drip, gzip_bytes, gzip_stream, head

MiB = 1024 * 1024
JOB = {"id": "8868902201637896192", "model": "cogvideox-3", "task_status": "PROCESSING"}
QUERY = f"/async-result/{JOB['id']}"
SUBMIT = "/videos/generations"


PREFIX, SUFFIX = json.dumps(JOB)[:-1].encode(), b"}"
"""A job's JSON around padding: a client that reads it whole gets a perfectly good job."""


def bomb(size: int, *, layers: int = 1) -> bytes:
    """``size`` bytes of a valid job padded with spaces, gzipped ``layers`` times."""
    return gzip_bytes(size, prefix=PREFIX, suffix=SUFFIX, layers=layers, fill=b" ")


def answer(body: bytes, encoding: str | None, status: int = 200) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"Content-Encoding": encoding} if encoding else {})}
    return httpx.Response(status, stream=RawBody(body), headers=headers)


def request() -> VideoGenerationRequest:
    return VideoGenerationRequest.build(prompt="a cat surfing", request_id="req-000001")


def gz(data: bytes, wbits: int = 31) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


# ------------------------------------------------------------------ within bounds, answers read as before
@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [(None, None), ("gzip", 31), ("x-gzip", 31), ("deflate", 15), ("deflate", -15), ("identity", None)],
)
def test_an_answer_in_one_layer_of_gzip_or_deflate_is_read(api, hook, encoding, wbits) -> None:
    """``deflate`` is zlib-wrapped by the RFC, raw from some servers: both are read."""
    body = json.dumps(JOB).encode()
    api.get(QUERY).mock(side_effect=lambda _: answer(gz(body, wbits) if wbits else body, encoding))
    assert hook.get_task(JOB["id"], retry=False).task_status == "PROCESSING"


def test_api_requests_ask_for_the_encodings_that_are_decoded(api, hook) -> None:
    """Explicit, so httpx's default (which grows with brotli or zstandard installed) does not decide."""
    route = api.get(QUERY).mock(return_value=httpx.Response(200, json=JOB))
    hook.get_task(JOB["id"], retry=False)
    assert route.calls.last.request.headers["accept-encoding"] == "gzip, deflate"


# ------------------------------------------------------------------ bombs
def test_a_query_answer_inflating_past_the_cap_is_refused_holding_about_the_cap(api, hook) -> None:
    """64 MiB of padded JSON in ~64 KB of gzip: httpx's decoder would hold all of it (and parse a
    valid job). Read by bounded steps, the reader stops past MAX_ANSWER_BYTES, and the peak of
    memory allocated while reading stays near the cap (the cap, a step, the compressed bytes, a growing
    buffer's slack: under twice the cap plus the compressed bytes)."""
    data = bomb(64 * MiB)
    api.get(QUERY).mock(side_effect=lambda _: answer(data, "gzip"))
    hook.settings  # noqa: B018 - connection and clients outside the measurement
    tracemalloc.start()
    try:
        with pytest.raises(CogVideoAPIError) as exc:
            hook.get_task(JOB["id"], retry=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc.value.retryable and exc.value.http_status == 200, "a query's error budget pays, as for a 5xx"
    assert f"is over its cap of {MAX_ANSWER_BYTES} bytes" in str(exc.value)
    assert f"GET {BASE_URL}{QUERY}" in str(exc.value)
    assert peak < 2 * MAX_ANSWER_BYTES + len(data), f"held {peak} bytes reading a 64 MiB bomb"


def test_the_decoded_pieces_never_exceed_one_step() -> None:
    """What a single network read of a bomb can become at once: one decoding step, not its inflation."""
    reader = BodyReader(BodyLimits(MAX_ANSWER_BYTES, grace=60, min_rate=1024), encodings=["gzip"])
    held: list[int] = []
    with pytest.raises(bodies.BodyRefused, match="over its cap"):
        held.extend(len(piece) for piece in reader.take(bomb(16 * MiB)))
    assert reader.largest_piece <= bodies.DECODE_STEP
    assert sum(held) <= MAX_ANSWER_BYTES < reader.decoded <= MAX_ANSWER_BYTES + bodies.DECODE_STEP


def test_a_submit_answer_over_the_cap_is_ambiguous_and_not_resent(api, hook) -> None:
    """The server took the submit: a job may exist. An answer too big to read is a 2xx without a job
    id the hook could read (SUBMIT_POLICY's no_job_id row): ambiguous, never resent."""
    data = bomb(8 * MiB)
    route = api.post(SUBMIT).mock(side_effect=lambda _: answer(data, "gzip"))
    with pytest.raises(CogVideoAmbiguousSubmitError, match="over its cap") as exc:
        hook.submit(request())
    assert route.call_count == 1
    assert exc.value.request_id == "req-000001"


def test_an_error_answer_over_the_cap_is_classed_by_its_status(api, hook) -> None:
    api.get(QUERY).mock(side_effect=lambda _: answer(bomb(8 * MiB), "gzip", status=502))
    with pytest.raises(CogVideoServerError, match="over its cap") as exc:
        hook.get_task(JOB["id"], retry=False)
    assert exc.value.retryable and exc.value.http_status == 502


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip,deflate", "deflate, gzip, gzip"])
def test_more_than_one_layer_of_encoding_is_refused(api, hook, encoding) -> None:
    """A layered answer is refused as it arrives, before anything is decoded: no server sends it to a
    client that asked for one layer, and a middle layer could inflate without producing a byte."""
    data = bomb(1024, layers=encoding.count(",") + 1)
    api.get(QUERY).mock(side_effect=lambda _: answer(data, encoding))
    with pytest.raises(CogVideoAPIError, match=rf"has {encoding.count(',') + 1} layers of Content-Encoding") as exc:
        hook.get_task(JOB["id"], retry=False)
    assert exc.value.retryable


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
def test_an_encoding_not_asked_for_is_refused_naming_it(api, hook, encoding) -> None:
    api.get(QUERY).mock(side_effect=lambda _: answer(b"\x8b\x01\x80{}\x03", encoding))
    with pytest.raises(CogVideoAPIError, match=rf"Content-Encoding '{encoding}', which was not asked for"):
        hook.get_task(JOB["id"], retry=False)


def test_a_truncated_gzip_answer_is_refused(api, hook) -> None:
    data = gz(json.dumps(JOB).encode())[:-12]
    api.get(QUERY).mock(side_effect=lambda _: answer(data, "gzip"))
    with pytest.raises(CogVideoAPIError, match="ended inside its gzip stream") as exc:
        hook.get_task(JOB["id"], retry=False)
    assert exc.value.retryable


@pytest.mark.asyncio
async def test_async_answers_follow_the_same_bounds(make_conn) -> None:
    """The triggerer's path (``aget_task``, ``asubmit``): the same reader, on ``aiter_raw``."""
    make_conn()
    hook = CogVideoHook()
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as api:
        api.get(QUERY).mock(side_effect=lambda _: answer(bomb(1024, layers=2), "gzip, gzip"))
        with pytest.raises(CogVideoAPIError, match="2 layers of Content-Encoding") as exc:
            await hook.aget_task(JOB["id"], retry=False)
        assert exc.value.retryable
        api.post(SUBMIT).mock(side_effect=lambda _: answer(bomb(4 * MiB), "gzip"))
        with pytest.raises(CogVideoAmbiguousSubmitError, match="over its cap"):
            await hook.asubmit(request())
    await aclose_clients()


@pytest.mark.asyncio
async def test_a_chunked_gzip_bomb_on_the_wire_is_cut_off_by_the_async_reader(make_conn) -> None:
    """A real connection: a chunked, gzip-encoded answer compressed on the fly, decoding to 256 MiB.
    The reader stops past the cap after a few network reads; the server is left writing to nobody."""

    def respond(method: str, path: str) -> Iterator[bytes]:
        yield head(headers={"Content-Type": "application/json", "Content-Encoding": "gzip",
                            "Transfer-Encoding": "chunked"})  # fmt: skip
        yield from chunked(gzip_stream(256 * MiB, prefix=PREFIX))

    with LocalServer(respond) as server:
        make_conn(extra={"base_url": f"http://127.0.0.1:{server.port}/api/paas/v4"})
        hook = CogVideoHook()
        with pytest.raises(CogVideoAPIError, match=f"over its cap of {MAX_ANSWER_BYTES} bytes"):
            await hook.aget_task(JOB["id"], retry=False)
        await aclose_clients()
    assert server.seen[0].headers["accept-encoding"] == "gzip, deflate"


# ------------------------------------------------------------------ slow answers
class FakeClock:
    def __init__(self, step: float) -> None:
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.asyncio
async def test_a_dripping_answer_is_cut_off_by_the_deadline(make_conn, monkeypatch: pytest.MonkeyPatch) -> None:
    """One byte at a time: no read ever times out, the answer as a whole is too slow. With a fake clock
    moving 1 s per reading, a 1 s grace and 1024 bytes/s, the deadline passes on the second read."""
    monkeypatch.setattr(bodies, "_monotonic", FakeClock(step=1.0))
    body = json.dumps(JOB).encode()

    def respond(method: str, path: str) -> Iterator[bytes]:
        yield head(headers={"Content-Type": "application/json", "Content-Length": str(len(body))})
        yield from drip(body, 0.002)

    with LocalServer(respond) as server:
        make_conn(
            extra={"base_url": f"http://127.0.0.1:{server.port}/api/paas/v4", "request_timeout": 1,
                   "min_transfer_rate": 1024}
        )  # fmt: skip
        hook = CogVideoHook()
        with pytest.raises(CogVideoAPIError, match="is too slow") as exc:
            await hook.aget_task(JOB["id"], retry=False)
        await aclose_clients()
    assert "below the minimum average of 1024 bytes/s after a grace of 1 s" in str(exc.value)
    assert exc.value.retryable, "like a read timeout: the poll error budget decides"


def test_limits_come_from_the_connection(make_conn) -> None:
    make_conn(extra={"request_timeout": 7, "min_transfer_rate": 2048})
    hook = CogVideoHook()
    hook.settings  # noqa: B018
    assert hook._answer_limits() == BodyLimits(MAX_ANSWER_BYTES, grace=7, min_rate=2048)
