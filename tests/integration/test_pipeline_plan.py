"""The pipeline's spending guards on real Airflow (``airflow dags test``), SeaweedFS and the emulator:
a dry run sends nothing and writes the manifest as a plan; a run over its budget pays nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo.demo import OUTPUT_BUCKET, PIPELINE_DAG_ID, pipeline_dag_file
from airflow_provider_cogvideo.emulator import EmulatorConfig, running_emulator
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment
from airflow_provider_cogvideo.testing.products import ensure_bucket, sample_products, seed_products
from airflow_provider_cogvideo.testing.seaweedfs import aws_connection_json, running_seaweedfs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

PRODUCTS = 3  # cogvideox-3 at 1 CNY each


def _manifests(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/").get("Contents", [])
    ordered = sorted(listed, key=lambda obj: obj["LastModified"])
    return [json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=obj["Key"])["Body"].read()) for obj in ordered]


def test_dry_run_plans_and_an_over_budget_run_pays_nothing(tmp_path: Path) -> None:
    with running_seaweedfs(tmp_path / "s3") as seaweedfs, running_emulator(EmulatorConfig(duration=0.5)) as emulator:
        s3 = seaweedfs.boto3_client()
        seed_products(s3, sample_products(PRODUCTS), corrupt=False)
        ensure_bucket(s3, OUTPUT_BUCKET)
        env = AirflowEnvironment(
            home=tmp_path / "airflow",
            connections={
                "cogvideo_default": connection_json(emulator),
                "aws_default": json.dumps(aws_connection_json(seaweedfs)),
            },
            extra_env={"COGVIDEO_PIPELINE_POLL_INTERVAL": "1"},
        )
        env.install_dags(pipeline_dag_file())
        env.migrate()

        def run(conf: dict[str, Any]) -> subprocess.CompletedProcess[str]:
            argv = env.command("dags", "test", PIPELINE_DAG_ID, "-c", json.dumps(conf))
            return subprocess.run(argv, env=env.env(), capture_output=True, text=True, timeout=300, check=False)

        dry = run({"dry_run": True})
        ((state,),) = env.query("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", PIPELINE_DAG_ID)
        assert (dry.returncode, state) == (0, "success"), dry.stdout[-3000:] + dry.stderr[-3000:]
        assert emulator.stats()["submits"] == 0, "a dry run sends nothing"
        (plan,) = _manifests(s3)
        assert plan["plan"] is True and plan["planned"] == PRODUCTS and plan["uploaded"] == 0
        assert plan["total_price"] == plan["estimated_price"] == PRODUCTS * 1.0 and plan["actual_price"] == 0
        assert {row["status"] for row in plan["products"]} == {"planned"}
        assert all(row["request"]["image_url"].startswith("s3://") for row in plan["products"])
        assert not s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="videos/").get("Contents"), "uploads skipped"

        over = run({"max_total_price": PRODUCTS * 1.0 - 0.5})
        ((state,),) = env.query("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", PIPELINE_DAG_ID)
        assert state == "failed", over.stdout[-3000:]
        assert emulator.stats()["submits"] == 0, "an estimate over the budget pays nothing"
        refused = _manifests(s3)[-1]
        assert refused["not_submitted"] == PRODUCTS and refused["actual_price"] == 0
        assert refused["estimated_price"] == PRODUCTS * 1.0 and refused["budget"] == PRODUCTS - 0.5
        assert "over max_total_price=2.5" in refused["products"][0]["error"]
