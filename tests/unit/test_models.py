"""Every rule of the capability table, exercised through the request model against the spec's own
tables written out below (not read back from the table under test)."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo.capabilities import (
    ANY,
    MODEL_CAPABILITIES,
    PROMPT_MAX_CHARS,
    TIER_CONCURRENCY,
    capabilities_for,
    check_image_properties,
    estimate_price,
)
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest
from airflow_provider_cogvideo.polling import PollSchedule
from airflow_provider_cogvideo.sizes import MiB

URL = "https://example.com/a.png"
DATA_URI = "data:image/png;base64,iVBORw0KGgo="

# ---------------------------------------------------------------- the spec's tables, written out
# What the API documentation says each model takes (shared/spec/cogvideox-api.md §3.3, §7), written
# here independently of capabilities.py, so that a wrong row there fails below. Where the sources
# disagree (§9) the readings are those the table documents: cogvideox-flash takes cogvideox-2's
# options, duration 5/10 on cogvideox-2 and -flash, 480x360 on vidu2-start-end, two images on *-start-end.
_COGVIDEOX = {"fps": (30, 60), "duration": (5, 10), "quality": ("speed", "quality")}
_COGVIDEOX_3_SIZES = ("1280x720", "720x1280", "1024x1024", "1920x1080", "1080x1920", "2048x1080", "3840x2160")
_COGVIDEOX_2_SIZES = ("720x480", "1024x1024", "1280x960", "960x1280", "1920x1080", "1080x1920", "2048x1080",
                      "3840x2160")  # fmt: skip
_AMPLITUDES = {"movement_amplitude": ("auto", "small", "medium", "large")}
_ASPECTS = {"aspect_ratio": ("16:9", "9:16", "1:1")}
_VIDUQ1 = {"size": ("1920x1080",), "duration": (5,), **_AMPLITUDES}
_VIDU2 = {"size": ("1280x720",), "duration": (4,), **_AMPLITUDES}
SPEC_OPTIONS: dict[str, dict[str, tuple]] = {
    "cogvideox-3": {**_COGVIDEOX, "size": _COGVIDEOX_3_SIZES},
    "cogvideox-2": {**_COGVIDEOX, "size": _COGVIDEOX_2_SIZES},
    "cogvideox-flash": {**_COGVIDEOX, "size": _COGVIDEOX_2_SIZES},
    "viduq1-text": {**_VIDUQ1, **_ASPECTS, "style": ("general", "anime")},
    "viduq1-image": _VIDUQ1,
    "viduq1-start-end": _VIDUQ1,
    "vidu2-image": _VIDU2,
    "vidu2-start-end": {**_VIDU2, "size": ("1280x720", "480x360")},
    "vidu2-reference": {**_VIDU2, **_ASPECTS},
}
"""Every option each model takes, with its allowed values; an option missing from a row is refused."""
FIELDS = ("size", "fps", "duration", "quality", "aspect_ratio", "style", "movement_amplitude")
SPEC_IMAGES: dict[str, tuple[int, int]] = {
    "cogvideox-3": (0, 2),  # one image, or first and last frame
    "cogvideox-2": (0, 1),
    "cogvideox-flash": (0, 1),
    "viduq1-text": (0, 0),
    "viduq1-image": (1, 1),
    "viduq1-start-end": (2, 2),
    "vidu2-image": (1, 1),
    "vidu2-start-end": (2, 2),
    "vidu2-reference": (1, 3),
}
"""How many input images each model takes: (fewest, most)."""
SPEC_PRICES: dict[str, tuple[float, float | None]] = {
    "cogvideox-3": (1.0, 0.2),
    "cogvideox-2": (0.5, None),
    "cogvideox-flash": (0.0, None),
    "viduq1-text": (2.5, 0.4),
    "viduq1-image": (2.5, 0.4),
    "viduq1-start-end": (2.5, 0.4),
    "vidu2-image": (1.25, 0.2),
    "vidu2-start-end": (1.25, 0.2),
    "vidu2-reference": (2.5, 0.4),
}
"""List price per video: CNY on BigModel, USD on Z.AI (None: Z.AI lists no price, CNY is quoted)."""
SPEC_IMAGE_FILES = {"cogvideox": (("png", "jpeg"), 5 * MiB), "vidu": (("png", "jpeg", "webp"), 50 * MiB)}
"""Input image formats and size limit, by model family (the model name's start)."""
INVALID_VALUE = {"size": "123x45", "fps": 7, "duration": 3, "quality": "best", "aspect_ratio": "2:1",
                 "style": "noir", "movement_amplitude": "huge"}  # fmt: skip


def images(count: int, most: int) -> str | list[str] | None:
    """``count`` image URLs as a request of a model taking up to ``most`` images carries them."""
    if count == 0:
        return None
    return URL if most == 1 and count == 1 else [URL] * count


def minimal_fields(model: str) -> dict:
    fewest, most = SPEC_IMAGES[model]
    fields: dict = {"model": model, "prompt": "a red bicycle on a beach"}
    if fewest:
        fields["image_url"] = images(fewest, most)
    return fields


def test_the_table_has_the_models_of_the_spec() -> None:
    assert sorted(MODEL_CAPABILITIES) == sorted(SPEC_OPTIONS)


def option_cases(valid: bool):
    for model, options in SPEC_OPTIONS.items():
        for field in FIELDS:
            allowed = options.get(field, ())
            if valid:
                yield from (pytest.param(model, field, value, id=f"{model}-{field}-{value}") for value in allowed)
                continue
            # The values other models take, and one no model takes: all refused where not listed.
            known = {value for other in SPEC_OPTIONS.values() for value in other.get(field, ())}
            for value in [*sorted(known - set(allowed), key=str), INVALID_VALUE[field]]:
                yield pytest.param(model, field, value, id=f"{model}-{field}-{value}")


@pytest.mark.parametrize(("model", "field", "value"), list(option_cases(valid=True)))
def test_every_allowed_option_is_accepted_and_sent(model: str, field: str, value) -> None:
    request = VideoGenerationRequest.build(**minimal_fields(model), **{field: value})
    assert request.to_body()[field] == value


@pytest.mark.parametrize(("model", "field", "value"), list(option_cases(valid=False)))
def test_disallowed_options_name_field_value_and_allowed(model: str, field: str, value) -> None:
    with pytest.raises(CogVideoValidationError) as exc:
        VideoGenerationRequest.build(**minimal_fields(model), **{field: value})
    assert exc.value.field == field
    message = str(exc.value)
    assert model in message
    allowed = SPEC_OPTIONS[model].get(field)
    if allowed:
        assert repr(value) in message
        assert all(repr(a) in message for a in allowed)
    else:
        assert "not supported" in message


@pytest.mark.parametrize("model", list(SPEC_IMAGES))
def test_image_count_bounds(model: str) -> None:
    fewest, most = SPEC_IMAGES[model]
    for count in {fewest, most} - {0}:
        VideoGenerationRequest.build(model=model, prompt="p", image_url=images(count, most))
    with pytest.raises(CogVideoValidationError, match="image"):
        VideoGenerationRequest.build(model=model, prompt="p", image_url=[URL] * (most + 1))
    if fewest:
        with pytest.raises(CogVideoValidationError) as exc:
            VideoGenerationRequest.build(model=model, prompt="p", image_url=images(fewest - 1, most))
        assert exc.value.field == "image_url"


@pytest.mark.parametrize("model", list(SPEC_IMAGES))
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "gif"])
def test_image_formats_and_size_limit(model: str, fmt: str) -> None:
    (formats, limit) = next(rule for start, rule in SPEC_IMAGE_FILES.items() if model.startswith(start))
    caps = capabilities_for(model)
    if fmt not in formats:
        with pytest.raises(CogVideoValidationError, match="format"):
            check_image_properties(caps, 0, fmt, 1000, 256, 256)
        return
    check_image_properties(caps, 0, fmt, limit, 256, 256)
    with pytest.raises(CogVideoValidationError, match="over the"):
        check_image_properties(caps, 0, fmt, limit + 1, 256, 256)


def test_prompt_required_for_text_model_and_prompt_or_image_elsewhere() -> None:
    with pytest.raises(CogVideoValidationError, match="prompt: is required"):
        VideoGenerationRequest.build(model="viduq1-text")
    with pytest.raises(CogVideoValidationError, match="cannot both be empty"):
        VideoGenerationRequest.build(model="cogvideox-3")
    assert VideoGenerationRequest.build(model="cogvideox-3", image_url=URL).to_body()["image_url"] == URL


def test_prompt_length_limit_is_characters() -> None:
    VideoGenerationRequest.build(prompt="字" * PROMPT_MAX_CHARS)
    with pytest.raises(CogVideoValidationError, match="513 characters is over the limit of 512"):
        VideoGenerationRequest.build(prompt="字" * (PROMPT_MAX_CHARS + 1))


@pytest.mark.parametrize(("user_id", "ok"), [("12345", False), ("123456", True), ("x" * 128, True), ("x" * 129, False)])
def test_user_id_length(user_id: str, ok: bool) -> None:
    if ok:
        assert VideoGenerationRequest.build(prompt="p", user_id=user_id).to_body()["user_id"] == user_id
    else:
        with pytest.raises(CogVideoValidationError, match="user_id"):
            VideoGenerationRequest.build(prompt="p", user_id=user_id)


def test_first_last_frame_pair_only_speed_on_cogvideox3() -> None:
    VideoGenerationRequest.build(model="cogvideox-3", image_url=[URL, URL], quality="speed")
    with pytest.raises(CogVideoValidationError, match="first/last frame"):
        VideoGenerationRequest.build(model="cogvideox-3", image_url=[URL, URL], quality="quality")


def test_vidu_wants_data_uri_base64() -> None:
    with pytest.raises(CogVideoValidationError, match="data URI"):
        VideoGenerationRequest.build(model="vidu2-image", image_url="iVBORw0KGgo=")
    VideoGenerationRequest.build(model="vidu2-image", image_url=DATA_URI)


def test_unset_fields_are_omitted_and_extra_body_merged_last() -> None:
    request = VideoGenerationRequest.build(
        prompt="p", request_id="req-123456", extra_body={"off_peak": True, "fps": 24}
    )
    assert request.to_body() == {"model": "cogvideox-3", "prompt": "p", "request_id": "req-123456", "off_peak": True,
                                 "fps": 24}  # fmt: skip


def test_request_ids_are_unique_and_length_checked() -> None:
    assert VideoGenerationRequest.build(prompt="p").request_id != VideoGenerationRequest.build(prompt="p").request_id
    with pytest.raises(CogVideoValidationError, match="request_id"):
        VideoGenerationRequest.build(prompt="p", request_id="abc")


def test_unknown_model_and_unknown_field_are_named() -> None:
    with pytest.raises(CogVideoValidationError, match="'cogvideox-9' is not a known video model"):
        VideoGenerationRequest.build(model="cogvideox-9", prompt="p")
    with pytest.raises(CogVideoValidationError, match="colour: unknown field"):
        VideoGenerationRequest.build(prompt="p", colour="red")


def test_capability_overrides_relax_a_row_and_admit_new_models() -> None:
    relaxed = VideoGenerationRequest.build(prompt="p", size="720x480", capability_overrides={"sizes": ANY})
    assert relaxed.to_body()["size"] == "720x480"
    assert "capability_overrides" not in relaxed.to_body()
    listed = VideoGenerationRequest.build(prompt="p", size="640x360", capability_overrides={"sizes": ["640x360"]})
    assert listed.to_body()["size"] == "640x360"
    new_model = VideoGenerationRequest.build(
        model="cogvideox-4", prompt="p", capability_overrides={"fps": [120]}, fps=120
    )
    assert new_model.to_body()["model"] == "cogvideox-4"
    with pytest.raises(CogVideoValidationError, match="capability_overrides: unknown column"):
        VideoGenerationRequest.build(prompt="p", capability_overrides={"colours": ANY})


def test_describe_never_carries_image_bytes() -> None:
    request = VideoGenerationRequest.build(model="cogvideox-3", image_url=[DATA_URI, URL], prompt="p")
    described = request.describe()
    assert described["image_url"][0].startswith("<data:image/png;base64")
    assert described["image_url"][1] == URL
    assert "iVBOR" not in str(described)


def test_task_result_parses_leniently() -> None:
    processing = TaskResult.model_validate({"task_status": "PROCESSING", "video_result": None, "id": 123})
    assert processing.id == "123" and processing.video_url is None and not processing.is_terminal
    done = TaskResult.model_validate(
        {"task_status": "SUCCESS", "video_result": [{"url": "u.mp4", "cover_image_url": "c.png"}], "extra": 1}
    )
    assert (done.video_url, done.cover_image_url, done.is_terminal) == ("u.mp4", "c.png", True)
    failed = TaskResult.model_validate({"task_status": "FAIL", "error": {"code": "1301", "message": "unsafe"}})
    assert failed.error_text == "1301 unsafe"


@pytest.mark.parametrize("model", list(SPEC_PRICES))
def test_price_and_currency_by_endpoint(model: str) -> None:
    cny, usd = SPEC_PRICES[model]
    bigmodel = estimate_price(model, "https://open.bigmodel.cn/api/paas/v4")
    zai = estimate_price(model, "https://api.z.ai/api/paas/v4")
    assert (bigmodel.amount, bigmodel.currency) == (cny, "CNY")
    assert (zai.amount, zai.currency) == ((usd, "USD") if usd is not None else (cny, "CNY"))


def test_unknown_model_has_no_price() -> None:
    assert estimate_price("nope") is None


def test_tiers() -> None:
    assert TIER_CONCURRENCY == {"V0": 5, "V1": 10, "V2": 15, "V3": 20}


def test_poll_schedule_adaptive_and_fixed() -> None:
    adaptive = PollSchedule.for_model("cogvideox-3")
    assert adaptive.delay(0, 0) == 45.0  # three quarters of the typical shortest render (60 s)
    assert adaptive.delay(10, 0) == 35.0  # the first poll is at an absolute point of the job's life
    assert adaptive.delay(45, 1) == 8.0  # floor
    assert adaptive.delay(60, 2) == pytest.approx(9.0)  # grows with elapsed time
    assert adaptive.delay(10_000, 50) == 10.0  # ceiling
    assert PollSchedule.for_model("vidu2-image").delay(0, 0) == 22.5
    assert PollSchedule.for_model("not-a-model").delay(0, 0) == 22.5
    fixed = PollSchedule.for_model("cogvideox-3", fixed=2.0)
    assert [fixed.delay(t, n) for t, n in [(0, 0), (100, 3)]] == [2.0, 2.0]


@pytest.mark.parametrize("prompt", [" ", "   ", "\n\t ", "\u3000"])
def test_whitespace_only_prompt_is_refused_before_paying(prompt: str) -> None:
    with pytest.raises(CogVideoValidationError, match="prompt: is only whitespace") as exc:
        VideoGenerationRequest.build(prompt=prompt, image_url=URL)
    assert exc.value.field == "prompt"


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("\x00", "U+0000 at position 0"),
        ("\x00\x00\x00", "U+0000 at position 0"),
        ("\u200b", "U+200B (ZERO WIDTH SPACE) at position 0"),
        ("\u200c\u200d", "U+200C (ZERO WIDTH NON-JOINER) at position 0"),
        ("\u2060", "U+2060 (WORD JOINER) at position 0"),
        ("\ufeff", "U+FEFF (ZERO WIDTH NO-BREAK SPACE) at position 0"),
        (" \u200b \ufeff ", "U+200B (ZERO WIDTH SPACE) at position 1"),
        ("\u00ad\u034f", "U+00AD (SOFT HYPHEN) at position 0"),
        ("\u0301\u0301", "U+0301 (COMBINING ACUTE ACCENT) at position 0"),
        ("\ue000", "U+E000 at position 0"),
    ],
)
def test_prompt_without_visible_text_is_refused_before_paying(prompt: str, named: str) -> None:
    """Whether a template rendered to blanks or to invisible characters, paying for it buys a random video."""
    with pytest.raises(CogVideoValidationError, match=r"^prompt: has no visible text") as exc:
        VideoGenerationRequest.build(prompt=prompt, image_url=URL)
    assert named in str(exc.value)
    assert "letters, digits, punctuation or symbols" in str(exc.value)


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("a cat\nsurfing", "U+000A at position 5"),
        ("a cat surfing\r\n", "U+000D at position 13"),
        ("a cat\tsurfing", "U+0009 at position 5"),
        ("a cat\x00surfing", "U+0000 at position 5"),
        ("\x1b[31ma red cat", "U+001B at position 0"),
        ("a cat\x7f", "U+007F at position 5"),
        ("a cat\x85surfing", "U+0085 at position 5"),
        ("a cat\u2028surfing", "line separator U+2028 (LINE SEPARATOR) at position 5"),
        ("a cat\u2029surfing", "line separator U+2029 (PARAGRAPH SEPARATOR) at position 5"),
    ],
)
def test_prompt_with_a_control_character_is_refused_not_stripped(prompt: str, named: str) -> None:
    with pytest.raises(CogVideoValidationError, match=r"^prompt: has (control character|line separator) ") as exc:
        VideoGenerationRequest.build(prompt=prompt)
    assert named in str(exc.value)
    assert "one line of text" in str(exc.value)


@pytest.mark.parametrize(
    "prompt",
    [
        "a family 👨\u200d👩\u200d👧 on a beach",  # zero-width joiners inside visible text
        "cafe\u0301 on a corner",  # a combining accent on a letter
        "a red\u00a0mug, 350\u202fml",  # no-break spaces
        "红色马克杯缓缓转动",
        "\u200ba cat",  # a stray zero-width space beside visible text is sent as written
        "!",
    ],
)
def test_prompts_with_visible_text_are_sent_as_written(prompt: str) -> None:
    assert VideoGenerationRequest.build(prompt=prompt).to_body()["prompt"] == prompt


@pytest.mark.parametrize(
    "request_id",
    ["req-123\r\nINFO forged", "req-123456\n", "req 123456", "req\t123456", "req-\x00123456", "r\u2028123456"],
)
def test_request_id_is_printable_without_whitespace(request_id: str) -> None:
    with pytest.raises(
        CogVideoValidationError, match="request_id: must be printable characters without whitespace"
    ) as exc:
        VideoGenerationRequest.build(prompt="p", request_id=request_id)
    assert "\n" not in str(exc.value) and "\r" not in str(exc.value)


@pytest.mark.parametrize("request_id", ["req-123456", "af-0123456789abcdef", "请求-123456", "a:b/c=d+e~f"])
def test_printable_request_ids_are_kept(request_id: str) -> None:
    assert VideoGenerationRequest.build(prompt="p", request_id=request_id).to_body()["request_id"] == request_id


@pytest.mark.parametrize(
    ("overrides", "column", "expected"),
    [
        ({"sizes": 5}, "sizes", "a list of allowed values, '*' (any value) or None"),
        ({"sizes": "1280x720"}, "sizes", "a list of allowed values"),
        ({"fps": ["30"]}, "fps", "a list of allowed values"),
        ({"min_images": "x"}, "min_images", "int"),
        ({"max_images": 2.5}, "max_images", "int"),
        ({"with_audio": "yes"}, "with_audio", "bool"),
        ({"prompt_required": 1}, "prompt_required", "bool"),
        ({"image_max_bytes": None}, "image_max_bytes", "int"),
        ({"family": "sora"}, "family", "Literal['cogvideox', 'vidu']"),
    ],
)
def test_capability_overrides_of_the_wrong_type_name_column_and_type(overrides, column, expected) -> None:
    with pytest.raises(CogVideoValidationError) as exc:
        VideoGenerationRequest.build(prompt="p", capability_overrides=overrides)
    assert exc.value.field == "capability_overrides"
    assert f"column {column!r} must be {expected}" in str(exc.value)
    assert repr(overrides[column]) in str(exc.value)


def test_a_string_override_does_not_pass_as_a_substring() -> None:
    """Before the type check, {"sizes": "1280x7200"} let size "280x7" through ('in' on a string)."""
    with pytest.raises(CogVideoValidationError, match="column 'sizes'"):
        VideoGenerationRequest.build(prompt="p", size="280x7", capability_overrides={"sizes": "1280x7200"})


def test_fail_reason_is_capped() -> None:
    failed = TaskResult.model_validate({"task_status": "FAIL", "error": {"code": "1301", "message": "x" * 100_000}})
    assert failed.error_text is not None and len(failed.error_text) < 600
    assert failed.error_text.startswith("1301 xxx") and "more characters" in failed.error_text
