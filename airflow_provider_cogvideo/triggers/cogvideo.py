"""Triggers: wait for a generation job, or for a rate-limited submit's turn, without blocking the loop.

Only primitives go into a trigger's kwargs (job id, connection id, an absolute epoch deadline, the
poll schedule's numbers): never the key, never a client or a callable. The deadline is wall-clock
epoch seconds, so a triggerer restart resumes with the same end instead of a fresh budget.

Each trigger emits exactly one event, built by :mod:`airflow_provider_cogvideo.events` (the one
event contract). When to poll and what an answer means is :class:`~airflow_provider_cogvideo.polling.JobWatch`'s
business; this module only drives it: sleep, poll, hand the answer over.

Transient poll errors (429, 5xx, timeouts) are absorbed with backoff up to a budget of consecutive
failures; a non-retryable answer (401, 400, unknown job) ends the wait at once with one request, not
a storm of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.events import resubmit_event
from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, JobWatch, PollSchedule
from airflow_provider_cogvideo.validation import bounded, checked_wait_settings

EPOCH_RANGE = (0.0, 32503680000.0)
"""Deadlines and start times are epoch seconds: from 1970 to the year 3000, never NaN or infinite."""
REFUSALS_RANGE = (0, 10_000)
JOB_KEEPS_RUNNING = (
    "CogVideo job %s keeps running on the service and will be billed: the API has no cancel endpoint. "
    "A retry of this task reconnects to it (task_state_store) instead of resubmitting."
)
"""Logged when a wait is stopped (the trigger cancelled, the task killed while polling on the worker):
the job cannot be stopped, so say which one goes on."""


class CogVideoTaskTrigger(BaseTrigger):
    """Poll ``GET /async-result/{job_id}`` until the job ends or the deadline passes.

    :param job_id: the job id returned by the submit (the API calls it the task id).
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
        self.deadline = bounded("deadline", deadline, EPOCH_RANGE)
        self.cogvideo_conn_id = cogvideo_conn_id
        self.waiting_since = (
            time.time() if waiting_since is None else bounded("waiting_since", waiting_since, EPOCH_RANGE)
        )
        self.model = model
        self.poll_interval, self.error_budget, _ = checked_wait_settings(
            poll_interval=poll_interval, error_budget=error_budget
        )

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

    def watch(self, schedule: PollSchedule | None = None) -> JobWatch:
        """This trigger's wait; ``schedule`` replaces the default one (benchmarks scale time with it)."""
        return JobWatch(
            self.job_id,
            deadline=self.deadline,
            waiting_since=self.waiting_since,
            model=self.model,
            poll_interval=self.poll_interval,
            error_budget=self.error_budget,
            log=self.log,
            schedule=schedule,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await wait_for_job_async(self))

    async def on_kill(self) -> None:
        """Airflow 3.3+: the deferred task was marked failed/success or cleared by a user.

        The API has no cancel endpoint, so the job cannot be stopped: say so, with its id.
        """
        self.log.warning(JOB_KEEPS_RUNNING, self.job_id)


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
        self.resume_at = bounded("resume_at", resume_at, EPOCH_RANGE)
        self.deadline = bounded("deadline", deadline, EPOCH_RANGE)
        self.rate_limited = bounded("rate_limited", rate_limited, REFUSALS_RANGE, integer=True)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"resume_at": self.resume_at, "deadline": self.deadline, "rate_limited": self.rate_limited},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(max(0.0, self.resume_at - time.time()))
        yield TriggerEvent(resubmit_event(self.deadline, self.rate_limited))


async def wait_for_job_async(trigger: CogVideoTaskTrigger) -> dict[str, Any]:
    """The trigger's polling loop (also run on a worker by the synchronous path); returns the one event."""
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

    return await CogVideoHook(trigger.cogvideo_conn_id).await_job(trigger.watch())


__all__ = ["JOB_KEEPS_RUNNING", "CogVideoSubmitBackoffTrigger", "CogVideoTaskTrigger", "wait_for_job_async"]
