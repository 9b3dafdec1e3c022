"""The pipeline DAG on a real Airflow 3 deployment: api-server, scheduler, dag-processor and triggerer
as separate processes (SQLite + LocalExecutor), against the emulator at tier V0 and SeaweedFS.

What ``dag.test()`` cannot show and this test does: the tier-sized pool with ``include_deferred``
keeps the API at or under 5 jobs in flight while generation tasks wait *in the triggerer*, and a
triggerer killed mid-run is replaced without a task failing or a job being paid twice.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airflow_provider_cogvideo.demo import OUTPUT_BUCKET, PIPELINE_DAG_ID, pipeline_dag_file
from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, EmulatorHandle, parse_keys
from airflow_provider_cogvideo.emulator import running_emulator as start_emulator
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.products import ensure_bucket, sample_products, seed_products
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS, aws_connection_json, free_ports, running_seaweedfs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PRODUCTS = 12
TIER_SLOTS = 5  # tier V0
RENDER_SECONDS = 15.0  # long enough for the triggerer restart to land while jobs render
POLL_SECONDS = 2
MODEL = "cogvideox-3"
GENERATE = "product.generate"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
POOL_STATES = ("queued", "running", "deferred")  # what a pool with include_deferred counts


@pytest.fixture
def seaweedfs() -> Iterator[SeaweedFS]:
    with running_seaweedfs() as server:
        yield server


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(keys=parse_keys(f"{DEFAULT_TEST_KEY}:V0"), duration=RENDER_SECONDS, jitter=0.2, seed=6)
    with start_emulator(config) as handle:
        yield handle


def _deployment(home: Path, api_port: int, emulator: EmulatorHandle, s3: SeaweedFS) -> AirflowEnvironment:
    api = f"http://127.0.0.1:{api_port}"
    config = {
        ("core", "executor"): "LocalExecutor",
        # SQLite serialises writers: a few task processes at a time keep it from "database is locked".
        ("core", "parallelism"): "4",
        ("core", "execution_api_server_url"): f"{api}/execution/",
        ("api", "base_url"): api,
        ("api", "host"): "127.0.0.1",
        ("api", "port"): str(api_port),
        ("api_auth", "jwt_secret"): secrets.token_urlsafe(32),
        ("core", "simple_auth_manager_all_admins"): "True",
        ("scheduler", "scheduler_heartbeat_sec"): "1",
        ("scheduler", "job_heartbeat_sec"): "1",
        # The replacement triggerer adopts the killed one's triggers once its heartbeat is this old.
        ("triggerer", "job_heartbeat_sec"): "1",
        ("triggerer", "triggerer_health_check_threshold"): "5",
        ("dag_processor", "refresh_interval"): "5",
        ("dag_processor", "min_file_process_interval"): "30",
    }
    return AirflowEnvironment(
        home=home,
        connections={
            "cogvideo_default": connection_json(emulator),
            "aws_default": json.dumps(aws_connection_json(s3)),
        },
        config=config,
        extra_env={
            "COGVIDEO_PIPELINE_POLL_INTERVAL": str(POLL_SECONDS),
            "COGVIDEO_PIPELINE_MODEL": MODEL,
            "COGVIDEO_PIPELINE_SCHEDULE": "none",
        },
    )


@dataclass
class Observations:
    """What the monitor saw in the metadata DB while the run went on."""

    max_deferred: int = 0
    max_in_pool: int = 0
    trigger_classpaths: set[str] = field(default_factory=set)
    triggerers_by_trigger: dict[int, set[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class Monitor(threading.Thread):
    """Samples the generation task instances and the trigger table twice a second (read-only SQLite)."""

    def __init__(self, env: AirflowEnvironment) -> None:
        super().__init__(name="airflow-monitor", daemon=True)
        self.env = env
        self.seen = Observations()
        self.deferred_now: set[int] = set()
        self.stopped = threading.Event()

    def sample(self) -> None:
        states = self.env.query(
            "SELECT map_index, state FROM task_instance WHERE dag_id = ? AND task_id = ?", PIPELINE_DAG_ID, GENERATE
        )
        triggers = self.env.query('SELECT id, classpath, triggerer_id FROM "trigger"')
        self.deferred_now = {index for index, state in states if state == "deferred"}
        self.seen.max_deferred = max(self.seen.max_deferred, len(self.deferred_now))
        self.seen.max_in_pool = max(self.seen.max_in_pool, sum(1 for _, s in states if s in POOL_STATES))
        for trigger_id, classpath, triggerer_id in triggers:
            self.seen.trigger_classpaths.add(classpath)
            if triggerer_id is not None:
                self.seen.triggerers_by_trigger.setdefault(trigger_id, set()).add(triggerer_id)

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                self.sample()
            except Exception as exc:  # a locked DB for a moment; the next sample will do
                self.seen.errors.append(repr(exc))


def _api_healthy(api_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _dag_parsed(env: AirflowEnvironment) -> bool:
    errors = env.query("SELECT filename, stacktrace FROM import_error")
    if errors:
        raise AssertionError(f"the pipeline DAG failed to import: {errors}")
    return bool(env.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", PIPELINE_DAG_ID))


def _run_state(env: AirflowEnvironment) -> tuple[str, str] | None:
    rows = env.query("SELECT run_id, state FROM dag_run WHERE dag_id = ?", PIPELINE_DAG_ID)
    return rows[0] if rows else None


def _task_states(env: AirflowEnvironment) -> str:
    rows = env.query(
        "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = ? ORDER BY task_id, map_index",
        PIPELINE_DAG_ID,
    )
    return "\n".join(f"  {task}[{index}] {state} try {tries}" for task, index, state, tries in rows)


def _task_logs(home: Path, lines: int = 30) -> str:
    """The tail of every task log that mentions an error: where a failing task says why."""
    out = []
    for path in sorted((home / "logs").rglob("*.log")):
        text = path.read_text(errors="replace")
        if "error" in text.lower():
            out.append(f"----- {path.relative_to(home)}\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(out)


def test_pipeline_with_scheduler_and_triggerer(
    tmp_path: Path, seaweedfs: SeaweedFS, emulator: EmulatorHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    s3 = seaweedfs.boto3_client()
    seeded = seed_products(s3, sample_products(PRODUCTS), corrupt=False)
    ensure_bucket(s3, OUTPUT_BUCKET)
    (api_port,) = free_ports(1)
    env = _deployment(tmp_path / "airflow", api_port, emulator, seaweedfs)
    env.install_dags(pipeline_dag_file())
    env.migrate()
    env.cogvideo("pool", "--conn-id", "cogvideo_default")  # the tier (V0) comes from the connection
    assert env.query("SELECT slots, include_deferred FROM slot_pool WHERE pool = 'cogvideo'") == [(TIER_SLOTS, 1)]

    monitor = Monitor(env)
    with ProcessGroup(tmp_path / "component-logs") as components:
        try:
            component_env = env.env()
            for name in COMPONENTS:
                extra = ("--host", "127.0.0.1", "--port", str(api_port)) if name == "api-server" else ()
                components.start(name, env.command(name, *extra), component_env)
            alive = components.check_alive
            wait_until(lambda: _api_healthy(api_port), timeout=90, what="the api-server", alive=alive)
            wait_until(lambda: _dag_parsed(env), timeout=90, what="the DAG to be parsed", alive=alive)
            # A manual run from the CLI, as Airflow 3 makes it: no logical date (keys use run_after's day).
            env.run("dags", "unpause", PIPELINE_DAG_ID)
            env.run("dags", "trigger", PIPELINE_DAG_ID)
            monitor.start()
            run_id, _ = wait_until(lambda: _run_state(env), timeout=60, what="the triggered run", alive=alive)
            assert env.query("SELECT logical_date FROM dag_run WHERE run_id = ?", run_id) == [(None,)]

            # Kill the triggerer while several jobs render, then start a new one.
            def rendering() -> bool:
                # ... and the triggerer has picked triggers up: killing it must interrupt running
                # triggers (on a loaded machine the triggerer can lag behind the deferrals).
                picked_up = len(monitor.seen.triggerers_by_trigger)
                return len(monitor.deferred_now) >= 3 and emulator.stats()["in_flight"] >= 3 and picked_up >= 2

            def still_running() -> None:
                alive()
                state = _run_state(env)
                if state and state[1] in ("success", "failed"):
                    raise AssertionError(f"the run ended {state[1]} before 3 generation tasks were deferred at once")

            wait_until(rendering, timeout=180, what="3 generation tasks deferred", alive=still_running)
            killed_while_deferred = set(monitor.deferred_now)
            components.stop("triggerer", sig=signal.SIGKILL)
            components.start("triggerer", env.command("triggerer"), component_env)

            def finished() -> str | None:
                state = _run_state(env)
                return state[1] if state and state[1] in ("success", "failed") else None

            final = wait_until(finished, timeout=360, what="the run to finish", interval=1.0, alive=alive)
            monitor.stopped.set()
            monitor.join()
            monitor.sample()
            assert final == "success", f"run {run_id} ended {final}:\n{_task_states(env)}"
        except BaseException:
            monitor.stopped.set()
            with capsys.disabled():
                print(f"\n===== task instances =====\n{_task_states(env)}")
                print(f"===== monitor =====\n{monitor.seen}\nemulator: {emulator.stats()}")
                print(components.log_tails())
                print(_task_logs(env.home))
            raise
    elapsed = time.monotonic() - started

    # One run (the triggered one), every product through generate and upload. Airflow may retry a
    # generation task (a triggerer restart, an executor race that marks a finished try up_for_retry):
    # a retry reconnects to its job or returns the finished one, so it never costs a second job.
    assert len(env.query("SELECT 1 FROM dag_run WHERE dag_id = ?", PIPELINE_DAG_ID)) == 1
    tries = env.query(
        "SELECT map_index, state, try_number FROM task_instance WHERE dag_id = ? AND task_id = ?",
        PIPELINE_DAG_ID,
        GENERATE,
    )
    assert sorted((i, state) for i, state, _ in tries) == [(i, "success") for i in range(PRODUCTS)]
    labels = env.query(
        "SELECT rendered_map_index FROM task_instance WHERE dag_id = ? AND task_id IN (?, ?)",
        PIPELINE_DAG_ID,
        GENERATE,
        "product.upload",
    )
    assert sorted(label for (label,) in labels) == sorted(2 * list(seeded.product_ids)), "the grid shows product ids"
    retried = sorted(i for i, _, try_number in tries if try_number > 1)

    # Every video is in S3 and its bytes hash to what the manifest and the object's tag say.
    manifest_key = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/")["Contents"][0]["Key"]
    manifest = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=manifest_key)["Body"].read())
    assert (manifest["uploaded"], manifest["failed"]) == (PRODUCTS, 0)
    assert sorted(row["product_id"] for row in manifest["products"]) == sorted(seeded.product_ids)
    for row in manifest["products"]:
        bucket, _, key = row["video"].removeprefix("s3://").partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        assert hashlib.sha256(body).hexdigest() == row["sha256"] == tags["sha256"], row["video"]
        assert body[4:8] == b"ftyp", f"{row['video']} is not an MP4"
        assert row["cover"] and s3.head_object(Bucket=bucket, Key=row["cover"].split("/", 3)[3])["ContentLength"] > 0

    # The tier held: never more than 5 jobs in flight at the API, no 1302, one paid submit per product.
    stats = emulator.stats()
    key_id = parse_keys(DEFAULT_TEST_KEY)[0].key_id
    assert stats["max_in_flight_by_key_model"][f"{key_id}/{MODEL}"] <= TIER_SLOTS
    assert "1302" not in stats["rejections"], stats["rejections"]
    assert stats["submits"] == PRODUCTS, f"one paid job per product (generation tasks retried: {retried})"
    assert len(set(stats["request_ids"])) == PRODUCTS, "a request id was sent twice"
    assert manifest["actual_price"] == manifest["estimated_price"] == manifest["total_price"] == PRODUCTS * 1.0
    # ... and the pool, not luck, held it: the pool was filled, and never overfilled.
    assert 3 <= monitor.seen.max_in_pool <= TIER_SLOTS, monitor.seen
    assert stats["max_in_flight"] >= 3

    # The generation tasks waited in the triggerer (deferred, with our trigger), and the triggers of
    # the killed triggerer were adopted by its replacement (one trigger row, two triggerer ids).
    assert monitor.seen.max_deferred >= 3
    assert "airflow_provider_cogvideo.triggers.cogvideo.CogVideoTaskTrigger" in monitor.seen.trigger_classpaths
    adopted = [t for t, owners in monitor.seen.triggerers_by_trigger.items() if len(owners) > 1]
    assert adopted, f"no trigger moved to the new triggerer: {monitor.seen.triggerers_by_trigger}"
    assert killed_while_deferred <= {i for i, state, _ in tries if state == "success"}
    with capsys.disabled():
        print(
            f"\n[real Airflow] {PRODUCTS} products in {elapsed:.0f} s; max in flight {stats['max_in_flight']}, "
            f"max in pool {monitor.seen.max_in_pool}, max deferred {monitor.seen.max_deferred}; "
            f"{len(adopted)} trigger(s) adopted after the triggerer was killed with {len(killed_while_deferred)} "
            f"tasks deferred; generation tasks retried by Airflow: {retried or 'none'}"
        )
