"""The example pipeline over one catalog, day after day, on real Airflow (``airflow dags test``),
SeaweedFS and the emulator, with ``[core] max_map_length`` below the catalog's size:

a dry run plans and sends nothing; a run over its budget pays nothing; then the same catalog is run
again and again: the first run pays what the cap lets it, the second the products left waiting, the
third nothing (no image read, a complete manifest), and after one image is replaced, one sidecar
changed and one product added, exactly those three; a product whose submit was left ambiguous is held
by the next run. Then the catalog in two ad formats with the prompt writer on: one paid job and one
chat call per (product, format), written prompts in the manifest and the gallery; the next run pays
nothing and calls the chat model zero times. Every manifest row with a video points at the exact bytes
in S3.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from airflow_provider_cogvideo.demo import OUTPUT_BUCKET, PIPELINE_DAG_ID, pipeline_dag_file
from airflow_provider_cogvideo.emulator import EmulatorConfig, running_emulator
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment
from airflow_provider_cogvideo.testing.products import (
    SOURCE_BUCKET,
    SOURCE_PREFIX,
    ensure_bucket,
    render_product_image,
    sample_products,
    seed_products,
)
from airflow_provider_cogvideo.testing.seaweedfs import aws_connection_json, running_seaweedfs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

PRODUCTS = 4  # cogvideox-3 at 1 CNY each
MAP_LENGTH = 3  # [core] max_map_length: one product waits on the first run
LOST = "answer-goes-missing"  # the emulator loses the answer of a submit whose prompt says this


def _manifests(s3: Any) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/").get("Contents", [])
    ordered = sorted(listed, key=lambda obj: obj["LastModified"])
    return [json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=obj["Key"])["Body"].read()) for obj in ordered]


def _statuses(manifest: dict[str, Any]) -> dict[str, str]:
    return {row["product_id"]: row["status"] for row in manifest["products"]}


def _assert_exact_bytes(s3: Any, manifest: dict[str, Any]) -> None:
    """Every row with a video names an object whose bytes have the row's sha256 (and its cover exists)."""
    for row in manifest["products"]:
        if row["status"] not in ("uploaded", "reused"):
            continue
        bucket, key = parse_s3_uri(row["video"]) or ("", "")
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["product_id"]
        cover_bucket, cover_key = parse_s3_uri(row["cover"]) or ("", "")
        s3.head_object(Bucket=cover_bucket, Key=cover_key)


def test_a_catalog_day_after_day_pays_once_per_video(tmp_path: Path) -> None:
    with running_seaweedfs(tmp_path / "s3") as seaweedfs, running_emulator(EmulatorConfig(duration=0.5)) as emulator:
        s3 = seaweedfs.boto3_client()
        catalog = sample_products(PRODUCTS + 1)
        seed_products(s3, catalog[:PRODUCTS], corrupt=False)
        ensure_bucket(s3, OUTPUT_BUCKET)
        env = AirflowEnvironment(
            home=tmp_path / "airflow",
            connections={
                "cogvideo_default": connection_json(emulator),
                "aws_default": json.dumps(aws_connection_json(seaweedfs)),
            },
            config={("core", "max_map_length"): str(MAP_LENGTH)},
            extra_env={"COGVIDEO_PIPELINE_POLL_INTERVAL": "1"},
        )
        env.install_dags(pipeline_dag_file())
        env.migrate()

        def run(conf: dict[str, Any] | None = None, **settings: str) -> tuple[str, dict[str, Any], int]:
            """One run (``settings``: environment variables its DAG file reads): its state, its manifest,
            and the submits it sent."""
            before = emulator.stats()["submits"]
            argv = env.command("dags", "test", PIPELINE_DAG_ID, "-c", json.dumps(conf or {}))
            done = subprocess.run(
                argv, env={**env.env(), **settings}, capture_output=True, text=True, timeout=300, check=False
            )
            ((state,),) = env.query(
                "SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", PIPELINE_DAG_ID
            )
            assert done.returncode == 0 or state == "failed", done.stdout[-3000:] + done.stderr[-3000:]
            return state, _manifests(s3)[-1], emulator.stats()["submits"] - before

        # Ingestion takes images in key order: the last by key waits on the first run.
        by_key = sorted(catalog[:PRODUCTS], key=lambda p: p.product_id + p.extension)
        first_three, fourth, new = (
            [p.product_id for p in by_key[:MAP_LENGTH]],
            by_key[-1].product_id,
            catalog[-1].product_id,
        )
        ids = [*first_three, fourth, new]

        # A dry run plans what fits under the cap, lists the rest as waiting, and sends nothing.
        state, plan, sent = run({"dry_run": True})
        assert (state, sent, plan["plan"]) == ("success", 0, True)
        assert _statuses(plan) == {**dict.fromkeys(first_three, "planned"), fourth: "waiting"}
        assert plan["total_price"] == plan["estimated_price"] == MAP_LENGTH * 1.0 and plan["actual_price"] == 0
        assert all(row["request"]["image_url"].startswith("s3://") for row in plan["products"] if row.get("request"))
        assert not [o for o in s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="videos/").get("Contents", [])]

        # Over its budget, a run pays nothing (the estimate counts only what it would pay).
        state, refused, sent = run({"max_total_price": MAP_LENGTH - 0.5})
        assert (state, sent) == ("failed", 0)
        assert refused["counts"]["not_submitted"] == MAP_LENGTH and refused["actual_price"] == 0
        assert "over max_total_price=2.5" in next(
            r["error"] for r in refused["products"] if r["status"] == "not_submitted"
        )

        # Day 1 pays what the cap lets through; day 2 the product left waiting, reusing the rest.
        state, day1, sent = run()
        assert (state, sent) == ("success", MAP_LENGTH), day1
        assert _statuses(day1) == {**dict.fromkeys(first_three, "uploaded"), fourth: "waiting"}
        state, day2, sent = run()
        assert (state, sent) == ("success", 1)
        assert _statuses(day2) == {**dict.fromkeys(first_three, "reused"), fourth: "uploaded"}
        assert day2["total_price"] == 1.0 and day2["estimated_price"] == 1.0
        paid_on_day1 = {row["product_id"]: row for row in day1["products"]}
        for row in day2["products"]:
            if row["status"] == "reused":  # the same video, and who paid for it
                assert (row["video"], row["sha256"]) == (
                    paid_on_day1[row["product_id"]]["video"],
                    paid_on_day1[row["product_id"]]["sha256"],
                )
                assert row["paid_by_run"] == day1["dag_run"]

        # Day 3, nothing changed: nothing paid, no image or sidecar read, every product in the manifest.
        state, day3, sent = run()
        assert (state, sent) == ("success", 0)
        assert _statuses(day3) == dict.fromkeys([*first_three, fourth], "reused")
        assert day3["reads"]["images"] == 0 and day3["reads"].get("sidecars", 0) == 0, day3["reads"]
        assert day3["total_price"] == 0 and day3["actual_price"] == 0
        _assert_exact_bytes(s3, day3)

        # Day 4: one image replaced, one sidecar changed (its submit's answer goes missing), one product
        # new: exactly those three are submitted; the ambiguous one is held on day 5.
        replaced, changed, unchanged = by_key[0], by_key[1], by_key[2]
        s3.put_object(
            Bucket=SOURCE_BUCKET,
            Key=f"{SOURCE_PREFIX}{replaced.product_id}{replaced.extension}",
            Body=render_product_image(replaced, size=(640, 400)),
        )
        sidecar = {**changed.sidecar(), "style": f"bold, {LOST}"}
        s3.put_object(Bucket=SOURCE_BUCKET, Key=f"{SOURCE_PREFIX}{changed.product_id}.json", Body=json.dumps(sidecar))
        seed_products(s3, [catalog[PRODUCTS]], corrupt=False)
        emulator.faults.set(lost_prompts=(LOST,))
        state, day4, sent = run()
        assert sent == 3
        assert _statuses(day4) == {
            replaced.product_id: "uploaded",
            changed.product_id: "ambiguous",
            unchanged.product_id: "reused",
            fourth: "reused",
            new: "uploaded",
        }
        assert next(r for r in day4["products"] if r["status"] == "ambiguous")["request_id"]
        _assert_exact_bytes(s3, day4)
        new_video = next(r["video"] for r in day4["products"] if r["product_id"] == replaced.product_id)
        assert new_video != paid_on_day1[replaced.product_id]["video"], "a new video never overwrites the old one"

        emulator.faults.clear()
        state, day5, sent = run()
        assert (state, sent) == ("success", 0)
        assert _statuses(day5) == {**dict.fromkeys(ids, "reused"), changed.product_id: "held"}
        held = next(r for r in day5["products"] if r["status"] == "held")
        assert held["request_id"] == next(r for r in day4["products"] if r["status"] == "ambiguous")["request_id"]
        _assert_exact_bytes(s3, day5)

        # Two ad formats, the prompt writer on (and a cap that lets every item through): each (product,
        # format) is one paid job of its format's size, its prompt written once by the chat model; the
        # held product's hold is its default video's, not its formats'.
        formats = {"formats": ["9:16", "16:9"]}
        writer = {"COGVIDEO_PIPELINE_PROMPT_WRITER": "on", "AIRFLOW__CORE__MAX_MAP_LENGTH": "16"}
        chats = emulator.stats()["chat_calls"]
        state, day6, sent = run(formats, **writer)
        pairs = {(p, v) for p in ids for v in ("9x16", "16x9")}
        assert (state, sent) == ("success", len(pairs)), day6["counts"]
        assert emulator.stats()["chat_calls"] - chats == len(pairs), "one writing per (product, format)"
        rows = {(r["product_id"], r["variant"]): r for r in day6["products"]}
        assert set(rows) == pairs and {r["status"] for r in rows.values()} == {"uploaded"}
        assert Counter(r["job_id"] for r in rows.values()).most_common(1)[0][1] == 1, "one job each"
        sizes = {"9x16": "1080x1920", "16x9": "1920x1080"}
        gallery = s3.get_object(Bucket=OUTPUT_BUCKET, Key=parse_s3_uri(day6["gallery"])[1])["Body"].read().decode()
        for (_, variant), row in rows.items():
            assert row["request"]["size"] == sizes[variant], row
            assert row["prompt_writing"]["source"] == "writer" and row["prompt_writing"]["model"] == "glm-4-plus"
            assert row["template_prompt"] and row["prompt"] != row["template_prompt"], row
            assert str(escape(row["prompt"])) in gallery, "the written prompt is on the gallery's card"
        _assert_exact_bytes(s3, day6)

        # The next day, nothing changed: nothing paid, no chat call, every (product, format) reused.
        state, day7, sent = run(formats, **writer)
        assert (state, sent) == ("success", 0)
        assert emulator.stats()["chat_calls"] - chats == len(pairs), "no chat call on an unchanged catalog"
        assert {(r["product_id"], r["variant"]): r["status"] for r in day7["products"]} == dict.fromkeys(
            pairs, "reused"
        )
        assert day7["reads"]["images"] == 0
        _assert_exact_bytes(s3, day7)
