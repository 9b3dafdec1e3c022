"""CogVideoRunRecordOperator on moto's S3: the manifest and the gallery written, one XCom pull per (task,
key) read as the task SDK answers it, holds written and cleared, the index compacted, a run refused by
its budget failed after its record is written."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cogvideo import video_index
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.video_index import (
    Hold,
    IndexLocation,
    StoredObject,
    entry_from_upload,
    load_index,
    write_entry,
    write_hold,
)
from tests.unit.conftest import FakeTI

BUCKET = "out"
INDEX = f"s3://{BUCKET}/videos/"
RUN = "scheduled__2026-12-01T00:00:00+00:00"
MANIFEST_KEY = "manifests/2026-12-01/run.json"
GALLERY_KEY = "gallery/2026-12-01/run.html"


class RunTI(FakeTI):
    """The run's XComs as the task SDK's ``xcom_pull`` answers them with ``map_indexes`` left unset
    (``XCom.get_all``): None when nothing was pushed, the bare value when one instance pushed, else the
    values in map-index order without their indexes. Passing ``map_indexes`` at all is a TypeError here:
    ``map_indexes=None`` would read map index -1, nothing of a mapped task."""

    task_id = "record"

    def __init__(self, pushed: dict[tuple[str, str], list[Any]]) -> None:
        super().__init__()
        self.pushed = pushed
        self.pulls: list[tuple[str, str]] = []

    def xcom_pull(self, *, task_ids: str, key: str = "return_value") -> Any:  # type: ignore[override]
        self.pulls.append((task_ids, key))
        values = [json.loads(json.dumps(v)) for v in self.pushed.get((task_ids, key), [])]
        if not values:
            return None
        return values[0] if len(values) == 1 else values


def item(pid: str, fingerprint: str) -> dict[str, Any]:
    metadata = {"product_id": pid, "variant": "default", "title": pid.title(), "fingerprint": fingerprint}
    return {"image": f"s3://products/incoming/{pid}.png", "prompt": f"{pid} turning", "metadata": metadata}


def generated(pid: str, fingerprint: str, status: str = "SUCCESS") -> dict[str, Any]:
    return {
        "id": None if status == "DRY_RUN" else f"job-{pid}",
        "model": "cogvideox-3",
        "request_id": f"req-{pid}",
        "task_status": status,
        "metadata": item(pid, fingerprint)["metadata"],
        "price": 1.0,
        "price_currency": "CNY",
        "prompt": f"{pid} turning",
        "request": {"model": "cogvideox-3"},
    }


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket=BUCKET)
    return moto_s3


def stored_upload(s3: Any, pid: str, fingerprint: str) -> dict[str, Any]:
    """What the transfer returns for a stored, indexed video (its entry written as the transfer writes it)."""
    location = IndexLocation.parse(INDEX)
    result = generated(pid, fingerprint)
    key = location.video_key(pid, "default", fingerprint, result["id"])
    answer = s3.put_object(Bucket=BUCKET, Key=key, Body=b"mp4 " + pid.encode())
    video = StoredObject(key=key, size=4 + len(pid), etag=answer["ETag"].strip('"'), sha256="ab" * 32)
    entry = entry_from_upload(
        location=location, result=result, video=video, cover=None, run_id=RUN, paid_at=datetime.now(timezone.utc)
    )
    entry_key, etag = write_entry(s3, location, entry)
    return {
        **result,
        "s3_uri": f"s3://{BUCKET}/{key}",
        "cover_s3_uri": None,
        "size": video.size,
        "sha256": video.sha256,
        "already_present": False,
        "index_entry": {"key": entry_key, "etag": etag, "body": entry.to_json()},
    }


def record(**kwargs: Any):
    from airflow_provider_cogvideo.operators.run_record import CogVideoRunRecordOperator

    defaults = {
        "task_id": "record",
        "s3_bucket": BUCKET,
        "manifest_key": MANIFEST_KEY,
        "gallery_key": GALLERY_KEY,
        "video_index": INDEX,
        "aws_conn_id": "aws_test",
    }
    return CogVideoRunRecordOperator(**{**defaults, **kwargs})


def context(ti: RunTI) -> dict[str, Any]:
    started = datetime.now(timezone.utc) - timedelta(minutes=3)
    return {"ti": ti, "run_id": RUN, "dag_run": SimpleNamespace(start_date=started)}


def manifest_in(s3: Any) -> dict[str, Any]:
    answer = s3.get_object(Bucket=BUCKET, Key=MANIFEST_KEY)
    assert answer["ContentType"] == "application/json"
    return json.loads(answer["Body"].read())


def test_a_run_is_recorded_held_released_and_compacted(s3, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_cogvideo.operators import run_record

    compactions: list[list[Any]] = []

    def compact(client: Any, location: IndexLocation, *, known: Any = ()) -> Any:
        compactions.append(list(known))
        return video_index.compact(client, location, known=known)

    monkeypatch.setattr(run_record, "compact", compact)
    location = IndexLocation.parse(INDEX)
    # mug was held by an earlier run; this run released and paid it: its hold goes once it is stored.
    earlier = Hold("mug", "default", "req-old", "scheduled__2026-11-30", "2026-11-30T00:00:00+00:00", None, None)
    write_hold(s3, location, earlier)
    # vase was held too; the person found its job had made a video: released, it is reused, its hold goes.
    write_hold(s3, location, Hold("vase", "default", "req-v", "scheduled__2026-11-30", earlier.at, None, None))
    items = [item("mug", "f" * 64), item("cup", "c" * 64), item("lamp", "1" * 64), item("tea", "7" * 64)]
    reused = {"product_id": "vase", "variant": "default", "status": "reused", "price": 0.0, "paid_by_run": "r0"}
    ti = RunTI(
        {
            ("ingest", "return_value"): [items],  # an unmapped task: its one value, a list
            ("ingest", "catalog"): [[reused]],
            ("ingest", "rejected"): [[{"product_id": "bad", "image": "s3://products/incoming/bad.txt", "reason": "x"}]],
            ("ingest", "catalog_reads"): [{"list": 1, "get_index": 1, "images": 4}],
            ("plan", "estimate"): [{"price": 4.0, "currency": "CNY", "budget": None, "refused": False, "paid": 4}],
            ("product.generate", "return_value"): [generated("mug", "f" * 64), generated("tea", "7" * 64)],
            ("product.generate", "error"): [
                {
                    "error": "submit answer lost",
                    "status": "ambiguous",
                    "request_id": "req-cup",
                    "product_id": "cup",
                    "variant": "default",
                },
                {"error": "job FAIL", "type": "X", "product_id": "lamp", "variant": "default"},
            ],
            ("product.generate", "spend"): [{"paid": 1.0}, {"paid": 1.0}, {"paid": 1.0}, {"paid": 1.0}],
            ("product.upload", "return_value"): [stored_upload(s3, "mug", "f" * 64)],  # one instance: a bare dict
            ("product.upload", "error"): [{"error": "upload 503", "product_id": "tea", "variant": "default"}],
        }
    )
    mug = ti.pushed["product.upload", "return_value"][0]["index_entry"]
    result = record().execute(context(ti))

    # The entry this run's upload wrote is taken as known: the compaction need not read it back.
    assert compactions == [[(mug["key"], mug["etag"], mug["body"])]]
    # One pull per (task, key), none per product.
    assert len(ti.pulls) == len(set(ti.pulls)) == 10
    document = manifest_in(s3)
    statuses = {row["product_id"]: row["status"] for row in document["products"]}
    assert statuses == {
        "mug": "uploaded",
        "cup": "ambiguous",
        "lamp": "failed",
        "tea": "failed",
        "vase": "reused",
        "bad": "refused",
    }
    assert document["products"][3]["error"]["error"] == "upload 503"
    assert (document["total_price"], document["actual_price"], document["plan"]) == (1.0, 4.0, False)
    assert document["gallery"] == f"s3://{BUCKET}/{GALLERY_KEY}" and document["dag_run"] == RUN
    assert 180 <= document["elapsed_seconds"] < 240
    assert document["reads"] == {"list": 1, "get_index": 1, "images": 4}
    assert result == {
        **document["counts"],
        "manifest": f"s3://{BUCKET}/{MANIFEST_KEY}",
        "gallery_url": result["gallery_url"],
    }
    assert result["gallery_url"].startswith(f"https://{BUCKET}.s3.amazonaws.com/{GALLERY_KEY}?")
    page = s3.get_object(Bucket=BUCKET, Key=GALLERY_KEY)["Body"].read().decode()
    assert 'data-product-id="cup" data-status="ambiguous"' in page and "Refused at ingestion" in page

    index = load_index(s3, location)
    held = index.held("cup", "default")
    assert (held.request_id, held.run_id, held.reason) == ("req-cup", RUN, "submit answer lost")
    assert held.fingerprint == "c" * 64
    assert index.held("mug", "default") is None  # released: uploaded this run
    assert index.held("vase", "default") is None  # released: reused this run
    assert index.held("lamp", "default") is None and index.held("tea", "default") is None  # failed: tried again
    assert index.find("mug", "default", "f" * 64) is not None
    # The compacted document holds every entry and hold listed: the next run reads it with one GET.
    assert index.requests["get"] == 1


def test_a_run_refused_by_its_budget_fails_after_writing_its_record(s3) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    ti = RunTI(
        {
            ("ingest", "return_value"): [[item("a", "a" * 64), item("b", "b" * 64)]],
            ("plan", "estimate"): [{"price": 2.0, "currency": "CNY", "budget": 1.0, "refused": True, "paid": 2}],
        }
    )
    with pytest.raises(AirflowFailException, match=r"^Run refused by its budget: estimate 2 CNY for 2 paid") as err:
        record().execute(context(ti))
    assert f"manifest s3://{BUCKET}/{MANIFEST_KEY}" in str(err.value)
    document = manifest_in(s3)
    assert [row["status"] for row in document["products"]] == ["not_submitted", "not_submitted"]
    assert document["not_submitted"] == 2
    assert s3.head_object(Bucket=BUCKET, Key=GALLERY_KEY)["ContentType"] == "text/html; charset=utf-8"


def test_a_dry_run_writes_a_plan_and_leaves_the_index_alone(s3) -> None:
    ti = RunTI(
        {
            ("ingest", "return_value"): [[item("a", "a" * 64)]],
            ("product.generate", "return_value"): [generated("a", "a" * 64, status="DRY_RUN")],
        }
    )
    result = record(dry_run="True").execute(context(ti))
    document = manifest_in(s3)
    assert (document["plan"], document["products"][0]["status"], result["planned"]) == (True, "planned", 1)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="videos/")  # no hold, no compaction
    # Nothing to plan (every product reused): still a plan, as the param says.
    ti = RunTI({("ingest", "catalog"): [[{"product_id": "v", "variant": "default", "status": "reused"}]]})
    record(dry_run=True).execute(context(ti))
    assert manifest_in(s3)["plan"] is True


def test_without_an_index_only_the_record_is_written(s3) -> None:
    ti = RunTI({("ingest", "return_value"): [[item("a", "a" * 64)]]})
    result = record(video_index=None).execute(context(ti))
    assert result["failed"] == 1
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert sorted(keys) == [GALLERY_KEY, MANIFEST_KEY]


def test_bad_settings_are_refused(s3) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(CogVideoValidationError, match="manifest_key"):
        record(manifest_key="manifests/../x.json")
    with pytest.raises(CogVideoValidationError, match="media"):
        record(media="public")
    ti = RunTI({})
    with pytest.raises(AirflowFailException, match="video_index"):
        record(video_index="videos/").execute(context(ti))
    with pytest.raises(AirflowFailException, match="dry_run"):
        record(dry_run="maybe").execute(context(ti))
    assert ti.pulls == [] and "Contents" not in s3.list_objects_v2(Bucket=BUCKET)  # refused before anything


def test_defaults_and_documented_parameters() -> None:
    from airflow_provider_cogvideo.docs import param_table_markdown
    from airflow_provider_cogvideo.operators.run_record import CogVideoRunRecordOperator

    op = record()
    assert op.trigger_rule == "all_done"
    assert record(trigger_rule="all_success").trigger_rule == "all_success"
    table = param_table_markdown(CogVideoRunRecordOperator)  # raises on a parameter without :param:
    assert "| `video_index` | `str \\| None` | `None` | yes |" in table


def test_the_fake_pulls_as_the_installed_task_sdk_does() -> None:
    """RunTI's answers are the real ``RuntimeTaskInstance.xcom_pull``'s (``XCom`` patched: no API server),
    so the record's one pull per (task, key) reads every mapped instance on this Airflow; and
    ``map_indexes=None`` reads map index -1 only, which is why the operator never passes it."""
    from unittest import mock

    from airflow.sdk.execution_time import task_runner

    from airflow_provider_cogvideo.operators.run_record import all_values

    pushed = {"many": [{"n": 1}, {"n": 2}], "one": [{"n": 1}], "list": [[{"n": 1}, {"n": 2}]]}
    fake = RunTI({(task, "k"): values for task, values in pushed.items()})
    ti = task_runner.RuntimeTaskInstance.model_construct(dag_id="d", run_id="r", task_id="record", map_index=-1)
    one_calls: list[Any] = []
    with (
        mock.patch.object(task_runner.XCom, "get_all", side_effect=lambda **kw: pushed.get(kw["task_id"])),
        mock.patch.object(task_runner.XCom, "get_one", side_effect=lambda **kw: one_calls.append(kw["map_index"])),
    ):
        for task in ("many", "one", "list", "none"):
            answer = ti.xcom_pull(task_ids=task, key="k")
            assert answer == fake.xcom_pull(task_ids=task, key="k"), task
            assert all_values(answer) == [v for values in pushed.get(task, []) for v in all_values(values)], task
        assert ti.xcom_pull(task_ids="many", key="k", map_indexes=None) is None
    assert one_calls == [None]  # a request for one map index (the API server reads None as -1), not get_all
