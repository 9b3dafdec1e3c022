"""The review loop's rules (review.py): how a note reaches the next prompt and always fits the API's
512 characters, what a reviewer's answer (or its absence) decides, how a product's rounds end, and
when an index entry's recorded review counts and asks for a new one. Expected values written out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_cogvideo.capabilities import PROMPT_MAX_CHARS
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.review import (
    DEFAULT_REVISION_TEMPLATE,
    MAX_NOTE_PROMPT_CHARS,
    MAX_STORED_NOTE_CHARS,
    PENDING_GRACE,
    ReviewState,
    TimeoutDefault,
    checked_review_timeout,
    checked_revision_template,
    checked_rounds,
    decision_from_answer,
    entry_review_state,
    final_state,
    needs_review,
    pending_elsewhere,
    prompt_note,
    revised_prompt,
    stored_note,
)
from airflow_provider_cogvideo.video_index import IndexEntry, StoredObject, iso_utc

PREFIX = " Revision requested by the reviewer: "
"""What the default template puts between the prompt and the note."""
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

VIDEO = {
    "id": "job-1",
    "s3_uri": "s3://out/videos/mug/default/abc-job-1.mp4",
    "sha256": "ab" * 32,
    "metadata": {"product_id": "mug", "variant": "default", "title": "Red mug"},
}


def words(count: int, word: str = "word") -> str:
    return " ".join([word] * count)


# ---------------------------------------------------------------- notes into prompts


def test_the_default_template_joins_the_prompt_and_the_cleaned_note() -> None:
    assert revised_prompt("A red mug turns slowly.", "  too   dark\n") == (
        "A red mug turns slowly. Revision requested by the reviewer: too dark"
    )


def test_a_full_length_prompt_is_shortened_so_the_whole_note_fits() -> None:
    """The product's prompt may already use all 512 characters: the prompt gives way, never the note."""
    prompt = words(200, "mug")[:PROMPT_MAX_CHARS]
    assert len(prompt) == PROMPT_MAX_CHARS
    note = "make the handle blue and the background white, no text on the mug"
    revised = revised_prompt(prompt, note)
    assert len(revised) <= PROMPT_MAX_CHARS
    assert revised.endswith(PREFIX + note), "the note is whole, at the end"
    kept = revised.removesuffix(PREFIX + note)
    assert prompt.startswith(kept) and kept.startswith("mug mug"), "the prompt is cut, from its end"
    assert not kept.endswith(" "), "cut at a word boundary, no dangling blank"
    assert len(kept) > PROMPT_MAX_CHARS - len(PREFIX) - len(note) - 10, "only what the note needs is taken"


@pytest.mark.parametrize("prompt_chars", [0, 1, 200, 400, 511, 512])
@pytest.mark.parametrize("note_chars", [1, 150, 199, 200, 201, 5000])
def test_a_revised_prompt_never_exceeds_the_api_limit(prompt_chars: int, note_chars: int) -> None:
    prompt = ("abcd " * 200)[:prompt_chars]
    note = ("wxyz " * 2000)[:note_chars]
    revised = revised_prompt(prompt, note)
    assert len(revised) <= PROMPT_MAX_CHARS
    assert prompt_note(note) in revised, "the cleaned note is never cut by the prompt"


def test_a_custom_template_of_the_longest_allowed_size_still_fits() -> None:
    template = "{prompt} || " + "x" * (PROMPT_MAX_CHARS - MAX_NOTE_PROMPT_CHARS - 5 - 4) + " {note}"
    assert checked_revision_template(template) == template
    note = words(100, "note")  # cleaned to 200 characters at most
    revised = revised_prompt(words(150), note, template)
    assert len(revised) <= PROMPT_MAX_CHARS
    assert revised.endswith(" " + prompt_note(note))


def test_control_characters_and_braces_are_taken_out_of_a_note() -> None:
    """Braces would be placeholders to a later format(); control characters break a prompt's one line."""
    assert (
        prompt_note("too\x00dark\x1b[31m {prompt} {{note}}\r\n\tend\x7f\x85") == "too dark [31m (prompt) ((note)) end"
    )
    revised = revised_prompt("A mug.", "use {title} \x07 please")
    assert revised == "A mug." + PREFIX + "use (title) please"


@pytest.mark.parametrize("note", [None, "", "   ", "\n\t\x00", "\x07\x1b\x7f"])
def test_without_a_usable_note_the_prompt_is_sent_again(note: Any) -> None:
    assert prompt_note(note) == ""
    assert revised_prompt("A red mug turns slowly.", note) == "A red mug turns slowly."
    long_prompt = words(200)
    assert revised_prompt(long_prompt, note) == long_prompt[: long_prompt.rfind(" ", 0, PROMPT_MAX_CHARS + 1)]


def test_a_long_note_is_cut_at_a_word_boundary() -> None:
    note = words(60, "darker")  # 60 * 7 - 1 = 419 characters
    cut = prompt_note(note)
    assert len(cut) <= MAX_NOTE_PROMPT_CHARS
    assert cut == words(28, "darker"), "28 whole words (195 characters), no half word"
    assert revised_prompt("A mug.", note) == "A mug." + PREFIX + cut


def test_a_note_of_one_enormous_word_is_cut_hard_rather_than_dropped() -> None:
    assert prompt_note("杯" * 500) == "杯" * MAX_NOTE_PROMPT_CHARS


def test_a_stored_note_is_capped_and_anything_is_accepted() -> None:
    """The review task keeps whatever the reviewer typed: a validation error there would lose the answer."""
    assert stored_note("x" * 5000) == "x" * MAX_STORED_NOTE_CHARS
    assert stored_note("  too dark  ") == "too dark"
    assert stored_note(None) is None
    assert stored_note("   ") is None
    assert stored_note(42) == "42"
    assert stored_note({"colour": "blue"}) == "{'colour': 'blue'}"
    assert stored_note(["a", 1]) == "['a', 1]"
    assert stored_note(False) == "False"


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{prompt} only", r"lacks \{note\}$"),
        ("note: {note}", r"lacks \{prompt\}$"),
        ("nothing", r"lacks \{prompt\} and \{note\}$"),
        ("{prompt} {note} for {title}", r"may only use \{prompt\} and \{note\}"),
        ("{prompt} {note} {0}", r"may only use \{prompt\} and \{note\}"),
        ("{prompt} {note", r"may only use \{prompt\} and \{note\}"),
        ("{prompt}{note}" + "x" * (PROMPT_MAX_CHARS - MAX_NOTE_PROMPT_CHARS), r"leaves no room for a prompt: 312"),
    ],
)
def test_a_revision_template_is_checked(template: str, problem: str) -> None:
    with pytest.raises(CogVideoValidationError, match=problem) as raised:
        checked_revision_template(template)
    assert raised.value.field == "revision_template"


def test_the_default_revision_template_is_valid_and_text_only_is_accepted() -> None:
    assert checked_revision_template(DEFAULT_REVISION_TEMPLATE) == DEFAULT_REVISION_TEMPLATE
    longest = "{prompt}{note}" + "x" * (PROMPT_MAX_CHARS - MAX_NOTE_PROMPT_CHARS - 1)
    assert checked_revision_template(longest) == longest
    with pytest.raises(CogVideoValidationError, match="revision_template: must be text, got int"):
        checked_revision_template(5)


@pytest.mark.parametrize("value", [0, 1, 5])
def test_review_rounds_within_bounds(value: int) -> None:
    assert checked_rounds(value) == value


@pytest.mark.parametrize(("value", "shown"), [(-1, "-1"), (6, "6"), (1.5, "1.5"), ("2", "'2'"), (True, "True")])
def test_review_rounds_out_of_bounds_are_refused_naming_the_field(value: Any, shown: str) -> None:
    with pytest.raises(CogVideoValidationError) as raised:
        checked_rounds(value)
    assert str(raised.value) == f"max_review_rounds: must be an integer from 0 to 5, got {shown}"


@pytest.mark.parametrize(
    ("value", "seconds"), [(timedelta(hours=3), 10800.0), (1, 1.0), (2.5, 2.5), (timedelta(days=30), 2592000.0)]
)
def test_a_review_timeout_within_bounds(value: Any, seconds: float) -> None:
    assert checked_review_timeout(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(timedelta(milliseconds=500), "0.5"), (0, "0"), (timedelta(days=31), "2678400.0"), ("3600", "'3600'")],
)
def test_a_review_timeout_out_of_bounds_is_refused_naming_the_field(value: Any, shown: str) -> None:
    with pytest.raises(CogVideoValidationError) as raised:
        checked_review_timeout(value)
    assert str(raised.value) == f"review_timeout: must be a number from 1 to 2592000, got {shown}"


# ---------------------------------------------------------------- decisions


def answer(option: Any, note: Any = None, **more: Any) -> dict[str, Any]:
    """An answer as HITL hands it to execute_complete."""
    return {
        "chosen_options": [option] if isinstance(option, str) else option,
        "params_input": {"note": note},
        "responded_by_user": {"id": "7", "name": "ana"},
        "responded_at": datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc),
        **more,
    }


def decide(answer: Any, *, last_round: bool = False, default: TimeoutDefault = TimeoutDefault.HOLD, **kw: Any):
    return decision_from_answer(
        video=VIDEO, round_number=2, last_round=last_round, answer=answer, timeout_default=default, **kw
    )


def test_approve_is_approved_with_who_and_when() -> None:
    assert decide(answer("Approve")) == {
        "product_id": "mug",
        "variant": "default",
        "round": 2,
        "job_id": "job-1",
        "video": "s3://out/videos/mug/default/abc-job-1.mp4",
        "answer": "Approve",
        "state": "approved",
        "note": None,
        "by": "ana",
        "at": "2026-03-02T09:30:00+00:00",
    }


def test_reject_regenerates_before_the_last_round_and_rejects_in_it() -> None:
    earlier = decide(answer("Reject", "  too dark "))
    assert (earlier["answer"], earlier["state"], earlier["note"]) == ("Reject", "regenerating", "too dark")
    last = decide(answer("Reject", "still too dark"), last_round=True)
    assert (last["answer"], last["state"], last["note"]) == ("Reject", "rejected_by_review", "still too dark")


def test_the_note_is_kept_as_typed_whatever_its_type() -> None:
    assert decide(answer("Reject", {"more": "light"}))["note"] == "{'more': 'light'}"
    assert decide(answer("Reject", "n" * 3000))["note"] == "n" * MAX_STORED_NOTE_CHARS
    odd = answer("Reject")
    odd["params_input"] = ["not", "a", "mapping"]
    assert decide(odd)["state"] == "regenerating" and decide(odd)["note"] is None


def test_a_timeout_takes_the_default() -> None:
    approved = decide(None, default=TimeoutDefault.APPROVE)
    assert {k: approved[k] for k in ("answer", "state", "note", "by", "at")} == {
        "answer": "timeout",
        "state": "approved",
        "note": None,
        "by": None,
        "at": None,
    }
    assert approved["job_id"] == "job-1" and approved["product_id"] == "mug"
    held = decide(None, default=TimeoutDefault.HOLD)
    assert (held["answer"], held["state"]) == ("timeout", "held")


def test_an_unreadable_answer_is_held_even_when_the_default_approves() -> None:
    """An answer that could not be read may have been a Reject: never published on a guess."""
    held = decide(None, default=TimeoutDefault.APPROVE, error="note: 5 is not of type 'string'")
    assert (held["answer"], held["state"], held["note"]) == ("unreadable", "held", "note: 5 is not of type 'string'")


@pytest.mark.parametrize("chosen", [["Maybe"], ["Approve", "Reject"], [], None])
def test_an_unexpected_answer_is_held(chosen: Any) -> None:
    held = decide(answer(chosen, "whatever"), default=TimeoutDefault.APPROVE)
    assert held["state"] == "held"
    assert held["note"] == f"unexpected answer {list(chosen or [])!r}"


@pytest.mark.parametrize(
    ("user", "by"),
    [({"id": "7", "name": "ana"}, "ana"), ({"id": "7", "name": ""}, "7"), ({"id": "", "name": ""}, None), (None, None)],
)
def test_who_answered_is_the_responders_name(user: Any, by: Any) -> None:
    assert decide(answer("Approve", responded_by_user=user))["by"] == by


def test_a_default_applied_by_airflow_is_recorded_as_a_timeout() -> None:
    """Airflow's own timeout path answers with ``timedout`` and no responder."""
    decision = decide(answer("Approve", responded_by_user=None, timedout=True))
    assert (decision["answer"], decision["state"], decision["by"]) == ("timeout", "approved", None)


# ---------------------------------------------------------------- a product's rounds


def decided(round_number: Any, state: str) -> dict[str, Any]:
    return {"round": round_number, "state": state}


@pytest.mark.parametrize(
    ("decisions", "state"),
    [
        ([], None),
        (["junk", None], None),
        ([decided(1, "approved")], "approved"),
        ([decided(2, "approved"), decided(1, "regenerating")], "approved"),  # sorted by round, not by order
        ([decided(1, "regenerating"), decided(2, "rejected_by_review")], "rejected_by_review"),
        ([decided(1, "regenerating")], "held"),  # its regeneration never got reviewed
        ([decided(2, "regenerating"), decided(1, "regenerating")], "held"),
        ([decided(1, "held")], "held"),
    ],
)
def test_a_products_final_state_is_its_last_rounds(decisions: list[Any], state: str | None) -> None:
    assert final_state(decisions) == state


# ---------------------------------------------------------------- index entries


@dataclass(frozen=True)
class Entry:
    """The two attributes the rules read of an index entry."""

    job_id: str | None
    review: Any = None


def marker(state: str, job_id: str = "job-1", until: Any = None) -> dict[str, Any]:
    return {"state": state, "job_id": job_id, "run_id": "review__1", "until": until, "decisions": []}


def real_entry(review: dict[str, Any] | None) -> IndexEntry:
    return IndexEntry(
        product_id="mug",
        variant="default",
        fingerprint="f" * 64,
        bucket="out",
        video=StoredObject("videos/mug/default/f-job-1.mp4", 10, "etag"),
        cover=None,
        job_id="job-1",
        model="cogvideox-3",
        price=1.0,
        currency="CNY",
        paid_by_run="scheduled__1",
        paid_at=iso_utc(NOW),
        prompt="A mug",
        inputs={},
        review=review,
    )


@pytest.mark.parametrize(
    ("entry", "state"),
    [
        (Entry("job-1"), None),
        (Entry("job-1", marker("approved")), "approved"),
        (Entry("job-1", marker("rejected_by_review")), "rejected_by_review"),
        (Entry("job-2", marker("approved")), None),  # made on another job of the fingerprint
        (Entry("job-1", "approved"), None),
        (Entry("job-1", {**marker("approved"), "state": 3}), None),
        (real_entry(marker("held")), "held"),
        (real_entry(marker("approved", job_id="job-0")), None),
        (real_entry(None), None),
    ],
)
def test_a_recorded_review_counts_only_for_the_job_it_was_made_on(entry: Any, state: str | None) -> None:
    assert entry_review_state(entry) == state


UNTIL = NOW + timedelta(days=3)


@pytest.mark.parametrize(
    ("entry", "now", "pending", "needed"),
    [
        (Entry("job-1"), NOW, False, True),  # never reviewed
        (real_entry(None), NOW, False, True),
        (Entry("job-1", marker("held")), NOW, False, True),  # asked again
        (Entry("job-1", marker("approved")), NOW, False, False),
        (real_entry(marker("rejected_by_review")), NOW, False, False),
        (Entry("job-2", marker("approved")), NOW, False, True),  # a new video of the fingerprint
        # awaiting: asked elsewhere until the deadline plus the grace, then asked again
        (Entry("job-1", marker("awaiting", until=iso_utc(UNTIL))), NOW, True, False),
        (real_entry(marker("awaiting", until=iso_utc(UNTIL))), UNTIL + PENDING_GRACE / 2, True, False),
        (Entry("job-1", marker("awaiting", until=iso_utc(UNTIL))), UNTIL + PENDING_GRACE, False, True),
        (real_entry(marker("awaiting", until=iso_utc(UNTIL))), UNTIL + timedelta(days=1), False, True),
        (Entry("job-1", marker("awaiting", until=None)), NOW, False, True),  # no deadline read: not pending
        (Entry("job-1", marker("awaiting", until="soon")), NOW, False, True),
    ],
)
def test_an_entry_needs_a_review_unless_reviewed_or_pending_elsewhere(
    entry: Any, now: datetime, pending: bool, needed: bool
) -> None:
    assert pending_elsewhere(entry, now) is pending
    assert needs_review(entry, now) is needed


def test_review_states_are_the_words_the_manifest_and_gallery_use() -> None:
    assert [s.value for s in ReviewState] == ["awaiting", "approved", "rejected_by_review", "held", "regenerating"]


def test_a_deadline_written_without_a_time_zone_is_read_as_utc() -> None:
    """An index entry is anyone's JSON: one hand-edited deadline must not crash a review run's plan
    (an aware and a naive time do not compare), it reads as the index reads every time, in UTC."""
    naive = Entry("job-1", marker("awaiting", until=UNTIL.replace(tzinfo=None).isoformat()))
    assert pending_elsewhere(naive, NOW) is True
    assert pending_elsewhere(naive, UNTIL + PENDING_GRACE) is False
    assert needs_review(naive, NOW) is False
