"""What Airflow sees of CogVideoToS3Operator, against SeaweedFS and the result-file server: the
"Video in S3" link it leaves in XCom, the AssetAlias outlet declared at parse time for
``.partial().expand()``, and its OpenLineage datasets (the real OpenLineage provider's classes).
The same, end to end through dag.test(), the api-server's extra-links endpoint and the file
transport: ``tests/dags/test_lineage.py``."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from airflow.sdk import DAG, Asset, AssetAlias

from airflow_provider_cogvideo.links import CogVideoS3VideoLink
from airflow_provider_cogvideo.testing.result_files import ResultFileServer
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import DEFAULT_ASSET_ALIAS, CogVideoToS3Operator
from airflow_provider_cogvideo.xcom import XCOM_S3_LINK
from tests.s3.helpers import make_context, pushed
from tests.s3.test_cogvideo_to_s3 import COVER, transfer

ALIAS = AssetAlias(name=DEFAULT_ASSET_ALIAS)


@pytest.fixture
def job(result_server: ResultFileServer) -> dict[str, Any]:
    """A finished generation result whose (small) files the local server serves."""
    job_id = str(uuid.uuid4().int)[:19]
    return {
        "id": job_id,
        "model": "cogvideox-3",
        "task_status": "SUCCESS",
        "video_url": result_server.add(f"{job_id}.mp4", size=6 * 1024 * 1024),
        "cover_image_url": result_server.add(f"{job_id}.png", COVER, content_type="image/png"),
        "metadata": {"product_id": f"sku-{job_id[:6]}"},
    }


# ------------------------------------------------------------------ the extra link
def test_the_link_is_computed_when_the_transfer_runs(bucket: str, job: dict[str, Any], seaweedfs: SeaweedFS) -> None:
    assert any(isinstance(link, CogVideoS3VideoLink) for link in CogVideoToS3Operator.operator_extra_links)
    context = make_context()
    out = transfer(bucket, job).execute(context)
    key = out["s3_uri"].removeprefix(f"s3://{bucket}/")
    assert pushed(context, XCOM_S3_LINK) == f"{seaweedfs.endpoint_url}/{bucket}/{key}"
    again = make_context()
    assert transfer(bucket, job).execute(again)["already_present"] is True
    assert pushed(again, XCOM_S3_LINK) == f"{seaweedfs.endpoint_url}/{bucket}/{key}", "a kept video has its link"


def test_without_an_endpoint_the_link_opens_the_aws_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AWS connection (no endpoint_url): the console URL in the connection's region; building it
    sends nothing anywhere (botocore makes a client offline)."""
    aws = {"conn_type": "aws", "login": "AKIAEXAMPLE", "password": "secret", "extra": {"region_name": "eu-west-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_CONSOLE", json.dumps(aws))
    op = CogVideoToS3Operator(
        task_id="t", result={}, s3_bucket="shop-videos", s3_key="v/{id}.mp4", aws_conn_id="aws_console"
    )
    assert op._console_link("videos/2026/mug 1.mp4") == (
        "https://eu-west-1.console.aws.amazon.com/s3/object/shop-videos?region=eu-west-1"
        "&prefix=videos%2F2026%2Fmug%201.mp4"
    )


# ------------------------------------------------------------------ the alias, mapped
def _serialized_upload(dag: DAG, task_id: str = "upload") -> dict[str, Any]:
    from airflow.serialization.serialized_objects import DagSerialization

    tasks = DagSerialization.to_dict(dag)["dag"]["tasks"]
    (task,) = [t["__var"] for t in tasks if t["__var"]["task_id"] == task_id]
    return task


ENCODED_ALIAS = {"__type": "asset_alias", "__var": {"name": DEFAULT_ASSET_ALIAS, "group": "asset"}}


def test_partial_declares_the_alias_where_airflow_reads_it() -> None:
    with DAG("alias_mapped", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        CogVideoToS3Operator.partial(task_id="upload", s3_bucket="b", s3_key="v/{id}.mp4").expand(
            result=[{"id": "1"}, {"id": "2"}]
        )
        CogVideoToS3Operator.partial(
            task_id="custom", s3_bucket="b", s3_key="v/{id}.mp4", asset_alias="shop-videos", outlets=[Asset("s3://b/x")]
        ).expand(result=[{"id": "1"}])
        CogVideoToS3Operator.partial(task_id="none", s3_bucket="b", s3_key="v/{id}.mp4", asset_alias=None).expand(
            result=[{"id": "1"}]
        )
    assert dag.get_task("upload").outlets == [ALIAS]
    assert _serialized_upload(dag)["partial_kwargs"]["outlets"] == [ENCODED_ALIAS]
    assert dag.get_task("custom").outlets == [Asset("s3://b/x"), AssetAlias(name="shop-videos")]
    assert dag.get_task("none").outlets == []
    assert "outlets" not in _serialized_upload(dag, "none")["partial_kwargs"]


def test_a_mapped_instance_has_the_alias_once() -> None:
    """Unmapping builds the operator from the partial kwargs, which already hold the alias."""
    with DAG("alias_unmapped", schedule=None, start_date=datetime(2026, 1, 1)):
        mapped = CogVideoToS3Operator.partial(task_id="upload", s3_bucket="b", s3_key="v/{id}.mp4").expand(
            result=[{"id": "1"}]
        )
    instance = mapped.unmap({"result": {"id": "1"}})
    assert isinstance(instance, CogVideoToS3Operator)
    assert instance.outlets == [ALIAS]
    plain = CogVideoToS3Operator(task_id="plain", result={}, s3_bucket="b", s3_key="k", outlets=[ALIAS])
    assert plain.outlets == [ALIAS]


# ------------------------------------------------------------------ OpenLineage
def test_openlineage_reports_the_downloads_and_the_objects_written(
    bucket: str, job: dict[str, Any], result_server: ResultFileServer
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    op = transfer(bucket, {**job, "video_url": job["video_url"] + "?X-Amz-Signature=abc&Expires=1"})
    out = op.execute(make_context())
    lineage = op.get_openlineage_facets_on_complete(mock.sentinel.task_instance)
    inputs = {(d.namespace, d.name) for d in lineage.inputs}
    origin = result_server.base_url.rstrip("/")
    assert inputs == {(origin, f"/files/{job['id']}.mp4"), (origin, f"/files/{job['id']}.png")}
    outputs = {(d.namespace, d.name) for d in lineage.outputs}
    key = out["s3_uri"].removeprefix(f"s3://{bucket}/")
    assert outputs == {(f"s3://{bucket}", key), (f"s3://{bucket}", key.removesuffix(".mp4") + ".png")}
    assert "Signature" not in repr(lineage) and "Expires" not in repr(lineage)

    kept = transfer(bucket, job)
    kept.execute(make_context())
    lineage = kept.get_openlineage_facets_on_complete(mock.sentinel.task_instance)
    assert lineage.inputs == [], "nothing downloaded: the objects were already there"
    assert {(d.namespace, d.name) for d in lineage.outputs} == outputs
