"""CogVideoReviewOperator: one video waits for a reviewer's answer, Approve or Reject with a note.

A human-in-the-loop task of the standard provider (``HITLBranchOperator``): on Airflow 3.3 it waits
in ``awaiting_input`` (no trigger, no worker, no pool slot); on 3.1/3.2 it defers to ``HITLTrigger``,
which polls the metadata database every 5 seconds. It is mapped one instance per video, labelled with
its product id and variant (``map_index_template``), so each is its own row on the Required actions
page, and branches:

* **Approve** → ``publish_task_id`` (the server-side copy to the published location);
* **Reject** → ``regenerate_task_id`` (the note folded into the prompt, a new paid job, a new review),
  or, in the last round (no regenerate task), nothing: the product ends ``rejected_by_review``;
* **no answer** within ``response_timeout`` → ``timeout_default``: ``approve`` publishes, ``hold``
  follows neither branch (nothing published, nothing paid; the next run's review asks again).

Why not ``ApprovalOperator``: its Reject skips everything downstream, and the regeneration is
downstream. Why the answer is never validated here: a human-in-the-loop task that fails after the
reviewer answered loses the answer (a retry is a new request). The standard operator refuses an
answer whose form fields do not match, or a timeout without ``defaults``; this one takes whatever
came, keeps the note as text (capped for storage) and leaves its cleaning to the regeneration that
uses it (:func:`~airflow_provider_cogvideo.review.revised_prompt`). The decision it returns
(:func:`~airflow_provider_cogvideo.review.decision_from_answer`) is what the run record stores.

The request's body is Markdown stored in the metadata database for good: it names the video by its
``s3://`` URI and, with ``video_link_template``, a console link that carries no credential; never a
presigned URL. The reviewer watches the video in the run's gallery (whose cards link here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import Param

from airflow_provider_cogvideo.redact import has_credentials, is_http_url
from airflow_provider_cogvideo.review import (
    APPROVE,
    NOTE_PARAM,
    OPTIONS,
    ReviewState,
    TimeoutDefault,
    checked_review_timeout,
    checked_timeout_default,
    decision_from_answer,
)
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.validation import is_unset

if TYPE_CHECKING:
    from airflow.sdk import Context

LOST_ANSWER_WINDOW = timedelta(minutes=10)
"""How recent an answer to an earlier try must be for a retry to decide with it (``_answer_of_a_lost_try``):
more than a retry's delay, less than a person takes to clear a decided review and ask again."""
SIGNING_WORDS = ("signature", "x-amz-credential", "x-amz-security-token", "awsaccesskeyid", "token=")
"""Query parameters of a presigned or token link: a body is stored for good, so such a link is never put in it."""
MAX_BODY_TEXT = 600
"""Product text shown in the body is cut to this (the body is stored for good, once per round)."""


def _plain(value: Any, limit: int = MAX_BODY_TEXT) -> str:
    """Untrusted text (a sidecar's title, a prompt, a note) made inert in Markdown: one line, no
    backticks, inside a code span."""
    text = " ".join(str(value or "").split()).replace("`", "'")[:limit]
    return f"`{text}`" if text else "—"


def review_body(
    video: Mapping[str, Any], *, round_number: int, earlier: Sequence[Mapping[str, Any]], link: str | None
) -> str:
    """The Markdown a reviewer reads: what the video is, how to reach it (no credential), what was
    asked before."""
    metadata = video.get("metadata") if isinstance(video.get("metadata"), Mapping) else {}
    lines = [
        f"**Product** {_plain(metadata.get('product_id'))}, variant {_plain(metadata.get('variant'))}, "
        f"round {round_number}",
        f"**Title** {_plain(metadata.get('title'))}",
        f"**Video** {_plain(video.get('s3_uri'))} (sha256 {_plain(video.get('sha256'), 64)}, job "
        f"{_plain(video.get('id'), 80)})",
    ]
    if link:
        lines.append(f"**Open** [the video in the S3 console]({link})")
    lines.append("Watch it in the run's gallery page (its cards link here).")
    lines.append(f"**Prompt** {_plain(video.get('prompt'))}")
    for decision in earlier:
        lines.append(
            f"**Round {decision.get('round')}** rejected by {_plain(decision.get('by'), 80)}: "
            f"{_plain(decision.get('note'))}"
        )
    lines.append("Approve publishes it; Reject with a note says what to change: the video is made again.")
    return "\n\n".join(lines)


def console_link(template: str | None, s3_uri: Any) -> str | None:
    """``template`` (``{bucket}``, ``{key}``) filled for ``s3_uri``: an http(s) link with no credential
    in it (none with ``user:password@`` or a signing query parameter), or None."""
    parsed = parse_s3_uri(s3_uri)
    if not template or parsed is None:
        return None
    try:
        link = template.format(bucket=parsed[0], key=quote(parsed[1], safe="/"))
    except (KeyError, IndexError, ValueError):
        return None
    lowered = link.lower()
    if not is_http_url(link) or has_credentials(link) or any(word in lowered for word in SIGNING_WORDS):
        return None
    return link


def pull_decisions(context: Context, task_ids: Sequence[str]) -> list[Mapping[str, Any]]:
    """The decisions of ``task_ids`` (review tasks of earlier rounds) for this task's map index."""
    if not task_ids:
        return []
    ti = context["ti"]
    found = []
    for task_id in task_ids:
        value = ti.xcom_pull(task_ids=task_id, map_indexes=ti.map_index)
        if isinstance(value, Mapping):
            found.append(value)
    return found


class CogVideoReviewOperator(HITLBranchOperator):
    """Ask a reviewer about one video and branch on the answer (see the module docstring). Returns the
    decision (``product_id``, ``variant``, ``round``, ``job_id``, ``video``, ``answer``, ``state``,
    ``note``, ``by``, ``at``).

    :param video: the video under review: a transfer result (``s3_uri``, ``cover_s3_uri``, ``sha256``,
        ``id``, ``prompt``, ``metadata`` with ``product_id``, ``variant``, ``title``): the review plan's
        item ``video`` in round 1, the previous round's upload ``.output`` after it. Anything without
        ``metadata`` fails the task.
    :param round_number: 1 for a run's video, r + 1 for the video regenerated after round r's reject.
    :param publish_task_id: the task Approve leads to, by its full id (``video.publish_1`` inside the task
        group ``video``); it must be a direct downstream of this task.
    :param regenerate_task_id: the task Reject leads to (full id, a direct downstream of this task); None
        in the last round, where a Reject follows neither branch and ends the product ``rejected_by_review``.
    :param earlier_task_ids: the earlier rounds' review tasks, whose decisions (of this map index) the
        body shows. Task ids, not XComArgs: a branch skips every *direct* downstream task it does not
        follow, so a later round must not be a direct downstream of an earlier round's review.
    :param auto_decision: ``"approve"`` to publish without asking (the pipeline's ``review`` param set to
        ``publish_all``: the decision is recorded as approved by "review off"); unset asks; any other
        value fails the task.
    :param review_timeout: how long the reviewer has, in seconds or a ``timedelta``, 1 s to 30 days; unset:
        no limit. Then ``timeout_default`` decides.
    :param timeout_default: what no answer within ``review_timeout`` becomes: ``"hold"`` (nothing
        published or paid; the next review run asks again) or ``"approve"`` (published, the answer
        recorded as ``timeout``). A timeout never leads to a regeneration.
    :param video_link_template: a credential-free link to a video, with ``{bucket}`` and ``{key}``
        (e.g. the S3 console's); unset: the body names the ``s3://`` URI only. A link with
        ``user:password@`` or a signing or token query parameter is left out of the body.

    The reviewer's form is one field, ``note`` (a DAG's ``params`` are not passed on to it). The
    ``HITLOperator`` arguments ``subject``, ``body``, ``options``, ``params`` and ``response_timeout``
    are the operator's own, and it declares no ``defaults`` (a timeout is ``timeout_default``'s);
    ``assigned_users`` and ``notifiers`` pass through.
    """

    template_fields: Sequence[str] = ("video", "auto_decision")
    template_fields_renderers = {"video": "json"}
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        video: Any,
        round_number: int,
        publish_task_id: str,
        regenerate_task_id: str | None = None,
        earlier_task_ids: Sequence[str] = (),
        auto_decision: Any = None,
        review_timeout: timedelta | float | None = None,
        timeout_default: str = TimeoutDefault.HOLD.value,
        video_link_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        timeout = None if review_timeout is None else checked_review_timeout(review_timeout)
        note = Param(
            None,
            type=["null", "string"],
            title="Note",
            description="With Reject: what to change. It is added to the prompt of the next video.",
        )
        kwargs.pop("params", None)  # the DAG's, passed down by Airflow: the reviewer's form is the note only
        super().__init__(
            subject="Review a product video",
            options=list(OPTIONS),
            params={NOTE_PARAM: note},
            response_timeout=timeout,
            **kwargs,
        )
        self.video = video
        self.round_number = int(round_number)
        self.publish_task_id = publish_task_id
        self.regenerate_task_id = regenerate_task_id
        self.earlier_task_ids = list(earlier_task_ids)
        self.auto_decision = auto_decision
        self.timeout_default = checked_timeout_default(timeout_default)
        self.video_link_template = video_link_template

    @property
    def serialized_params(self) -> dict[str, dict[str, Any]]:
        """The reviewer's form: the note only. Airflow 3.1 merges the DAG's params into a task's (3.2+
        filters them out for human-in-the-loop tasks), and a review form must not show them."""
        return {key: value for key, value in super().serialized_params.items() if key == NOTE_PARAM}

    def _video(self) -> dict[str, Any]:
        if not isinstance(self.video, Mapping) or not isinstance(self.video.get("metadata"), Mapping):
            shown = type(self.video).__name__
            raise AirflowFailException(f"video must be a transfer result with metadata, got {shown}")
        return dict(self.video)

    def execute(self, context: Context) -> Any:
        video = self._video()
        if not is_unset(self.auto_decision):
            if str(self.auto_decision) != TimeoutDefault.APPROVE.value:
                raise AirflowFailException(f"auto_decision must be 'approve' or unset, got {self.auto_decision!r}")
            answer = {"chosen_options": [APPROVE], "params_input": {}, "responded_by_user": {"name": "review off"}}
            return self._decide(context, video, answer, None)
        if (answered := self._answer_of_a_lost_try(context)) is not None:
            return self._decide(context, video, answered, None)
        metadata = video["metadata"]
        product = f"{metadata.get('product_id')} ({metadata.get('variant')})"
        self.subject = f"Review the video of {product}, round {self.round_number}"
        self.body = review_body(
            video,
            round_number=self.round_number,
            earlier=pull_decisions(context, self.earlier_task_ids),
            link=console_link(self.video_link_template, video.get("s3_uri")),
        )
        return super().execute(context)

    def _answer_of_a_lost_try(self, context: Context) -> dict[str, Any] | None:
        """A reviewer's answer to an earlier try of this task that the try never received, or None.

        Airflow 3.3.2 loses an answer given within about a second of the task parking itself in
        ``awaiting_input``: the answer queues the task to resume, then the executor's report that the
        parking process exited arrives, the scheduler takes the queued task for one killed externally,
        and the retry (``HITLOperator.execute``) would clear the stored answer and ask again. A script
        answering at once hits it (two of three in a run under a real scheduler). So a retry first
        reads the answer still stored for this task instance and, when it came within
        :data:`LOST_ANSWER_WINDOW`, decides with it instead of asking again. (A review cleared by hand
        within that window of its answer is therefore not asked again either.)"""
        ti = context["ti"]
        if int(getattr(ti, "try_number", 1) or 1) <= 1:
            return None
        try:
            from airflow.sdk.execution_time.hitl import get_hitl_detail_content_detail

            stored = get_hitl_detail_content_detail(ti_id=ti.id)
        except Exception:  # no request stored yet (a first ask), or an Airflow without this call
            return None
        responded_at = getattr(stored, "responded_at", None)
        if not getattr(stored, "response_received", False) or not stored.chosen_options or responded_at is None:
            return None
        if datetime.now(timezone.utc) - responded_at > LOST_ANSWER_WINDOW:
            return None
        user = stored.responded_by_user
        self.log.warning(
            "A reviewer answered try %d of this review (%s) but the try never received it: deciding with it",
            int(ti.try_number) - 1,
            stored.chosen_options,
        )
        return {
            "chosen_options": list(stored.chosen_options),
            "params_input": dict(stored.params_input or {}),
            "responded_at": responded_at,
            "responded_by_user": {"id": user.id, "name": user.name} if user is not None else None,
        }

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        video = self._video()
        if "error" in event:  # a timeout without defaults (ours) or an answer the trigger could not read
            error = None if event.get("error_type") == "timeout" else str(event.get("error"))[:500]
            return self._decide(context, video, None, error)
        return self._decide(context, video, event, None)

    def _decide(self, context: Context, video: Mapping[str, Any], answer: Any, error: str | None) -> dict[str, Any]:
        decision = decision_from_answer(
            video=video,
            round_number=self.round_number,
            last_round=self.regenerate_task_id is None,
            answer=answer,
            timeout_default=self.timeout_default,
            error=error,
        )
        state = decision["state"]
        branch = {
            ReviewState.APPROVED.value: self.publish_task_id,
            ReviewState.REGENERATING.value: self.regenerate_task_id,
        }.get(state)
        self.log.info(
            "Round %d of %s: %s by %s -> %s",
            self.round_number,
            decision["product_id"],
            decision["answer"],
            decision["by"] or "nobody",
            state,
        )
        self.do_branch(context, branch)
        return decision


__all__ = ["CogVideoReviewOperator", "console_link", "pull_decisions", "review_body"]
