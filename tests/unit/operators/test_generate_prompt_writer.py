"""The generate operator's prompt writer: written before the submit, kept beside the video index (moto),
found again by every later try and run (no second chat call), counted in the budget, never in dry runs."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, running_emulator
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.prompt_writing import WRITING
from airflow_provider_cogvideo.prompt_writer import PromptWriter, WriterInputs, writer_key
from airflow_provider_cogvideo.xcom import XCOM_REQUEST, XCOM_SPEND

from ..conftest import FakeStateStore, FakeTI

BUCKET = "videos"
INDEX = f"s3://{BUCKET}/v/"
PROMPT = "Mug: keeps drinks hot. Product video in a minimal style."
METADATA = {"product_id": "sku-1", "title": "Mug", "variant": "default"}


@pytest.fixture
def emulator(make_conn):
    with running_emulator(EmulatorConfig(duration=30, jitter=0.0, seed=3, unlimited=True)) as handle:
        make_conn(password=DEFAULT_TEST_KEY, extra={"base_url": handle.base_url})
        yield handle


@pytest.fixture
def s3(moto_s3):
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def operator(**kw) -> CogVideoGenerateOperator:
    args = {
        "task_id": "generate",
        "prompt": PROMPT,
        "metadata": dict(METADATA),
        "deferrable": True,
        "poll_interval": 0.05,
        "prompt_writer": {},
        "video_index": INDEX,
        "aws_conn_id": "aws_test",
    }
    args.update(kw)
    return CogVideoGenerateOperator(**args)


def run(op: CogVideoGenerateOperator) -> dict:
    """One try in a fresh task instance (another run, or a clear): submit and defer; the summary sent."""
    context = {"ti": FakeTI(), "task_state_store": FakeStateStore()}
    with pytest.raises(TaskDeferred):
        op.execute(context)
    return context["ti"].xcom[XCOM_REQUEST]


def cached(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="v/.prompts/").get("Contents", [])]


def test_written_once_then_found_by_every_later_run(emulator, s3, monkeypatch) -> None:
    from airflow_provider_cogvideo import metrics

    counted: list[tuple[str, dict]] = []
    monkeypatch.setattr(metrics, "incr", lambda name, count=1, **tags: counted.append((name, tags)))
    first = run(operator())
    writing = first[WRITING]
    assert writing["source"] == "writer" and not writing["cached"] and writing["calls"] == 1
    assert first["prompt"] == writing["prompt"] != PROMPT and writing["template_prompt"] == PROMPT
    stats = emulator.emulator.stats()
    assert stats["chat_calls"] == 1 and stats["prompts"] == [first["prompt"]], "the written prompt was sent"
    inputs = WriterInputs(PROMPT, {"product_id": "sku-1", "title": "Mug"}, None, "default")
    key = writer_key(PromptWriter(), inputs)
    assert cached(s3) == [f"v/.prompts/{key}.json"]
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=cached(s3)[0])["Body"].read())
    assert stored["prompt"] == first["prompt"] and DEFAULT_TEST_KEY.split(".")[1] not in json.dumps(stored)

    second = run(operator())
    assert second["prompt"] == first["prompt"] and second[WRITING]["cached"] is True
    assert emulator.emulator.stats()["chat_calls"] == 1, "no second chat call"
    writes = [(name, tags) for name, tags in counted if name.startswith("cogvideo.prompt")]
    assert writes == [
        ("cogvideo.prompt_writes", {"model": "glm-4-plus", "source": "writer"}),
        ("cogvideo.prompt_cache_hits", {"model": "glm-4-plus"}),
    ]


def test_ingestions_key_names_the_writing(emulator, s3) -> None:
    run(operator(metadata={**METADATA, "prompt_writer": "abc123"}))
    assert cached(s3) == ["v/.prompts/abc123.json"]


def test_dry_run_calls_nothing_and_says_what_writing_would_cost(emulator, s3) -> None:
    result = operator(dry_run=True).execute({"ti": FakeTI(), "task_state_store": FakeStateStore()})
    writing = result["request"][WRITING]
    assert writing["source"] == "dry_run" and writing["ceiling"] > 0 and writing["currency"] == "CNY"
    assert result["prompt"] == PROMPT
    assert emulator.emulator.stats()["chat_calls"] == 0 and cached(s3) == []


def test_unknown_writer_price_with_a_budget_sends_nothing(emulator, s3) -> None:
    with pytest.raises(AirflowFailException, match="max_price_per_call"):
        run(operator(prompt_writer={"model": "glm-4-air-250414"}, max_total_price=10))
    stats = emulator.emulator.stats()
    assert (stats["chat_calls"], stats["submits"]) == (0, 0)


def test_a_stated_ceiling_is_what_an_unpriced_writing_costs(emulator, s3) -> None:
    context = {"ti": FakeTI(), "task_state_store": FakeStateStore()}
    op = operator(prompt_writer={"model": "glm-4-air-250414", "max_price_per_call": 0.25}, max_total_price=10)
    with pytest.raises(TaskDeferred):
        op.execute(context)
    assert context["ti"].xcom[XCOM_SPEND]["paid"] == pytest.approx(0.25 + 1.0), "writing ceiling + the video"


def test_a_budget_too_small_for_the_writing_writes_and_pays_nothing(emulator, s3) -> None:
    with pytest.raises(AirflowFailException, match="Prompt not written"):
        run(operator(prompt_writer={"model": "glm-4-air-250414", "max_price_per_call": 0.5}, max_total_price=0.4))
    stats = emulator.emulator.stats()
    assert (stats["chat_calls"], stats["submits"]) == (0, 0)


def test_settings_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="video_index"):
        CogVideoGenerateOperator(task_id="g", prompt="x", prompt_writer={})
    with pytest.raises(ValueError, match=r"prompt_writer\.top_p"):
        CogVideoGenerateOperator(task_id="g", prompt="x", prompt_writer={"top_p": 2}, video_index=INDEX)


def test_options_set_the_size_and_unknown_options_are_refused(emulator, s3) -> None:
    sent = run(operator(prompt_writer=None, options={"size": "1080x1920"}))
    assert sent["size"] == "1080x1920"
    op = operator(prompt_writer=None)
    op.options = {"prompt": "sneaky"}  # as a mapped item or a template renders it, after parsing
    with pytest.raises(AirflowFailException, match="options"):
        run(op)


def test_an_item_fingerprinted_with_a_writer_is_not_paid_without_one(emulator, s3) -> None:
    with pytest.raises(AirflowFailException, match="fingerprinted with a prompt writer"):
        run(operator(prompt_writer=None, metadata={**METADATA, "prompt_writer": "abc123"}))
    assert emulator.emulator.stats()["submits"] == 0


def test_a_vision_model_sees_the_image_sent(emulator, s3) -> None:
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 30, 30)).save(png, format="PNG")
    s3.put_object(Bucket=BUCKET, Key="in/mug.png", Body=png.getvalue())
    image = f"s3://{BUCKET}/in/mug.png"
    text = run(operator(image=image, prompt_writer={"model": "glm-4-flash"}))[WRITING]
    vision = run(operator(image=image, prompt_writer={"model": "glm-4v-flash"}))[WRITING]
    assert (text["source"], vision["source"]) == ("writer", "writer")
    # The emulator bills 500 tokens per image part: the same request but for the photo.
    assert vision["tokens"] - text["tokens"] > 400, (vision["tokens"], text["tokens"])


def test_literal_options_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="options"):
        CogVideoGenerateOperator(task_id="g", prompt="x", options={"prompt": "sneaky"})
    with pytest.raises(ValueError, match="size"):
        CogVideoGenerateOperator(task_id="g", prompt="x", options={"size": "720x480"})  # not a cogvideox-3 size
    CogVideoGenerateOperator(task_id="g", prompt="x", options={"size": "1080x1920"})
