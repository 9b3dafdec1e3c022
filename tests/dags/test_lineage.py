"""The mapped pipeline on real Airflow (dag.test()), SeaweedFS and the emulator, seen from outside:

* OpenLineage (the real ``apache-airflow-providers-openlineage``, file transport): ingestion reads
  the S3 images and writes the staged ones, generation (deferred) reads them and renders the video,
  described by the ``cogvideo_job`` run facet, the transfer writes video and cover to S3; no
  signature, no key anywhere in the events;
* the ``AssetAlias`` outlet of ``CogVideoToS3Operator.partial().expand()`` is in the serialized DAG
  and every mapped upload records its asset event through it;
* the transfer's "Video in S3" extra link, as the api-server's extra-links endpoint computes it.

dag.test() runs in a fresh interpreter: the OpenLineage provider reads its transport when its plugin
loads (once per process), and the other dag.test() tests of the session run without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The whole suite's lock pins the OpenLineage provider: without it this module fails, never skips.
import airflow.providers.openlineage  # noqa: F401
import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS
from tests.unit.test_images_photos import encoded, exif_rotated_jpeg, sideways

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "cogvideo_test_lineage"
AWS_CONN_ID = "aws_lineage"
ALIAS = "cogvideo-videos"
RUN_DAG = """
import json, sys
from tests.dags.dag_files.cogvideo_lineage_dags import lineage_dag
run = lineage_dag.test(run_conf={"bucket": sys.argv[1]})
open(sys.argv[2], "w").write(json.dumps({"state": str(run.state), "run_id": run.run_id}))
"""


@pytest.fixture(scope="module")
def pipeline_run(
    tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedFS, airflow_db: str, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """One run of the lineage DAG for the whole module (it takes a while): its run id, bucket,
    events and the emulator it ran against."""
    emulator = request.getfixturevalue("_lineage_emulator")
    s3 = seaweedfs.boto3_client()
    bucket = f"lineage-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="incoming/mug.png", Body=encoded(sideways(), "PNG"))
    s3.put_object(Bucket=bucket, Key="incoming/mug.json", Body=json.dumps({"title": "Red mug"}).encode())
    s3.put_object(Bucket=bucket, Key="incoming/lamp.jpg", Body=exif_rotated_jpeg())  # staged upright
    out = tmp_path_factory.mktemp("openlineage")
    events_path, outcome_path = out / "events.jsonl", out / "outcome.json"
    env = {
        **os.environ,
        **seaweedfs.airflow_connection_uri_env(AWS_CONN_ID),
        "AIRFLOW_CONN_COGVIDEO_DEFAULT": emulator["conn"],
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_path), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "cogvideo-test",
    }
    run = subprocess.run(
        [sys.executable, "-c", RUN_DAG, bucket, str(outcome_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (out / "dag_test.log").write_text(run.stdout + run.stderr)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    outcome = json.loads(outcome_path.read_text())
    assert outcome["state"] == "success", run.stdout[-6000:]
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
    return {
        **outcome,
        "bucket": bucket,
        "events": events,
        "raw": events_path.read_text(),
        "s3": s3,
        "endpoint_url": seaweedfs.endpoint_url,
        "emulator": emulator["handle"],
        "log": run.stdout + run.stderr,
    }


@pytest.fixture(scope="module")
def _lineage_emulator() -> Iterator[dict[str, Any]]:
    """The emulator for the module-scoped run (the plugin's fixtures are function-scoped)."""
    from airflow_provider_cogvideo.emulator import running_emulator
    from airflow_provider_cogvideo.testing import connection_json

    config = EmulatorConfig(duration=1.0, jitter=0.0, seed=11, url_ttl=3600)  # signed result URLs
    with running_emulator(config) as handle:
        yield {"handle": handle, "conn": connection_json(handle)}


def completes(run: dict[str, Any], task_id: str) -> list[dict[str, Any]]:
    job = f"{DAG_ID}.{task_id}"
    found = [e for e in run["events"] if e.get("eventType") == "COMPLETE" and e["job"]["name"] == job]
    return sorted(
        found, key=lambda e: e["run"]["facets"].get("airflow", {}).get("taskInstance", {}).get("map_index", 0)
    )


def names(datasets: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def the(run: dict[str, Any], task_id: str) -> dict[str, Any]:
    (event,) = completes(run, task_id)
    return event


def test_ingestion_reads_the_images_and_writes_the_staged_ones(pipeline_run: dict[str, Any]) -> None:
    bucket = f"s3://{pipeline_run['bucket']}"
    event = the(pipeline_run, "ingest")
    assert names(event["inputs"]) == {
        (bucket, "incoming/mug.png"),
        (bucket, "incoming/mug.json"),  # the sidecar the prompt came from
        (bucket, "incoming/lamp.jpg"),
    }
    assert names(event["outputs"]) == {(bucket, "staging/lamp.jpg")}  # the rotated photo, made upright


def test_the_deferred_generation_reports_its_images_job_and_video(pipeline_run: dict[str, Any]) -> None:
    bucket = f"s3://{pipeline_run['bucket']}"
    events = completes(pipeline_run, "generate")
    assert len(events) == 2, "one COMPLETE per mapped instance, after the deferral"
    emulator = pipeline_run["emulator"]
    files = emulator.url_root.rstrip("/")
    stats = emulator.stats()
    assert stats["submits"] == 2
    seen_inputs = set()
    for event in events:
        (image,) = names(event["inputs"])
        seen_inputs.add(image)
        job = event["run"]["facets"]["cogvideo_job"]
        assert job["jobId"] and job["requestId"].startswith("af-")
        assert (job["model"], job["taskStatus"], job["price"], job["priceCurrency"]) == (
            "cogvideox-flash",
            "SUCCESS",
            0.0,
            "CNY",
        )
        assert job["options"] == {"quality": "speed", "size": "720x480"}
        outputs = names(event["outputs"])
        assert {namespace for namespace, _ in outputs} == {files}
        assert {name.rsplit("/", 1)[1].split("_")[0] for _, name in outputs} == {job["jobId"]}
    assert seen_inputs == {(bucket, "incoming/mug.png"), (bucket, "staging/lamp.jpg")}
    starts = [e for e in pipeline_run["events"] if e["eventType"] == "START" and e["job"]["name"].endswith(".generate")]
    assert len(starts) >= 2


def test_the_transfer_reports_downloads_and_the_objects_written(pipeline_run: dict[str, Any]) -> None:
    bucket = f"s3://{pipeline_run['bucket']}"
    events = completes(pipeline_run, "upload")
    assert len(events) == 2
    written = set()
    for event, generated in zip(events, completes(pipeline_run, "generate"), strict=True):
        assert names(event["inputs"]) == names(generated["outputs"]), "the files the generation rendered"
        written |= names(event["outputs"])
    assert written == {
        (bucket, "videos/mug.mp4"),
        (bucket, "videos/mug.png"),
        (bucket, "videos/lamp.mp4"),
        (bucket, "videos/lamp.png"),
    }
    s3 = pipeline_run["s3"]
    for _, key in written:
        assert s3.head_object(Bucket=pipeline_run["bucket"], Key=key)["ContentLength"] > 0


def test_lineage_joins_up_from_photo_to_stored_video(pipeline_run: dict[str, Any]) -> None:
    """Every generation input was read or written by ingestion; every upload input was rendered by
    a generation: one graph, photo → staged JPEG → job → video in S3."""
    ingest = the(pipeline_run, "ingest")
    produced = names(ingest["inputs"]) | names(ingest["outputs"])
    for event in completes(pipeline_run, "generate"):
        assert names(event["inputs"]) <= produced


def test_no_signature_and_no_key_in_any_event(pipeline_run: dict[str, Any]) -> None:
    from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY

    raw = pipeline_run["raw"]
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        signed = session.scalars(
            select(XComModel.value).where(
                XComModel.dag_id == DAG_ID, XComModel.task_id == "generate", XComModel.key == "video_url"
            )
        ).all()
    assert len(signed) == 2 and all("signature=" in json.dumps(value) for value in signed), "the URLs were signed"
    for leak in ("signature", "expires=", "X-Amz-"):
        assert leak not in raw, raw[max(0, raw.find(leak) - 300) : raw.find(leak) + 100]
    secret = DEFAULT_TEST_KEY.split(".", 1)[1]
    assert secret not in raw and DEFAULT_TEST_KEY not in raw
    for event in completes(pipeline_run, "generate"):
        assert "prompt" not in json.dumps(event["run"]["facets"]["cogvideo_job"])


def test_the_mapped_transfer_declares_its_asset_alias_and_records_events(pipeline_run: dict[str, Any]) -> None:
    """``.partial().expand()``: Airflow takes a mapped operator's outlets from the partial kwargs when
    the DAG is parsed; the alias must be there, and each mapped upload's event must reach it."""
    from airflow.models.asset import AssetAliasModel, AssetEvent
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        serialized = session.scalar(
            select(SerializedDagModel)
            .where(SerializedDagModel.dag_id == DAG_ID)
            .order_by(SerializedDagModel.created_at.desc())
            .limit(1)
        )
        (upload,) = [t["__var"] for t in serialized.data["dag"]["tasks"] if t["__var"]["task_id"] == "upload"]
        assert upload["_is_mapped"]
        declared = upload["partial_kwargs"].get("outlets", [])
        assert {"__type": "asset_alias", "__var": {"name": ALIAS, "group": "asset"}} in declared, declared
        alias = session.scalar(select(AssetAliasModel).where(AssetAliasModel.name == ALIAS))
        assert alias is not None, "the alias is registered from the serialized DAG"
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == DAG_ID, AssetEvent.source_run_id == pipeline_run["run_id"]
            )
        ).all()
        recorded = {(e.source_task_id, e.source_map_index, e.asset.uri) for e in events}
        bucket = pipeline_run["bucket"]
        assert recorded == {
            ("upload", 0, f"s3://{bucket}/videos/lamp.mp4"),
            ("upload", 1, f"s3://{bucket}/videos/mug.mp4"),
        }
        for event in events:
            assert [a.name for a in event.source_aliases] == [ALIAS]
            assert len(event.extra["sha256"]) == 64 and event.extra["job_id"]


def test_the_video_in_s3_link_as_the_ui_asks_for_it(pipeline_run: dict[str, Any]) -> None:
    """The api-server's extra-links endpoint (the function the UI calls), for each mapped upload:
    the object URL on the configured S3 endpoint, computed when the transfer ran."""
    from airflow.api_fastapi.core_api.routes.public.extra_links import get_extra_links
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    bucket, endpoint = pipeline_run["bucket"], pipeline_run["endpoint_url"]
    with create_session() as session:
        for map_index, product in ((0, "lamp"), (1, "mug")):
            answer = get_extra_links(
                dag_id=DAG_ID,
                dag_run_id=pipeline_run["run_id"],
                task_id="upload",
                session=session,
                dag_bag=DBDagBag(),
                map_index=map_index,
            )
            assert answer.extra_links == {"Video in S3": f"{endpoint}/{bucket}/videos/{product}.mp4"}
