"""The smallest useful DAG: one text-to-video job, waited on in the triggerer."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator

with DAG(
    dag_id="cogvideo_text_to_video",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["cogvideo", "example"],
) as dag:
    CogVideoGenerateOperator(
        task_id="generate",
        model="cogvideox-flash",  # free
        prompt="{{ dag_run.conf.get('prompt', 'A paper boat drifting down a rainy street, cinematic') }}",
        size="1920x1080",
        pool="cogvideo",
        deferrable=True,  # waits in the triggerer: run one (the default follows [operators] default_deferrable)
    )
