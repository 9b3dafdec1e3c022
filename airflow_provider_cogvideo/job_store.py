"""The crash-safe store: the one job a generate task instance has sent, kept across its tries.

Airflow 3.3's ``task_state_store`` survives a task instance's retries and clears (it is keyed by dag
run, task and map index). The generate operator keeps one record there, under :data:`STATE_KEY`:
before the POST a *pending* marker (the request's fingerprint, ``request_id``, model and summary,
``job_id`` None), after it the same record with the job id and the time it was sent.

A later try reads it back (:meth:`JobStore.earlier_job`). For the same fingerprint, a job still
rendering is reconnected to and a finished one is returned without paying again; a new job is paid
for only when the API says the stored one does not exist or it ended with ``FAIL``. Any other
failure to query it fails the task: the job may exist and be billed. A marker without a job id means
an earlier try died between sending and storing; the API cannot look a job up by ``request_id``, so
that is logged and a new job is sent. The record is dropped (:meth:`JobStore.forget`) only when no
job exists for it or it can never succeed: a success keeps it, so a retry after a lost success report
returns the same video.

Why not Airflow's ``ResumableJobMixin`` (``airflow.sdk``, 3.3), which official providers use for the
same purpose:

* it is synchronous only: ``execute_resumable`` submits, then blocks the worker in
  ``poll_until_complete``; this operator defers (to the job's trigger, or to a rate-limited submit's
  timer) and resumes in other methods the mixin does not cover;
* it stores one external id, written after the submit: there is no pending marker to say a submit
  may have been sent, nor the request summary a finished job is returned with;
* it has no request fingerprint: a retry whose inputs changed (another prompt, a new ``regenerate``
  label) would reconnect to the old job instead of paying for the one asked for;
* it resubmits whatever the stored job's status is when it is neither active nor succeeded.

Each decision is counted as ``cogvideo.resume.<decision>`` (tag ``operator``): the decisions of
``ResumableJobMixin`` under this provider's own name, so that they are not mistaken for Airflow's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo import metrics
from airflow_provider_cogvideo.errors import CogVideoError
from airflow_provider_cogvideo.polling import is_unknown_job

if TYPE_CHECKING:
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
    from airflow_provider_cogvideo.models import TaskResult
    from airflow_provider_cogvideo.prepare import PreparedRequest

STATE_KEY = "cogvideo_job"
"""The record's key in ``task_state_store``; renaming it loses the jobs of tries in flight."""

NO_STORE_WARNING = (
    "task_state_store is not available (Airflow < 3.3): a retry of this task cannot find the job an earlier "
    "try submitted and will submit a new (billed) one. What still protects you: ambiguous submits fail without "
    "retry, and the job id is logged and pushed to XCom."
)


@dataclass(frozen=True)
class EarlierJob:
    """A job an earlier try sent for the same request, as the API describes it now."""

    job_id: str
    job: TaskResult
    submitted_at: float
    request: dict[str, Any] | None
    """The summary of the request as it was sent (the stored record's)."""

    @property
    def succeeded(self) -> bool:
        return self.job.task_status == "SUCCESS"


class JobStore:
    """One task instance's record in ``task_state_store`` (see the module docstring).

    :param state: the context's ``task_state_store``; None without one (Airflow < 3.3) or when the
        operator is not ``durable``: then nothing is kept and every try submits anew.
    :param durable: whether the operator asked for the store (a missing one is then warned about).
    :param operator: the operator's class name, the tag of the ``cogvideo.resume.*`` counters.
    :param log: the operator's logger: what the store decides goes to the task's log.
    """

    def __init__(self, state: Any | None, *, durable: bool, operator: str, log: Any) -> None:
        self._state = state if durable else None
        self._warn = durable and state is None
        self._operator = operator
        self._log = log
        self._record: dict[str, Any] = {}

    @property
    def state(self) -> Any | None:
        """``task_state_store``, or None; the first use of a missing one says what it costs."""
        if self._warn:
            self._warn = False
            self._log.warning(NO_STORE_WARNING)
        return self._state

    def _decision(self, decision: str) -> None:
        metrics.incr(f"cogvideo.resume.{decision}", operator=self._operator)

    def earlier_job(self, fingerprint: str, hook: CogVideoHook) -> EarlierJob | None:
        """The job an earlier try sent for this request, when it is still worth having (rendering or
        finished); None when a new one must be submitted. Raises the query's error when it is
        transient (Airflow retries; a resubmit could pay twice) and ``AirflowFailException`` when the
        stored job cannot be queried for a reason that says nothing about whether it exists."""
        stored = self.state.get(STATE_KEY) if self.state is not None else None
        if not isinstance(stored, dict):
            self._decision("fresh_submit")
            return None
        if stored.get("fingerprint") != fingerprint:
            self._log.info(
                "Stored job %s was for a different request (inputs changed): submitting a new job.",
                stored.get("job_id") or stored.get("request_id"),
            )
            self._decision("fresh_submit")
            return None
        job_id = stored.get("job_id")
        if not job_id:
            self._decision("fresh_submit")
            self._log.warning(
                "An earlier try recorded a pending submit (request_id=%s) but no job id: it died between "
                "sending the request and storing the answer, or the answer was lost. A job may exist and be "
                "billed; the API cannot look it up by request_id, so a new job is submitted now.",
                stored.get("request_id"),
            )
            return None
        self._decision("reconnect_attempt")
        try:
            job = hook.get_task(job_id)
        except CogVideoError as exc:
            if exc.retryable:
                raise  # cannot tell now; let Airflow retry rather than risk a duplicate
            if is_unknown_job(exc):
                self._log.warning("Stored job %s is unknown to the API (%s): submitting a new job.", job_id, exc)
                self._decision("terminal_resubmit")
                return None
            # Anything else (a refused key, an id the hook will not send, an odd answer) says nothing
            # about whether the job exists: paying again on that evidence is how retries pay twice.
            raise AirflowFailException(
                f"Stored job {job_id} cannot be queried ({exc}); not submitting a new job, because job {job_id} "
                "may still exist and be billed. Fix the cause, or clear the task's stored job to pay for a new one."
            ) from None
        model = job.model or stored.get("model")
        if job.task_status == "FAIL":
            self._log.info("Stored job %s had failed: submitting a new job.", job_id)
            self._decision("terminal_resubmit")
            return None
        earlier = EarlierJob(job_id, job, float(stored.get("submitted_at") or time.time()), stored.get("request"))
        if earlier.succeeded:
            self._log.info("Stored job %s already succeeded: returning its result without resubmitting.", job_id)
            self._decision("already_succeeded")
            metrics.incr("cogvideo.reused", model=model)
        else:
            self._log.info("Reconnecting to job %s (still %s) from an earlier try.", job_id, job.task_status)
            self._decision("reconnect_success")
            metrics.incr("cogvideo.reconnects", model=model)
        return earlier

    def submitting(self, prepared: PreparedRequest) -> None:
        """Before the POST: the pending marker (a job may exist from now on)."""
        request = prepared.request
        self._record = {
            "fingerprint": prepared.fingerprint,
            "request_id": request.request_id,
            "model": request.model,
            "request": prepared.summary,
        }
        self._set({**self._record, "job_id": None})

    def submitted(self, job_id: str, submitted_at: float) -> None:
        """After the POST: the job's id, which a retry reconnects to."""
        self._set({**self._record, "job_id": job_id, "submitted_at": submitted_at})

    def forget(self) -> None:
        """Drop the record: only when no job exists for it (refused) or it can never succeed."""
        if self.state is not None:
            self.state.delete(STATE_KEY)

    def _set(self, record: dict[str, Any]) -> None:
        if self.state is not None:
            self.state.set(STATE_KEY, record)


__all__ = ["STATE_KEY", "EarlierJob", "JobStore"]
