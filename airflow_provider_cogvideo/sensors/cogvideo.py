"""CogVideoTaskSensor: wait for an existing generation job (e.g. one submitted with
``wait_for_completion=False`` or by another system), in the triggerer when deferrable."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout, conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.errors import CogVideoError
from airflow_provider_cogvideo.events import JobEvent, raise_for_event, read_event
from airflow_provider_cogvideo.links import CogVideoVideoLink
from airflow_provider_cogvideo.mixins import CogVideoHookMixin
from airflow_provider_cogvideo.models import TaskResult
from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, DEFAULT_TIMEOUT
from airflow_provider_cogvideo.triggers.cogvideo import CogVideoTaskTrigger
from airflow_provider_cogvideo.validation import checked_wait_settings, seconds
from airflow_provider_cogvideo.xcom import XCOM_JOB_ID, XCOM_VIDEO_URL, job_result, no_video_yet

if TYPE_CHECKING:
    from airflow.sdk import Context


class CogVideoTaskSensor(CogVideoHookMixin, BaseSensorOperator):
    """Wait until job ``job_id`` ends; return the same result dict as ``CogVideoGenerateOperator``.

    Out-of-range numbers fail when the DAG is parsed, naming the field.

    :param job_id: the job id a submit returned (the API calls it the task id): 1 to 128 letters,
        digits, ``.``, ``_`` or ``-``.
    :param metadata: carried into the result untouched.
    :param cogvideo_conn_id: the ``cogvideo`` connection.
    :param deferrable: wait in the triggerer (recommended) instead of poking from a worker. The default
        follows ``[operators] default_deferrable``, as for Airflow's own providers: pass
        ``deferrable=True`` where a triggerer runs.
    :param poll_interval: deferred only: fixed seconds between polls, 1 to 3600; unset: the adaptive
        schedule. (``poke_interval`` governs the non-deferrable path, as for every sensor.)
    :param error_budget: deferred only: consecutive transient poll errors tolerated, 0 to 100.
    :param timeout: the sensor's timeout (seconds or a ``timedelta``), up to 7 days; an absolute
        deadline when deferred. Reaching it raises ``AirflowSensorTimeout`` (not retried), deferred or
        not.
    """

    template_fields: Sequence[str] = ("job_id", "metadata", "cogvideo_conn_id")
    operator_extra_links = (CogVideoVideoLink(),)

    def __init__(
        self,
        *,
        job_id: str,
        metadata: dict[str, Any] | None = None,
        cogvideo_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | None = None,
        error_budget: int = DEFAULT_ERROR_BUDGET,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        poll_interval, error_budget, bounded_timeout = checked_wait_settings(
            poll_interval=seconds(poll_interval), error_budget=error_budget, timeout=seconds(timeout)
        )
        super().__init__(timeout=bounded_timeout, **kwargs)
        self.job_id = job_id
        self.metadata = metadata
        self.cogvideo_conn_id = cogvideo_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.error_budget = error_budget

    def execute(self, context: Context) -> Any:
        context["ti"].xcom_push(key=XCOM_JOB_ID, value=self.job_id)
        no_video_yet(context)
        deadline = time.time() + float(self.timeout)
        self.log.info(
            "Waiting for CogVideo job %s until %s (timeout %.0f s), %s.",
            self.job_id,
            time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(deadline)),
            float(self.timeout),
            "deferred to the triggerer" if self.deferrable else f"poking every {self.poke_interval:g} s",
        )
        if not self.deferrable:
            return super().execute(context)
        job = self._query()
        if job.is_terminal:  # nothing to wait for: skip the deferral
            return self._result(context, job)
        self.defer(
            trigger=CogVideoTaskTrigger(
                job_id=self.job_id,
                deadline=deadline,
                cogvideo_conn_id=self.hook.cogvideo_conn_id,
                model=job.model,
                poll_interval=self.poll_interval,
                error_budget=self.error_budget,
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def _query(self) -> TaskResult:
        try:
            return self.hook.get_task(self.job_id)
        except CogVideoError as exc:
            if exc.retryable:
                raise AirflowException(f"Cannot query job {self.job_id} right now: {exc}") from None
            raise AirflowFailException(f"Cannot query job {self.job_id}: {exc}") from None

    def _result(self, context: Context, job: TaskResult) -> dict[str, Any]:
        if job.task_status == "FAIL":
            raise AirflowFailException(f"CogVideo job {self.job_id} ended with task_status FAIL")
        if job.video_url:
            context["ti"].xcom_push(key=XCOM_VIDEO_URL, value=job.video_url)  # what the extra link opens
        return job_result(job, hook=self.hook, metadata=self.metadata, request={"model": job.model})

    def poke(self, context: Context) -> PokeReturnValue:
        job = self._query()
        if not job.is_terminal:
            self.log.info("Job %s is %s", self.job_id, job.task_status)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._result(context, job))

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        job_event = read_event(event, JobEvent)
        if job_event.status == "timeout":
            # A sensor that ran out of time has answered its question; retrying would wait again.
            raise AirflowSensorTimeout(f"Sensor timed out: {job_event.message}")
        raise_for_event(job_event)
        return self._result(context, TaskResult.model_validate(job_event.result))
