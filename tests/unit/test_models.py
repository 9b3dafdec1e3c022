"""Every rule of the capability table, exercised through the request model."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo.capabilities import (
    ANY,
    MODEL_CAPABILITIES,
    PROMPT_MAX_CHARS,
    TIER_CONCURRENCY,
    estimate_price,
)
from airflow_provider_cogvideo.docs import capability_table_markdown
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.models import TaskResult, VideoGenerationRequest
from airflow_provider_cogvideo.polling import PollSchedule

URL = "https://example.com/a.png"
DATA_URI = "data:image/png;base64,iVBORw0KGgo="

OPTION_COLUMNS = {
    "size": "sizes",
    "fps": "fps",
    "duration": "durations",
    "quality": "qualities",
    "aspect_ratio": "aspect_ratios",
    "style": "styles",
    "movement_amplitude": "movement_amplitudes",
}
INVALID_VALUE = {"size": "123x45", "fps": 7, "duration": 3, "quality": "best", "aspect_ratio": "2:1",
                 "style": "noir", "movement_amplitude": "huge"}  # fmt: skip


def minimal_fields(model: str) -> dict:
    caps = MODEL_CAPABILITIES[model]
    fields: dict = {"model": model, "prompt": "a red bicycle on a beach"}
    if caps.min_images:
        fields["image_url"] = URL if caps.max_images == 1 else [URL] * caps.min_images
    return fields


def option_cases(valid: bool):
    for model, caps in MODEL_CAPABILITIES.items():
        for field, column in OPTION_COLUMNS.items():
            allowed = getattr(caps, column)
            if valid and allowed:
                for value in allowed:
                    yield model, field, value
            elif not valid:
                yield model, field, INVALID_VALUE[field] if allowed else (allowed or INVALID_VALUE[field])


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
    allowed = getattr(MODEL_CAPABILITIES[model], OPTION_COLUMNS[field])
    if allowed:
        assert repr(value) in message
        assert all(repr(a) in message for a in allowed)
    else:
        assert "not supported" in message


@pytest.mark.parametrize("model", list(MODEL_CAPABILITIES))
def test_image_count_bounds(model: str) -> None:
    caps = MODEL_CAPABILITIES[model]
    too_many = [URL] * (caps.max_images + 1)
    with pytest.raises(CogVideoValidationError, match="image"):
        VideoGenerationRequest.build(model=model, prompt="p", image_url=too_many)
    if caps.min_images:
        with pytest.raises(CogVideoValidationError) as exc:
            VideoGenerationRequest.build(model=model, prompt="p")
        assert exc.value.field == "image_url"


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


def test_price_table_and_currency_by_endpoint() -> None:
    assert estimate_price("cogvideox-3").amount == 1.0
    assert estimate_price("cogvideox-3").currency == "CNY"
    assert estimate_price("cogvideox-3", "https://api.z.ai/api/paas/v4").currency == "USD"
    assert estimate_price("cogvideox-flash").amount == 0.0
    assert estimate_price("vidu2-reference").amount == 2.5
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


def test_table_renders_for_docs() -> None:
    table = capability_table_markdown()
    assert all(f"`{m}`" in table for m in MODEL_CAPABILITIES)


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
