"""Example DAGs parse cleanly, with no connection lookup and no network access at parse time."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from airflow_provider_cogvideo.demo import pipeline_dag_file, review_dag_file

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


def test_review_dag_shape() -> None:
    """The review DAG runs on the pipeline's runs, and each review's branches are its only direct
    downstream: a branch decides, for every direct downstream task, whether it runs or is skipped, so
    a later round must never be one (as giving it an earlier review's ``.output`` would make it): that
    review's Approve, timeout or last reject would decide for a round it does not lead to."""
    from airflow.sdk import AssetAll

    from airflow_provider_cogvideo.demo.pipeline_settings import PUBLISHED_VIDEOS, RUN_VIDEOS

    dagbag = _dagbag(review_dag_file())
    assert dagbag.import_errors == {}
    dag = dagbag.dags["product_video_review"]
    condition = dag.timetable.asset_condition  # the schedule: RUN_VIDEOS only
    assert isinstance(condition, AssetAll) and list(condition.objects) == [RUN_VIDEOS], condition

    rounds = sorted(int(t.task_id.rsplit("_", 1)[1]) for t in dag.tasks if t.task_id.startswith("video.review_"))
    assert len(rounds) >= 2 and rounds == list(range(1, len(rounds) + 1)), rounds
    last = rounds[-1]
    assert not dag.has_task(f"video.regenerate_{last}"), "the last round's reject regenerates nothing"
    for n in rounds:
        review = dag.get_task(f"video.review_{n}")
        branches = {f"video.publish_{n}"} | ({f"video.regenerate_{n}"} if n < last else set())
        assert {review.publish_task_id, review.regenerate_task_id} - {None} == branches
        assert review.downstream_task_ids == branches, (
            f"video.review_{n}'s direct downstream must be its branches {sorted(branches)}, "
            f"is {sorted(review.downstream_task_ids)}: its branch would decide for the others too"
        )
        publish = dag.get_task(f"video.publish_{n}")
        assert PUBLISHED_VIDEOS in publish.outlets
        if n < last:
            regenerate = dag.get_task(f"video.regenerate_{n}")
            assert regenerate.pool == "cogvideo"
            assert regenerate.deferrable is True
    assert dag.get_task("record").trigger_rule == "all_done"

    pipeline = _dagbag(pipeline_dag_file()).dags["product_video_pipeline"]
    manifest = pipeline.get_task("manifest")
    assert RUN_VIDEOS in manifest.outlets
    assert manifest.review == "{{ params.review }}"
    assert manifest.params.get_param("review").schema["enum"] == ["required", "publish_all", "off"]


@pytest.mark.parametrize(
    ("param", "variants"),
    [(None, []), ([], []), ("", []), (["9:16", "16:9"], ["9x16", "16x9"]), ("tiktok, amazon", ["tiktok", "amazon"])],
)
def test_the_formats_param_reaches_ingestion_as_text_it_reads(param: object, variants: list[str]) -> None:
    """A list param would render as its repr ("['9:16']"): the pipeline joins it for ingestion."""
    from jinja2 import Environment

    from airflow_provider_cogvideo.demo.product_video_pipeline import FORMATS_TEXT
    from airflow_provider_cogvideo.formats import checked_formats

    rendered = Environment().from_string(FORMATS_TEXT).render(params={"formats": param})
    assert [choice.variant for choice in checked_formats(rendered, "cogvideox-3")] == variants


def test_pipeline_settings_read_the_prompt_writer_setting() -> None:
    from airflow_provider_cogvideo.demo.pipeline_settings import _prompt_writer

    assert _prompt_writer("") is None and _prompt_writer("off") is None
    assert _prompt_writer("on") == {}
    assert _prompt_writer('{"model": "glm-4-flash", "instructions": "warm"}') == {
        "model": "glm-4-flash",
        "instructions": "warm",
    }
