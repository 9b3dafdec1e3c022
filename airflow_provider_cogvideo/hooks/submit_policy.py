"""The submit policy: every submit costs money, so resending one is decided by what its answer proves.

A query creates nothing and is retried by the error table's ``retryable`` flag
(:mod:`airflow_provider_cogvideo.errors`). A submit may have created, and billed, a job even when it
failed, so :data:`SUBMIT_POLICY` says, per kind of answer, whether the hook sends it again (only what
proves no job was created), raises it as the API error, or raises
:class:`~airflow_provider_cogvideo.errors.CogVideoAmbiguousSubmitError`. :func:`submit_answer` places
a failure in its row; :class:`~airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook` applies the
decisions (:func:`resends`, :func:`ambiguous_as_such`) and the generate operator reads the
``capacity`` column (:func:`refused_for_capacity`). The README's and the hook page's policy tables
are generated from :data:`SUBMIT_POLICY` (:mod:`airflow_provider_cogvideo.docs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoAPIError,
    CogVideoRateLimitError,
    CogVideoTransportError,
)

SubmitDecision = Literal["resend", "final", "ambiguous"]


@dataclass(frozen=True)
class SubmitRule:
    """One row of :data:`SUBMIT_POLICY`: an answer to ``POST /videos/generations`` and what follows.

    ``resend``: the hook sends the same body again (same ``request_id``) while attempts remain;
    ``final``: raised at once as the API error; ``ambiguous``: raised at once as
    :class:`CogVideoAmbiguousSubmitError`, because a job may exist.

    ``capacity``: the service turned the request away for lack of capacity and created nothing. When
    the hook's resends run out, the generate operator does not fail the try: it waits (deferred, no
    worker held) and submits again within its deadline. A 1302 rate limit and a 503 "server flow
    exceeded" mean the same thing to the caller, so they are treated alike.
    """

    answer: str
    decision: SubmitDecision
    why: str
    capacity: bool = False


SUBMIT_POLICY: dict[str, SubmitRule] = {
    "not_sent": SubmitRule(
        "no connection: connect error or timeout, no free pool slot, proxy refused",
        "resend",
        "the request never left this machine",
    ),
    "rate_limited": SubmitRule(
        "429 that the error table retries (1302, 1303, 1305, 1120, or no known code)",
        "resend",
        "a refusal: no job was created, and the limit clears",
        capacity=True,
    ),
    "flow_exceeded": SubmitRule(
        "503 (server flow exceeded)",
        "resend",
        "the service turned the request away before taking it",
        capacity=True,
    ),
    "token_expired": SubmitRule(
        "401 with 1003 (token expired) under auth=jwt",
        "resend",
        "refused at the gate; the next attempt signs a fresh token",
    ),
    "refused": SubmitRule(
        "any other 4xx",
        "final",
        "the server refused and created nothing: raised as the API error, whose retried column says "
        "whether a later task try may help",
    ),
    "server_error": SubmitRule(
        "any other 5xx (500, 502, 504...)",
        "ambiguous",
        "a crash or a gateway timeout can follow a created job; resent (same request_id) only with "
        "the connection extra resend_submit_on_5xx",
    ),
    "no_job_id": SubmitRule(
        "2xx that cannot be read as a job (not JSON, no id, malformed id, a field of the wrong type)",
        "ambiguous",
        "a job may exist, but it cannot be tracked",
    ),
    "lost_answer": SubmitRule(
        "no answer: read or write timeout, dropped connection",
        "ambiguous",
        "the request may have reached the server and created a job",
    ),
}
"""What a submit's answer means for sending it again (the hook reads it; the README shows it)."""


def submit_answer(exc: CogVideoAPIError | CogVideoTransportError) -> str:
    """The :data:`SUBMIT_POLICY` row a failed submit attempt falls in."""
    if isinstance(exc, CogVideoTransportError):
        return "lost_answer" if exc.may_have_arrived else "not_sent"
    status = exc.http_status or 0
    if status < 400:  # a 2xx the hook could not read a job from
        return "no_job_id"
    if exc.retryable and (status == 429 or isinstance(exc, CogVideoRateLimitError)):
        return "rate_limited"
    if status == 503:
        return "flow_exceeded"
    if status == 401 and exc.code == "1003" and exc.retryable:  # the hook re-signed its JWT
        return "token_expired"
    return "refused" if status < 500 else "server_error"


def resends(exc: BaseException, *, resend_on_5xx: bool) -> bool:
    """Whether a failed submit attempt is sent again: its row's decision, where the connection's
    ``resend_submit_on_5xx`` (``resend_on_5xx``) turns the 5xx row into a resend."""
    if not isinstance(exc, CogVideoAPIError | CogVideoTransportError):
        return False
    answer = submit_answer(exc)
    if answer == "server_error" and resend_on_5xx:
        return True
    return SUBMIT_POLICY[answer].decision == "resend"


@contextlib.contextmanager
def ambiguous_as_such(request_id: str) -> Iterator[None]:
    """A submit's last failure, raised as :data:`SUBMIT_POLICY` classes it: a failure whose row is
    ambiguous (a job may exist) becomes :class:`CogVideoAmbiguousSubmitError`, named by ``request_id``."""
    try:
        yield
    except (CogVideoAPIError, CogVideoTransportError) as exc:
        if SUBMIT_POLICY[submit_answer(exc)].decision != "ambiguous":
            raise
        raise CogVideoAmbiguousSubmitError(request_id, str(exc)) from exc


def refused_for_capacity(exc: BaseException) -> bool:
    """Whether a failed submit was turned away for capacity (its :data:`SUBMIT_POLICY` row's
    ``capacity``): no job exists, and waiting is the answer, not a failed try."""
    return isinstance(exc, CogVideoAPIError | CogVideoTransportError) and SUBMIT_POLICY[submit_answer(exc)].capacity


__all__ = [
    "SUBMIT_POLICY",
    "SubmitDecision",
    "SubmitRule",
    "ambiguous_as_such",
    "refused_for_capacity",
    "resends",
    "submit_answer",
]
