"""The review loop's rules: what a reviewer's answer means, how a note reaches the next prompt, how
rounds end, and what a decision means for later runs. I/O-free, shared by the review operators
(:mod:`~airflow_provider_cogvideo.operators.review`), the catalog decisions (:mod:`.catalog_plan`),
the manifest and the gallery. People's side of it: ``docs/review.md``.

**A decision per video.** Each new video of a (product, variant) waits for one answer, Approve or
Reject (with a free-text note). Reject is followed by a regeneration (the note folded into the prompt
by :data:`DEFAULT_REVISION_TEMPLATE`) and a new review, at most ``max_review_rounds`` regenerations
(a DAG-level setting: DAGs are acyclic, so the rounds are unrolled); a reject in the last round ends
the product :attr:`ReviewState.REJECTED` (``rejected_by_review``, with every note). A review nobody
answers within ``review_timeout`` takes the DAG's :class:`TimeoutDefault`: publish (``approve``) or
leave it unpublished and ask again on the next run (``hold``); a timeout never pays.

**A note is used, never refused, where it is answered**: the review task keeps whatever the reviewer
typed (capped for storage at :data:`MAX_STORED_NOTE_CHARS`) so a decision is never lost to a
validation error (a retry of a human-in-the-loop task is a new request); it is cleaned and capped
where it is *used*, the regeneration's prompt (:func:`revised_prompt`), which always fits the API's
512 characters.

**Memory across runs** lives on the video's index entry (``review``, :class:`EntryReview`), keyed by
the entry's *input* fingerprint: a regenerated video is indexed under the fingerprint of the
product's inputs, not of the note-changed prompt. A decision counts only for the job it was made on
(:func:`entry_review_state`): an approved video is reused without a new review, a rejected one is
never reused (nor paid again until its inputs change or ``regenerate`` names it), a product whose
inputs change has a new fingerprint and so a new review.
"""

from __future__ import annotations

import enum
import re
import typing
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_cogvideo.capabilities import PROMPT_MAX_CHARS
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.products import truncate_prompt
from airflow_provider_cogvideo.validation import bounded

APPROVE = "Approve"
REJECT = "Reject"
OPTIONS = (APPROVE, REJECT)
"""The reviewer's options, as the Required actions page shows them."""
NOTE_PARAM = "note"
"""The reviewer's form field: free text, what to change (read when the answer is Reject)."""
MAX_STORED_NOTE_CHARS = 2000
"""A note longer than this is stored cut (in the decision, the manifest, the index entry)."""
MAX_NOTE_PROMPT_CHARS = 200
"""At most this much of a note reaches a prompt (the product's own prompt keeps the rest of the 512)."""
MAX_REVIEW_ROUNDS_RANGE = (0, 5)
"""``max_review_rounds``: regenerations after a reject; each round is a paid job and a new review."""
REVIEW_TIMEOUT_RANGE = (timedelta(seconds=1), timedelta(days=30))
DEFAULT_REVISION_TEMPLATE = "{prompt} Revision requested by the reviewer: {note}"
"""How a reject's note joins the prompt (``{prompt}``: the product's prompt, ``{note}``: the cleaned
note); the prompt is shortened first so that the note always fits. Overridable per DAG."""
PENDING_GRACE = timedelta(hours=1)
"""A pending review is asked again by another run only after its review run's deadline plus this."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")


class ReviewMode(str, enum.Enum):
    """The pipeline's ``review`` param: what happens to a run's new videos."""

    REQUIRED = "required"
    """Each waits for a reviewer (the default)."""
    PUBLISH_ALL = "publish_all"
    """No review: every new video is published as approved by nobody (recorded as such)."""
    OFF = "off"
    """No review and nothing published: the videos stay in the index, unreviewed."""


class TimeoutDefault(str, enum.Enum):
    """What an unanswered review becomes after ``review_timeout``."""

    APPROVE = "approve"
    """Published, recorded as approved by the timeout."""
    HOLD = "hold"
    """Not published, nothing paid; the video is asked about again by the next run's review."""


class ReviewState(str, enum.Enum):
    """A video's review state, on its index entry and its manifest row."""

    AWAITING = "awaiting"
    """A review run asks a reviewer now."""
    APPROVED = "approved"
    REJECTED = "rejected_by_review"
    """Rejected in the last round: not published, not reused, not paid again until its inputs change."""
    HELD = "held"
    """Nobody answered in time (timeout default ``hold``) or the answer could not be read: unpublished,
    asked again by the next run."""
    REGENERATING = "regenerating"
    """Rejected in an earlier round: its next video is being made."""


_E = typing.TypeVar("_E", bound=enum.Enum)


def _checked_choice(field: str, choices: type[_E], value: Any) -> _E:
    try:
        return choices(value)
    except ValueError:
        allowed = ", ".join(choice.value for choice in choices)
        raise CogVideoValidationError(field, f"must be one of {allowed}, got {value!r}") from None


def checked_mode(value: Any) -> ReviewMode:
    """The pipeline's ``review`` param."""
    return _checked_choice("review", ReviewMode, value)


def checked_timeout_default(value: Any) -> TimeoutDefault:
    return _checked_choice("review_timeout_default", TimeoutDefault, value)


def checked_rounds(value: Any) -> int:
    return int(bounded("max_review_rounds", value, MAX_REVIEW_ROUNDS_RANGE, integer=True))


def checked_review_timeout(value: Any) -> timedelta:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    low, high = REVIEW_TIMEOUT_RANGE
    checked = bounded("review_timeout", seconds, (low.total_seconds(), high.total_seconds()))
    return timedelta(seconds=float(checked))


def checked_revision_template(template: Any) -> str:
    """The revision template: text with ``{prompt}`` and ``{note}``, and no other placeholder."""
    if not isinstance(template, str):
        raise CogVideoValidationError("revision_template", f"must be text, got {type(template).__name__}")
    try:
        rendered = template.format(prompt="", note="")
    except (KeyError, IndexError, ValueError) as exc:
        raise CogVideoValidationError(
            "revision_template", f"{template!r} may only use {{prompt}} and {{note}} ({exc!r})"
        ) from None
    missing = [name for name in ("{prompt}", "{note}") if name not in template]
    if missing:
        raise CogVideoValidationError("revision_template", f"{template!r} lacks {' and '.join(missing)}")
    if len(rendered) + MAX_NOTE_PROMPT_CHARS >= PROMPT_MAX_CHARS:
        raise CogVideoValidationError(
            "revision_template", f"leaves no room for a prompt: {len(rendered)} characters of its own"
        )
    return template


def stored_note(value: Any) -> str | None:
    """What the decision keeps of the reviewer's note: any value as text, capped, never an error."""
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    text = text.strip()
    return text[:MAX_STORED_NOTE_CHARS] or None


def prompt_note(note: Any) -> str:
    """A note as it may enter a prompt: control characters and braces out, whitespace collapsed, cut
    at a word boundary to :data:`MAX_NOTE_PROMPT_CHARS`; "" when nothing is left."""
    text = unicodedata.normalize("NFC", stored_note(note) or "")
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).replace("{", "(").replace("}", ")").strip()
    return truncate_prompt(text, MAX_NOTE_PROMPT_CHARS) if text else ""


def revised_prompt(prompt: str, note: Any, template: str = DEFAULT_REVISION_TEMPLATE) -> str:
    """The prompt of a regeneration: ``template`` with the product's prompt and the cleaned note; the
    prompt is shortened (word boundary) so that the whole fits the API's 512 characters and the note is
    never cut by it. Without a usable note the product's prompt is sent again (a new seed, a new video)."""
    cleaned = prompt_note(note)
    if not cleaned:
        return truncate_prompt(prompt)
    room = PROMPT_MAX_CHARS - len(template.format(prompt="", note=cleaned))
    return template.format(prompt=truncate_prompt(prompt.strip(), max(room, 0)).rstrip(), note=cleaned).strip()


def responder_name(user: Any) -> str | None:
    """A HITL responder (``{"id", "name"}``) as one name; None for a timeout."""
    if isinstance(user, Mapping):
        return str(user.get("name") or user.get("id") or "") or None
    return None if user is None else str(user)


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return None if value is None else str(value)


def decision_from_answer(
    *,
    video: Mapping[str, Any],
    round_number: int,
    last_round: bool,
    answer: Mapping[str, Any] | None,
    timeout_default: TimeoutDefault,
    error: str | None = None,
) -> dict[str, Any]:
    """The decision a review task returns, from the HITL answer (``chosen_options``, ``params_input``,
    ``responded_by_user``, ``responded_at``, ``timedout``) or, when ``answer`` is None, from the timeout
    default (``error`` says why there was no answer). Never raises: the reviewer's answer is kept.

    ``state`` is what follows: :attr:`ReviewState.APPROVED` (publish), :attr:`ReviewState.REGENERATING`
    (regenerate), :attr:`ReviewState.REJECTED` (the last round's reject) or :attr:`ReviewState.HELD`."""
    metadata = video.get("metadata") if isinstance(video.get("metadata"), Mapping) else {}
    base = {
        "product_id": metadata.get("product_id"),
        "variant": metadata.get("variant"),
        "round": round_number,
        "job_id": video.get("id"),
        "video": video.get("s3_uri"),
    }
    if answer is None:
        approve = timeout_default is TimeoutDefault.APPROVE and error is None
        return {
            **base,
            "answer": "timeout" if error is None else "unreadable",
            "state": (ReviewState.APPROVED if approve else ReviewState.HELD).value,
            "note": error,
            "by": None,
            "at": None,
        }
    chosen = list(answer.get("chosen_options") or [])
    params = answer.get("params_input") if isinstance(answer.get("params_input"), Mapping) else {}
    note = stored_note(params.get(NOTE_PARAM))
    timed_out = bool(answer.get("timedout"))
    if chosen == [APPROVE]:
        state = ReviewState.APPROVED
    elif chosen == [REJECT]:
        state = ReviewState.REJECTED if last_round else ReviewState.REGENERATING
    else:  # not an option of ours (the API validates; an old row might not): unpublished, asked again
        state, note = ReviewState.HELD, f"unexpected answer {chosen!r}"
    return {
        **base,
        "answer": "timeout" if timed_out else (chosen[0] if len(chosen) == 1 else None),
        "state": state.value,
        "note": note,
        "by": responder_name(answer.get("responded_by_user")),
        "at": _iso(answer.get("responded_at")),
    }


def final_state(decisions: Sequence[Mapping[str, Any]]) -> str | None:
    """A product's state after its review run: its last decision's (rounds in order); None when no
    review task answered (the run failed before): the video stays unreviewed."""
    ordered = sorted((d for d in decisions if isinstance(d, Mapping)), key=lambda d: int(d.get("round") or 0))
    if not ordered:
        return None
    state = ordered[-1].get("state")
    # A regeneration that failed leaves the rejected video rejected for this run: asked again next run.
    return ReviewState.HELD.value if state == ReviewState.REGENERATING.value else state


def entry_review_state(entry: Any) -> str | None:
    """The review state recorded on an index entry for the video it names now; None when unreviewed
    (no review, or one made on another job of the same fingerprint, e.g. before a regeneration)."""
    review = getattr(entry, "review", None)
    if not isinstance(review, Mapping) or review.get("job_id") != getattr(entry, "job_id", None):
        return None
    state = review.get("state")
    return state if isinstance(state, str) else None


def pending_elsewhere(entry: Any, now: datetime) -> bool:
    """Whether another review run is asking about this entry's video now (``awaiting`` until its
    deadline): a second run does not ask again."""
    if entry_review_state(entry) != ReviewState.AWAITING.value:
        return False
    until = entry.review.get("until")
    try:
        deadline = datetime.fromisoformat(str(until))
    except ValueError:
        return False
    if deadline.tzinfo is None:  # hand-edited: read as the index reads times, in UTC (naive vs aware cannot compare)
        deadline = deadline.replace(tzinfo=timezone.utc)
    return now < deadline + PENDING_GRACE


def needs_review(entry: Any, now: datetime) -> bool:
    """An entry whose video a review run asks about: unreviewed, or held, and not asked elsewhere."""
    state = entry_review_state(entry)
    return state in (None, ReviewState.HELD.value) or (
        state == ReviewState.AWAITING.value and not pending_elsewhere(entry, now)
    )


def rejected_reason(review: Mapping[str, Any]) -> str:
    """The reason shown for a ``rejected_by_review`` product."""
    notes = [str(d.get("note")) for d in review.get("decisions") or () if isinstance(d, Mapping) and d.get("note")]
    shown = "; ".join(f"“{note[:200]}”" for note in notes) or "no note"
    return (
        f"rejected by review in run {review.get('run_id')} ({shown}): not reused and not paid again until "
        "its image, fields, prompt template, model or options change, or a run's regenerate param names it"
    )


__all__ = [
    "APPROVE",
    "DEFAULT_REVISION_TEMPLATE",
    "MAX_NOTE_PROMPT_CHARS",
    "MAX_REVIEW_ROUNDS_RANGE",
    "MAX_STORED_NOTE_CHARS",
    "NOTE_PARAM",
    "OPTIONS",
    "PENDING_GRACE",
    "REJECT",
    "REVIEW_TIMEOUT_RANGE",
    "ReviewMode",
    "ReviewState",
    "TimeoutDefault",
    "checked_mode",
    "checked_review_timeout",
    "checked_revision_template",
    "checked_rounds",
    "checked_timeout_default",
    "decision_from_answer",
    "entry_review_state",
    "final_state",
    "needs_review",
    "pending_elsewhere",
    "prompt_note",
    "rejected_reason",
    "responder_name",
    "revised_prompt",
    "stored_note",
]
