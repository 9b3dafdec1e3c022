"""Submit without waiting, then wait with the deferrable sensor (e.g. to do other work meanwhile,
or to wait on a job submitted by another system: pass its id to the sensor)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.sensors.cogvideo import CogVideoTaskSensor

with DAG(
    dag_id="cogvideo_submit_then_sense",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["cogvideo", "example"],
) as dag:
    submit = CogVideoGenerateOperator(
        task_id="submit",
        model="cogvideox-flash",
        prompt="A hot-air balloon over terraced rice fields at dawn",
        wait_for_completion=False,
        deferrable=True,  # a submit refused for capacity waits in the triggerer, not on a worker
        pool="cogvideo",
    )
    wait = CogVideoTaskSensor(
        task_id="wait",
        job_id="{{ ti.xcom_pull(task_ids='submit')['id'] }}",
        metadata={"submitted_by": "{{ ti.task_id }}"},
        timeout=3600,
        deferrable=True,  # waits in the triggerer: run one
    )
    submit >> wait
