"""DAGs that tests/dags/test_dag_test.py runs with dag.test(). They read where to write their
results from COGVIDEO_TEST_OUT at run time (never at parse time)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator

PRODUCTS = [{"prompt": f"product {i} turning slowly", "metadata": {"product_id": f"sku-{i}"}} for i in range(8)]


@task
def collect(results) -> None:
    value = results if isinstance(results, dict) else list(results)
    Path(os.environ["COGVIDEO_TEST_OUT"]).write_text(json.dumps(value))


with DAG("cogvideo_test_mapped", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as mapped_dag:
    videos = CogVideoGenerateOperator.partial(
        task_id="generate", model="cogvideox-flash", poll_interval=1, size="720x480", deferrable=True
    ).expand_kwargs(PRODUCTS)
    collect(videos.output)


class FirstTryGivesUpEarly(CogVideoGenerateOperator):
    """Try 1 waits 0.3 s (less than any render: it times out with its job still rendering); later
    tries wait a minute, so the retry that reconnects also sees the job finish, however fast or slow
    the machine runs the tries."""

    def execute(self, context):
        self.timeout = 0.3 if context["ti"].try_number == 1 else 60.0
        return super().execute(context)


with DAG("cogvideo_test_retry", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as retry_dag:
    video = FirstTryGivesUpEarly(
        task_id="generate",
        prompt="a lamp",
        model="cogvideox-flash",
        poll_interval=1,
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
    collect(video.output)


# Two products with identical inputs: same fingerprint, so only the map index tells their jobs apart.
TWINS = [{"prompt": "the same teapot", "metadata": {"product_id": f"twin-{i}"}} for i in range(2)]

with DAG("cogvideo_test_twins", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as twins_dag:
    twins = CogVideoGenerateOperator.partial(
        task_id="generate", model="cogvideox-flash", poll_interval=1, deferrable=True
    ).expand_kwargs(TWINS)
    collect(twins.output)


with DAG("cogvideo_test_clear", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as clear_dag:
    CogVideoGenerateOperator(
        task_id="generate",
        prompt="a kettle",
        model="cogvideox-flash",
        poll_interval=1,
        deferrable=True,
        timeout=0.3,  # the first run gives up while the job renders; no retries: a user clears it
        retries=0,
    )


class LostSuccessReport(CogVideoGenerateOperator):
    """Try 1 sees its job succeed, then dies before Airflow records the success, as a lost
    execution-API report ("Task Instance not found") or an OOM while pushing XCom would."""

    def execute_complete(self, context, event=None):
        result = super().execute_complete(context, event)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after the job succeeded")
        return result


with DAG("cogvideo_test_lost_success", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as lost_dag:
    lost = LostSuccessReport(
        task_id="generate",
        prompt="a vase",
        model="cogvideox-flash",
        poll_interval=1,
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
    collect(lost.output)


with DAG("cogvideo_test_one_paid_job", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as paid_once_dag:
    # Retries on: an automatic retry is exactly what must not pay a second time.
    CogVideoGenerateOperator(
        task_id="generate",
        prompt="a clock",
        model="cogvideox-flash",
        poll_interval=1,
        deferrable=True,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )


with DAG("cogvideo_test_taskflow", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as taskflow_dag:

    @task
    def make_video() -> dict:
        """A @task user's one call: submit and wait, with the operator's validation and schedule."""
        from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

        job = CogVideoHook().generate(model="cogvideox-flash", prompt="a lamp", poll_interval=1)
        return job.model_dump(mode="json")

    collect(make_video())
