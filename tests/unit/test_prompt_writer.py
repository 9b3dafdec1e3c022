"""The prompt writer's pure parts: settings and their bounds, the key, the chat body, the answer's
cleaning and the cost ceilings (:mod:`airflow_provider_cogvideo.prompt_writer`)."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_provider_cogvideo.chat_models import CHAT_MODELS, chat_model
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.products import RUN_METADATA, product_fields
from airflow_provider_cogvideo.prompt_writer import (
    FEW_SHOT,
    IMAGE_TOKENS_CEILING,
    PromptWriter,
    WriterInputs,
    WrittenPrompt,
    body_chars,
    call_price,
    call_price_ceiling,
    chat_body,
    cleaned_answer,
    counted_tokens,
    planned_writing_ceiling,
    user_message,
    writer_key,
    writing_ceiling,
)
from airflow_provider_cogvideo.video_index import INDEX_INPUTS, REVIEW_MARKER

INPUTS = WriterInputs(
    prompt="Mug: keeps drinks hot. Product video in a minimal style.",
    fields={"product_id": "sku-1", "title": "Mug", "selling_points": ["hot", "matte"]},
    image_sha256="a" * 64,
    variant="9x16",
    format="9:16 vertical (1080x1920), for TikTok",
)


def test_defaults_are_the_makers() -> None:
    writer = PromptWriter.from_value({})
    assert writer == PromptWriter("glm-4-plus", None, 0.01, 0.7, 250, 3, None)
    assert writer.to_dict()["model"] == "glm-4-plus"


@pytest.mark.parametrize(
    ("settings", "field", "mention"),
    [
        ({"temperature": 0}, "prompt_writer.temperature", "0.01"),
        ({"temperature": 1.5}, "prompt_writer.temperature", "1.5"),
        ({"top_p": 0}, "prompt_writer.top_p", "0"),
        ({"max_tokens": 8}, "prompt_writer.max_tokens", "8"),
        ({"max_tokens": 2048}, "prompt_writer.max_tokens", "2048"),
        ({"model": "glm-4v-flash", "max_tokens": 1024.5}, "prompt_writer.max_tokens", "1024.5"),
        ({"attempts": 0}, "prompt_writer.attempts", "0"),
        ({"max_price_per_call": -1}, "prompt_writer.max_price_per_call", "-1"),
        ({"model": "glm-4-pluss"}, "prompt_writer.model", "did you mean 'glm-4-plus'"),
        ({"instructions": "x" * 2001}, "prompt_writer.instructions", "2000"),
        ({"temprature": 0.5}, "prompt_writer", "temprature"),
    ],
)
def test_bad_settings_name_the_field_and_value(settings: dict, field: str, mention: str) -> None:
    with pytest.raises(CogVideoValidationError) as exc:
        PromptWriter.from_value(settings)
    assert exc.value.field == field
    assert mention in str(exc.value)


def test_model_names_any_case_and_unknown_price_models_exist() -> None:
    assert PromptWriter.from_value({"model": "GLM-4V-Flash"}).model == "glm-4v-flash"
    assert chat_model("glm-4v-flash").vision and not chat_model("glm-4-plus").vision
    assert any(row.price_cny_per_million is None for row in CHAT_MODELS.values())


def test_key_changes_with_every_input_and_setting_but_not_with_cost_settings() -> None:
    writer = PromptWriter.from_value({})
    base = writer_key(writer, INPUTS)
    changed_inputs = [
        dataclasses.replace(INPUTS, prompt="other"),
        dataclasses.replace(INPUTS, fields={**INPUTS.fields, "title": "Cup"}),
        dataclasses.replace(INPUTS, image_sha256="b" * 64),
        dataclasses.replace(INPUTS, variant="16x9"),
        dataclasses.replace(INPUTS, format="16:9 landscape (1920x1080)"),
        dataclasses.replace(INPUTS, note="slower"),
    ]
    keys = {writer_key(writer, inputs) for inputs in changed_inputs}
    assert base not in keys and len(keys) == len(changed_inputs)
    for settings in ({"temperature": 0.5}, {"top_p": 0.9}, {"max_tokens": 300}, {"instructions": "luxury tone"}):
        assert writer_key(PromptWriter.from_value(settings), INPUTS) != base, settings
    for settings in ({"attempts": 1}, {"max_price_per_call": 0.5}):
        assert writer_key(PromptWriter.from_value(settings), INPUTS) == base, settings
    reordered = dataclasses.replace(INPUTS, fields=dict(reversed(list(INPUTS.fields.items()))))
    assert writer_key(writer, reordered) == base


def test_body_is_the_makers_shape_and_images_go_to_vision_models_only() -> None:
    writer = PromptWriter.from_value({"instructions": "Luxury tone."})
    body = chat_body(writer, INPUTS, image="data:image/png;base64,AAAA")
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("glm-4-plus", 0.01, 0.7, 250)
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system"] + ["user", "assistant"] * len(FEW_SHOT) + ["user"]
    assert isinstance(body["messages"][-1]["content"], str), "a text model gets no image"
    text = body["messages"][-1]["content"]
    assert text.splitlines() == [
        "Instructions: Luxury tone.",
        "Short prompt: Mug: keeps drinks hot. Product video in a minimal style.",
        "Product: selling_points: hot, matte; title: Mug",
        "Format: 9:16 vertical (1080x1920), for TikTok",
    ]
    vision = chat_body(PromptWriter.from_value({"model": "glm-4v-flash"}), INPUTS, image="data:image/png;base64,AAAA")
    parts = vision["messages"][-1]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    assert body_chars(vision)[1] == 1 and body_chars(body)[1] == 0


def test_user_message_carries_the_note() -> None:
    text = user_message(PromptWriter(), dataclasses.replace(INPUTS, note="  show\nthe handle "))
    assert text.splitlines()[-1] == "Reviewer's note: show the handle"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('"A mug turns slowly."', "A mug turns slowly."),
        ("Prompt: A mug\nturns\tslowly.", "A mug turns slowly."),
        ("\u201cA {mug} turns.\u201d", "A (mug) turns."),
        ("   ", None),
        ('""', None),
        (None, None),
        (42, None),
    ],
)
def test_cleaned_answer(answer: object, expected: str | None) -> None:
    assert cleaned_answer(answer) == expected


def test_cleaned_answer_fits_512_at_a_word_boundary() -> None:
    long = " ".join(["word"] * 300)
    cleaned = cleaned_answer(long)
    assert cleaned is not None and len(cleaned) <= 512 and cleaned.endswith("word")


def test_cost_ceiling_counts_every_character_the_image_and_max_tokens() -> None:
    writer = PromptWriter.from_value({})
    body = chat_body(writer, INPUTS)
    chars, _ = body_chars(body)
    assert call_price_ceiling(writer, "CNY", body) == pytest.approx((chars + writer.max_tokens) * 5.0 / 1e6)
    vision = PromptWriter.from_value({"model": "glm-4v-flash"})
    assert call_price_ceiling(vision, "CNY", chat_body(vision, INPUTS, "data:x")) == 0.0, "free model"
    assert call_price(writer, "CNY", 1000) == pytest.approx(0.005)
    assert IMAGE_TOKENS_CEILING > 0
    assert writing_ceiling(writer, "CNY", body) == pytest.approx(3 * call_price_ceiling(writer, "CNY", body))


@pytest.mark.parametrize(
    ("usage", "counted"),
    [
        ({"total_tokens": 900}, 900),
        ({"total_tokens": 0}, 0),
        ({"total_tokens": 10**12}, 1000),
        ({"total_tokens": -5}, 1000),
        ({"total_tokens": "many"}, 1000),
        ({"total_tokens": True}, 1000),
        (None, 1000),
    ],
)
def test_a_servers_token_count_is_kept_within_what_the_call_can_have_used(usage: object, counted: int) -> None:
    assert counted_tokens(usage, 1000) == counted


def test_unknown_price_is_the_stated_ceiling_or_none() -> None:
    unpriced = PromptWriter.from_value({"model": "glm-4-air-250414"})
    body = chat_body(unpriced, INPUTS)
    assert call_price_ceiling(unpriced, "CNY", body) is None and planned_writing_ceiling(unpriced, "CNY") is None
    stated = PromptWriter.from_value({"model": "glm-4-air-250414", "max_price_per_call": 0.02})
    assert call_price_ceiling(stated, "CNY", body) == 0.02
    assert planned_writing_ceiling(stated, "CNY") == pytest.approx(0.06), "three calls at most"
    assert call_price(stated, "CNY", 10) == 0.02
    assert writing_ceiling(stated, "CNY", body) == pytest.approx(0.06), "three calls at the stated ceiling"
    assert planned_writing_ceiling(PromptWriter(), "USD") is None, "no Z.AI price is known"


def test_planned_ceiling_covers_a_full_request() -> None:
    writer = PromptWriter.from_value({})
    full = dataclasses.replace(INPUTS, prompt="x" * 512)
    assert planned_writing_ceiling(writer, "CNY") >= writing_ceiling(writer, "CNY", chat_body(writer, full))


def test_written_prompt_round_trips_and_damaged_ones_are_refused() -> None:
    written = WrittenPrompt("A mug.", "writer", "glm-4-plus", "k1", 1, 100, 0.0005, "CNY")
    assert WrittenPrompt.from_dict(written.to_dict()) == written
    assert WrittenPrompt.from_dict({**written.to_dict(), "source": "bogus"}) is None
    assert WrittenPrompt.from_dict({**written.to_dict(), "prompt": "x" * 513}) is None
    assert WrittenPrompt.from_dict([1]) is None


def test_product_fields_leave_out_what_ingestion_adds() -> None:
    assert {INDEX_INPUTS, REVIEW_MARKER} <= RUN_METADATA
    metadata = {
        "product_id": "p",
        "title": "T",
        "variant": "9x16",
        "fingerprint": "f",
        INDEX_INPUTS: {},
        REVIEW_MARKER: {},
    }
    assert product_fields(metadata) == {"product_id": "p", "title": "T"}
