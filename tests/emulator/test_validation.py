"""Per-model validation, parametrized over the shared capability table."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from airflow_provider_cogvideo.capabilities import ANY, MODEL_CAPABILITIES, PROMPT_MAX_CHARS, ModelCapabilities
from tests.emulator.helpers import data_uri, image_bytes

pytestmark = pytest.mark.asyncio

MODELS = sorted(MODEL_CAPABILITIES)
OPTION_COLUMNS = {
    "size": "sizes",
    "fps": "fps",
    "duration": "durations",
    "quality": "qualities",
    "aspect_ratio": "aspect_ratios",
    "style": "styles",
    "movement_amplitude": "movement_amplitudes",
}
NOT_ALLOWED = {"size": "1x1", "fps": 7, "duration": 3, "quality": "ultra", "aspect_ratio": "2:1", "style": "noir"}
WRONG_TYPE = {"size": 1280, "fps": "30", "duration": "5", "quality": 1, "aspect_ratio": 16, "style": True}


def minimal(caps: ModelCapabilities, **fields: Any) -> dict[str, Any]:
    """The smallest body the model accepts: a prompt plus its minimum number of images."""
    images = [data_uri(256, 256)] * caps.min_images
    image_url: Any = None
    if images:
        image_url = images if caps.max_images > 1 else images[0]
    return {"model": caps.name, "prompt": "a paper boat on a pond", "image_url": image_url, **fields}


async def expect(api: httpx.AsyncClient, body: dict[str, Any], code: str | None) -> None:
    response = await api.post("videos/generations", json=body)
    if code is None:
        assert response.status_code == 200, response.text
        return
    assert response.headers["content-type"] == "application/json"
    assert response.status_code == (400 if code != "1302" else 429), response.text
    assert response.json()["error"]["code"] == code, response.text


def option_cases() -> list[Any]:
    cases = []
    for name in MODELS:
        caps = MODEL_CAPABILITIES[name]
        for field_name, column in OPTION_COLUMNS.items():
            allowed = getattr(caps, column)
            if allowed is None:
                value = NOT_ALLOWED.get(field_name, "auto")
                cases.append(pytest.param(name, field_name, value, "1214", id=f"{name}-{field_name}-unsupported"))
            elif allowed != ANY:
                for value in allowed:
                    cases.append(pytest.param(name, field_name, value, None, id=f"{name}-{field_name}-{value}"))
                if field_name in NOT_ALLOWED:
                    bad = NOT_ALLOWED[field_name]
                    cases.append(pytest.param(name, field_name, bad, "1214", id=f"{name}-{field_name}-bad"))
                if field_name in WRONG_TYPE:
                    bad = WRONG_TYPE[field_name]
                    cases.append(pytest.param(name, field_name, bad, "1214", id=f"{name}-{field_name}-type"))
    return cases


@pytest.mark.parametrize("model", MODELS)
async def test_minimal_body_accepted_with_nulls_and_unknown_fields(api: httpx.AsyncClient, model: str) -> None:
    caps = MODEL_CAPABILITIES[model]
    body = minimal(caps, size=None, fps=None, user_id=None, off_peak=None, some_future_field={"x": 1})
    await expect(api, body, None)


@pytest.mark.parametrize(("model", "field_name", "value", "code"), option_cases())
async def test_option_columns(api: httpx.AsyncClient, model: str, field_name: str, value: Any, code: str) -> None:
    await expect(api, minimal(MODEL_CAPABILITIES[model], **{field_name: value}), code)


async def test_invalid_option_message_names_field_and_model(api: httpx.AsyncClient) -> None:
    response = await api.post("videos/generations", json={"model": "cogvideox-3", "prompt": "x", "size": "720x480"})
    message = response.json()["error"]["message"]
    assert message.startswith("size 参数非法")
    assert "'720x480'" in message and "cogvideox-3" in message


@pytest.mark.parametrize("model", MODELS)
async def test_one_image_too_many(api: httpx.AsyncClient, model: str) -> None:
    caps = MODEL_CAPABILITIES[model]
    images = [data_uri(256, 256)] * (caps.max_images + 1)
    await expect(api, {**minimal(caps), "image_url": images if len(images) > 1 else images[0]}, "1214")


@pytest.mark.parametrize("model", [m for m in MODELS if MODEL_CAPABILITIES[m].min_images > 0])
async def test_image_models_need_images(api: httpx.AsyncClient, model: str) -> None:
    await expect(api, {**minimal(MODEL_CAPABILITIES[model]), "image_url": None}, "1213")


@pytest.mark.parametrize("model", [m for m in MODELS if MODEL_CAPABILITIES[m].prompt_required])
async def test_prompt_required(api: httpx.AsyncClient, model: str) -> None:
    await expect(api, {**minimal(MODEL_CAPABILITIES[model]), "prompt": None}, "1213")


@pytest.mark.parametrize("model", [m for m in MODELS if MODEL_CAPABILITIES[m].max_images == 1])
async def test_single_image_models_refuse_a_list(api: httpx.AsyncClient, model: str) -> None:
    await expect(api, {**minimal(MODEL_CAPABILITIES[model]), "image_url": [data_uri(256, 256)]}, "1214")


@pytest.mark.parametrize("model", [m for m in MODELS if MODEL_CAPABILITIES[m].min_images == 0])
async def test_prompt_or_image_required(api: httpx.AsyncClient, model: str) -> None:
    await expect(api, {"model": model, "prompt": "", "image_url": None}, "1213")


@pytest.mark.parametrize(
    ("length", "code"), [(PROMPT_MAX_CHARS, None), (PROMPT_MAX_CHARS + 1, "1261")], ids=["at-limit", "over"]
)
async def test_prompt_length(api: httpx.AsyncClient, length: int, code: str | None) -> None:
    await expect(api, {"model": "cogvideox-3", "prompt": "あ" * length}, code)


@pytest.mark.parametrize(("length", "code"), [(5, "1214"), (6, None), (128, None), (129, "1214")])
async def test_user_id_length(api: httpx.AsyncClient, length: int, code: str | None) -> None:
    await expect(api, {"model": "cogvideox-2", "prompt": "x", "user_id": "u" * length}, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"prompt": "x"}, "1213"),
        ({"model": None, "prompt": "x"}, "1213"),
        ({"model": "cogvideox-9", "prompt": "x"}, "1211"),
        ({"model": 3, "prompt": "x"}, "1211"),
        ({"model": "cogvideox-3", "prompt": 42}, "1214"),
        ({"model": "cogvideox-3", "prompt": "x", "with_audio": "yes"}, "1214"),
        ({"model": "cogvideox-3", "prompt": "x", "image_url": 5}, "1214"),
        ({"model": "cogvideox-3", "prompt": "x", "request_id": 5}, "1214"),
    ],
)
async def test_envelope(api: httpx.AsyncClient, body: dict[str, Any], code: str) -> None:
    await expect(api, body, code)


async def test_non_object_body_is_1210(api: httpx.AsyncClient) -> None:
    await expect(api, ["cogvideox-3"], "1210")  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("model", "image", "code"),
    [
        ("cogvideox-2", _b64(image_bytes()), None),  # bare base64: fine for CogVideoX
        ("vidu2-image", _b64(image_bytes()), "1214"),  # Vidu wants a data URI
        ("cogvideox-2", "data:image/png;base64, " + _b64(image_bytes()), None),  # the docs' form, with a space
        ("cogvideox-2", "https://example.invalid/cat.png", None),  # URLs are not fetched at submit
        ("cogvideox-2", data_uri(fmt="JPEG"), None),
        ("cogvideox-2", data_uri(fmt="WEBP"), "1214"),  # CogVideoX: png/jpeg only
        ("vidu2-image", data_uri(fmt="WEBP"), None),
        ("cogvideox-2", data_uri(fmt="GIF"), "1214"),
        ("cogvideox-2", "data:image/png,notbase64", "1214"),
        ("cogvideox-2", "data:image/png;base64,@@@", "1214"),
        ("cogvideox-2", "data:image/png;base64," + _b64(b"not an image"), "1214"),
        ("cogvideox-2", "data:image/png;base64," + _b64(b"\0" * (5 * 1024 * 1024 + 1)), "1214"),
        ("vidu2-image", data_uri(400, 100), "1214"),  # aspect 4:1 is not < 4:1
        ("vidu2-image", data_uri(390, 100), None),
        ("cogvideox-2", data_uri(400, 100), None),  # no aspect rule for CogVideoX
        ("vidu2-reference", data_uri(100, 100), "1214"),  # below the 128 px minimum side
    ],
)
async def test_image_checks(api: httpx.AsyncClient, model: str, image: str, code: str | None) -> None:
    caps = MODEL_CAPABILITIES[model]
    await expect(api, {"model": model, "prompt": "x", "image_url": [image] if caps.max_images > 1 else image}, code)


@pytest.mark.parametrize(
    ("first", "last", "code"),
    [((256, 256), (256, 256), None), ((256, 256), (240, 240), None), ((200, 200), (400, 400), "1214")],
)
async def test_vidu_frame_pair_resolution_ratio(
    api: httpx.AsyncClient, first: tuple[int, int], last: tuple[int, int], code: str | None
) -> None:
    await expect(api, {"model": "vidu2-start-end", "image_url": [data_uri(*first), data_uri(*last)]}, code)


@pytest.mark.parametrize(("quality", "code"), [(None, None), ("speed", None), ("quality", "1214")])
async def test_cogvideox3_frame_pair_is_speed_only(
    api: httpx.AsyncClient, quality: str | None, code: str | None
) -> None:
    body = {"model": "cogvideox-3", "image_url": [data_uri(), data_uri()], "quality": quality}
    await expect(api, body, code)
