"""Real Airflow (dag.test(): the scheduler loop in process, triggers run in line) against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig

from .dag_files.cogvideo_test_dags import clear_dag, lost_dag, mapped_dag, retry_dag, taskflow_dag, twins_dag


@pytest.fixture
def cogvideo_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(duration=1.0, jitter=0.0, seed=7)


@pytest.fixture
def out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "results.json"
    monkeypatch.setenv("COGVIDEO_TEST_OUT", str(path))
    return path


def test_mapped_generation_dag(airflow_db, cogvideo_emulator, cogvideo_conn, out: Path) -> None:
    run = mapped_dag.test()
    assert run.state == "success"
    results = json.loads(out.read_text())
    assert sorted(r["metadata"]["product_id"] for r in results) == [f"sku-{i}" for i in range(8)]
    for result in results:
        assert result["task_status"] == "SUCCESS"
        assert result["video_url"].startswith(cogvideo_emulator.base_url.split("/api/")[0])
        assert result["prompt"] == f"product {result['metadata']['product_id'][4:]} turning slowly"
        assert result["request"]["size"] == "720x480"
    assert cogvideo_emulator.stats()["submits"] == 8, "one paid request per product"


def test_retry_reconnects_through_task_state_store(airflow_db, cogvideo_emulator, cogvideo_conn, out: Path) -> None:
    """Try 1 times out while the job renders; try 2 must reconnect to the same job, not pay again."""
    run = retry_dag.test()
    assert run.state == "success"
    assert json.loads(out.read_text())["task_status"] == "SUCCESS"
    assert cogvideo_emulator.stats()["submits"] == 1, "the retry reconnected instead of resubmitting"
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "generate"]
    assert ti.try_number >= 2, "the first try really timed out"


def test_retry_after_a_lost_success_report_pays_nothing(
    airflow_db, cogvideo_emulator, cogvideo_conn, out: Path
) -> None:
    """Step 8, item 0, in real Airflow: try 1's job succeeded but the try failed afterwards; the retry
    must return that job (one paid job), not submit a new one."""
    run = lost_dag.test()
    assert run.state == "success"
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "generate"]
    assert ti.try_number == 2, "try 1 really failed after its job succeeded"
    result = json.loads(out.read_text())
    assert result["task_status"] == "SUCCESS"
    assert cogvideo_emulator.stats()["submits"] == 1, "the retry returned the finished job instead of paying"


def test_store_is_keyed_by_map_index(airflow_db, cogvideo_emulator, cogvideo_conn, out: Path) -> None:
    """Two mapped products with identical inputs share a fingerprint: each must still get its own job."""
    run = twins_dag.test()
    assert run.state == "success"
    results = json.loads(out.read_text())
    assert len({r["id"] for r in results}) == 2
    assert cogvideo_emulator.stats()["submits"] == 2


def test_store_survives_a_clear(airflow_db, cogvideo_emulator, cogvideo_conn) -> None:
    """The run gives up while the job renders (no retries) and a user clears the task: the stored job
    must survive the clear, so the next try reconnects to it (as the retry test shows) instead of
    paying again. dag.test() cannot re-run a cleared task in the same run (it replaces the run), so
    this checks the store row after Airflow's own clear_task_instances()."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run = clear_dag.test()
    assert run.state == "failed"
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == clear_dag.dag_id, TaskInstance.run_id == run.run_id)
        ).all()
        clear_task_instances(list(tis), session)
        session.flush()
        assert {ti.state for ti in tis} == {None}, "the task instance was cleared"
        rows = session.scalars(
            select(TaskStateStoreModel).where(
                TaskStateStoreModel.dag_id == clear_dag.dag_id, TaskStateStoreModel.run_id == run.run_id
            )
        ).all()
        stored = {(row.task_id, row.map_index, row.key): json.loads(row.value) for row in rows}
    job = stored[("generate", -1, "cogvideo_job")]
    assert job["job_id"] and job["fingerprint"]
    assert cogvideo_emulator.stats()["submits"] == 1


def test_synchronous_path_against_the_emulator(cogvideo_emulator, cogvideo_conn) -> None:
    """deferrable=False runs the trigger's own polling coroutine on the worker, over real HTTP."""
    from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
    from tests.unit.conftest import FakeStateStore, FakeTI

    op = CogVideoGenerateOperator(
        task_id="sync", prompt="a bicycle", model="vidu2-reference", image="https://example.com/bike.png",
        deferrable=False, poll_interval=1, metadata={"sku": "b1"},
    )  # fmt: skip
    result = op.execute({"ti": FakeTI(), "task_state_store": FakeStateStore()})
    assert (result["task_status"], result["model"], result["metadata"]) == ("SUCCESS", "vidu2-reference", {"sku": "b1"})
    assert result["video_url"].startswith(cogvideo_emulator.url_root)
    assert cogvideo_emulator.stats()["submits"] == 1


@pytest.mark.parametrize(
    "faults",
    [
        {"submit_created_error_rate": 1.0, "submit_created_error_codes": ("500",)},
        {"submit_created_error_rate": 1.0, "submit_created_error_codes": ("502",)},
        {"submit_lost_rate": 1.0},
        {"submit_malformed_id_rate": 1.0, "malformed_id_kinds": ("dotdot",)},
        {"submit_malformed_id_rate": 1.0, "malformed_id_kinds": ("float",)},
    ],
    ids=["created-then-500", "created-then-502", "answer-lost", "malformed-id", "wrongly-typed-id"],
)
def test_a_submit_that_may_have_created_a_job_is_paid_once(
    airflow_db, cogvideo_emulator, cogvideo_conn, faults: dict
) -> None:
    """Step 8, item 1-2, in real Airflow against a server that creates the job and then answers badly:
    the task fails without retrying (retries=2 notwithstanding), the job is paid once, and the failure
    is recorded as ambiguous with the request_id to look up."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from .dag_files.cogvideo_test_dags import paid_once_dag

    cogvideo_emulator.faults.set(**faults)
    run = paid_once_dag.test()
    assert run.state == "failed"
    (ti,) = [ti for ti in run.get_task_instances() if ti.task_id == "generate"]
    assert ti.try_number == 1, "not retried: a retry could pay twice"
    stats = cogvideo_emulator.stats()
    assert stats["submits"] == 1 and len(stats["request_ids"]) == 1, "exactly one paid job"
    with create_session() as session:
        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == paid_once_dag.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.task_id == "generate",
                XComModel.key == "error",
            )
        ).one()
        error = XComModel.deserialize_value(row)
    assert (error["status"], error["request_id"]) == ("ambiguous", stats["request_ids"][0])


def test_hook_generate_in_a_taskflow_dag(airflow_db, cogvideo_emulator, cogvideo_conn, out: Path) -> None:
    """CogVideoHook.generate as a @task user writes it, run by real Airflow: one call, one paid job."""
    run = taskflow_dag.test()
    assert run.state == "success"
    assert json.loads(out.read_text())["task_status"] == "SUCCESS"
    assert cogvideo_emulator.stats()["submits"] == 1
