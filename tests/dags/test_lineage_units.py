"""lineage.py case by case, with the real OpenLineage provider's classes: how each kind of image is
named, what the ``cogvideo_job`` facet may and may not carry, and the paths that did not defer.
The end-to-end run (dag.test(), the file transport) is ``test_lineage.py``."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_cogvideo.lineage import JOB_FACET, dataset_for, generation_lineage
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator

pytest.importorskip("airflow.providers.openlineage")


def named(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def resumed(event: dict[str, Any]) -> SimpleNamespace:
    """A task instance as the Task SDK starts one that resumes from a deferral (the trigger event in
    its run context, encoded as the SDK sends it)."""
    from airflow.sdk.serde import serialize

    context = SimpleNamespace(next_method="execute_complete", next_kwargs=serialize({"event": event}))
    return SimpleNamespace(_ti_context_from_server=context)


SUCCESS = {
    "v": 1,
    "status": "success",
    "reason": "success",
    "message": "done",
    "job_id": "8802",
    "polls": 3,
    "waited_seconds": 61.0,
    "result": {
        "id": "8802",
        "model": "cogvideox-3",
        "request_id": "af-1",
        "task_status": "SUCCESS",
        "video_result": [
            {
                "url": "https://cdn.example.com/v/8802.mp4?X-Amz-Signature=deadbeef&X-Amz-Expires=3600",
                "cover_image_url": "https://cdn.example.com:8443/c/8802.png?expires=1&signature=abc",
            }
        ],
    },
}


def test_every_kind_of_image_reference_is_named_or_left_out(tmp_path: Path) -> None:
    photo = tmp_path / "mug.png"
    photo.write_bytes(b"\x89PNG")
    op = CogVideoGenerateOperator(
        task_id="g",
        model="viduq1-start-end",
        image=[
            "s3://shop/incoming/mug.png",
            "https://user:pw@img.example.com:8443/a/b.jpg?X-Amz-Signature=abc#frag",
        ],
    )
    lineage = generation_lineage(op, resumed(SUCCESS))
    assert named(lineage.inputs) == [("s3://shop", "incoming/mug.png"), ("https://img.example.com:8443", "/a/b.jpg")]
    inline = "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()
    op = CogVideoGenerateOperator(task_id="g2", model="viduq1-start-end", image=[inline, str(photo)])
    assert named(generation_lineage(op, resumed(SUCCESS)).inputs) == [("file", str(photo.resolve()))]
    assert dataset_for("aGVsbG8=") is None and dataset_for("") is None and dataset_for("s3://") is None


def test_the_job_facet_carries_the_job_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_COGVIDEO_DEFAULT", json.dumps({"conn_type": "cogvideo", "password": "abc.defghi"}))
    op = CogVideoGenerateOperator(
        task_id="g",
        model="cogvideox-3",
        prompt="SECRET-PROMPT a mug",
        image="s3://shop/mug.png",
        fps="60",  # a rendered template: read as the field's type
        size="1920x1080",
        quality="quality",
        user_id="customer-4711",
        extra_body={"api_key": "sk-never"},
    )
    assert op.hook.settings.base_url.startswith("https://open.bigmodel.cn")  # read while the task ran
    lineage = generation_lineage(op, resumed(SUCCESS))
    facet = lineage.run_facets[JOB_FACET]
    assert (facet.jobId, facet.requestId, facet.model, facet.taskStatus) == ("8802", "af-1", "cogvideox-3", "SUCCESS")
    assert facet.options == {"quality": "quality", "size": "1920x1080", "fps": 60}
    assert (facet.price, facet.priceCurrency) == (1.0, "CNY")
    shown = repr(lineage)
    for secret in ("SECRET-PROMPT", "customer-4711", "sk-never", "Signature", "signature", "expires", "deadbeef"):
        assert secret not in shown
    assert named(lineage.outputs) == [
        ("https://cdn.example.com", "/v/8802.mp4"),
        ("https://cdn.example.com:8443", "/c/8802.png"),
    ]


def test_a_task_that_did_not_defer_reports_its_job_and_a_dry_run_its_status() -> None:
    op = CogVideoGenerateOperator(task_id="g", model="cogvideox-flash", prompt="a lamp")
    op._job_id = "77"  # what the worker path (or wait_for_completion=False) leaves on the operator
    facet = generation_lineage(op, SimpleNamespace()).run_facets[JOB_FACET]
    assert (facet.jobId, facet.model, facet.price) == ("77", "cogvideox-flash", None)
    dry = CogVideoGenerateOperator(task_id="d", model="cogvideox-flash", prompt="a lamp", dry_run="True")
    lineage = generation_lineage(dry, SimpleNamespace())
    assert (lineage.run_facets[JOB_FACET].taskStatus, lineage.run_facets[JOB_FACET].jobId) == ("DRY_RUN", None)
    assert lineage.outputs == []


def test_the_facet_serialises_as_openlineage_sends_it() -> None:
    from openlineage.client.serde import Serde

    op = CogVideoGenerateOperator(task_id="g", model="cogvideox-3", image="s3://shop/mug.png")
    facet = generation_lineage(op, resumed(SUCCESS)).run_facets[JOB_FACET]
    sent = json.loads(Serde.to_json(facet))
    assert sent["jobId"] == "8802" and sent["_producer"] and sent["_schemaURL"]


_IMPORTS = """
import sys
import airflow_provider_cogvideo.lineage
import airflow_provider_cogvideo.operators.cogvideo
import airflow_provider_cogvideo.operators.product_images
import airflow_provider_cogvideo.transfers.cogvideo_to_s3
discovery = {"airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info"}  # Airflow's own
loaded = {m for m in sys.modules if m.startswith(("openlineage", "airflow.providers.openlineage"))} - discovery
print(sorted(loaded | {m for m in sys.modules if m.startswith("airflow.providers.common.compat.openlineage")}))
"""


def test_the_provider_stays_optional() -> None:
    """Importing the operators and lineage.py loads nothing of OpenLineage (Airflow's provider discovery
    reads the provider's info, that is all): only the methods the OpenLineage provider calls import it."""
    run = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True)
    assert run.stdout.strip().splitlines()[-1] == "[]"
