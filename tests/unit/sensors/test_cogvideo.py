"""CogVideoTaskSensor: deferrable by default, short-circuits terminal jobs, same result dict."""

from __future__ import annotations

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_cogvideo.sensors.cogvideo import CogVideoTaskSensor
from airflow_provider_cogvideo.triggers.cogvideo import CogVideoTaskTrigger

from ..conftest import BASE_URL, first_event

pytestmark = pytest.mark.usefixtures("conn_without_retries")

JOB = "2000000000000000002"
VIDEO = {"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png"}
SUCCESS = httpx.Response(200, json={"model": "vidu2-image", "task_status": "SUCCESS", "video_result": [VIDEO]})
PROCESSING = httpx.Response(200, json={"model": "vidu2-image", "task_status": "PROCESSING"})
FAIL = httpx.Response(200, json={"model": "vidu2-image", "task_status": "FAIL"})


def sensor(**kw) -> CogVideoTaskSensor:
    args = {"deferrable": True, **kw}
    return CogVideoTaskSensor(task_id="wait", job_id=JOB, poll_interval=0.01, metadata={"sku": "s1"}, **args)


def test_deferrable_by_default_and_resumes_with_result(context) -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(side_effect=[PROCESSING, PROCESSING, SUCCESS])
        op = sensor(timeout=60)
        with pytest.raises(TaskDeferred) as exc:
            op.execute(context)
        trigger = exc.value.trigger
        assert isinstance(trigger, CogVideoTaskTrigger)
        assert trigger.model == "vidu2-image"
        result = op.execute_complete(context, event=first_event(trigger))
    assert (result["id"], result["video_url"], result["metadata"]) == (JOB, VIDEO["url"], {"sku": "s1"})
    assert (result["price"], result["price_currency"]) == (1.25, "CNY")


def test_terminal_job_is_not_deferred(context) -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(return_value=SUCCESS)
        assert sensor().execute(context)["video_url"] == VIDEO["url"]
        api.get(f"/async-result/{JOB}").mock(return_value=FAIL)
        with pytest.raises(AirflowFailException, match="FAIL"):
            sensor().execute(context)


def test_poke_mode(context) -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(side_effect=[PROCESSING, SUCCESS])
        op = sensor(deferrable=False)
        assert op.poke(context).is_done is False
        done = op.poke(context)
    assert done.is_done is True
    assert done.xcom_value["video_url"] == VIDEO["url"]


def test_unknown_job_fails_without_retry(context) -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(
            return_value=httpx.Response(400, json={"error": {"code": "1214", "message": "id not found"}})
        )
        with pytest.raises(AirflowFailException, match="1214"):
            sensor().execute(context)


def test_job_id_is_templated() -> None:
    assert "job_id" in CogVideoTaskSensor.template_fields


@pytest.mark.real_poll_floor
def test_sensor_wait_settings_are_bounded() -> None:
    with pytest.raises(ValueError, match=r"poll_interval: must be a number from 1 to 3600, got 0\.0$"):
        CogVideoTaskSensor(task_id="wait", job_id=JOB, poll_interval=0)
    with pytest.raises(ValueError, match=r"error_budget: must be an integer from 0 to 100, got -1$"):
        CogVideoTaskSensor(task_id="wait", job_id=JOB, error_budget=-1)


def test_a_deferred_sensor_that_times_out_raises_sensor_timeout(context) -> None:
    """A timeout answers the sensor's question ("not yet, and no more waiting"): not a retryable error."""
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    event = {"v": 1, "status": "timeout", "reason": "deadline", "message": "stopped waiting for job 2 after 60 s",
             "job_id": JOB, "polls": 3, "waited_seconds": 60.0, "result": None}  # fmt: skip
    with pytest.raises(AirflowSensorTimeout, match="stopped waiting"):
        sensor().execute_complete(context, event=event)


def test_the_sensor_says_which_job_it_waits_for_and_until_when(context, capsys, caplog) -> None:
    with respx.mock(base_url=BASE_URL) as api:
        api.get(f"/async-result/{JOB}").mock(return_value=PROCESSING)
        with pytest.raises(TaskDeferred):
            sensor(timeout=600).execute(context)
    logged = capsys.readouterr().out + caplog.text
    assert f"Waiting for CogVideo job {JOB} until" in logged and "timeout 600 s" in logged
    assert "video_url" in context["ti"].xcom, "the video link finds its XCom while the sensor is deferred"
