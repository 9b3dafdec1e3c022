"""CogVideoHook on the wire (respx): paths, headers, bodies, auth, retries, errors, secrets."""

from __future__ import annotations

import inspect
import json
import logging
import time

import httpx
import jwt
import pytest

from airflow_provider_cogvideo import __version__, metrics
from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoAuthError,
    CogVideoBadRequestError,
    CogVideoContentPolicyError,
    CogVideoRateLimitError,
    CogVideoServerError,
    CogVideoTransportError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.hooks import cogvideo as hook_module
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook, aclose_clients
from airflow_provider_cogvideo.models import VideoGenerationRequest
from airflow_provider_cogvideo.redact import MAX_SERVER_TEXT

from ..conftest import API_KEY, BASE_URL, error_answer

SECRET = API_KEY.split(".")[1]
PROCESSING = {"id": "8868902201637896192", "model": "cogvideox-3", "request_id": "req-000001",
              "task_status": "PROCESSING"}  # fmt: skip
VIDEO = {"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png"}
SUCCESS = {"model": "cogvideox-3", "request_id": "req-000001", "task_status": "SUCCESS", "video_result": [VIDEO]}


def request(**kw) -> VideoGenerationRequest:
    return VideoGenerationRequest.build(prompt="a cat surfing", request_id="req-000001", **kw)


def test_submit_wire_format(api, hook) -> None:
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=PROCESSING))
    task = hook.submit(request(size="1920x1080", with_audio=True))
    assert task.id == PROCESSING["id"]
    sent = route.calls.last.request
    assert sent.url == f"{BASE_URL}/videos/generations"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json; charset=UTF-8"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["user-agent"].startswith(f"airflow-provider-cogvideo/{__version__}")
    assert json.loads(sent.content) == {"model": "cogvideox-3", "prompt": "a cat surfing", "request_id": "req-000001",
                                        "size": "1920x1080", "with_audio": True}  # fmt: skip


def test_get_task_wire_format_and_id_filled_in(api, hook) -> None:
    route = api.get("/async-result/8868902201637896192").mock(return_value=httpx.Response(200, json=SUCCESS))
    task = hook.get_task("8868902201637896192")
    assert route.calls.last.request.method == "GET"
    assert route.calls.last.request.content == b""
    assert (task.id, task.task_status, task.video_url) == ("8868902201637896192", "SUCCESS", "https://cdn.test/v.mp4")


@pytest.mark.parametrize("job_id", ["../../etc/passwd", ".", "..", "...", "", "a/b", "1 2", "x" * 129])
def test_job_id_is_checked_before_sending(api, hook, job_id) -> None:
    with pytest.raises(CogVideoValidationError, match="job_id"):
        hook.get_task(job_id)
    with pytest.raises(CogVideoValidationError, match="not dots only"):
        hook.job_url(job_id)
    assert not api.calls


@pytest.mark.parametrize("job_id", ["8868902201637896192", "a.b", "a..b", ".5", "job_1-x"])
def test_job_ids_with_dots_inside_are_fine(api, hook, job_id) -> None:
    api.get(f"/async-result/{job_id}").mock(return_value=httpx.Response(200, json=SUCCESS))
    assert hook.get_task(job_id).id == job_id


def test_jwt_auth_is_verifiable_cached_and_masked(api, make_conn, monkeypatch) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_provider_cogvideo.hooks.connection._mask", masked.append)
    make_conn(extra={"auth": "jwt"})
    hook = CogVideoHook()
    route = api.get(url__regex=r".*/async-result/.*").mock(return_value=httpx.Response(200, json=SUCCESS))
    before_ms = int(time.time() * 1000)
    hook.get_task("1")
    hook.get_task("2")
    tokens = {c.request.headers["authorization"].removeprefix("Bearer ") for c in route.calls}
    assert len(tokens) == 1, "the token is cached between requests"
    (token,) = tokens
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["sign_type"] == "SIGN"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["api_key"] == "testkeyid"
    assert before_ms <= claims["timestamp"] <= int(time.time() * 1000)
    assert claims["exp"] - claims["timestamp"] == 210_000  # milliseconds, as the SDK
    assert {API_KEY, SECRET, token} <= set(masked)


def test_jwt_is_refreshed_before_expiry(api, make_conn, monkeypatch) -> None:
    make_conn(extra={"auth": "jwt", "jwt_ttl_seconds": 60})
    hook = CogVideoHook()
    route = api.get(url__regex=r".*/async-result/.*").mock(return_value=httpx.Response(200, json=SUCCESS))
    now = [1_000_000.0]
    monkeypatch.setattr("airflow_provider_cogvideo.hooks.connection.time.time", lambda: now[0])
    hook.get_task("1")
    now[0] += 25  # 35 s left: still good
    hook.get_task("1")
    now[0] += 10  # 25 s left: inside the refresh margin
    hook.get_task("1")
    tokens = [c.request.headers["authorization"] for c in route.calls]
    assert tokens[0] == tokens[1] != tokens[2]


def test_expired_jwt_answer_signs_a_fresh_token_and_retries(api, make_conn) -> None:
    make_conn(extra={"auth": "jwt"})
    hook = CogVideoHook()
    route = api.get("/async-result/1").mock(
        side_effect=[error_answer(401, "1003", "expired"), httpx.Response(200, json=SUCCESS)]
    )
    hook.get_task("1")
    assert route.call_count == 2


@pytest.mark.parametrize(
    ("answer", "exc", "attempts"),
    [
        (error_answer(429, "1302"), CogVideoRateLimitError, 4),
        (error_answer(429, "1305"), CogVideoRateLimitError, 4),
        (error_answer(500, "500"), CogVideoServerError, 4),
        (httpx.Response(503, text="<html>busy</html>"), CogVideoServerError, 4),
        (error_answer(429, "1113"), None, 1),
        (error_answer(401, "1002"), CogVideoAuthError, 1),
        (error_answer(400, "1214"), CogVideoBadRequestError, 1),
        (error_answer(400, "1301"), CogVideoContentPolicyError, 1),
    ],
)
def test_retries_only_retryable_errors(api, hook, answer, exc, attempts) -> None:
    route = api.get("/async-result/1").mock(return_value=answer)
    with pytest.raises(exc or Exception):
        hook.get_task("1")
    assert route.call_count == attempts  # max_retries=3 -> 4 attempts


def test_retry_after_is_honoured(api, hook, monkeypatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("tenacity.nap.time.sleep", sleeps.append)
    api.get("/async-result/1").mock(
        side_effect=[error_answer(429, "1302", headers={"Retry-After": "0.5"}), httpx.Response(200, json=SUCCESS)]
    )
    hook.settings  # noqa: B018
    hook.get_task("1")
    assert sleeps == [0.5]


def test_backoff_is_exponential_with_jitter(make_conn) -> None:
    make_conn(extra={"retry_min_wait": 1, "retry_max_wait": 8})
    hook = CogVideoHook()
    hook.settings  # noqa: B018
    waits = [[hook.backoff.wait(attempt) for _ in range(200)] for attempt in (1, 2, 3, 4, 5)]
    assert all(0.5 <= w <= 1 for w in waits[0])
    assert all(0.5 <= w <= 2 for w in waits[1]) and max(waits[1]) > 1
    assert all(0.5 <= w <= 8 for w in waits[4]) and max(waits[4]) > 4
    assert len(set(waits[2])) > 100  # jitter


def test_submit_read_timeout_is_ambiguous_and_not_resent(api, hook) -> None:
    route = api.post("/videos/generations").mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook.submit(request())
    assert route.call_count == 1
    assert exc.value.request_id == "req-000001"


def test_submit_answer_without_job_id_is_ambiguous(api, hook) -> None:
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json={"task_status": "PROCESSING"}))
    with pytest.raises(CogVideoAmbiguousSubmitError, match="no job id"):
        hook.submit(request())
    assert route.call_count == 1


def test_submit_connect_error_is_safe_to_resend(api, hook) -> None:
    route = api.post("/videos/generations").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=PROCESSING)]
    )
    assert hook.submit(request()).id == PROCESSING["id"]
    assert route.call_count == 2
    assert (
        json.loads(route.calls[0].request.content)["request_id"]
        == json.loads(route.calls[1].request.content)["request_id"]
    ), "a resend carries the same request_id"


def test_get_read_timeout_is_retried(api, hook) -> None:
    route = api.get("/async-result/1").mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json=SUCCESS)])
    hook.get_task("1")
    assert route.call_count == 2


def test_no_retry_mode_for_triggers(api, hook) -> None:
    route = api.get("/async-result/1").mock(side_effect=httpx.ConnectError("down"))
    with pytest.raises(CogVideoTransportError):
        hook.get_task("1", retry=False)
    assert route.call_count == 1


def test_test_connection_makes_one_free_query(api, hook) -> None:
    route = api.get("/async-result/0").mock(return_value=error_answer(400, "1214", "id invalid"))
    ok, message = hook.test_connection()
    assert ok and "accepted the key" in message
    assert route.call_count == 1
    assert not any(c.request.method == "POST" for c in api.calls)
    route.mock(return_value=error_answer(401, "1000"))
    assert hook.test_connection()[0] is False
    route.mock(return_value=error_answer(500, "500"))
    assert hook.test_connection()[0] is False


def test_secrets_never_in_errors_or_logs(api, hook, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    api.get("/async-result/1").mock(return_value=error_answer(401, "1002", f"bad token Bearer {API_KEY} ({SECRET})"))
    api.post("/videos/generations").mock(return_value=error_answer(503, "500", f"echo {API_KEY}"))
    with pytest.raises(CogVideoAuthError) as auth_exc:
        hook.get_task("1")
    with pytest.raises(CogVideoServerError) as server_exc:
        hook.submit(request())
    logged = caplog.text + capsys.readouterr().out
    assert "retrying" in logged, "the retry warnings were captured, so the check below means something"
    for text in (str(auth_exc.value), str(server_exc.value), logged, repr(hook.settings)):
        assert SECRET not in text


def test_server_text_is_scrubbed_of_the_current_jwt(api, make_conn) -> None:
    make_conn(extra={"auth": "jwt", "max_retries": 0})
    hook = CogVideoHook()
    route = api.get("/async-result/1").mock(return_value=error_answer(400, "1214", "placeholder"))
    with pytest.raises(CogVideoBadRequestError):
        hook.get_task("1")
    token = route.calls.last.request.headers["authorization"].removeprefix("Bearer ")
    route.mock(return_value=error_answer(400, "1214", f"id invalid; your token was {token}"))
    with pytest.raises(CogVideoBadRequestError) as exc:
        hook.get_task("1")
    assert token not in str(exc.value) and "your token was ***" in str(exc.value)


def test_server_text_is_capped(api, hook) -> None:
    api.get("/async-result/1").mock(return_value=error_answer(400, "1214", "x" * 100_000))
    with pytest.raises(CogVideoBadRequestError) as exc:
        hook.get_task("1")
    assert len(str(exc.value)) < MAX_SERVER_TEXT + 200
    assert "more characters" in exc.value.api_message


@pytest.mark.asyncio
async def test_async_paths_share_one_client_per_loop(api, make_conn) -> None:
    make_conn()
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=PROCESSING))
    route = api.get("/async-result/1").mock(side_effect=[error_answer(503, "500"), httpx.Response(200, json=SUCCESS)])
    first, second = CogVideoHook(), CogVideoHook()
    assert (await first.asubmit(request())).id == PROCESSING["id"]
    assert (await second.aget_task("1")).task_status == "SUCCESS"
    assert route.call_count == 2
    assert await first._async_client() is await second._async_client()
    await aclose_clients()


@pytest.mark.asyncio
async def test_async_clients_are_not_shared_across_credentials(api, make_conn) -> None:
    """Same endpoint and timeouts, different keys: two clients (cookie jars), keyed by a hash of the key."""
    make_conn("cogvideo_a", password="keya.secreta")
    make_conn("cogvideo_b", password="keyb.secretb")
    a, b, a_again = CogVideoHook("cogvideo_a"), CogVideoHook("cogvideo_b"), CogVideoHook("cogvideo_a")
    assert await a._async_client() is not await b._async_client()
    assert await a._async_client() is await a_again._async_client()
    for settings in (a.settings, b.settings):
        assert not any(part in str(settings.transport_key) for part in settings.api_key.split("."))
    await aclose_clients()


@pytest.mark.asyncio
async def test_async_submit_timeout_is_ambiguous(api, make_conn) -> None:
    make_conn()
    route = api.post("/videos/generations").mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(CogVideoAmbiguousSubmitError):
        await CogVideoHook().asubmit(request())
    assert route.call_count == 1
    await aclose_clients()


def test_record_submit_counts_the_job_and_logs_its_price(api, hook, caplog, capsys, monkeypatch) -> None:
    """The bookkeeping of an accepted submit, in one place: the operator and agenerate() both call it."""
    counted: list[tuple] = []
    monkeypatch.setattr(metrics, "incr", lambda name, count=1, **tags: counted.append((name, count, tags)))
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=PROCESSING))
    sent = request()
    job = hook.submit(sent)
    assert counted == [], "a submit alone counts nothing: whoever keeps the job records it"
    caplog.set_level(logging.INFO)
    hook.record_submit(job, sent)
    logged = caplog.text + capsys.readouterr().out  # Airflow's structlog may write to the console
    price, currency = hook.price_of(job.model)
    assert price and currency
    assert counted == [
        ("cogvideo.submits", 1, {"model": sent.model}),
        (f"cogvideo.list_price.{currency}", round(price * 100), {"model": sent.model}),
    ]
    assert f"Submitted job {job.id} (model cogvideox-3, request_id req-000001, list price {price} {currency})" in logged


def test_generate_is_agenerate_run_to_completion_with_one_signature(hook, monkeypatch) -> None:
    assert inspect.signature(CogVideoHook.generate) == inspect.signature(CogVideoHook.agenerate)
    assert CogVideoHook.generate.__qualname__ == "CogVideoHook.generate"
    assert "Runs :meth:`agenerate` with the same arguments" in (CogVideoHook.generate.__doc__ or "")
    received: list[dict] = []

    async def agenerate(self: CogVideoHook, **arguments) -> str:
        received.append(arguments)
        await self._async_client()  # a pooled client in generate()'s own loop: closed when it ends
        return "the job"

    monkeypatch.setattr(CogVideoHook, "agenerate", agenerate)
    assert hook.generate(prompt="a cat", timeout=60.0, poll_interval=5) == "the job"
    assert received == [{"prompt": "a cat", "timeout": 60.0, "poll_interval": 5}]
    assert not any(hook_module._ASYNC_CLIENTS.values()), "the loop's pooled clients are closed with it"
