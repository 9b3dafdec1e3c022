"""``CogVideoHook.write_prompt`` against the in-process emulator's ``/chat/completions``: a writing,
the answer cap, retries of unusable answers, the fallback, transient and refused errors, secrets."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, FaultConfig, running_emulator
from airflow_provider_cogvideo.errors import CogVideoAuthError, CogVideoServerError
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
from airflow_provider_cogvideo.prompt_writer import FALLBACK, WRITER, PromptWriter, WriterInputs, writer_key

INPUTS = WriterInputs(
    prompt="Mug: keeps drinks hot. Product video in a minimal style.",
    fields={"product_id": "sku-1", "title": "Mug"},
    image_sha256="a" * 64,
    variant="9x16",
    format="9:16 vertical (1080x1920), for TikTok",
)
SECRET = DEFAULT_TEST_KEY.split(".")[1]


@pytest.fixture
def emulator():
    with running_emulator(EmulatorConfig(duration=0.2, jitter=0.0, seed=3, unlimited=True)) as handle:
        yield handle


@pytest.fixture
def writer_hook(make_conn, emulator) -> CogVideoHook:
    make_conn(password=DEFAULT_TEST_KEY, extra={"base_url": emulator.base_url, "max_retries": 2})
    return CogVideoHook()


def test_writes_a_prompt_with_its_cost(writer_hook, emulator, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    written = writer_hook.write_prompt({}, INPUTS)
    assert written.source == WRITER and written.calls == 1
    assert written.key == writer_key(PromptWriter(), INPUTS)
    assert written.prompt and written.prompt != INPUTS.prompt and len(written.prompt) <= 512
    assert "Mug: keeps drinks hot" in written.prompt, "the emulator builds on the short prompt"
    assert "9:16 vertical" in written.prompt, "the format reached the model"
    assert written.tokens and written.price == pytest.approx(written.tokens * 5.0 / 1e6)
    assert written.currency == "CNY"
    stats = emulator.emulator.stats()
    assert stats["chat_calls"] == 1 and stats["chat_tokens"] == written.tokens
    assert SECRET not in json.dumps(written.to_dict()) + caplog.text


def test_the_same_inputs_write_the_same_text(writer_hook) -> None:
    assert writer_hook.write_prompt({}, INPUTS).prompt == writer_hook.write_prompt({}, INPUTS).prompt
    noted = writer_hook.write_prompt({}, dataclasses.replace(INPUTS, note="show the handle"))
    assert "show the handle" in noted.prompt


def test_an_over_long_answer_is_cut_to_512(writer_hook) -> None:
    written = writer_hook.write_prompt({}, dataclasses.replace(INPUTS, prompt="LONGANSWER mug"))
    assert written.source == WRITER and len(written.prompt) <= 512


def test_unusable_answers_are_asked_again_then_the_fallback(writer_hook, emulator) -> None:
    inputs = dataclasses.replace(INPUTS, prompt="EMPTYANSWER mug")
    written = writer_hook.write_prompt({"attempts": 2}, inputs, fallback="the template's revision")
    assert (written.source, written.calls, written.prompt) == (FALLBACK, 2, "the template's revision")
    assert "no usable text after 2 call(s)" in written.reason
    assert emulator.emulator.stats()["chat_calls"] == 2
    assert writer_hook.write_prompt({"attempts": 1}, inputs).prompt == inputs.prompt, "default fallback"


def test_a_content_filter_refusal_falls_back_at_once(make_conn) -> None:
    config = EmulatorConfig(duration=0.2, seed=3, unlimited=True, faults=FaultConfig(blocked_prompts=("forbidden",)))
    with running_emulator(config) as handle:
        make_conn(password=DEFAULT_TEST_KEY, extra={"base_url": handle.base_url})
        written = CogVideoHook().write_prompt({}, dataclasses.replace(INPUTS, prompt="a forbidden mug"))
        assert (written.source, written.calls) == (FALLBACK, 1)
        assert "content filter (1301)" in written.reason
        assert handle.emulator.stats()["chat_calls"] == 0


def test_transient_errors_are_retried_then_raised(make_conn) -> None:
    faults = FaultConfig(chat_error_rate=1.0, error_codes=("500",))
    with running_emulator(EmulatorConfig(duration=0.2, seed=3, unlimited=True, faults=faults)) as handle:
        make_conn(password=DEFAULT_TEST_KEY, extra={"base_url": handle.base_url, "max_retries": 2})
        with pytest.raises(CogVideoServerError):
            CogVideoHook().write_prompt({}, INPUTS)
        assert sum(handle.emulator.stats()["rejections"].values()) == 3, "one attempt and two retries"


def test_a_refused_key_is_raised_without_retries(make_conn, emulator) -> None:
    make_conn(password="nokey.nosecret", extra={"base_url": emulator.base_url, "max_retries": 2})
    with pytest.raises(CogVideoAuthError) as exc:
        CogVideoHook().write_prompt({}, INPUTS)
    assert "nosecret" not in str(exc.value)


def test_bad_settings_are_refused_before_any_call(writer_hook, emulator) -> None:
    with pytest.raises(ValueError, match=r"prompt_writer\.temperature"):
        writer_hook.write_prompt({"temperature": 3}, INPUTS)
    assert emulator.emulator.stats()["chat_calls"] == 0
