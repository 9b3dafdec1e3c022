"""CogVideoTaskTrigger: waits for a generation job in the triggerer, without blocking its event loop.

Only primitives go into the trigger's kwargs (job id, connection id, an absolute epoch deadline, the
poll schedule's numbers): never the key, never a client or a callable. The deadline is wall-clock
epoch seconds, so a triggerer restart resumes with the same end instead of a fresh budget.

Exactly one event is emitted, a versioned dict (see :func:`build_event`)::

    {"v": 1, "status": "success" | "failed" | "timeout" | "error", "reason": str, "message": str,
     "job_id": str, "polls": int, "waited_seconds": float, "result": {...} | None}

Transient poll errors (429, 5xx, timeouts) are absorbed with exponential backoff up to a budget of
consecutive failures; a non-retryable answer (401, 400, unknown task) ends the wait at once with one
request, not a storm of them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.errors import (
    CogVideoAPIError,
    CogVideoAuthError,
    CogVideoBadRequestError,
    CogVideoError,
    CogVideoNotFoundError,
)
from airflow_provider_cogvideo.models import PollSchedule, TaskResult

EVENT_VERSION = 1
EVENT_STATUSES = frozenset({"success", "failed", "timeout", "error"})
DEFAULT_ERROR_BUDGET = 8
# Backoff after the n-th consecutive transient error: base * 2**(n-1), capped, with jitter.
ERROR_BACKOFF_BASE = 5.0
ERROR_BACKOFF_CEILING = 120.0
# Besides every status change, say "still rendering" this often, so a task log shows progress.
PROGRESS_LOG_SECONDS = 60.0


def build_event(
    status: str,
    reason: str,
    message: str,
    job_id: str,
    *,
    polls: int,
    waited_seconds: float,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one event payload shape, shared by the trigger and the synchronous wait path."""
    return {
        "v": EVENT_VERSION,
        "status": status,
        "reason": reason,
        "message": message,
        "job_id": job_id,
        "polls": polls,
        "waited_seconds": round(waited_seconds, 3),
        "result": result,
    }


def error_reason(exc: BaseException) -> str:
    """A machine-readable reason for a non-retryable poll error."""
    if isinstance(exc, CogVideoAuthError):
        return "auth"
    if isinstance(exc, CogVideoNotFoundError | CogVideoBadRequestError):
        return "unknown_job"
    if isinstance(exc, CogVideoAPIError):
        return "api_error"
    return "unexpected"


def error_backoff(consecutive_errors: int, retry_after: float | None = None) -> float:
    """Seconds to wait after a transient poll error (server's Retry-After wins)."""
    if retry_after is not None:
        return min(retry_after, ERROR_BACKOFF_CEILING)
    ceiling = min(ERROR_BACKOFF_CEILING, ERROR_BACKOFF_BASE * 2 ** (consecutive_errors - 1))
    return random.uniform(ceiling / 2, ceiling)


class CogVideoTaskTrigger(BaseTrigger):
    """Poll ``GET /async-result/{job_id}`` until the job ends or the deadline passes.

    :param job_id: the task id returned by the submit.
    :param cogvideo_conn_id: Airflow connection id (looked up asynchronously in the triggerer).
    :param deadline: absolute epoch seconds after which we stop waiting (the job keeps running).
    :param waiting_since: epoch seconds when the job was submitted (drives the adaptive schedule).
    :param model: model name, for the adaptive schedule's first-poll delay.
    :param poll_interval: fixed seconds between polls; ``None`` = the adaptive schedule.
    :param error_budget: consecutive transient errors tolerated before giving up.
    """

    def __init__(
        self,
        job_id: str,
        deadline: float,
        cogvideo_conn_id: str = DEFAULT_CONN_ID,
        waiting_since: float | None = None,
        model: str | None = None,
        poll_interval: float | None = None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
    ) -> None:
        super().__init__()
        self.job_id = str(job_id)
        self.deadline = float(deadline)
        self.cogvideo_conn_id = cogvideo_conn_id
        self.waiting_since = float(waiting_since) if waiting_since is not None else time.time()
        self.model = model
        self.poll_interval = float(poll_interval) if poll_interval is not None else None
        self.error_budget = int(error_budget)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "deadline": self.deadline,
                "cogvideo_conn_id": self.cogvideo_conn_id,
                "waiting_since": self.waiting_since,
                "model": self.model,
                "poll_interval": self.poll_interval,
                "error_budget": self.error_budget,
            },
        )

    def watch(self) -> JobWatch:
        return JobWatch(
            self.job_id,
            deadline=self.deadline,
            waiting_since=self.waiting_since,
            model=self.model,
            poll_interval=self.poll_interval,
            error_budget=self.error_budget,
            log=self.log,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await wait_for_job_async(self))

    async def on_kill(self) -> None:
        """Airflow 3.3+: the deferred task was marked failed/success or cleared by a user.

        The API has no cancel endpoint, so the job cannot be stopped: say so, with its id.
        """
        self.log.warning(
            "CogVideo job %s keeps running on the service and will be billed: the API has no cancel "
            "endpoint. A retry of this task reconnects to it (task_state_store) instead of resubmitting.",
            self.job_id,
        )


class CogVideoSubmitBackoffTrigger(BaseTrigger):
    """Waits out a rate-limited submit (429 with 1302/1303/1305) in the triggerer, then hands the
    submit back to a worker. Everything the resume needs travels in the event, so it does not
    depend on ``next_kwargs`` being merged (``dag.test()`` replaces them with the event).

    :param resume_at: absolute epoch seconds at which to try the submit again.
    :param deadline: the try's absolute deadline, carried through to the resumed submit.
    :param rate_limited: how many refusals so far (drives the backoff).
    """

    def __init__(self, resume_at: float, deadline: float, rate_limited: int) -> None:
        super().__init__()
        self.resume_at = float(resume_at)
        self.deadline = float(deadline)
        self.rate_limited = int(rate_limited)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"resume_at": self.resume_at, "deadline": self.deadline, "rate_limited": self.rate_limited},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(max(0.0, self.resume_at - time.time()))
        yield TriggerEvent(
            {"v": EVENT_VERSION, "status": "resubmit", "deadline": self.deadline, "rate_limited": self.rate_limited}
        )


class JobWatch:
    """The waiting logic, free of I/O: when to poll next and what an answer means.

    :func:`wait_for_job_async` drives it in the triggerer, and the operator's synchronous path runs
    that same coroutine on the worker, so deferrable and non-deferrable tasks behave identically (a
    classic drift in other providers). The benchmarks drive it with a fake clock.
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
    ) -> None:
        self.job_id = job_id
        self.deadline = deadline
        self.waiting_since = waiting_since
        self.model = model
        self.error_budget = error_budget
        self.log = log
        self.schedule = PollSchedule.for_model(model, fixed=poll_interval)
        self.polls = 0
        self.errors = 0
        self.last_status: str | None = None
        self._last_logged = 0.0
        self._delay = self.schedule.delay(self.waited(), 0)

    def waited(self) -> float:
        return time.time() - self.waiting_since

    def _event(self, status: str, reason: str, message: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
        return build_event(
            status, reason, message, self.job_id, polls=self.polls, waited_seconds=self.waited(), result=result
        )

    def next_sleep(self) -> float | None:
        """Seconds to sleep before the next poll, or None when the deadline has passed."""
        remaining = self.deadline - time.time()
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
        self._delay = error_backoff(self.errors, getattr(exc, "retry_after", None))
        self.log.warning(
            "Polling job %s failed (%d of %d tolerated), next try in %.0f s: %s",
            self.job_id,
            self.errors,
            self.error_budget,
            self._delay,
            exc,
        )
        return None

    def on_result(self, result: TaskResult) -> dict[str, Any] | None:
        """A poll answered: an event if the job has ended, else None."""
        self.errors = 0
        self.polls += 1
        if result.task_status != self.last_status or self.waited() - self._last_logged >= PROGRESS_LOG_SECONDS:
            self._last_logged = self.waited()
            self.log.info(
                "CogVideo job %s (%s): %s after %.0f s (poll %d)",
                self.job_id,
                result.model or self.model,
                result.task_status,
                self.waited(),
                self.polls,
            )
            self.last_status = result.task_status
        if result.task_status == "SUCCESS":
            return self._event("success", "completed", f"job {self.job_id} succeeded", result.model_dump(mode="json"))
        if result.task_status == "FAIL":
            detail = result.error_text
            message = f"job {self.job_id} ended with task_status FAIL" + (f": {detail}" if detail else "")
            return self._event("failed", "job_failed", message, result.model_dump(mode="json"))
        self._delay = self.schedule.delay(self.waited(), self.polls)
        return None


async def wait_for_job_async(trigger: CogVideoTaskTrigger) -> dict[str, Any]:
    """The trigger's polling loop; returns the single event payload."""
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

    hook = CogVideoHook(trigger.cogvideo_conn_id)
    watch = trigger.watch()
    while (sleep := watch.next_sleep()) is not None:
        await asyncio.sleep(sleep)
        try:
            result = await hook.aget_task(trigger.job_id, retry=False)
        except Exception as exc:
            event = watch.on_error(exc)
        else:
            event = watch.on_result(result)
        if event is not None:
            return event
    return watch.timeout_event()
