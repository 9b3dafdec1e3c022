"""The event contract between this provider's triggers and the tasks they resume.

A trigger's event crosses a process boundary (triggerer → database → worker) and may cross a version
boundary during an upgrade, so both kinds are defined, built and read here only:

* :class:`JobEvent`, emitted once by :class:`~airflow_provider_cogvideo.triggers.cogvideo.CogVideoTaskTrigger`
  (and by the same loop on a worker)::

    {"v": 1, "status": "success" | "failed" | "timeout" | "error", "reason": str, "message": str,
     "job_id": str, "polls": int, "waited_seconds": float, "result": {...} | None}

* :class:`ResubmitEvent`, emitted by
  :class:`~airflow_provider_cogvideo.triggers.cogvideo.CogVideoSubmitBackoffTrigger` when a
  rate-limited submit may be tried again::

    {"v": 1, "status": "resubmit", "deadline": float, "rate_limited": int}

Payloads are plain JSON dicts on the wire. Reading one is allow-listed: a ``None``, an unknown version,
an unknown status or an unexpected field fails the task loudly instead of being half-understood.

What a job event that is not a success means is decided here too, once: :func:`job_error` gives the
provider's exception (what :meth:`CogVideoHook.generate
<airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook.generate>` raises) and :func:`raise_for_event`
the exception Airflow acts on (what the operator raises, and the sensor but for a timeout, which a
sensor reports as ``AirflowSensorTimeout``), from the same decision.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_provider_cogvideo.errors import CogVideoJobError, CogVideoJobFailedError, CogVideoJobTimeoutError

EVENT_VERSION = 1
FINAL_REASONS = frozenset({"job_failed", "auth", "unknown_job", "content_policy"})
"""Failure reasons that a retry of the task cannot fix: it fails without retrying."""


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = EVENT_VERSION

    def payload(self) -> dict[str, Any]:
        """The JSON-safe dict that travels in a ``TriggerEvent``."""
        return self.model_dump(mode="json")


class JobEvent(_Event):
    """How the wait for one job ended."""

    status: Literal["success", "failed", "timeout", "error"]
    reason: str
    message: str
    job_id: str
    polls: int
    waited_seconds: float
    result: dict[str, Any] | None = None

    @property
    def is_final(self) -> bool:
        """A failure that retrying cannot fix (the job failed, the key is refused, the job is unknown)."""
        return self.status == "failed" or (self.status == "error" and self.reason in FINAL_REASONS)


class ResubmitEvent(_Event):
    """A rate-limited submit's wait is over: submit again within ``deadline``."""

    status: Literal["resubmit"] = "resubmit"
    deadline: float
    rate_limited: int


EventT = TypeVar("EventT", bound=_Event)


def job_event(
    status: str,
    reason: str,
    message: str,
    job_id: str,
    *,
    polls: int,
    waited_seconds: float,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a :class:`JobEvent` payload (the trigger and the synchronous wait path both call this)."""
    return JobEvent(
        status=status,  # type: ignore[arg-type]
        reason=reason,
        message=message,
        job_id=job_id,
        polls=polls,
        waited_seconds=round(float(waited_seconds), 3),
        result=result,
    ).payload()


def resubmit_event(deadline: float, rate_limited: int) -> dict[str, Any]:
    """Build a :class:`ResubmitEvent` payload."""
    return ResubmitEvent(deadline=float(deadline), rate_limited=int(rate_limited)).payload()


def read_event(event: Any, kind: type[EventT]) -> EventT:
    """Validate a payload against the allow-list; anything else fails the task with the payload shown."""
    from airflow.providers.common.compat.sdk import AirflowException

    try:
        return kind.model_validate(event)
    except ValidationError:
        raise AirflowException(f"Unexpected trigger event (version skew or a bug): {event!r}") from None


def job_error(event: JobEvent) -> CogVideoJobError | None:
    """The exception a job event means for a caller of the hook, or None for a success.

    A final failure (:attr:`JobEvent.is_final`: the job failed, the key is refused, the job is unknown)
    is :class:`CogVideoJobFailedError`; anything else (the deadline, polls that kept failing) is
    :class:`CogVideoJobTimeoutError`, retryable: the job may still finish."""
    if event.status == "success":
        return None
    kind = CogVideoJobFailedError if event.is_final else CogVideoJobTimeoutError
    return kind(event.message, job_id=event.job_id, event=event.payload())


def raise_for_event(event: JobEvent) -> None:
    """Raise what a job event that is not a success means to Airflow (:func:`job_error`'s decision):
    a final failure is an ``AirflowFailException`` (not retried), anything else an ``AirflowException``."""
    from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

    error = job_error(event)
    if error is None:
        return
    if event.status == "timeout":
        raise AirflowException(
            f"Timed out: {event.message}. Job {event.job_id} was waited on for {event.waited_seconds:.0f} s; "
            "a retry reconnects to it with a fresh window."
        )
    if not error.retryable:
        raise AirflowFailException(f"CogVideo job {event.job_id} failed ({event.reason}): {event.message}")
    raise AirflowException(f"CogVideo job {event.job_id} could not be followed ({event.reason}): {event.message}")


__all__ = [
    "EVENT_VERSION",
    "FINAL_REASONS",
    "JobEvent",
    "ResubmitEvent",
    "job_error",
    "job_event",
    "raise_for_event",
    "read_event",
    "resubmit_event",
]
