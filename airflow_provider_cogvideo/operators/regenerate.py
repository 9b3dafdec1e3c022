"""CogVideoRegenerateOperator: after a reviewer's Reject, the same product made again with the note.

It is :class:`~airflow_provider_cogvideo.operators.cogvideo.CogVideoGenerateOperator` (the same
image, model and options, the same crash-safe job store, pool and budget checks) with one change: the
prompt is the product's prompt with the reviewers' notes folded in
(:func:`~airflow_provider_cogvideo.review.revised_prompt`, template ``revision_template``). The
revision is applied when the templates are rendered, so a try resumed after a deferral or a restart
builds the very same request: its fingerprint finds the job the first try created, and one reject
pays for one job whatever happens to the task.

The notes are cleaned and capped here, where they are used, never in the review task (module
docstring of :mod:`~airflow_provider_cogvideo.review`). The video keeps the product's ``metadata``:
its index entry is written under the fingerprint of the product's *inputs*, so later runs find the
reviewed video of an unchanged product, not one keyed by the note.

With a ``prompt_writer`` (the pipeline's), the writer wins over the note template: the notes go to the
writer with the product's prompt (a writing of its own, cached under a key that includes the notes), and
the template's revision is sent only if the writer falls back.

Spending counts against the generation run's budget: ``max_total_price`` is what that run left
(the review plan computes it from the run's manifest) and ``budget_task_ids`` names every round's
regenerate task, so the rounds share it (:class:`~airflow_provider_cogvideo.budget.SpendLedger`'s
``peers``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.review import pull_decisions
from airflow_provider_cogvideo.review import (
    DEFAULT_REVISION_TEMPLATE,
    MAX_NOTE_PROMPT_CHARS,
    ReviewState,
    checked_revision_template,
    prompt_note,
    revised_prompt,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def rejection_notes(decisions: Any) -> str:
    """The notes of every reject so far, in round order, cleaned, joined with ``; ``: as many of the
    newest as fit :data:`~airflow_provider_cogvideo.review.MAX_NOTE_PROMPT_CHARS` together, each whole.
    An older note gives way, never the newest: cut at the cap, the note the reviewer just wrote would
    lose its end ("remove the logo" read "remove")."""
    values = decisions if isinstance(decisions, (list, tuple)) else [decisions]
    rejects = sorted(
        (d for d in values if isinstance(d, Mapping) and d.get("state") == ReviewState.REGENERATING.value),
        key=lambda d: int(d.get("round") or 0),
    )
    notes = [note for note in (prompt_note(d.get("note")) for d in rejects) if note]
    kept: list[str] = []
    for note in reversed(notes):
        if kept and len("; ".join([note, *kept])) > MAX_NOTE_PROMPT_CHARS:
            break
        kept.insert(0, note)
    return "; ".join(kept)


class CogVideoRegenerateOperator(CogVideoGenerateOperator):
    """Generate a rejected product's video again, the reviewers' notes in the prompt (module docstring).

    :param video: the reviewed product's first video (a transfer result: the review plan's item
        ``video``): its ``metadata`` (product, variant, input fingerprint and inputs) is the regenerated
        video's, so the index files it under the same fingerprint. Without ``metadata`` the task fails.
    :param decision_task_ids: the review tasks of round 1 to this one, in round order, by full id
        (``video.review_1``): the notes of their decisions (of this map index) that rejected are folded
        into ``prompt``, and the task runs only when the last of them rejected (else it skips, paying
        nothing). Task ids, not XComArgs: only the last round's review may be a direct upstream (a
        branch skips the others' direct downstream).
    :param revision_template: how the notes join the prompt
        (:data:`~airflow_provider_cogvideo.review.DEFAULT_REVISION_TEMPLATE` by default): text with
        ``{prompt}`` and ``{note}`` and no other placeholder, whose own text leaves room for 200
        characters of notes and a prompt within the API's 512 (checked when the operator is built).
    :param budget_task_ids: the task ids whose instances share ``max_total_price`` (every round's
        regenerate task); unset: this task's own instances.

    Every other parameter is :class:`~airflow_provider_cogvideo.operators.cogvideo.CogVideoGenerateOperator`'s:
    ``prompt`` is the product's own prompt (the review plan's item ``prompt``; the notes are added
    here), ``image`` the image its first video was made from, and the model and options those of the
    pipeline's generate step, so the video differs only by the notes. ``max_total_price`` is what the
    pipeline run left (the review plan's item ``budget``).
    """

    template_fields: Sequence[str] = (*CogVideoGenerateOperator.template_fields, "video")

    def __init__(
        self,
        *,
        video: Any,
        decision_task_ids: Sequence[str],
        revision_template: str = DEFAULT_REVISION_TEMPLATE,
        budget_task_ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.video = video
        self.decision_task_ids = list(decision_task_ids)
        try:
            self.revision_template = checked_revision_template(revision_template)
        except CogVideoValidationError as exc:
            raise ValueError(str(exc)) from None
        self.budget_task_ids = list(budget_task_ids) if budget_task_ids else None
        self._rejected = False
        self._product_prompt: str | None = None
        self._notes = ""

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        metadata = self.video.get("metadata") if isinstance(self.video, Mapping) else None
        if not isinstance(metadata, Mapping):
            raise AirflowFailException("video: the reviewed video's result with its metadata is needed, got none")
        self.metadata = dict(metadata)
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise AirflowFailException("prompt: the product's prompt is needed to revise it, got none")
        decisions = pull_decisions(context, self.decision_task_ids)
        current = decisions[-1] if decisions else {}  # this round's, only if its round is the last task's
        self._rejected = (
            current.get("round") == len(self.decision_task_ids)
            and current.get("state") == ReviewState.REGENERATING.value
        )
        self._product_prompt, self._notes = self.prompt, rejection_notes(decisions)
        self.prompt = revised_prompt(self.prompt, self._notes, self.revision_template)

    # With a prompt writer, the notes go to the writer, which rewrites the product's prompt with them; the
    # revision template's prompt is what is sent only if the writer gives up (its fallback).
    def writer_note(self) -> str | None:
        return self._notes or None

    def writer_prompt(self) -> str | None:
        return self._product_prompt

    def execute(self, context: Context) -> Any:
        if not self._rejected:
            # The review's branch skips this task already; inside a mapped task group Airflow (3.3.2)
            # does not always honour a branch per map index, so nothing is paid without a reject.
            raise AirflowSkipException("this round's review did not reject the video: nothing to regenerate")
        return super().execute(context)


__all__ = ["CogVideoRegenerateOperator", "rejection_notes"]
