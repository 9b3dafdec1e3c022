"""CogVideoRegenerateOperator: after a reject, the product made again with the reviewers' notes in the
prompt (folded in when the templates are rendered, so a resumed try sends the same request), its
metadata the reviewed video's, its spending shared with every round's regeneration."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_cogvideo.operators.regenerate import CogVideoRegenerateOperator, rejection_notes
from airflow_provider_cogvideo.review import MAX_NOTE_PROMPT_CHARS

from ..conftest import FakeStateStore

pytestmark = pytest.mark.usefixtures("conn_without_retries")

PROMPT = "A red mug turns slowly."
REVISION = " Revision requested by the reviewer: "
METADATA = {
    "product_id": "mug",
    "variant": "default",
    "fingerprint": "f" * 64,
    "title": "Red mug",
    "index_inputs": {"image": {"key": "incoming/mug.png", "size": 5, "etag": "e", "sha256": "s"}, "sidecar": None},
    "review": {"state": "awaiting", "job_id": "job-1", "run_id": "review__1", "until": "2026-03-11T09:00:00+00:00"},
}
VIDEO = {"id": "job-1", "s3_uri": "s3://out/videos/mug/default/f-job-1.mp4", "metadata": METADATA}
SUBMITTED = {"id": "job-2", "model": "cogvideox-3", "request_id": "r-2", "task_status": "PROCESSING"}


def decision(round_number: int, state: str, note: Any = None) -> dict[str, Any]:
    return {"product_id": "mug", "variant": "default", "round": round_number, "state": state, "note": note}


# ---------------------------------------------------------------- rejection_notes


def test_the_notes_of_every_reject_so_far_in_round_order() -> None:
    decisions = [
        decision(2, "regenerating", "no text\non the mug"),
        decision(3, "approved", "lovely"),
        decision(1, "regenerating", "  too dark "),
        decision(1, "held", "unexpected answer ['Maybe']"),
        decision(4, "rejected_by_review", "still wrong"),
        "junk",
        None,
    ]
    assert rejection_notes(decisions) == "too dark; no text on the mug"


@pytest.mark.parametrize(
    ("decisions", "notes"),
    [
        (decision(1, "regenerating", "too dark"), "too dark"),  # one task's value, not a list
        ((decision(1, "regenerating", "a"), decision(2, "regenerating", "b")), "a; b"),
        ([decision(1, "regenerating", None), decision(2, "regenerating", "  ")], ""),  # a reject without a note
        ([decision(1, "regenerating", "{title} {{x}}")], "(title) ((x))"),
        ([], ""),
        (None, ""),
    ],
)
def test_rejection_notes_of_odd_values(decisions: Any, notes: str) -> None:
    assert rejection_notes(decisions) == notes


# ---------------------------------------------------------------- the operator


class ReviewRunTI:
    """A mapped instance of a review run: the decisions of the review tasks per (task id, map index),
    and every task's XComs on one board (the spend entries the ledger reads)."""

    def __init__(self, task_id: str, map_index: int, decisions: dict[tuple[str, int], Any], board: dict | None = None):
        self.task_id = task_id
        self.map_index = map_index
        self.decisions = decisions
        self.board = {} if board is None else board
        self.start_date = None

    def xcom_push(self, key: str, value: Any) -> None:
        self.board[(self.task_id, self.map_index, key)] = json.loads(json.dumps(value))

    def xcom_pull(self, *, task_ids: str, key: str = "return_value", map_indexes: int | None = None) -> Any:
        if key == "return_value":
            assert map_indexes == self.map_index, "a decision of this product only"
            return self.decisions.get((task_ids, map_indexes))
        return [v for (t, _, k), v in sorted(self.board.items()) if t == task_ids and k == key]


def regenerate(task_id: str = "video.regenerate_2", **kw: Any) -> CogVideoRegenerateOperator:
    args: dict[str, Any] = {
        "task_id": task_id,
        "prompt": "{{ params.prompt }}",
        "video": VIDEO,
        "decision_task_ids": ["video.review_1", "video.review_2"],
        "poll_interval": 0.01,
        "deferrable": True,
        **kw,
    }
    return CogVideoRegenerateOperator(**args)


DECISIONS = {
    ("video.review_1", 0): decision(1, "regenerating", "too dark"),
    ("video.review_2", 0): decision(2, "regenerating", "no text on the mug"),
    ("video.review_1", 1): decision(1, "regenerating", "another product's note"),
}


def test_rendering_folds_the_notes_into_the_prompt_and_takes_the_videos_metadata() -> None:
    op = regenerate()
    op.render_template_fields({"ti": ReviewRunTI(op.task_id, 0, DECISIONS), "params": {"prompt": PROMPT}})
    assert op.prompt == PROMPT + REVISION + "too dark; no text on the mug"
    assert op.metadata == METADATA, "indexed under the product's input fingerprint, with the awaiting marker"


def test_the_revised_prompt_is_what_is_sent_and_a_resumed_try_sends_the_same(api) -> None:
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    sent = []
    for _ in range(2):  # a second try rebuilds the operator and renders again
        op = regenerate()
        context = {"ti": ReviewRunTI(op.task_id, 0, DECISIONS), "params": {"prompt": PROMPT}}
        op.render_template_fields(context)
        with pytest.raises(TaskDeferred):
            op.execute({**context, "task_state_store": FakeStateStore()})
        sent.append(json.loads(route.calls[-1].request.content)["prompt"])
    assert sent == [PROMPT + REVISION + "too dark; no text on the mug"] * 2


def test_a_reject_without_a_note_sends_the_products_prompt_again() -> None:
    op = regenerate(decision_task_ids=["video.review_1"])
    decisions = {("video.review_1", 0): decision(1, "regenerating", None)}
    op.render_template_fields({"ti": ReviewRunTI(op.task_id, 0, decisions), "params": {"prompt": PROMPT}})
    assert op.prompt == PROMPT


def test_long_notes_and_a_long_prompt_still_fit_the_api() -> None:
    op = regenerate(decision_task_ids=["video.review_1"])
    decisions = {("video.review_1", 0): decision(1, "regenerating", "darker " * 100)}
    op.render_template_fields({"ti": ReviewRunTI(op.task_id, 0, decisions), "params": {"prompt": "mug " * 200}})
    assert len(op.prompt) <= 512
    assert op.prompt.endswith(REVISION + ("darker " * 100)[: MAX_NOTE_PROMPT_CHARS + 1].rsplit(" ", 1)[0].strip())


def test_a_custom_revision_template() -> None:
    op = regenerate(revision_template="{prompt} Reviewer asks: {note}.", decision_task_ids=["video.review_1"])
    op.render_template_fields({"ti": ReviewRunTI(op.task_id, 0, DECISIONS), "params": {"prompt": PROMPT}})
    assert op.prompt == PROMPT + " Reviewer asks: too dark."


@pytest.mark.parametrize("video", [None, {"id": "job-1"}, {"id": "job-1", "metadata": "mug"}, "s3://out/v.mp4"])
def test_without_the_videos_metadata_the_task_fails(video: Any) -> None:
    op = regenerate(video=video)
    with pytest.raises(AirflowFailException, match="video: the reviewed video's result with its metadata is needed"):
        op.render_template_fields({"ti": ReviewRunTI(op.task_id, 0, DECISIONS), "params": {"prompt": PROMPT}})


@pytest.mark.parametrize("prompt", ["", "   "])
def test_without_a_prompt_the_task_fails(prompt: str) -> None:
    op = regenerate()
    with pytest.raises(AirflowFailException, match="prompt: the product's prompt is needed"):
        op.render_template_fields({"ti": ReviewRunTI(op.task_id, 0, DECISIONS), "params": {"prompt": prompt}})


def test_a_bad_revision_template_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match=r"^revision_template: .* lacks \{note\}$"):
        regenerate(revision_template="{prompt} again")


def test_every_rounds_regeneration_shares_the_runs_budget(api) -> None:
    """Round 1 of this product paid 1 of the 1.5 the pipeline run left: round 2 would pay past it."""
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    board: dict = {("video.regenerate_1", 0, "spend"): {"paid": 1.0, "reserved": 0.0, "at": 1.0, "map_index": 0}}
    rounds = ["video.regenerate_1", "video.regenerate_2"]
    op = regenerate(max_total_price=1.5, budget_task_ids=rounds)
    context = {"ti": ReviewRunTI(op.task_id, 0, DECISIONS, board), "params": {"prompt": PROMPT}}
    op.render_template_fields(context)
    with pytest.raises(AirflowFailException, match=r"max_total_price=1\.5 would be exceeded: 1 already spent"):
        op.execute({**context, "task_state_store": FakeStateStore()})
    assert route.call_count == 0

    alone = regenerate(max_total_price=1.5)  # without the other rounds, it would not see round 1's spend
    context = {"ti": ReviewRunTI(alone.task_id, 0, DECISIONS, board), "params": {"prompt": PROMPT}}
    alone.render_template_fields(context)
    with pytest.raises(TaskDeferred):
        alone.execute({**context, "task_state_store": FakeStateStore()})
    assert route.call_count == 1


def test_the_newest_note_reaches_the_prompt_whole_when_older_ones_are_long() -> None:
    """At most 200 characters of notes reach a prompt: an older note gives way, never the note the
    reviewer just wrote about the video in front of them (cut, "remove the logo" would read "remove")."""
    first = (
        "the background should be a warm wooden kitchen table with soft morning light from the left, "
        "the mug slightly turned so the handle shows and steam rising gently from the coffee"
    )
    decisions = [
        decision(1, "regenerating", first),
        decision(2, "regenerating", "keep the steam"),
        decision(3, "regenerating", "remove the logo"),
    ]
    assert len(f"{first}; keep the steam; remove the logo") > MAX_NOTE_PROMPT_CHARS, "all three do not fit"
    assert rejection_notes(decisions) == "keep the steam; remove the logo"
    assert rejection_notes(decisions[:1]) == first, "a note alone is whole up to the cap"
    assert rejection_notes([decision(1, "regenerating", "a"), decision(2, "regenerating", "b")]) == "a; b"


def test_with_a_prompt_writer_the_notes_go_to_the_writer_and_win_over_the_template(make_conn, moto_s3) -> None:
    """The writer rewrites the product's prompt with the notes (its key includes them, so a resumed try
    finds the same writing); the note template's revision is only its fallback."""
    from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, running_emulator
    from airflow_provider_cogvideo.operators.prompt_writing import WRITING
    from airflow_provider_cogvideo.xcom import XCOM_REQUEST

    moto_s3.create_bucket(Bucket="out")
    with running_emulator(EmulatorConfig(duration=30, seed=1, unlimited=True)) as handle:
        make_conn(password=DEFAULT_TEST_KEY, extra={"base_url": handle.base_url})
        sent = []
        for _ in range(2):  # a second try renders and writes again: the cache answers
            op = regenerate(prompt_writer={}, video_index="s3://out/videos/", aws_conn_id="aws_test")
            context = {"ti": ReviewRunTI(op.task_id, 0, DECISIONS), "params": {"prompt": PROMPT}}
            op.render_template_fields(context)
            with pytest.raises(TaskDeferred):
                op.execute({**context, "task_state_store": FakeStateStore()})
            sent.append(context["ti"].board[(op.task_id, 0, XCOM_REQUEST)])
        stats = handle.emulator.stats()
    writing = sent[0][WRITING]
    assert writing["source"] == "writer" and writing["template_prompt"] == PROMPT
    assert "Adjusted as asked: too dark; no text on the mug" in sent[0]["prompt"], "the notes reached the writer"
    assert REVISION not in sent[0]["prompt"], "the note template is not applied when the writer writes"
    assert sent[1]["prompt"] == sent[0]["prompt"] and sent[1][WRITING]["cached"] is True
    assert (stats["chat_calls"], stats["submits"]) == (1, 2)
