"""The product pipeline in small, with every operator mapped the way users map them:
ingestion (S3) → ``CogVideoGenerateOperator.partial().expand_kwargs()`` (deferrable) →
``CogVideoToS3Operator.partial().expand()``. tests/dags/test_lineage.py runs it with dag.test()
against SeaweedFS and the emulator, and reads back its OpenLineage events, asset events and extra
links. The bucket comes from the run's conf; the aws connection is ``aws_lineage``."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

AWS_CONN_ID = "aws_lineage"
BUCKET = "{{ dag_run.conf['bucket'] }}"

with DAG("cogvideo_test_lineage", schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as lineage_dag:
    products = S3ProductImagesOperator(
        task_id="ingest",
        s3_bucket=BUCKET,
        prefix="incoming/",
        staging_prefix="staging/",
        prompt_template="{title}, turning slowly on a table",
        aws_conn_id=AWS_CONN_ID,
    )
    videos = CogVideoGenerateOperator.partial(
        task_id="generate",
        model="cogvideox-flash",
        size="720x480",
        quality="speed",
        poll_interval=1,
        deferrable=True,
        aws_conn_id=AWS_CONN_ID,
    ).expand_kwargs(products.output)
    CogVideoToS3Operator.partial(
        task_id="upload",
        s3_bucket=BUCKET,
        s3_key="videos/{metadata[product_id]}.mp4",
        aws_conn_id=AWS_CONN_ID,
    ).expand(result=videos.output)
