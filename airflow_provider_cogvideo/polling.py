"""When to poll a job and what each answer means: the waiting logic, free of I/O.

:class:`PollSchedule` decides when the next poll is due; :class:`JobWatch` turns poll answers and poll
errors into the one :class:`~airflow_provider_cogvideo.events.JobEvent` that ends a wait. Both wait
paths drive the same :class:`JobWatch`: the trigger in the triggerer, and the operator's synchronous
path, which runs the trigger's own coroutine on the worker (a classic drift in other providers is
two loops that behave differently). The clock is injected, so benchmarks and tests run it on a fake
clock without patching this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_provider_cogvideo.backoff import Backoff
from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES
from airflow_provider_cogvideo.errors import (
    CogVideoAPIError,
    CogVideoAuthError,
    CogVideoBadRequestError,
    CogVideoContentPolicyError,
    CogVideoError,
    CogVideoNotFoundError,
)
from airflow_provider_cogvideo.events import job_event
from airflow_provider_cogvideo.models import TaskResult

DEFAULT_ERROR_BUDGET = 8
DEFAULT_TIMEOUT = timedelta(hours=2)
"""How long one try waits for a job (the operator) or for a job to end (the sensor)."""
POLL_ERROR_BACKOFF = Backoff(first=5.0, ceiling=120.0)
"""After the n-th consecutive transient poll error: 5 s doubling to 120 s, equal jitter; a server's
Retry-After wins up to 120 s."""
FIRST_POLL_FRACTION = 0.75
"""The first poll comes at this fraction of the model's typical shortest render..."""
MIN_FIRST_POLL = 5.0
"""...but never sooner than this many seconds after the submit."""
UNKNOWN_MODEL_SHORTEST_RENDER = 30.0
"""A model the table does not know (``capability_overrides``): assume renders of at least 30 s."""
PROGRESS_LOG_SECONDS = 60.0
"""Besides every status change, say "still rendering" this often, so a task log shows progress."""


@dataclass(frozen=True)
class PollSchedule:
    """When to poll a job: adaptive (default) or fixed.

    Render times are bounded (no SLA is published; :data:`MODEL_CAPABILITIES` carries a typical
    range per model), so a job becomes *more* likely to finish the longer it runs: polling early is
    wasted, polling late costs detection delay. Adaptive: the first poll comes at ``first`` seconds
    (three quarters of the model's typical shortest render), then every ``fraction`` of the
    elapsed time, bounded by ``floor`` and ``ceiling`` (8 to 10 s): fewer polls than a fixed 10 s at
    no worse detection delay, as ``benchmarks/polling_efficiency.py`` measures (figures in
    ``benchmarks/README.md``, section 3).
    ``fixed`` overrides everything: that interval from the first poll on (tests, short jobs).
    """

    first: float = 22.5
    floor: float = 8.0
    ceiling: float = 10.0
    fraction: float = 0.15
    fixed: float | None = None

    @classmethod
    def for_model(cls, model: str | None, fixed: float | None = None) -> PollSchedule:
        caps = MODEL_CAPABILITIES.get(model or "")
        shortest = caps.typical_render_seconds[0] if caps else UNKNOWN_MODEL_SHORTEST_RENDER
        return cls(first=max(MIN_FIRST_POLL, FIRST_POLL_FRACTION * shortest), fixed=fixed)

    def delay(self, elapsed: float, polls_done: int) -> float:
        """Seconds to wait before the next poll, given how long the job has been waited on."""
        if self.fixed is not None:
            return self.fixed
        if polls_done == 0:
            return max(0.0, self.first - elapsed)
        return min(self.ceiling, max(self.floor, self.fraction * elapsed))


UNKNOWN_JOB_CODES = frozenset({"1214", None})
"""400 answers to a query that mean "no such job": 1214 "id is invalid" (the API documentation's reading of an
unknown id), or no code at all. Other 400 codes are API errors, not proof that the job is gone."""


def is_unknown_job(exc: BaseException) -> bool:
    """The API says the job does not exist: the only answer that justifies paying for a new one."""
    if isinstance(exc, CogVideoNotFoundError):
        return True
    return isinstance(exc, CogVideoBadRequestError) and exc.code in UNKNOWN_JOB_CODES


def error_reason(exc: BaseException) -> str:
    """A machine-readable reason for a non-retryable poll error."""
    if isinstance(exc, CogVideoAuthError):
        return "auth"
    if isinstance(exc, CogVideoContentPolicyError):
        return "content_policy"
    if is_unknown_job(exc):
        return "unknown_job"
    if isinstance(exc, CogVideoAPIError):
        return "api_error"
    return "unexpected"


EVENT_RESULT_FIELDS: dict[str, Any] = {
    "id": True,
    "model": True,
    "request_id": True,
    "task_status": True,
    "video_result": {"__all__": {"url", "cover_image_url"}},
}
"""What of a job's answer travels in an event: the documented fields only. Anything else a server adds
(possibly large, possibly echoing the request) stays out of the trigger table, XCom and logs."""


def _event_result(job: TaskResult) -> dict[str, Any]:
    return job.model_dump(mode="json", include=EVENT_RESULT_FIELDS)


class JobWatch:
    """One wait for one job: when to poll next and what an answer (or a failed poll) means.

    :param deadline: absolute epoch seconds after which the wait ends with a ``timeout`` event.
    :param waiting_since: epoch seconds when the job was submitted (drives the adaptive schedule).
    :param schedule: when to poll; default: :meth:`PollSchedule.for_model` with ``poll_interval``.
    :param clock: returns epoch seconds; a fake clock runs the schedule without waiting.
    """

    def __init__(
        self,
        job_id: str,
        *,
        deadline: float,
        waiting_since: float,
        model: str | None,
        poll_interval: float | None,
        error_budget: int,
        log: Any,
        schedule: PollSchedule | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job_id = job_id
        self.deadline = deadline
        self.waiting_since = waiting_since
        self.model = model
        self.error_budget = error_budget
        self.log = log
        self.clock = clock
        self.schedule = schedule or PollSchedule.for_model(model, fixed=poll_interval)
        self.polls = 0
        self.errors = 0
        self.last_status: str | None = None
        self._last_logged = 0.0
        self._delay = self.schedule.delay(self.waited(), 0)

    def waited(self) -> float:
        return self.clock() - self.waiting_since

    def _event(self, status: str, reason: str, message: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
        return job_event(
            status, reason, message, self.job_id, polls=self.polls, waited_seconds=self.waited(), result=result
        )

    def next_sleep(self) -> float | None:
        """Seconds to sleep before the next poll, or None when the deadline has passed."""
        remaining = self.deadline - self.clock()
        if remaining <= 0 and self.polls > 0:
            return None
        return max(0.0, min(self._delay, remaining))

    def timeout_event(self) -> dict[str, Any]:
        return self._event(
            "timeout",
            "deadline",
            f"stopped waiting for job {self.job_id} after {self.waited():.0f} s (deadline reached); "
            "the job keeps running on the service",
        )

    def on_error(self, exc: Exception) -> dict[str, Any] | None:
        """A poll failed: an event to end the wait, or None to poll again after a backoff."""
        if not isinstance(exc, CogVideoError):  # a bug must end the wait clearly, not kill the triggerer
            return self._event("error", "unexpected", f"{type(exc).__name__}: {exc}")
        if not exc.retryable:
            return self._event("error", error_reason(exc), str(exc))
        self.errors += 1
        if self.errors > self.error_budget:
            return self._event(
                "error",
                "transient_errors_exhausted",
                f"{self.errors} consecutive transient errors polling job {self.job_id}; last: {exc}",
            )
        self._delay = POLL_ERROR_BACKOFF.wait(self.errors, getattr(exc, "retry_after", None))
        self.log.warning(
            "Polling job %s failed (%d of %d tolerated), next try in %.0f s: %s",
            self.job_id,
            self.errors,
            self.error_budget,
            self._delay,
            exc,
        )
        return None

    def on_result(self, job: TaskResult) -> dict[str, Any] | None:
        """A poll answered: an event if the job has ended, else None."""
        self.errors = 0
        self.polls += 1
        if job.task_status != self.last_status or self.waited() - self._last_logged >= PROGRESS_LOG_SECONDS:
            self._last_logged = self.waited()
            self.log.info(
                "CogVideo job %s (%s): %s after %.0f s (poll %d)",
                self.job_id,
                job.model or self.model,
                job.task_status,
                self.waited(),
                self.polls,
            )
            self.last_status = job.task_status
        if job.task_status == "SUCCESS":
            return self._event("success", "completed", f"job {self.job_id} succeeded", _event_result(job))
        if job.task_status == "FAIL":
            detail = job.error_text
            message = f"job {self.job_id} ended with task_status FAIL" + (f": {detail}" if detail else "")
            return self._event("failed", "job_failed", message, _event_result(job))
        self._delay = self.schedule.delay(self.waited(), self.polls)
        return None


__all__ = [
    "DEFAULT_ERROR_BUDGET",
    "DEFAULT_TIMEOUT",
    "POLL_ERROR_BACKOFF",
    "JobWatch",
    "PollSchedule",
    "error_reason",
    "is_unknown_job",
]
