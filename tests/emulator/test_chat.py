"""The chat endpoint ``POST /chat/completions``: shape, determinism, validation, faults and stats."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest

from airflow_provider_cogvideo.chat_models import CHAT_MODELS
from airflow_provider_cogvideo.emulator import (
    DEFAULT_TEST_KEY,
    EmulatorConfig,
    EmulatorHandle,
    FaultConfig,
    running_emulator,
)
from airflow_provider_cogvideo.emulator.chat import MAX_MESSAGES, MAX_TEXT_CHARS
from tests.emulator.helpers import SECRET, api_client, data_uri

pytestmark = pytest.mark.asyncio

SUBJECT = "a red ceramic mug on an oak table"
NOTE = "slower rotation, show the handle"
FORMAT = "a vertical 9:16 screen"


def user_text(subject: str = SUBJECT, note: str | None = None, fmt: str | None = None) -> str:
    lines = ["Rewrite this prompt for a video model.", f"Short prompt: {subject}"]
    if note is not None:
        lines.append(f"Reviewer's note: {note}")
    if fmt is not None:
        lines.append(f"Format: {fmt}")
    return "\n".join(lines)


def body(text: str | None = None, model: str = "glm-4-plus", **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": "You write short, vivid video prompts."},
            {"role": "user", "content": user_text() if text is None else text},
        ],
        **fields,
    }


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


async def chat(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    return await client.post("chat/completions", json=payload)


def expect_error(response: httpx.Response, status: int, code: str, *mentions: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(response.json()) == {"error"} and error["code"] == code, response.text
    for word in mentions:
        assert word in error["message"], (word, error["message"])


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_a_valid_call_answers_the_openai_shape(api: httpx.AsyncClient, suffix: str) -> None:
    response = await api.post("chat/completions" + suffix, json=body(temperature=0.7))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert set(answer) == {"id", "request_id", "created", "model", "choices", "usage"}
    assert re.fullmatch(r"chat-[0-9a-f]{16}", answer["id"])
    assert answer["request_id"] == answer["id"]
    assert isinstance(answer["created"], int) and answer["created"] > 1_700_000_000
    assert answer["model"] == "glm-4-plus"
    [choice] = answer["choices"]
    assert (choice["index"], choice["finish_reason"], choice["message"]["role"]) == (0, "stop", "assistant")
    text = choice["message"]["content"]
    assert text.startswith("A red ceramic mug on an oak table. ")
    assert 250 <= len(text) <= 450
    assert "\n" not in text
    texts = [m["content"] for m in body()["messages"]]
    prompt_tokens = -(-sum(len(t) for t in texts) // 2)
    completion_tokens = -(-len(text) // 4)
    assert answer["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


async def test_same_request_same_answer_whatever_the_seed(api: httpx.AsyncClient) -> None:
    payload = body(user_text(note=NOTE, fmt=FORMAT), temperature=0.5, top_p=0.9)
    first, again = (await chat(api, payload)).json(), (await chat(api, payload)).json()
    with running_emulator(EmulatorConfig(seed=8)) as other:
        async with api_client(other) as client:
            elsewhere = (await chat(client, payload)).json()
    assert first["choices"] == again["choices"] == elsewhere["choices"]
    assert first["id"] == again["id"] == elsewhere["id"]
    assert first["usage"] == elsewhere["usage"]


async def test_temperature_or_note_changes_the_text(api: httpx.AsyncClient) -> None:
    base = content(await chat(api, body(temperature=0.5)))
    warmer = content(await chat(api, body(temperature=0.7)))
    noted = content(await chat(api, body(user_text(note="make it brighter"), temperature=0.5)))
    assert base != warmer
    assert base != noted
    assert "Adjusted as asked" not in base


async def test_note_and_format_appear(api: httpx.AsyncClient) -> None:
    text = content(await chat(api, body(user_text(note=NOTE, fmt=FORMAT))))
    assert text.startswith("A red ceramic mug on an oak table. ")
    assert f"Framed for {FORMAT}." in text
    assert text.endswith(f"Adjusted as asked: {NOTE}.")
    assert 250 <= len(text) <= 450


async def test_labels_are_case_insensitive_and_the_subject_falls_back(api: httpx.AsyncClient) -> None:
    labelled = content(await chat(api, body("SHORT PROMPT:   a glass teapot\nreviewer's NOTE: add steam")))
    assert labelled.startswith("A glass teapot. ") and labelled.endswith("Adjusted as asked: add steam.")
    plain = content(await chat(api, body("a wooden toy train on a rug")))
    assert plain.startswith("A wooden toy train on a rug. ")


async def test_the_last_user_message_is_read(api: httpx.AsyncClient) -> None:
    payload = body()
    payload["messages"] += [
        {"role": "assistant", "content": "A mug. Slow dolly."},
        {"role": "user", "content": [{"type": "text", "text": "Short prompt: a brass lamp"}]},
    ]
    assert content(await chat(api, payload)).startswith("A brass lamp. ")


async def test_max_tokens_cuts_at_a_word_boundary(api: httpx.AsyncClient) -> None:
    full = content(await chat(api, body()))
    answer = (await chat(api, body(max_tokens=20))).json()
    text = answer["choices"][0]["message"]["content"]
    assert len(text) <= 80 and full.startswith(text) and not full[len(text)].isalnum()  # whole words
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 20


async def test_longanswer_hook(api: httpx.AsyncClient) -> None:
    text = content(await chat(api, body(user_text("a LONGANSWER kettle"))))
    assert len(text) >= 700
    capped = (await chat(api, body(user_text("a LONGANSWER kettle"), max_tokens=100))).json()
    assert len(capped["choices"][0]["message"]["content"]) >= 700  # deliberately past max_tokens: cap it yourself
    assert (capped["choices"][0]["finish_reason"], capped["usage"]["completion_tokens"]) == ("length", 100)


async def test_emptyanswer_hook(api: httpx.AsyncClient) -> None:
    answer = (await chat(api, body(user_text("an EMPTYANSWER vase")))).json()
    assert answer["choices"][0]["message"]["content"] == ""
    assert answer["usage"]["completion_tokens"] == 0


async def test_vision_model_takes_image_parts(api: httpx.AsyncClient) -> None:
    parts = [
        {"type": "text", "text": "Short prompt: the pictured chair"},
        {"type": "image_url", "image_url": {"url": data_uri(32, 32)}},
        {"type": "image_url", "image_url": {"url": "https://example.com/chair.png"}},
    ]
    payload = {"model": "glm-4v-flash", "messages": [{"role": "user", "content": parts}]}
    answer = (await chat(api, payload)).json()
    assert answer["choices"][0]["message"]["content"].startswith("The pictured chair. ")
    assert answer["usage"]["prompt_tokens"] == -(-len("Short prompt: the pictured chair") // 2) + 2 * 500


def _image_message(url: str = "https://example.com/a.png") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


@pytest.mark.parametrize(
    ("payload", "code", "mentions"),
    [
        pytest.param([1, 2], "1210", ["JSON object"], id="not-an-object"),
        pytest.param({"messages": body()["messages"]}, "1213", ["model"], id="no-model"),
        pytest.param(body(model="glm-5-turbo"), "1211", ["'glm-5-turbo'", "glm-4-plus"], id="unknown-model"),
        pytest.param(body(model="glm-4-plsu"), "1211", ["did you mean 'glm-4-plus'"], id="model-typo"),
        pytest.param({"model": "glm-4-plus"}, "1213", ["messages"], id="no-messages"),
        pytest.param(body(messages=[]), "1214", ["messages", "[]"], id="empty-messages"),
        pytest.param(body(messages="hi"), "1214", ["messages", "'hi'"], id="messages-not-a-list"),
        pytest.param(
            body(messages=[{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)),
            "1214",
            ["messages", "51 messages"],
            id="too-many-messages",
        ),
        pytest.param(body(messages=["hi"]), "1214", ["messages[0]", "'hi'"], id="message-not-an-object"),
        pytest.param(
            body(messages=[{"role": "robot", "content": "hi"}]), "1214", ["messages[0].role", "'robot'"], id="bad-role"
        ),
        pytest.param(
            body(messages=[{"role": "user", "content": 5}]), "1214", ["messages[0].content", "5"], id="content-number"
        ),
        pytest.param(
            body(messages=[{"role": "user", "content": "  "}]), "1214", ["messages[0].content"], id="content-blank"
        ),
        pytest.param(
            body(messages=[{"role": "user", "content": [{"type": "video", "text": "x"}]}]),
            "1214",
            ["messages[0].content[0].type", "'video'"],
            id="bad-part-type",
        ),
        pytest.param(
            body(messages=[{"role": "system", "content": "only a system message"}]),
            "1214",
            ["messages", "user"],
            id="no-user-message",
        ),
        pytest.param(
            body(messages=_image_message()),
            "1214",
            ["messages[0].content[0].type", "glm-4-plus"],
            id="image-text-model",
        ),
        pytest.param(
            body(model="glm-4v-flash", messages=_image_message("ftp://x/a.png")),
            "1214",
            ["messages[0].content[0].image_url.url", "'ftp://x/a.png'"],
            id="image-bad-url",
        ),
        pytest.param(body(temperature=0), "1214", ["temperature", "got 0"], id="temperature-0"),
        pytest.param(body(temperature=1.5), "1214", ["temperature", "got 1.5"], id="temperature-1.5"),
        pytest.param(body(temperature="hot"), "1214", ["temperature", "'hot'"], id="temperature-string"),
        pytest.param(body(top_p=0), "1214", ["top_p", "got 0"], id="top_p-0"),
        pytest.param(body(top_p=1.01), "1214", ["top_p", "got 1.01"], id="top_p-over-1"),
        pytest.param(body(max_tokens=0), "1214", ["max_tokens", "got 0", "4095"], id="max_tokens-0"),
        pytest.param(body(max_tokens=4096), "1214", ["max_tokens", "got 4096", "4095"], id="max_tokens-too-big"),
        pytest.param(body(max_tokens=1.5), "1214", ["max_tokens", "got 1.5"], id="max_tokens-float"),
        pytest.param(body(stream=True), "1210", ["stream"], id="stream-true"),
        pytest.param(body(stream="yes"), "1214", ["stream", "'yes'"], id="stream-string"),
        pytest.param(body("Short prompt: " + "x" * MAX_TEXT_CHARS), "1261", [str(MAX_TEXT_CHARS)], id="text-too-long"),
    ],
)
async def test_bad_bodies_are_refused_naming_the_field(
    api: httpx.AsyncClient, payload: Any, code: str, mentions: list[str]
) -> None:
    expect_error(await chat(api, payload), 400, code, *mentions)


async def test_edge_values_are_accepted(api: httpx.AsyncClient) -> None:
    for extra in ({"temperature": 1, "top_p": 1.0}, {"max_tokens": 1}, {"max_tokens": 4095}, {"stream": False}):
        assert (await chat(api, body(**extra))).status_code == 200, extra
    assert (await chat(api, body(model="glm-4-flash-250414", max_tokens=16_000))).status_code == 200
    assert set(CHAT_MODELS) >= {"glm-4-plus", "glm-4v-flash", "glm-4-flash-250414"}


async def test_invalid_json_is_1210(api: httpx.AsyncClient) -> None:
    expect_error(await api.post("chat/completions", content=b"{not json"), 400, "1210", "JSON")


async def test_blocked_prompts_get_1301() -> None:
    with running_emulator(EmulatorConfig(faults=FaultConfig(blocked_prompts=("forbidden",)))) as handle:
        async with api_client(handle) as client:
            blocked = await chat(client, body(user_text("A FORBIDDEN scene")))
            in_system = body()
            in_system["messages"][0]["content"] = "this is Forbidden too"
            also_blocked = await chat(client, in_system)
            fine = await chat(client, body())
    expect_error(blocked, 400, "1301")
    expect_error(also_blocked, 400, "1301")
    assert fine.status_code == 200
    stats = handle.stats()
    assert (stats["chat_calls"], stats["rejections"]) == (1, {"1301": 2})


async def test_chat_error_rate_injects_the_error_codes() -> None:
    faults = FaultConfig(chat_error_rate=1.0, error_codes=("500", "503", "1305"))
    with running_emulator(EmulatorConfig(seed=4, faults=faults)) as handle:
        async with api_client(handle) as client:
            answers = [await chat(client, body()) for _ in range(30)]
            video = await client.post("videos/generations", json={"model": "cogvideox-3", "prompt": "a windmill"})
    seen = {(r.status_code, r.json()["error"]["code"]) for r in answers}
    assert seen == {(500, "500"), (503, "503"), (429, "1305")}
    assert all("injected chat fault" in r.json()["error"]["message"] for r in answers)
    assert video.status_code == 200  # the submit's own rate is 0
    assert handle.stats()["chat_calls"] == 0


async def test_chat_error_rate_is_a_fraction_and_deterministic() -> None:
    async def run() -> list[int]:
        with running_emulator(EmulatorConfig(seed=5, faults=FaultConfig(chat_error_rate=0.5))) as handle:
            async with api_client(handle) as client:
                return [(await chat(client, body())).status_code for _ in range(30)]

    first, again = await run(), await run()
    assert first == again
    assert 200 in first and set(first) - {200}


async def test_chat_error_rate_via_the_admin_api(shared_emulator: EmulatorHandle) -> None:
    async with httpx.AsyncClient(base_url=shared_emulator.url_root) as admin, api_client(shared_emulator) as client:
        patched = await admin.patch("/_emulator/faults", json={"chat_error_rate": 1, "error_codes": ["503"]})
        try:
            assert patched.json()["chat_error_rate"] == 1.0
            expect_error(await chat(client, body()), 503, "503")
        finally:
            shared_emulator.faults.reset()
        assert (await chat(client, body())).status_code == 200
    with pytest.raises(ValueError, match="chat_error_rate"):
        FaultConfig(chat_error_rate=1.5)


async def test_injected_delay_applies_to_chat() -> None:
    faults = FaultConfig(delay_seconds=0.5, delay_ops=("chat",))
    with running_emulator(EmulatorConfig(faults=faults)) as handle:
        async with api_client(handle) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("chat/completions", json=body(), timeout=0.05)
            handle.faults.update(delay_ops=["poll"])
            assert (await client.post("chat/completions", json=body(), timeout=5)).status_code == 200
    assert FaultConfig().delay_ops == ("submit", "poll", "download", "chat")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        pytest.param({}, "1001", id="no-header"),
        pytest.param({"Authorization": "Bearer nobody.secret"}, "1000", id="unknown-key"),
    ],
)
async def test_auth_is_required(shared_emulator: EmulatorHandle, headers: dict[str, str], code: str) -> None:
    async with httpx.AsyncClient(base_url=shared_emulator.base_url + "/") as client:
        response = await client.post("chat/completions", json=body(), headers=headers)
    expect_error(response, 401, code)


async def test_stats_count_chat_calls_and_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_emulator(EmulatorConfig(seed=3)) as handle:
        async with api_client(handle) as client, httpx.AsyncClient(base_url=handle.url_root) as admin:
            answers = [(await chat(client, body(temperature=t))).json() for t in (0.3, 0.6)]
            await chat(client, body(temperature=0))  # refused: not counted
            stats = (await admin.get("/_emulator/stats")).json()
            after = (await admin.post("/_emulator/reset")).json()
    assert stats["chat_calls"] == 2
    assert stats["chat_tokens"] == sum(a["usage"]["total_tokens"] for a in answers) > 0
    assert stats["rejections"] == {"1214": 1}
    assert (stats["submits"], stats["tasks"]) == (0, 0)
    assert (after["chat_calls"], after["chat_tokens"]) == (0, 0)
    assert SECRET not in caplog.text and DEFAULT_TEST_KEY not in str(stats)
