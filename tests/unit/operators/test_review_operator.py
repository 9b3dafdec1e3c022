"""CogVideoReviewOperator: the answer branches to publish, regenerate or neither and is never refused
(a human-in-the-loop task that fails after the reviewer answered loses the answer); the body a
reviewer reads names the video by its s3:// URI and never carries a credential."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.exceptions import ParamValidationError  # Airflow 3.1: not a ValueError; 3.2+: the SDK's, re-exported
from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import DAG, Param

from airflow_provider_cogvideo.operators.review import (
    CogVideoReviewOperator,
    console_link,
    pull_decisions,
    review_body,
)

PUBLISH, REGENERATE = "video.publish_1", "video.regenerate_1"
PRESIGNED = "https://out.s3.amazonaws.com/videos/mug.mp4?X-Amz-Signature=abc123&X-Amz-Credential=AKIA"
VIDEO = {
    "id": "job-1",
    "model": "cogvideox-3",
    "prompt": "A red mug turns slowly.",
    "s3_uri": "s3://out/videos/mug/default/abc-job-1.mp4",
    "cover_s3_uri": "s3://out/videos/mug/default/abc-job-1.png",
    "sha256": "ab" * 32,
    "video_url": PRESIGNED,  # what a generate result may still carry: never shown to the reviewer
    "metadata": {"product_id": "mug", "variant": "default", "title": "Red mug", "fingerprint": "f" * 64},
}
ANA = {"id": "7", "name": "ana"}
AT = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)


def reviewer(*, last: bool = False, timeout_default: str = "hold", **kw: Any) -> tuple[CogVideoReviewOperator, list]:
    """A review task in a DAG with params of its own, and the branches it follows (``do_branch`` recorded)."""
    with DAG(
        "review",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params={"manifest": Param(None, type=["null", "string"]), "publish_prefix": "published/"},
    ):
        op = CogVideoReviewOperator(
            task_id="review_1",
            video=VIDEO,
            round_number=2 if last else 1,
            publish_task_id=PUBLISH,
            regenerate_task_id=None if last else REGENERATE,
            review_timeout=timedelta(hours=1),
            timeout_default=timeout_default,
            **kw,
        )
    branches: list[Any] = []
    op.do_branch = lambda context, branch: branches.append(branch)  # type: ignore[method-assign]
    return op, branches


def answer(option: str, note: Any = None, **more: Any) -> dict[str, Any]:
    """The event execute_complete gets once a reviewer answered."""
    return {
        "chosen_options": [option],
        "params_input": {"note": note},
        "responded_at": AT,
        "responded_by_user": ANA,
        "timedout": False,
        **more,
    }


def test_approve_branches_to_publish() -> None:
    op, branches = reviewer()
    decision = op.execute_complete({}, answer("Approve"))
    assert branches == [PUBLISH]
    assert decision == {
        "product_id": "mug",
        "variant": "default",
        "round": 1,
        "job_id": "job-1",
        "video": VIDEO["s3_uri"],
        "answer": "Approve",
        "state": "approved",
        "note": None,
        "by": "ana",
        "at": "2026-03-02T09:30:00+00:00",
    }


def test_reject_branches_to_the_regeneration_with_the_note() -> None:
    op, branches = reviewer()
    decision = op.execute_complete({}, answer("Reject", "too dark"))
    assert branches == [REGENERATE]
    assert (decision["state"], decision["note"], decision["by"]) == ("regenerating", "too dark", "ana")


def test_reject_in_the_last_round_follows_neither_branch() -> None:
    op, branches = reviewer(last=True)
    decision = op.execute_complete({}, answer("Reject", "still too dark"))
    assert branches == [None], "publish and any regeneration are skipped"
    assert (decision["round"], decision["state"], decision["note"]) == (2, "rejected_by_review", "still too dark")


@pytest.mark.parametrize(("default", "branch", "state"), [("hold", None, "held"), ("approve", PUBLISH, "approved")])
def test_no_answer_in_time_takes_the_timeout_default(default: str, branch: str | None, state: str) -> None:
    op, branches = reviewer(timeout_default=default)
    event = {"error": "The Human-in-the-loop response timeout has passed without a response.", "error_type": "timeout"}
    decision = op.execute_complete({}, event)
    assert branches == [branch]
    assert (decision["answer"], decision["state"], decision["by"]) == ("timeout", state, None)


def test_an_answer_the_trigger_could_not_read_is_held_even_when_the_default_approves() -> None:
    op, branches = reviewer(timeout_default="approve")
    decision = op.execute_complete(
        {}, {"error": "note: 5 is not valid under any of the given schemas", "error_type": "validation"}
    )
    assert branches == [None]
    assert (decision["answer"], decision["state"]) == ("unreadable", "held")
    assert decision["note"] == "note: 5 is not valid under any of the given schemas"


@pytest.mark.parametrize(
    "params_input",
    [
        {"note": "fine", "rating": 5},  # a form field the task does not have
        {"note": 42},  # not text
        {"note": {"colour": "blue"}},
        {},
        None,
    ],
)
def test_an_odd_answer_is_kept_where_the_standard_operator_fails(params_input: Any) -> None:
    """The standard operator validates the form after the reviewer answered: its failure would lose the
    answer, and a retry asks a new question. This one keeps the reject, its note as text."""
    op, branches = reviewer()
    decision = op.execute_complete({}, answer("Reject", params_input=params_input))
    assert branches == [REGENERATE] and decision["state"] == "regenerating"
    note = (params_input or {}).get("note")
    assert decision["note"] == (None if note is None else str(note))

    standard = HITLBranchOperator(
        task_id="standard",
        subject="s",
        options=["Approve", "Reject"],
        params={"note": Param(None, type=["null", "string"])},
    )
    standard.do_branch = lambda context, branches_to_execute: None  # type: ignore[method-assign]
    if params_input and (set(params_input) != {"note"} or not isinstance(params_input["note"], str)):
        with pytest.raises((ValueError, ParamValidationError)):  # a ValueError of its own, or the param's refusal
            standard.execute_complete({}, answer("Reject", params_input=params_input))


def test_an_unexpected_option_is_held_not_refused() -> None:
    op, branches = reviewer(timeout_default="approve")
    decision = op.execute_complete({}, answer("Publish"))
    assert branches == [None] and decision["state"] == "held"


def test_the_reviewers_form_is_the_note_only_not_the_dags_params() -> None:
    op, _ = reviewer()
    # What the form shows (and the request stores): on Airflow 3.1 op.params also holds the DAG's params.
    assert list(op.serialized_params) == ["note"]
    assert op.serialized_params["note"]["value"] is None
    assert op.options == ["Approve", "Reject"]
    assert op.defaults is None, "no default option: a timeout reaches execute_complete as an event we decide"
    assert op.response_timeout == timedelta(hours=1)


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"review_timeout": 0}, "review_timeout"), ({"timeout_default": "publish"}, "review_timeout_default")],
)
def test_bad_settings_are_refused_when_the_dag_is_parsed(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        CogVideoReviewOperator(task_id="r", video=VIDEO, round_number=1, publish_task_id=PUBLISH, **kw)


def test_publish_all_approves_without_asking() -> None:
    op, branches = reviewer(auto_decision="approve")
    decision = op.execute({"ti": None})
    assert branches == [PUBLISH]
    assert (decision["answer"], decision["state"], decision["by"]) == ("Approve", "approved", "review off")


def test_an_unknown_auto_decision_fails_without_asking() -> None:
    op, branches = reviewer(auto_decision="reject")
    with pytest.raises(AirflowFailException, match="auto_decision must be 'approve' or unset, got 'reject'"):
        op.execute({"ti": None})
    assert branches == []


def test_a_video_without_metadata_fails_the_task() -> None:
    op, branches = reviewer()
    op.video = {"s3_uri": VIDEO["s3_uri"]}
    with pytest.raises(AirflowFailException, match="video must be a transfer result with metadata, got dict"):
        op.execute_complete({}, answer("Approve"))
    assert branches == []


# ---------------------------------------------------------------- what the reviewer reads


CONSOLE = "https://console.aws.amazon.com/s3/object/{bucket}?prefix={key}"


def test_a_console_link_is_filled_with_the_key_quoted() -> None:
    assert console_link(CONSOLE, "s3://out/videos/red mug/a&b?c#d.mp4") == (
        "https://console.aws.amazon.com/s3/object/out?prefix=videos/red%20mug/a%26b%3Fc%23d.mp4"
    )
    assert console_link("http://minio.local:9001/browser/{bucket}/{key}", "s3://out/v/x.mp4") == (
        "http://minio.local:9001/browser/out/v/x.mp4"
    )


@pytest.mark.parametrize(
    "template",
    [
        "https://out.s3.amazonaws.com/{key}?X-Amz-Signature=abc",
        "https://out.s3.amazonaws.com/{key}?X-Amz-Credential=AKIA",
        "https://out.s3.amazonaws.com/{key}?x-amz-security-token=abc",
        "https://cdn.test/{key}?AWSAccessKeyId=AKIA&Expires=1",
        "https://cdn.test/{bucket}/{key}?token=secret",
        "https://admin:secret@console.test/{bucket}/{key}",
        "javascript:alert('{bucket}')//",
        "s3://{bucket}/{key}",
        "ftp://files.test/{bucket}/{key}",
        " https://console.test/{bucket}/{key}",
        "https://console.test/{bucket}/{unknown}",
        "https://console.test/{0}",
        "https://console.test/{bucket",
        "",
        None,
    ],
)
def test_a_console_link_that_could_carry_a_credential_or_is_not_http_is_refused(template: Any) -> None:
    assert console_link(template, VIDEO["s3_uri"]) is None


@pytest.mark.parametrize("uri", [None, "", "https://out/videos/x.mp4", "s3://out", "s3://out/"])
def test_no_console_link_without_an_s3_uri(uri: Any) -> None:
    assert console_link(CONSOLE, uri) is None


def test_the_body_names_the_s3_uri_and_never_a_presigned_url() -> None:
    link = console_link(CONSOLE, VIDEO["s3_uri"])
    body = review_body(VIDEO, round_number=1, earlier=[], link=link)
    assert "`s3://out/videos/mug/default/abc-job-1.mp4`" in body
    assert f"[the video in the S3 console]({link})" in body
    assert "`" + "ab" * 32 + "`" in body and "`job-1`" in body and "`A red mug turns slowly.`" in body
    for secret in ("X-Amz", "Signature", "AKIA", PRESIGNED):
        assert secret not in body
    assert "S3 console" not in review_body(VIDEO, round_number=1, earlier=[], link=None)


def test_untrusted_text_is_inert_in_the_body() -> None:
    """A sidecar's title is anyone's text: it must not close its code span, start a line of its own
    (a fake heading or button) or carry a link."""
    title = "Mug`](https://evil.test) \n\n**Approve** [click](https://evil.test) ``"
    video = {**VIDEO, "metadata": {**VIDEO["metadata"], "title": title}}
    body = review_body(video, round_number=1, earlier=[], link=None)
    line = next(line for line in body.split("\n\n") if line.startswith("**Title**"))
    assert line == "**Title** `Mug'](https://evil.test) **Approve** [click](https://evil.test) ''`"
    assert line.count("`") == 2, "one code span, opened and closed by the body itself"
    assert "\n**Approve**" not in body


def test_the_body_shows_the_earlier_rounds_notes() -> None:
    earlier = [{"round": 1, "by": "ana", "note": "too `dark`", "state": "regenerating"}]
    body = review_body(VIDEO, round_number=2, earlier=earlier, link=None)
    assert "round 2" in body
    assert "**Round 1** rejected by `ana`: `too 'dark'`" in body


class BoardTI:
    """A mapped task instance pulling the decisions of earlier rounds' tasks, one per map index."""

    map_index = 3

    def __init__(self, board: dict[tuple[str, int], Any]) -> None:
        self.board = board
        self.pulls: list[tuple[str, int]] = []

    def xcom_pull(self, *, task_ids: str, map_indexes: int) -> Any:
        self.pulls.append((task_ids, map_indexes))
        return self.board.get((task_ids, map_indexes))


def test_earlier_decisions_are_pulled_for_this_map_index_only() -> None:
    board = {
        ("video.review_1", 3): {"round": 1, "note": "ours"},
        ("video.review_1", 2): {"round": 1, "note": "another product's"},
        ("video.review_2", 3): None,  # skipped: that round did not run
    }
    ti = BoardTI(board)
    assert pull_decisions({"ti": ti}, ["video.review_1", "video.review_2"]) == [{"round": 1, "note": "ours"}]
    assert ti.pulls == [("video.review_1", 3), ("video.review_2", 3)]
    assert pull_decisions({"ti": ti}, []) == []


class _Stored:
    """What ``get_hitl_detail_content_detail`` returns for a task instance's stored request."""

    def __init__(self, options: list[str] | None, at: datetime | None, note: str | None = None) -> None:
        self.response_received = options is not None
        self.chosen_options = options
        self.responded_at = at
        self.params_input = {"note": note} if note is not None else {}
        self.responded_by_user = type("User", (), {"id": "7", "name": "ana"})() if options else None


class _TI:
    def __init__(self, try_number: int) -> None:
        self.id = "0190c1f0-0000-7000-8000-000000000001"
        self.try_number = try_number
        self.map_index = 0

    def xcom_pull(self, **kw: Any) -> Any:
        return None


def retried(monkeypatch: pytest.MonkeyPatch, stored: Any, *, try_number: int = 2) -> tuple[Any, list, list]:
    """``execute`` of a review on ``try_number``: its result (or "asked"), the branches, the stored reads."""
    from airflow.sdk.execution_time import hitl

    reads: list[Any] = []

    def read(ti_id: Any) -> Any:
        reads.append(ti_id)
        if isinstance(stored, Exception):
            raise stored
        return stored

    monkeypatch.setattr(hitl, "get_hitl_detail_content_detail", read)
    op, branches = reviewer()
    asked = []
    monkeypatch.setattr(HITLBranchOperator, "execute", lambda self, context: asked.append(context) or "asked")
    result = op.execute({"ti": _TI(try_number)})
    return result, branches, reads


def test_a_retry_decides_with_the_answer_its_lost_try_never_received(monkeypatch) -> None:
    """Airflow 3.3.2 retries a review answered within a second of parking (the executor's report of
    the parking process comes after the answer queued it), and the retry would clear the answer and
    ask again: the retry decides with the stored answer instead."""
    recent = datetime.now(timezone.utc) - timedelta(seconds=40)
    decision, branches, reads = retried(monkeypatch, _Stored(["Reject"], recent, note="warmer light"))
    assert reads == ["0190c1f0-0000-7000-8000-000000000001"]
    assert branches == [REGENERATE]
    assert (decision["answer"], decision["state"], decision["note"], decision["by"]) == (
        "Reject",
        "regenerating",
        "warmer light",
        "ana",
    )


@pytest.mark.parametrize(
    ("stored", "try_number"),
    [
        (_Stored(["Approve"], datetime.now(timezone.utc)), 1),  # a first try always asks
        (_Stored(None, None), 2),  # nobody answered the lost try
        (_Stored(["Approve"], datetime.now(timezone.utc) - timedelta(hours=2)), 2),  # an old answer: a clear
        (RuntimeError("no HITL detail for this task instance"), 2),  # nothing stored, or an older Airflow
    ],
    ids=["first-try", "unanswered", "old-answer", "nothing-stored"],
)
def test_otherwise_a_retry_asks_again(monkeypatch, stored: Any, try_number: int) -> None:
    result, branches, reads = retried(monkeypatch, stored, try_number=try_number)
    assert result == "asked" and branches == []
    assert len(reads) == (0 if try_number == 1 else 1)
