"""Example DAGs parse cleanly, with no connection lookup and no network access at parse time."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from airflow_provider_cogvideo.demo import pipeline_dag_file

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


def _dagbag(path: Path):
    try:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(path))
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag

        return DagBag(dag_folder=str(path), include_examples=False)


def test_examples_parse_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("network access at DAG parse time")

    def no_connection(*args, **kwargs):
        raise AssertionError("connection lookup at DAG parse time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr("airflow.sdk.BaseHook.get_connection", no_connection)
    dag_ids: set[str] = set()
    # The pipeline ships in the package, with the demo that runs it; the other examples live in the repository.
    for path in (EXAMPLES, pipeline_dag_file()):
        dagbag = _dagbag(path)
        assert dagbag.import_errors == {}
        dag_ids |= set(dagbag.dag_ids)
    assert {"product_video_pipeline", "cogvideo_text_to_video", "cogvideo_submit_then_sense"} <= dag_ids


def test_pipeline_shape() -> None:
    dag = _dagbag(pipeline_dag_file()).dags["product_video_pipeline"]
    generate = dag.get_task("product.generate")
    assert generate.pool == "cogvideo"
    upload = dag.get_task("product.upload")
    assert upload.upstream_task_ids == {"product.generate"}
    assert upload.max_active_tis_per_dagrun == 2
    assert dag.get_task("manifest").trigger_rule == "all_done"
