"""What a job event means as an exception: one decision, read by the hook's callers (``job_error``) and by
Airflow (``raise_for_event``), so ``generate()`` and the operator never disagree about what is final."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_cogvideo.errors import CogVideoJobFailedError, CogVideoJobTimeoutError
from airflow_provider_cogvideo.events import FINAL_REASONS, JobEvent, job_error, job_event, raise_for_event

CASES = [
    # status, reason, the hook's exception, Airflow's exception, words of Airflow's message
    ("failed", "job_failed", CogVideoJobFailedError, AirflowFailException, "failed (job_failed)"),
    *[("error", why, CogVideoJobFailedError, AirflowFailException, f"failed ({why})") for why in sorted(FINAL_REASONS)],
    ("error", "api_error", CogVideoJobTimeoutError, AirflowException, "could not be followed (api_error)"),
    ("error", "transient_errors_exhausted", CogVideoJobTimeoutError, AirflowException, "could not be followed"),
    ("timeout", "deadline", CogVideoJobTimeoutError, AirflowException, "Timed out: the message. Job j-1 was waited"),
]


def _event(status: str, reason: str) -> JobEvent:
    return JobEvent.model_validate(job_event(status, reason, "the message", "j-1", polls=3, waited_seconds=12.5))


@pytest.mark.parametrize(("status", "reason", "hook_error", "airflow_error", "words"), CASES)
def test_one_decision_for_the_hook_and_for_airflow(status, reason, hook_error, airflow_error, words) -> None:
    event = _event(status, reason)
    error = job_error(event)
    assert type(error) is hook_error
    assert (str(error), error.job_id, error.event) == ("the message", "j-1", event.payload())
    assert error.retryable is (hook_error is CogVideoJobTimeoutError)
    with pytest.raises(airflow_error) as raised:
        raise_for_event(event)
    assert type(raised.value) is airflow_error and words in str(raised.value)


def test_a_success_means_no_exception() -> None:
    event = JobEvent.model_validate(
        job_event("success", "completed", "done", "j-1", polls=1, waited_seconds=1.0, result={"id": "j-1"})
    )
    assert job_error(event) is None
    raise_for_event(event)
