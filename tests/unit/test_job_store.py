"""The crash-safe store's decisions, one by one, and the ``cogvideo.resume.<decision>`` counters they emit.

The operator's tests (operators/test_cogvideo.py) check the same store end to end through submits and retries;
here each decision is checked on its own, with the counters a dashboard reads."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo import job_store as module
from airflow_provider_cogvideo.errors import CogVideoError, api_error
from airflow_provider_cogvideo.job_store import STATE_KEY, JobStore
from airflow_provider_cogvideo.models import TaskResult

from .conftest import FakeStateStore

JOB = "1000000000000000001"
RECORD = {"fingerprint": "f1", "request_id": "r-000001", "model": "cogvideox-3", "request": {"prompt": "p"}}


class Hook:
    """Answers ``get_task`` with a status, or raises an error."""

    def __init__(self, answer: str | CogVideoError) -> None:
        self.answer = answer
        self.queried: list[str] = []

    def get_task(self, job_id: str) -> TaskResult:
        self.queried.append(job_id)
        if isinstance(self.answer, CogVideoError):
            raise self.answer
        return TaskResult(id=job_id, model="cogvideox-3", task_status=self.answer)


@pytest.fixture
def counted(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(module.metrics, "incr", lambda name, count=1, **tags: calls.append((name, tags)))
    return calls


def store_with(record: dict[str, Any] | None) -> JobStore:
    state = FakeStateStore()
    if record is not None:
        state.set(STATE_KEY, record)
    return JobStore(state, durable=True, operator="CogVideoGenerateOperator", log=logging.getLogger("test"))


def names(counted: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in counted]


def test_nothing_stored_is_a_fresh_submit(counted) -> None:
    assert store_with(None).earlier_job("f1", Hook("SUCCESS")) is None
    assert counted == [("cogvideo.resume.fresh_submit", {"operator": "CogVideoGenerateOperator"})]


def test_another_request_is_a_fresh_submit_without_a_query(counted) -> None:
    hook = Hook("SUCCESS")
    assert store_with({**RECORD, "job_id": JOB}).earlier_job("f2", hook) is None
    assert hook.queried == [] and names(counted) == ["cogvideo.resume.fresh_submit"]


def test_a_pending_marker_is_explained_and_submitted_anew(counted, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert store_with({**RECORD, "job_id": None}).earlier_job("f1", Hook("SUCCESS")) is None
    assert "pending submit (request_id=r-000001)" in caplog.text
    assert names(counted) == ["cogvideo.resume.fresh_submit"]


def test_a_rendering_job_is_reconnected(counted) -> None:
    earlier = store_with({**RECORD, "job_id": JOB, "submitted_at": 1234.5}).earlier_job("f1", Hook("PROCESSING"))
    assert earlier is not None and not earlier.succeeded
    assert (earlier.job_id, earlier.submitted_at, earlier.request) == (JOB, 1234.5, {"prompt": "p"})
    assert names(counted) == [
        "cogvideo.resume.reconnect_attempt",
        "cogvideo.resume.reconnect_success",
        "cogvideo.reconnects",
    ]


def test_a_finished_job_is_returned(counted) -> None:
    earlier = store_with({**RECORD, "job_id": JOB}).earlier_job("f1", Hook("SUCCESS"))
    assert earlier is not None and earlier.succeeded and earlier.job.id == JOB
    assert counted[-2:] == [
        ("cogvideo.resume.already_succeeded", {"operator": "CogVideoGenerateOperator"}),
        ("cogvideo.reused", {"model": "cogvideox-3"}),
    ]


@pytest.mark.parametrize(
    "answer", ["FAIL", api_error(404, "404", "no such task"), api_error(400, "1214", "id invalid")], ids=str
)
def test_a_failed_or_unknown_job_is_resubmitted(counted, answer) -> None:
    assert store_with({**RECORD, "job_id": JOB}).earlier_job("f1", Hook(answer)) is None
    assert names(counted) == ["cogvideo.resume.reconnect_attempt", "cogvideo.resume.terminal_resubmit"]


def test_a_job_that_cannot_be_queried_is_never_paid_for_again(counted) -> None:
    with pytest.raises(AirflowFailException, match=rf"Stored job {JOB} cannot be queried"):
        store_with({**RECORD, "job_id": JOB}).earlier_job("f1", Hook(api_error(401, "1002", "bad token")))
    transient = api_error(503, None, "busy")
    with pytest.raises(type(transient)):
        store_with({**RECORD, "job_id": JOB}).earlier_job("f1", Hook(transient))
    assert "cogvideo.resume.terminal_resubmit" not in names(counted)


def test_the_record_goes_pending_then_submitted_then_away() -> None:
    from airflow_provider_cogvideo.prepare import prepare_request

    state = FakeStateStore()
    jobs = JobStore(state, durable=True, operator="Op", log=logging.getLogger("test"))
    prepared = prepare_request(prompt="a red bicycle", request_id="r-000001")
    jobs.submitting(prepared)
    assert state.data[STATE_KEY] == {
        "fingerprint": prepared.fingerprint,
        "request_id": "r-000001",
        "model": "cogvideox-3",
        "request": prepared.summary,
        "job_id": None,
    }
    jobs.submitted(JOB, 1234.5)
    assert (state.data[STATE_KEY]["job_id"], state.data[STATE_KEY]["submitted_at"]) == (JOB, 1234.5)
    jobs.forget()
    assert STATE_KEY not in state.data


def test_a_missing_store_is_warned_about_once_and_only_when_asked_for(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        jobs = JobStore(None, durable=True, operator="Op", log=logging.getLogger("test"))
        assert jobs.state is None and jobs.state is None
        assert JobStore(FakeStateStore(), durable=False, operator="Op", log=logging.getLogger("test")).state is None
    assert caplog.text.count("task_state_store is not available") == 1
