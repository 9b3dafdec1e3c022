"""CogVideoGenerateOperator end to end at unit level: execute -> TaskDeferred -> trigger -> execute_complete."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import timedelta

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from PIL import Image

from airflow_provider_cogvideo.job_store import STATE_KEY
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.triggers.cogvideo import CogVideoSubmitBackoffTrigger, CogVideoTaskTrigger
from tests.conftest import image_bytes

from ..conftest import API_KEY, BASE_URL, first_event

pytestmark = pytest.mark.usefixtures("conn_without_retries")

JOB = "1000000000000000001"
SUBMITTED = {"id": JOB, "model": "cogvideox-3", "request_id": "r-000001", "task_status": "PROCESSING"}
VIDEO = {"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png"}
SUCCESS = {"model": "cogvideox-3", "request_id": "r-000001", "task_status": "SUCCESS", "video_result": [VIDEO]}
PROCESSING = {"model": "cogvideox-3", "task_status": "PROCESSING"}


def operator(**kw) -> CogVideoGenerateOperator:
    args = {
        "task_id": "generate",
        "prompt": "a red bicycle",
        "poll_interval": 0.01,
        "metadata": {"product_id": "p1"},
        "deferrable": True,
    }
    args.update(kw)
    return CogVideoGenerateOperator(**args)


def defer(op, context) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as exc:
        op.execute(context)
    return exc.value


def test_submit_defer_resume_success(api, context, state_store) -> None:
    submit = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(
        side_effect=[httpx.Response(200, json=PROCESSING), httpx.Response(200, json=SUCCESS)]
    )
    op = operator(size="1920x1080")
    deferred = defer(op, context)
    assert isinstance(deferred.trigger, CogVideoTaskTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is None, "the trigger owns the deadline"
    assert context["ti"].xcom["job_id"] == JOB, "pushed before deferring: the extra link works while deferred"
    assert state_store.data[STATE_KEY]["job_id"] == JOB
    event = first_event(deferred.trigger)
    result = op.execute_complete(context, event=event)
    assert result["id"] == JOB
    assert result["video_url"] == VIDEO["url"] and result["cover_image_url"] == VIDEO["cover_image_url"]
    assert result["metadata"] == {"product_id": "p1"}
    assert (result["price"], result["price_currency"]) == (1.0, "CNY")
    assert result["request"]["size"] == "1920x1080" and result["prompt"] == "a red bicycle"
    assert json.loads(json.dumps(result)) == result
    assert state_store.data[STATE_KEY]["job_id"] == JOB, "kept on success: a retry after a lost report reuses it"
    assert context["ti"].xcom["video_url"] == VIDEO["url"]
    assert submit.call_count == 1
    assert API_KEY.split(".")[1] not in json.dumps([result, context["ti"].xcom, deferred.trigger.serialize()])


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"size": "720x480"}, "size"),
        ({"model": "viduq1-text", "prompt": None}, "prompt"),
        ({"prompt": "x" * 513}, "prompt"),
        ({"image": "/nonexistent/product.png"}, "image"),
        ({"image": "data:image/png;base64,bm90IGFuIGltYWdl"}, "image"),
        ({"model": "cogvideox-3", "fps": 24}, "fps"),
        ({"metadata": ["not", "a", "dict"]}, "metadata"),
    ],
)
def test_bad_input_fails_without_retry_before_any_request(api, context, kw, field) -> None:
    op = operator()
    for name, value in kw.items():  # as rendering sets them: run-time values, past the parse-time check
        setattr(op, name, value)
    with pytest.raises(AirflowFailException, match=field):
        op.execute(context)
    assert not api.calls
    assert field in context["ti"].xcom["error"]["error"], "the reason is left for the pipeline's manifest"


def test_images_from_path_bare_base64_and_url_go_out_as_wire_images(api, context, tmp_path) -> None:
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    path = tmp_path / "first.png"
    path.write_bytes(image_bytes())
    bare = base64.b64encode(image_bytes(fmt="JPEG")).decode()
    defer(operator(image=[str(path), bare], model="cogvideox-3"), context)
    sent = json.loads(route.calls.last.request.content)["image_url"]
    assert sent[0].startswith("data:image/png;base64,") and sent[1].startswith("data:image/jpeg;base64,")
    defer(operator(image="https://example.com/p.png"), context)
    assert json.loads(route.calls.last.request.content)["image_url"] == "https://example.com/p.png"


def test_oversized_and_wrong_format_images_are_refused(api, context, tmp_path) -> None:
    webp = tmp_path / "p.webp"
    webp.write_bytes(image_bytes(fmt="WEBP"))
    with pytest.raises(AirflowFailException, match="format 'webp' is not accepted by 'cogvideox-3'"):
        operator(image=str(webp)).execute(context)
    big = tmp_path / "big.png"
    Image.frombytes("RGB", (1400, 1400), os.urandom(1400 * 1400 * 3)).save(big)  # noise: ~5.6 MiB as PNG
    with pytest.raises(AirflowFailException, match=r"over the 5\.0 MB limit"):
        operator(image=str(big)).execute(context)
    assert not api.calls


def test_s3_image_is_read_through_aws_conn(api, context, moto_s3) -> None:
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    moto_s3.create_bucket(Bucket="products")
    moto_s3.put_object(Bucket="products", Key="in/p1.jpg", Body=image_bytes(fmt="JPEG"))
    defer(operator(image="s3://products/in/p1.jpg", aws_conn_id="aws_test"), context)
    with pytest.raises(AirflowFailException, match=r"cannot read s3://products/missing\.jpg"):
        operator(image="s3://products/missing.jpg", aws_conn_id="aws_test").execute(context)
    assert json.loads(route.calls.last.request.content)["image_url"].startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    ("answer", "exc", "match"),
    [
        ({"task_status": "FAIL"}, AirflowFailException, "job_failed"),
    ],
)
def test_failed_job_is_not_retried(api, context, state_store, answer, exc, match) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=answer))
    op = operator()
    deferred = defer(op, context)
    with pytest.raises(exc, match=match):
        op.execute_complete(context, event=first_event(deferred.trigger))
    assert STATE_KEY not in state_store.data


def test_content_policy_at_submit_fails_without_retry(api, context, state_store) -> None:
    api.post("/videos/generations").mock(
        return_value=httpx.Response(400, json={"error": {"code": "1301", "message": "unsafe content"}})
    )
    with pytest.raises(AirflowFailException, match="1301"):
        operator().execute(context)
    assert STATE_KEY not in state_store.data, "a refused submit leaves no pending marker"


def test_a_submit_that_never_left_is_retried_by_airflow_without_a_marker(api, context, state_store) -> None:
    api.post("/videos/generations").mock(side_effect=httpx.ConnectError("no route"))
    with pytest.raises(AirflowException, match="transient") as exc:
        operator().execute(context)
    assert not isinstance(exc.value, AirflowFailException)
    assert STATE_KEY not in state_store.data


@pytest.mark.parametrize(
    "refusal",
    [
        httpx.Response(503, json={"error": {"code": "500", "message": "server flow exceeded"}}),
        httpx.Response(503, text="Service Unavailable"),
        httpx.Response(429, json={"error": {"code": "1302", "message": "too many"}}),
    ],
    ids=["503-with-code", "503-bare", "429-1302"],
)
def test_a_capacity_refusal_waits_and_submits_again_whatever_its_status(api, context, state_store, refusal) -> None:
    """A 503 "server flow exceeded" created nothing, like a 1302: once the hook's resends run out the
    try is not failed (it was, before) but deferred to a timer, and the next submit pays once."""
    route = api.post("/videos/generations").mock(side_effect=[refusal, httpx.Response(200, json=SUBMITTED)])
    op = operator()
    deferred = defer(op, context)
    assert isinstance(deferred.trigger, CogVideoSubmitBackoffTrigger), "no worker held, no failed try"
    assert STATE_KEY not in state_store.data, "a refused POST leaves no pending marker"
    deferred.trigger.resume_at = time.time()
    resumed = defer_call(lambda: op.execute_after_rate_limit(context, event=first_event(deferred.trigger)))
    assert resumed.trigger.job_id == JOB
    assert route.call_count == 2


def test_a_server_error_at_submit_is_ambiguous_and_not_retried(api, context, state_store) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(502, text="Bad Gateway"))
    with pytest.raises(AirflowFailException, match="outcome unknown"):
        operator().execute(context)


def test_timeout_message_names_job_and_duration_and_keeps_job_for_retry(api, context, state_store) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=PROCESSING))
    op = operator(timeout=0.2, poll_interval=0.05)
    deferred = defer(op, context)
    assert deferred.trigger.deadline <= time.time() + 0.2
    with pytest.raises(AirflowException, match=rf"Job {JOB} was waited on for \d+ s") as exc:
        op.execute_complete(context, event=first_event(deferred.trigger))
    assert not isinstance(exc.value, AirflowFailException), "a timeout may be retried"
    assert state_store.data[STATE_KEY]["job_id"] == JOB, "a retry reconnects to the same job"


def test_deadline_capped_by_execution_timeout(api, context) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    deferred = defer(operator(timeout=timedelta(hours=5), execution_timeout=timedelta(minutes=10)), context)
    assert deferred.trigger.deadline == pytest.approx(time.time() + 600, abs=5)


def test_retry_reconnects_to_processing_job(api, context, state_store) -> None:
    submit = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=PROCESSING))
    defer(operator(), context)  # try 1: submitted, then the worker/triggerer died
    deferred = defer(operator(), context)  # try 2
    assert deferred.trigger.job_id == JOB
    assert submit.call_count == 1, "never pay twice"


def test_retry_returns_succeeded_job_without_resubmitting(api, context, state_store) -> None:
    submit = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    defer(operator(), context)
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=SUCCESS))
    result = operator().execute(context)
    assert (result["id"], result["video_url"], submit.call_count) == (JOB, VIDEO["url"], 1)
    assert result["request"]["prompt"] == "a red bicycle", "the summary of the request sent, from the store"
    assert state_store.data[STATE_KEY]["job_id"] == JOB


def test_retry_after_the_success_report_was_lost_pays_nothing(api, context, state_store) -> None:
    """Step 8, item 0: the job succeeded and execute_complete returned, but Airflow never recorded the
    success (a lost report, a worker lost right after): the retry must return the same job, unpaid."""
    submit = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=SUCCESS))
    op = operator()
    first = op.execute_complete(context, event=first_event(defer(op, context).trigger))
    retry = operator().execute(context)  # the retry Airflow starts because it never saw the success
    assert (retry["id"], retry["video_url"]) == (first["id"], first["video_url"])
    assert submit.call_count == 1, "one paid job"


def test_regenerate_label_pays_once_per_label(api, context, state_store) -> None:
    submit = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json={**SUBMITTED, "id": str(n)}) for n in (1, 2, 3)]
    )
    api.get(url__regex=r".*/async-result/\d+").mock(return_value=httpx.Response(200, json=SUCCESS))
    assert operator().execute_complete(context, event=first_event(defer(operator(), context).trigger))["id"] == "1"
    assert operator().execute(context)["id"] == "1", "a clear without a label reuses the finished video"
    assert defer(operator(regenerate="v2"), context).trigger.job_id == "2", "a new label pays for a new video"
    assert operator(regenerate="v2").execute(context)["id"] == "2", "its retries (and clears) reuse it"
    assert defer(operator(regenerate=True), context).trigger.job_id == "3"
    assert submit.call_count == 3


@pytest.mark.parametrize(
    ("answer", "resubmits"),
    [
        (httpx.Response(404, json={"error": {"code": "404", "message": "no such task"}}), True),
        (httpx.Response(400, json={"error": {"code": "1214", "message": "id invalid"}}), True),
        (httpx.Response(401, json={"error": {"code": "1002", "message": "bad token"}}), False),
        (httpx.Response(400, json={"error": {"code": "1210", "message": "bad parameters"}}), False),
        (httpx.Response(403, json={"error": {"code": "1220", "message": "no permission"}}), False),
    ],
)
def test_stored_job_is_resubmitted_only_when_the_api_says_it_does_not_exist(api, context, answer, resubmits) -> None:
    """Step 8, item 2: a stored job that cannot be queried for any other reason may still exist."""
    submit = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json=SUBMITTED), httpx.Response(200, json={**SUBMITTED, "id": "2"})]
    )
    defer(operator(), context)
    api.get(f"/async-result/{JOB}").mock(return_value=answer)
    if resubmits:
        assert defer(operator(), context).trigger.job_id == "2"
    else:
        with pytest.raises(AirflowFailException, match=rf"Stored job {JOB} cannot be queried.*not submitting"):
            operator().execute(context)
    assert submit.call_count == (2 if resubmits else 1)


def test_retry_resubmits_failed_job(api, context) -> None:
    submit = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json=SUBMITTED), httpx.Response(200, json={**SUBMITTED, "id": "2"})]
    )
    defer(operator(), context)
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json={"task_status": "FAIL"}))
    assert defer(operator(), context).trigger.job_id == "2"
    assert submit.call_count == 2


def test_changed_inputs_mean_a_new_job(api, context) -> None:
    submit = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json=SUBMITTED), httpx.Response(200, json={**SUBMITTED, "id": "2"})]
    )
    defer(operator(prompt="product A"), context)
    assert defer(operator(prompt="product B"), context).trigger.job_id == "2"
    assert submit.call_count == 2


def test_pending_marker_is_explained_and_resubmitted(api, context, state_store, capsys, caplog) -> None:
    api.post("/videos/generations").mock(side_effect=httpx.ReadTimeout("answer lost"))
    with pytest.raises(AirflowFailException, match="outcome unknown"):
        operator().execute(context)
    marker = state_store.data[STATE_KEY]
    assert marker["job_id"] is None and marker["request_id"].startswith("af-")
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    assert defer(operator(), context).trigger.job_id == JOB
    logged = capsys.readouterr().out + caplog.text
    assert "pending submit" in logged and marker["request_id"] in logged


def test_rate_limit_at_submit_defers_to_a_timer_then_submits(api, context, state_store) -> None:
    route = api.post("/videos/generations").mock(
        side_effect=[
            httpx.Response(429, json={"error": {"code": "1302", "message": "too many"}}),
            httpx.Response(200, json=SUBMITTED),
        ]
    )
    op = operator()
    deferred = defer(op, context)
    assert isinstance(deferred.trigger, CogVideoSubmitBackoffTrigger), "the worker is released while waiting"
    assert deferred.method_name == "execute_after_rate_limit"
    assert 15 * 0.8 <= deferred.trigger.resume_at - time.time() <= 15 * 1.2
    assert STATE_KEY not in state_store.data, "a refused POST leaves no pending marker"
    deferred.trigger.resume_at = time.time()
    event = first_event(deferred.trigger)
    resumed = defer_call(lambda: op.execute_after_rate_limit(context, event=event))
    assert resumed.trigger.job_id == JOB
    assert route.call_count == 2


def defer_call(fn) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as exc:
        fn()
    return exc.value


def test_rate_limit_until_deadline_fails_clearly(api, context) -> None:
    api.post("/videos/generations").mock(
        return_value=httpx.Response(429, json={"error": {"code": "1305", "message": "busy"}})
    )
    with pytest.raises(AirflowException, match="Rate limited until the deadline"):
        operator(timeout=5).execute(context)


def test_synchronous_path_polls_on_the_worker(api, context) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(
        side_effect=[httpx.Response(200, json=PROCESSING), httpx.Response(200, json=SUCCESS)]
    )
    result = operator(deferrable=False).execute(context)
    assert result["video_url"] == VIDEO["url"]


def test_wait_for_completion_false_returns_the_job(api, context) -> None:
    submit = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    result = operator(wait_for_completion=False, request_id="req-no-wait-1").execute(context)
    assert (result["id"], result["task_status"], result["video_url"]) == (JOB, "PROCESSING", None)
    assert result["request_id"] == "req-no-wait-1" == json.loads(submit.calls.last.request.content)["request_id"]
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=PROCESSING))
    assert operator(wait_for_completion=False).execute(context)["id"] == JOB, "a retry returns the same job"
    assert submit.call_count == 1


@pytest.mark.parametrize("dry_run", [True, "True", "true"])
def test_dry_run_validates_and_prices_but_sends_nothing(api, context, state_store, tmp_path, dry_run) -> None:
    image = tmp_path / "p.png"
    image.write_bytes(image_bytes())
    result = operator(dry_run=dry_run, image=str(image), size="1920x1080").execute(context)
    assert not api.calls, "no request at all"
    assert (result["task_status"], result["id"], result["price"], result["price_currency"]) == (
        "DRY_RUN",
        None,
        1.0,
        "CNY",
    )
    assert result["request"]["image_url"] == str(image), "the summary names the image, never its bytes"
    assert result["request"]["size"] == "1920x1080" and result["request"]["request_id"].startswith("af-")
    assert STATE_KEY not in state_store.data


def test_dry_run_refuses_bad_input_like_a_real_submit(api, context) -> None:
    op = operator(dry_run=True, size="{{ params.size }}")
    op.size = "720x480"  # as rendered
    with pytest.raises(AirflowFailException, match="size"):
        op.execute(context)
    with pytest.raises(AirflowFailException, match=r"dry_run: must be true or false, got 'maybe'"):
        operator(dry_run="maybe").execute(context)
    assert not api.calls


def test_ambiguous_submit_is_recorded_as_ambiguous_with_its_request_id(api, context) -> None:
    api.post("/videos/generations").mock(side_effect=httpx.ReadTimeout("answer lost"))
    with pytest.raises(AirflowFailException, match="outcome unknown"):
        operator(request_id="req-lost-1").execute(context)
    error = context["ti"].xcom["error"]
    assert (error["status"], error["request_id"]) == ("ambiguous", "req-lost-1")
    assert error["product_id"] == "p1", "the manifest reads every record in one call: each names its product"


def test_every_step_s_failure_record_names_its_product(api, context) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json={"task_status": "FAIL"}))
    op = operator(metadata={"product_id": "lamp 7", "variant": "default", "title": "Lamp"})
    deferred = defer(op, context)
    with pytest.raises(AirflowFailException):
        op.execute_complete(context, event=first_event(deferred.trigger))
    assert context["ti"].xcom.pop("error") | {"error": "", "type": ""} == {
        "error": "",
        "type": "",
        "product_id": "lamp 7",
        "variant": "default",
    }
    with pytest.raises(AirflowException, match="Unexpected trigger event"):
        op.execute_after_rate_limit(context, event={"v": 1, "status": "odd"})
    assert (context["ti"].xcom["error"]["product_id"], context["ti"].xcom["error"]["variant"]) == ("lamp 7", "default")


def test_a_mapped_instance_with_a_spend_plan_submits_without_reading_its_siblings(api, context) -> None:
    """The run plan counted this product's share: its submit reads no other instance's spend."""
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    ti = context["ti"]
    ti.map_index = 41
    reads: list[dict] = []
    own_pull = ti.xcom_pull
    ti.xcom_pull = lambda **kw: reads.append(kw) or own_pull(**kw)
    defer(operator(max_total_price="3", spend_plan={"run_estimate": 3, "share": 1.0}), context)
    assert route.call_count == 1
    assert reads == []
    assert ti.xcom["spend"] | {"at": 0} == {
        "paid": 1.0,
        "reserved": 0.0,
        "at": 0,
        "map_index": 41,
        "task_id": ti.task_id,
        "share": 1.0,
    }


@pytest.mark.real_poll_floor
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"poll_interval": 0}, r"poll_interval: must be a number from 1 to 3600, got 0\.0$"),
        ({"poll_interval": -5}, r"poll_interval: must be a number from 1 to 3600, got -5\.0$"),
        ({"poll_interval": float("nan")}, r"poll_interval: must be a number from 1 to 3600, got nan$"),
        ({"error_budget": -1}, r"error_budget: must be an integer from 0 to 100, got -1$"),
        ({"error_budget": 10**9}, r"error_budget: must be an integer from 0 to 100, got 1000000000$"),
        ({"error_budget": 2.5}, r"error_budget: must be an integer from 0 to 100, got 2\.5$"),
        ({"timeout": float("inf")}, r"timeout: must be a number from 0\.001 to 604800, got inf$"),
        ({"timeout": timedelta(days=30)}, r"timeout: must be a number from 0\.001 to 604800, got 2592000\.0$"),
    ],
)
def test_wait_settings_are_bounded(api, kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        operator(**{"poll_interval": None, **kw})
    assert not api.calls


@pytest.mark.parametrize(
    "event", [None, {}, {"status": "success"}, {"v": 99, "status": "success"}, {"v": 1, "status": "odd"}]
)
def test_unexpected_events_fail_loudly(context, event) -> None:
    with pytest.raises(AirflowException, match="Unexpected trigger event"):
        operator().execute_complete(context, event=event)


def test_no_state_store_warns_what_protection_remains(api, capsys, caplog) -> None:
    from ..conftest import FakeTI

    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    defer(operator(), {"ti": FakeTI()})
    logged = capsys.readouterr().out + caplog.text
    assert "task_state_store is not available" in logged


def test_extra_link_opens_the_video_while_valid_never_the_api(api, context, monkeypatch) -> None:
    from airflow_provider_cogvideo import links as module

    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    op = operator()
    defer(op, context)
    assert not any(str(v).startswith(BASE_URL) for v in context["ti"].xcom.values()), "no API URL for a browser"
    stored: dict[str, str] = {}
    monkeypatch.setattr(module.XCom, "get_value", lambda key, ti_key: stored.get(key))
    link = module.CogVideoVideoLink()
    assert link.get_link(op, ti_key=None) == "", "nothing to open while the job renders"
    stored["video_url"] = VIDEO["url"]
    assert link.get_link(op, ti_key=None) == VIDEO["url"]
    stored["video_url"] = f"{VIDEO['url']}?expires={int(time.time()) + 600}&signature=s"
    assert link.get_link(op, ti_key=None) == stored["video_url"]
    stored["video_url"] = f"{VIDEO['url']}?expires={int(time.time()) - 1}&signature=s"
    assert link.get_link(op, ti_key=None) == "", "an expired signed URL is not offered"


def test_on_kill_on_the_worker_names_the_job(api, context, capsys, caplog) -> None:
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    op = operator()
    defer(op, context)
    op.on_kill()
    logged = capsys.readouterr().out + caplog.text
    assert JOB in logged and "no cancel" in logged


@pytest.mark.parametrize(("configured", "expected"), [(None, "False"), ("True", "True")])
def test_deferrable_defaults_to_operators_default_deferrable(configured, expected) -> None:
    """As Airflow's own providers: a deployment without a triggerer never gets tasks stuck deferred."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"}
    if configured is not None:
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = configured
    code = (
        "from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator as G; "
        "from airflow_provider_cogvideo.sensors.cogvideo import CogVideoTaskSensor as S; "
        "print(G(task_id='g', prompt='p').deferrable, S(task_id='s', job_id='1').deferrable)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == f"{expected} {expected}"


@pytest.mark.parametrize("unset", ["None", "null", "NONE", ""])
def test_one_unset_rule_for_every_templated_field(api, context, unset) -> None:
    """Before, ``"none"`` unset max_total_price but ``model="none"`` was an unknown model and a
    ``"None"`` prompt or request_id was sent as written."""
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    op = operator(image="https://example.com/p.png")
    for name in set(op.template_fields) - {"image"}:  # the image says what to animate
        setattr(op, name, unset)  # as rendering sets them
    deferred = defer(op, context)
    body = json.loads(route.calls.last.request.content)
    assert body["model"] == "cogvideox-3" and body["request_id"].startswith("af-"), "the defaults"
    assert set(body) == {"model", "image_url", "request_id"}, "no prompt, no option, no extra body"
    assert deferred.trigger.cogvideo_conn_id == "cogvideo_default"
    api.get(f"/async-result/{JOB}").mock(return_value=httpx.Response(200, json=SUCCESS))
    assert op.execute_complete(context, event=first_event(deferred.trigger))["metadata"] == {}


def test_options_are_templated_and_validated_after_rendering(api, context) -> None:
    """params / dag_run.conf drive the model and its options; a bad rendered value fails before paying."""
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    templated = {
        "model": "{{ params.model }}",
        "fps": "{{ params.fps }}",
        "duration": "{{ params.duration }}",
        "size": "{{ params.size }}",
        "quality": "{{ params.quality }}",
        "with_audio": "{{ params.audio }}",
        "extra_body": {"tag": "{{ params.tag }}"},
        "cogvideo_conn_id": "{{ params.conn }}",
    }
    op = operator(**templated)
    params = {"model": "cogvideox-2", "fps": 60, "duration": 10, "size": "720x480", "quality": "speed"}
    params |= {"audio": True, "tag": "spring", "conn": "cogvideo_default"}
    op.render_template_fields({"params": params})
    defer(op, context)
    body = json.loads(route.calls[0].request.content)
    assert (body["model"], body["fps"], body["duration"], body["size"], body["quality"]) == (
        "cogvideox-2",
        60,
        10,
        "720x480",
        "speed",
    )
    assert body["with_audio"] is True and body["tag"] == "spring"

    bad = operator(**templated)
    bad.render_template_fields({"params": {**params, "fps": 24}})
    with pytest.raises(AirflowFailException, match=r"fps: 24 is not allowed for model 'cogvideox-2'; allowed: 30, 60"):
        bad.execute(context)
    unset = operator(fps="{{ params.fps }}", size="{{ params.size }}")
    unset.render_template_fields({"params": {"fps": None, "size": None}})
    defer(unset, context)
    assert "fps" not in json.loads(route.calls[-1].request.content), "an unset param leaves the option unset"
    assert route.call_count == 2


def test_a_2xx_submit_answer_with_wrongly_typed_fields_fails_the_task_without_retry(api, context) -> None:
    """Before: pydantic's ValidationError escaped the ambiguous-submit handling, Airflow retried, and
    each retry paid again."""
    submit = api.post("/videos/generations").mock(return_value=httpx.Response(200, json={**SUBMITTED, "id": 1.5}))
    with pytest.raises(AirflowFailException, match="outcome unknown") as exc:
        operator(request_id="req-typed-1").execute(context)
    assert "Not retried" in str(exc.value)
    assert submit.call_count == 1
    error = context["ti"].xcom["error"]
    assert (error["status"], error["request_id"]) == ("ambiguous", "req-typed-1")


@pytest.mark.parametrize(
    ("conn", "complaint"),
    [
        ({"password": "no-dot-in-this-key"}, "<id>.<secret>"),
        ({"extra": {"tier": "V9"}}, "extra tier"),
        ({"extra": {"request_timeout": 0}}, "extra request_timeout"),
    ],
    ids=["key-without-dot", "bad-tier", "bad-number"],
)
def test_a_connection_that_cannot_work_fails_the_task_without_retry_naming_it(
    api, context, make_conn, conn, complaint
) -> None:
    make_conn("cogvideo_broken", **conn)
    with pytest.raises(AirflowFailException, match=complaint) as exc:
        operator(cogvideo_conn_id="cogvideo_broken").execute(context)
    assert "'cogvideo_broken'" in str(exc.value)
    assert not api.calls
    assert "cogvideo_broken" in context["ti"].xcom["error"]["error"]


def test_the_video_link_has_its_xcom_before_the_task_defers(api, context) -> None:
    """Airflow computes extra links when a try ends, deferring included: without a value the link's
    lookup logged ``XCom not found ... key='video_url'`` as an error in every healthy deferred task."""
    api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    defer(operator(), context)
    assert "video_url" in context["ti"].xcom and context["ti"].xcom["video_url"] is None


def test_the_model_is_read_in_any_case_and_sent_as_the_table_spells_it(api, context) -> None:
    route = api.post("/videos/generations").mock(return_value=httpx.Response(200, json=SUBMITTED))
    zhipu = operator(model="CogVideoX-3", size="1920x1080")
    defer(zhipu, context)
    assert json.loads(route.calls.last.request.content)["model"] == "cogvideox-3"
    assert (
        zhipu.build_request().fingerprint == operator(model="cogvideox-3", size="1920x1080").build_request().fingerprint
    )
    assert zhipu.build_request().request.model == "cogvideox-3"


def test_literal_options_are_checked_when_the_dag_is_parsed() -> None:
    from airflow_provider_cogvideo.errors import CogVideoValidationError

    with pytest.raises(
        CogVideoValidationError, match=r"'cogvidex-3' is not a known video model \(did you mean 'cogvideox-3'\?\)"
    ):
        operator(model="cogvidex-3")
    with pytest.raises(CogVideoValidationError, match="size: '720x480' is not allowed for model 'cogvideox-3'"):
        operator(size="720x480")
    with pytest.raises(CogVideoValidationError, match="fps: 24 is not allowed"):
        operator(model="CogVideoX-3", fps="24")
    with pytest.raises(CogVideoValidationError, match="duration"):
        operator(model="viduq1-image", duration=10)
    # What only the run knows is left to the run, where the same rules apply before paying.
    operator(size="{{ params.size }}", fps="None", model="cogvideox-3")
    operator(model="{{ params.model }}", size="720x480")
    operator(model="my-new-model", capability_overrides={"sizes": ["720x480"]}, size="720x480")
