"""CogVideoTaskTrigger: serialization, one event per outcome, budgets, deadlines (respx, async)."""

from __future__ import annotations

import time

import httpx
import pytest
import respx

from airflow_provider_cogvideo import polling
from airflow_provider_cogvideo.backoff import Backoff
from airflow_provider_cogvideo.events import EVENT_VERSION
from airflow_provider_cogvideo.hooks.cogvideo import aclose_clients
from airflow_provider_cogvideo.triggers import cogvideo as trigger_module
from airflow_provider_cogvideo.triggers.cogvideo import CogVideoTaskTrigger

from ..conftest import API_KEY, BASE_URL, error_answer

JOB = "8868902201637896192"
PROCESSING = httpx.Response(200, json={"model": "cogvideox-3", "task_status": "PROCESSING"})
SUCCESS = httpx.Response(
    200,
    json={"model": "cogvideox-3", "request_id": "r", "task_status": "SUCCESS",
          "video_result": [{"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png"}]},
)  # fmt: skip
FAIL = httpx.Response(200, json={"model": "cogvideox-3", "task_status": "FAIL"})


@pytest.fixture(autouse=True)
def _conn(make_conn, monkeypatch):
    make_conn()
    monkeypatch.setattr(polling, "POLL_ERROR_BACKOFF", Backoff(first=0.01, ceiling=120.0))


def make_trigger(**kw) -> CogVideoTaskTrigger:
    args = {"job_id": JOB, "deadline": time.time() + 30, "poll_interval": 0.01, "model": "cogvideox-3"}
    args.update(kw)
    return CogVideoTaskTrigger(**args)


async def run_once(trigger: CogVideoTaskTrigger) -> list[dict]:
    events = [event.payload async for event in trigger.run()]
    await aclose_clients()
    return events


def test_serialize_is_primitives_only_and_round_trips() -> None:
    from airflow.serialization.serialized_objects import BaseSerialization

    trigger = make_trigger(poll_interval=None, waiting_since=123.0, error_budget=3)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_cogvideo.triggers.cogvideo.CogVideoTaskTrigger"
    assert all(isinstance(v, str | int | float | type(None)) for v in kwargs.values())
    assert API_KEY.split(".")[1] not in str(kwargs)
    restored_kwargs = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    restored = CogVideoTaskTrigger(**restored_kwargs)
    assert restored.serialize() == (classpath, kwargs)
    assert restored.deadline == trigger.deadline, "an absolute deadline survives a triggerer restart"


@pytest.mark.asyncio
async def test_success_after_processing_emits_one_versioned_event() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get(f"/async-result/{JOB}").mock(side_effect=[PROCESSING, PROCESSING, SUCCESS])
        events = await run_once(make_trigger())
    assert len(events) == 1
    (event,) = events
    assert (event["v"], event["status"], event["reason"], event["job_id"]) == (
        EVENT_VERSION,
        "success",
        "completed",
        JOB,
    )
    assert event["result"]["video_result"][0]["url"] == "https://cdn.test/v.mp4"
    assert event["polls"] == route.call_count == 3


@pytest.mark.asyncio
async def test_fail_status_is_a_failed_event() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(return_value=FAIL)
        (event,) = await run_once(make_trigger())
    assert (event["status"], event["reason"]) == ("failed", "job_failed")


@pytest.mark.asyncio
async def test_wrong_key_costs_exactly_one_request() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get(f"/async-result/{JOB}").mock(return_value=error_answer(401, "1002"))
        (event,) = await run_once(make_trigger())
    assert (event["status"], event["reason"]) == ("error", "auth")
    assert route.call_count == 1


@pytest.mark.asyncio
async def test_transient_errors_are_absorbed_within_budget() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get(f"/async-result/{JOB}").mock(
            side_effect=[
                error_answer(503, "500"),
                httpx.ConnectError("x"),
                error_answer(429, "1305"),
                PROCESSING,
                error_answer(500, "500"),
                SUCCESS,
            ]
        )
        (event,) = await run_once(make_trigger(error_budget=3))
    assert event["status"] == "success"
    assert route.call_count == 6


@pytest.mark.asyncio
async def test_budget_of_consecutive_transient_errors() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get(f"/async-result/{JOB}").mock(return_value=error_answer(500, "500"))
        (event,) = await run_once(make_trigger(error_budget=2))
    assert (event["status"], event["reason"]) == ("error", "transient_errors_exhausted")
    assert route.call_count == 3


@pytest.mark.asyncio
async def test_an_unreadable_answer_spends_the_error_budget_and_ends_clearly() -> None:
    """A 200 whose fields have the wrong types is an unexpected answer, not pydantic's raw error: it
    costs the budget like a 5xx (a query creates nothing) and the event says what could not be read."""
    unreadable = httpx.Response(200, json={"task_status": None, "video_result": "x"})
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get(f"/async-result/{JOB}").mock(side_effect=[unreadable, PROCESSING, SUCCESS])
        (event,) = await run_once(make_trigger(error_budget=1))
        assert event["status"] == "success" and route.call_count == 3
        route.mock(side_effect=None, return_value=unreadable)
        (event,) = await run_once(make_trigger(error_budget=2))
    assert (event["status"], event["reason"]) == ("error", "transient_errors_exhausted")
    assert "'task_status' could not be read" in event["message"]
    assert "ValidationError" not in event["message"] and "pydantic" not in event["message"]


@pytest.mark.asyncio
async def test_deadline_gives_timeout_event_naming_the_job() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(return_value=PROCESSING)
        started = time.time()
        (event,) = await run_once(make_trigger(deadline=started + 0.3, poll_interval=0.05))
    assert (event["status"], event["reason"]) == ("timeout", "deadline")
    assert JOB in event["message"]
    assert time.time() >= started + 0.3


@pytest.mark.asyncio
async def test_deadline_already_passed_still_polls_once() -> None:
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get(f"/async-result/{JOB}").mock(return_value=SUCCESS)
        (event,) = await run_once(make_trigger(deadline=time.time() - 10))
    assert event["status"] == "success"
    assert route.call_count == 1


@pytest.mark.asyncio
async def test_unexpected_exception_becomes_error_event(monkeypatch) -> None:
    async def boom(self, task_id, retry=True):
        raise RuntimeError("bug")

    monkeypatch.setattr("airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook.aget_task", boom)
    (event,) = await run_once(make_trigger())
    assert (event["status"], event["reason"]) == ("error", "unexpected")


@pytest.mark.asyncio
async def test_adaptive_schedule_waits_before_first_poll(monkeypatch) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(trigger_module.asyncio, "sleep", fake_sleep)
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(side_effect=[PROCESSING, SUCCESS])
        await run_once(make_trigger(poll_interval=None, waiting_since=time.time(), deadline=time.time() + 600))
    assert 44 < sleeps[0] <= 45  # three quarters of cogvideox-3's typical shortest render
    assert sleeps[1] == pytest.approx(8.0)


@pytest.mark.asyncio
async def test_on_kill_says_the_job_keeps_running(capsys, caplog) -> None:
    trigger = make_trigger()
    await trigger.on_kill()
    logged = capsys.readouterr().out + caplog.text
    assert JOB in logged and "billed" in logged


@pytest.mark.real_poll_floor
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"poll_interval": 0.5}, r"poll_interval: must be a number from 1 to 3600, got 0\.5$"),
        ({"error_budget": 10**9}, r"error_budget: must be an integer from 0 to 100, got 1000000000$"),
        ({"deadline": float("nan")}, r"deadline: must be a number from 0 to 32503680000, got nan$"),
        ({"waiting_since": float("inf")}, r"waiting_since: must be a number from 0 to 32503680000, got inf$"),
    ],
)
def test_trigger_kwargs_are_bounded(kw, message) -> None:
    """A trigger is rebuilt from database rows by the triggerer: its numbers are checked there too."""
    with pytest.raises(ValueError, match=message):
        make_trigger(**{"poll_interval": None, **kw})


def test_rate_limit_trigger_kwargs_are_bounded() -> None:
    from airflow_provider_cogvideo.triggers.cogvideo import CogVideoSubmitBackoffTrigger

    with pytest.raises(ValueError, match=r"rate_limited: must be an integer from 0 to 10000, got 1\.5$"):
        CogVideoSubmitBackoffTrigger(time.time(), time.time() + 60, 1.5)
    with pytest.raises(ValueError, match=r"resume_at: must be a number from 0 to 32503680000, got inf$"):
        CogVideoSubmitBackoffTrigger(float("inf"), time.time() + 60, 1)


@pytest.mark.asyncio
async def test_only_documented_fields_of_an_answer_travel_in_the_event() -> None:
    """A server may add anything to its answer (huge, or echoing the request): the event, stored in
    the trigger table and handed to the task, carries the documented fields only."""
    hostile = {
        "model": "cogvideox-3",
        "task_status": "SUCCESS",
        "echo": "x" * 100_000,
        "video_result": [{"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png", "k": "y"}],
    }
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=hostile))
        (event,) = await run_once(make_trigger())
    assert event["status"] == "success"
    assert event["result"] == {
        "id": JOB,
        "model": "cogvideox-3",
        "request_id": None,
        "task_status": "SUCCESS",
        "video_result": [{"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png"}],
    }


@pytest.mark.asyncio
async def test_content_policy_while_polling_is_final() -> None:
    """A job blocked by content policy (1301) will be blocked again: the task fails without retrying."""
    from airflow_provider_cogvideo.events import JobEvent

    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(return_value=error_answer(400, "1301"))
        (event,) = await run_once(make_trigger())
    assert (event["status"], event["reason"]) == ("error", "content_policy")
    assert JobEvent.model_validate(event).is_final
