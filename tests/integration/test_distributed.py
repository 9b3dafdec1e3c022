"""The pipeline DAG on the production topology, with a triggerer and a Celery worker lost mid-run.

Started by this test, all on 127.0.0.1 and free ports, each stopped by its own pid or group:
PostgreSQL (the metadata DB and Celery's result backend), Redis (the Celery broker, persistence
off), an api-server, a scheduler, a dag-processor, **two triggerers**, **two Celery workers**, the
emulator (a tier V0 key, renders of ~10 s) and SeaweedFS (S3).

What this shows that the LocalExecutor test does not:

* a triggerer killed with SIGKILL while it runs generation triggers: the *other* triggerer adopts
  them (one trigger row, two triggerer ids), nothing is restarted by hand;
* a Celery worker lost (its whole process tree SIGKILLed, like its host) while it runs
  generation tasks: Airflow finds them without a heartbeat, retries them on the other worker, and
  the retries reconnect to their jobs through ``task_state_store`` instead of paying again;
* through all that: exactly one paid job per product, never more than 5 in flight, no 1302, every
  video in S3 with the sha256 the manifest and the object tag say, the manifest listing every product.

When the worker is killed matters, because one moment of a generation task cannot be made safe by
any client: between recording "submitting" and storing the answer's job id (the API cannot look
jobs up by request id, so a retry from there must submit again). The test waits for a moment when
every generation task running on the victim has its job id stored (most are resuming from their
deferral: their job is done and the retry finds it), and nothing is queued that the victim might
have taken but not yet started (that would wait for ``task_queued_timeout``, below).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo.demo import OUTPUT_BUCKET, PIPELINE_DAG_ID, pipeline_dag_file
from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, EmulatorHandle, parse_keys
from airflow_provider_cogvideo.emulator import running_emulator as start_emulator
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment
from airflow_provider_cogvideo.testing.distributed import celery_settings, descends_from, kill_tree
from airflow_provider_cogvideo.testing.postgres import PostgresServer, running_postgres
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.products import ensure_bucket, sample_products, seed_products
from airflow_provider_cogvideo.testing.redis_server import RedisServer, running_redis
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS, aws_connection_json, free_ports, running_seaweedfs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(540)]

PRODUCTS = 20
TIER_SLOTS = 5  # tier V0
RENDER_SECONDS = 10.0  # +-20 %: four waves of renders; long enough for a triggerer kill to land mid-render
POLL_SECONDS = 2
MODEL = "cogvideox-3"
GENERATE, UPLOAD = "product.generate", "product.upload"
POOL_STATES = ("queued", "running", "deferred")  # what a pool with include_deferred counts
WORKERS = ("worker-1", "worker-2")
TRIGGERERS = ("triggerer-1", "triggerer-2")
RECONNECTED = ("already succeeded: returning its result without resubmitting", "Reconnecting to job")

# Failover knobs: how fast the survivors take over, tuned for a test of minutes (defaults in brackets).
FAILOVER = {
    # A triggerer whose heartbeat is older than this is dead; its triggers go to a live one [30 s].
    # Triggerers heartbeat every job_heartbeat_sec [5 s]: 1 s here, so 5 s is five missed beats.
    ("triggerer", "job_heartbeat_sec"): "1",
    ("triggerer", "triggerer_health_check_threshold"): "5",
    # A running task whose supervisor has not heartbeated for this long is failed (and retried) [300 s].
    # The supervisor beats at least every min_heartbeat_interval [5 s]: 2 s here, so 20 s is ten missed
    # beats (a false alarm would kill a live task: on 2 shared cores, keep a wide margin).
    ("scheduler", "task_instance_heartbeat_timeout"): "20",
    ("workers", "min_heartbeat_interval"): "2",
    ("scheduler", "task_instance_heartbeat_timeout_detection_interval"): "2",
    # A task queued for this long is revoked and queued again [600 s, checked every 120 s]: what
    # rescues a task the dead worker had taken from the broker but not started. Also the lifetime
    # of the workload token a queued task authenticates with, so not too short either.
    ("scheduler", "task_queued_timeout"): "90",
    ("scheduler", "task_queued_timeout_check_interval"): "10",
}
SPEED = {
    # The DAG is unpaused when the dag-processor first stores it: one `airflow dags unpause` (a CLI
    # start-up, 5-15 s on 2 busy cores) less before `airflow dags trigger`.
    ("core", "dags_are_paused_at_creation"): "False",
    ("scheduler", "scheduler_heartbeat_sec"): "1",
    ("scheduler", "job_heartbeat_sec"): "1",
    ("dag_processor", "refresh_interval"): "5",
    ("dag_processor", "min_file_process_interval"): "30",
    # Two workers of 4 processes: room for the 5 generation tasks' hand-offs and the uploads.
    ("celery", "worker_concurrency"): "4",
}


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
def seaweedfs() -> Iterator[SeaweedFS]:
    with running_seaweedfs() as server:
        yield server


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    config = EmulatorConfig(keys=parse_keys(f"{DEFAULT_TEST_KEY}:V0"), duration=RENDER_SECONDS, jitter=0.2, seed=10)
    with start_emulator(config) as handle:
        yield handle


def _deployment(
    home: Path, ports: list[int], postgres: PostgresServer, redis: RedisServer, emulator: EmulatorHandle, s3: SeaweedFS
) -> AirflowEnvironment:
    api_port, worker_logs_port, trigger_logs_port = ports
    api = f"http://127.0.0.1:{api_port}"
    config = {
        **celery_settings(postgres, redis),
        ("core", "execution_api_server_url"): f"{api}/execution/",
        ("api", "base_url"): api,
        ("api", "host"): "127.0.0.1",
        ("api", "port"): str(api_port),
        ("api_auth", "jwt_secret"): secrets.token_urlsafe(32),
        ("core", "simple_auth_manager_all_admins"): "True",
        # One log server of each kind (the second worker and triggerer skip theirs), on free ports:
        # the defaults (8793/8794) would collide with any other deployment on this machine.
        ("logging", "worker_log_server_port"): str(worker_logs_port),
        ("logging", "trigger_log_server_port"): str(trigger_logs_port),
        **FAILOVER,
        **SPEED,
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


def _components(env: AirflowEnvironment, api_port: int) -> dict[str, list[str]]:
    home = env.home
    return {
        "api-server": env.command("api-server", "--host", "127.0.0.1", "--port", str(api_port)),
        "scheduler": env.command("scheduler"),
        "dag-processor": env.command("dag-processor"),
        "triggerer-1": env.command("triggerer", "--pid", str(home / "triggerer-1.pid")),
        "triggerer-2": env.command("triggerer", "--skip-serve-logs", "--pid", str(home / "triggerer-2.pid")),
        "worker-1": env.command("celery", "worker", "-H", "w1@localhost", "--pid", str(home / "worker-1.pid")),
        "worker-2": env.command(
            "celery", "worker", "-H", "w2@localhost", "--skip-serve-logs", "--pid", str(home / "worker-2.pid")
        ),
    }


@dataclass(frozen=True)
class Snapshot:
    """One look at the metadata DB."""

    at: datetime
    generate: dict[int, tuple[str | None, int, int | None, str | None]]  # map_index -> state, try, pid, next_method
    queued: int  # task instances of the run in state queued
    triggers: dict[int, int | None]  # trigger id -> triggerer (job) id
    stored_job: dict[int, str | None]  # map_index -> job id in task_state_store (None: a pending marker)

    def running_generate(self) -> dict[int, tuple[int | None, str | None]]:
        return {i: (pid, nm) for i, (state, _, pid, nm) in self.generate.items() if state == "running"}

    def in_state(self, *states: str) -> set[int]:
        return {i for i, (state, *_rest) in self.generate.items() if state in states}


SNAPSHOT_SQL = {
    "generate": "SELECT map_index, state, try_number, pid, next_method FROM task_instance "
    "WHERE dag_id = %s AND task_id = %s",
    "queued": "SELECT count(*) FROM task_instance WHERE dag_id = %s AND state = 'queued'",
    "triggers": 'SELECT id, triggerer_id FROM "trigger"',
    "stored": "SELECT map_index, value FROM task_state_store WHERE dag_id = %s AND task_id = %s AND key = %s",
}


def take_snapshot(cursor: Any) -> Snapshot:
    at = datetime.now(timezone.utc)
    cursor.execute(SNAPSHOT_SQL["generate"], (PIPELINE_DAG_ID, GENERATE))
    generate = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
    cursor.execute(SNAPSHOT_SQL["queued"], (PIPELINE_DAG_ID,))
    (queued,) = cursor.fetchone()
    cursor.execute(SNAPSHOT_SQL["triggers"])
    triggers = dict(cursor.fetchall())
    cursor.execute(SNAPSHOT_SQL["stored"], (PIPELINE_DAG_ID, GENERATE, "cogvideo_job"))
    stored = {}
    for index, value in cursor.fetchall():
        try:
            stored[index] = json.loads(value).get("job_id")
        except (ValueError, AttributeError):
            stored[index] = None
    return Snapshot(at, generate, queued, triggers, stored)


@dataclass
class Observations:
    max_deferred: int = 0
    max_in_pool: int = 0
    triggerers_by_trigger: dict[int, set[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class Monitor(threading.Thread):
    """Samples the metadata DB four times a second (its own connection, autocommit reads)."""

    def __init__(self, postgres: PostgresServer) -> None:
        super().__init__(name="airflow-monitor", daemon=True)
        self.postgres = postgres
        self.seen = Observations()
        self.last: Snapshot | None = None
        self.stopped = threading.Event()

    def record(self, snap: Snapshot) -> None:
        self.last = snap
        deferred = snap.in_state("deferred")
        self.seen.max_deferred = max(self.seen.max_deferred, len(deferred))
        self.seen.max_in_pool = max(self.seen.max_in_pool, len(snap.in_state(*POOL_STATES)))
        for trigger_id, triggerer_id in snap.triggers.items():
            if triggerer_id is not None:
                self.seen.triggerers_by_trigger.setdefault(trigger_id, set()).add(triggerer_id)

    def run(self) -> None:
        conn = self.postgres.connect()
        try:
            cursor = conn.cursor()
            while not self.stopped.wait(0.25):
                try:
                    self.record(take_snapshot(cursor))
                except Exception as exc:  # a transient DB error; the next sample will do
                    self.seen.errors.append(repr(exc))
        finally:
            conn.close()


def _api_healthy(api_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _query(cursor: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def _task_states(cursor: Any) -> str:
    rows = _query(
        cursor,
        "SELECT task_id, map_index, state, try_number, hostname, pid FROM task_instance WHERE dag_id = %s "
        "ORDER BY task_id, map_index",
        PIPELINE_DAG_ID,
    )
    return "\n".join(f"  {t}[{i}] {s} try {n} on {h} pid {p}" for t, i, s, n, h, p in rows)


def _attempt_logs(home: Path, task_id: str, map_index: int) -> dict[int, str]:
    """attempt number -> the task log's text (Airflow's default log layout under AIRFLOW_HOME/logs)."""
    logs = {}
    for path in (home / "logs").rglob(f"task_id={task_id}/map_index={map_index}/attempt=*.log"):
        if match := re.fullmatch(r"attempt=(\d+)\.log", path.name):  # not attempt=N.log.trigger.M.log
            logs[int(match.group(1))] = path.read_text(errors="replace")
    return logs


def _task_logs(home: Path, lines: int = 30) -> str:
    out = []
    for path in sorted((home / "logs").rglob("*.log")):
        text = path.read_text(errors="replace")
        if "error" in text.lower():
            out.append(f"----- {path.relative_to(home)}\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(out[-20:])


class _Background(threading.Thread):
    """Run ``target`` in a thread; ``join()`` re-raises what it raised."""

    def __init__(self, target: Any) -> None:
        super().__init__(daemon=True)
        self._target_fn, self.error = target, None
        self.start()

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def test_pipeline_survives_a_lost_triggerer_and_a_lost_worker(
    tmp_path: Path,
    postgres: PostgresServer,
    redis: RedisServer,
    seaweedfs: SeaweedFS,
    emulator: EmulatorHandle,
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    timeline: dict[str, float] = {}

    def mark(what: str) -> None:
        timeline[what] = time.monotonic() - started

    s3 = seaweedfs.boto3_client()
    ports = free_ports(3)
    env = _deployment(tmp_path / "airflow", ports, postgres, redis, emulator, seaweedfs)
    env.install_dags(pipeline_dag_file())
    # The schema migration is the slowest step of the set-up (30 s on 2 busy cores): seed meanwhile.
    migration = _Background(env.migrate)
    seeded = seed_products(s3, sample_products(PRODUCTS), corrupt=False)
    ensure_bucket(s3, OUTPUT_BUCKET)
    migration.join()
    mark("migrated")
    db = postgres.connect()
    cursor = db.cursor()

    monitor = Monitor(postgres)
    killed_triggers: dict[int, int] = {}  # trigger id -> the dead triggerer's job id
    killed_tasks: dict[int, tuple[int, str | None]] = {}  # map_index -> (try at the kill, next_method)
    dead_triggerer = live_triggerer = None
    victim = None
    with ProcessGroup(tmp_path / "component-logs") as components:
        try:
            component_env = env.env()
            for name, argv in _components(env, ports[0]).items():
                components.start(name, argv, component_env)
            living = list(components.processes)

            def alive() -> None:
                components.check_alive(*living)

            # The pool, while the components start: the tier (V0) comes from the connection.
            env.cogvideo("pool", "--conn-id", "cogvideo_default")
            assert _query(cursor, "SELECT slots, include_deferred FROM slot_pool WHERE pool = 'cogvideo'") == [
                (TIER_SLOTS, True)
            ]
            wait_until(lambda: _api_healthy(ports[0]), timeout=120, what="the api-server", alive=alive)

            def dag_parsed() -> bool:
                errors = _query(cursor, "SELECT filename, stacktrace FROM import_error")
                if errors:
                    raise AssertionError(f"the pipeline DAG failed to import: {errors}")
                return bool(_query(cursor, "SELECT 1 FROM serialized_dag WHERE dag_id = %s", PIPELINE_DAG_ID))

            wait_until(dag_parsed, timeout=120, what="the DAG to be parsed", alive=alive)
            mark("started")
            env.run("dags", "trigger", PIPELINE_DAG_ID)
            mark("triggered")
            monitor.start()

            def run_state() -> str | None:
                rows = _query(cursor, "SELECT state FROM dag_run WHERE dag_id = %s", PIPELINE_DAG_ID)
                return rows[0][0] if rows else None

            def still_running() -> None:
                alive()
                if run_state() in ("success", "failed"):
                    raise AssertionError("the run ended before both kills happened")

            # 1. A triggerer dies while both triggerers run generation triggers and jobs render.
            def both_triggerers_busy() -> Snapshot | None:
                snap = take_snapshot(cursor)
                owners = [t for t in snap.triggers.values() if t is not None]
                busy = len(set(owners)) >= 2 and len(owners) >= 3 and emulator.stats()["in_flight"] >= 3
                return snap if busy else None

            before = wait_until(
                both_triggerers_busy, timeout=180, what="triggers on both triggerers", alive=still_running
            )
            living.remove("triggerer-1")
            kill_tree(components.processes["triggerer-1"].pid)
            killed_at = datetime.now(timezone.utc)
            components.stop("triggerer-1", sig=signal.SIGKILL)
            mark("triggerer killed")

            # Which triggerer job died: the one whose heartbeat stopped at the kill.
            def heartbeats_split() -> tuple[int, int] | None:
                rows = _query(
                    cursor,
                    "SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running'",
                )
                stale = [i for i, beat in rows if beat < killed_at]
                fresh = [i for i, beat in rows if beat > killed_at]
                return (stale[0], fresh[0]) if len(stale) == 1 and len(fresh) == 1 else None

            dead_triggerer, live_triggerer = wait_until(
                heartbeats_split, timeout=30, what="the live triggerer's next heartbeat", alive=alive
            )
            killed_triggers = {t: owner for t, owner in before.triggers.items() if owner == dead_triggerer}
            assert killed_triggers, f"triggerer {dead_triggerer} held no trigger when killed: {before.triggers}"

            # 2. A worker dies while it runs generation tasks, at a moment when each of them has its
            # job id stored and nothing is queued (see the module docstring).
            leaders = {name: components.processes[name].pid for name in WORKERS}

            def worker_to_kill() -> tuple[str, dict[int, tuple[int | None, str | None]], Snapshot] | None:
                snap = take_snapshot(cursor)
                if snap.queued:
                    return None
                running = snap.running_generate()
                for name, leader in leaders.items():
                    on_it = {i: r for i, r in running.items() if r[0] and descends_from(r[0], leader)}
                    if on_it and all(next_method or snap.stored_job.get(i) for i, (_, next_method) in on_it.items()):
                        return name, on_it, snap
                return None

            victim, on_victim, snap = wait_until(
                worker_to_kill,
                timeout=240,
                interval=0.1,
                what="generation tasks running on a worker",
                alive=still_running,
            )
            living.remove(victim)
            kill_tree(leaders[victim])
            components.stop(victim, sig=signal.SIGKILL)
            mark("worker killed")
            killed_tasks = {i: (snap.generate[i][1], next_method) for i, (_, next_method) in on_victim.items()}

            def finished() -> str | None:
                state = run_state()
                return state if state in ("success", "failed") else None

            final = wait_until(finished, timeout=300, interval=1.0, what="the run to finish", alive=alive)
            mark("run finished")
            monitor.stopped.set()
            monitor.join()
            monitor.record(take_snapshot(cursor))
            assert final == "success", f"the run ended {final}:\n{_task_states(cursor)}"
        except BaseException:
            monitor.stopped.set()
            with capsys.disabled():
                print(f"\n===== task instances =====\n{_task_states(cursor)}")
                print(f"===== monitor =====\n{monitor.seen}\nkilled triggers {killed_triggers}, tasks {killed_tasks}")
                print(f"timeline (s): {timeline}")
                print(f"emulator: { {k: v for k, v in emulator.stats().items() if k != 'request_ids'} }")
                print(components.log_tails(40))
                print(_task_logs(env.home))
            raise
    elapsed = time.monotonic() - started

    # Every product through generate and upload, in the one triggered run.
    assert _query(cursor, "SELECT count(*) FROM dag_run WHERE dag_id = %s", PIPELINE_DAG_ID) == [(1,)]
    generate = _query(
        cursor, "SELECT map_index, state, try_number FROM task_instance WHERE dag_id = %s AND task_id = %s",
        PIPELINE_DAG_ID, GENERATE,
    )  # fmt: skip
    assert sorted((i, s) for i, s, _ in generate) == [(i, "success") for i in range(PRODUCTS)]
    tries = {i: n for i, _, n in generate}
    uploads = _query(
        cursor, "SELECT state FROM task_instance WHERE dag_id = %s AND task_id = %s", PIPELINE_DAG_ID, UPLOAD
    )
    assert [s for (s,) in uploads] == ["success"] * PRODUCTS

    # The worker's generation tasks were retried by Airflow, and each retry found its job through
    # task_state_store (the job was done, or still rendering) instead of submitting a new one.
    assert killed_tasks, "no generation task was running on the killed worker"
    for index, (try_at_kill, _) in killed_tasks.items():
        assert tries[index] > try_at_kill, f"generation task {index} was not retried after the worker died"
        later = {n: text for n, text in _attempt_logs(env.home, GENERATE, index).items() if n > try_at_kill}
        assert later, f"no log of generation task {index}'s retry"
        assert any(phrase in text for text in later.values() for phrase in RECONNECTED), (
            f"generation task {index}'s retry did not reconnect to its job:\n" + "\n".join(later.values())[-3000:]
        )
        assert not any("Submitting " in text for text in later.values()), f"task {index}'s retry submitted again"

    # The killed triggerer's triggers were adopted by the other one.
    adopted = {t for t in killed_triggers if live_triggerer in monitor.seen.triggerers_by_trigger.get(t, set())}
    assert adopted, f"no trigger of triggerer {dead_triggerer} moved to {live_triggerer}: {monitor.seen}"

    # Every video in S3, its bytes hashing to what the manifest and the object's tag say.
    manifest_key = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/")["Contents"][0]["Key"]
    manifest = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=manifest_key)["Body"].read())
    assert (manifest["uploaded"], manifest["failed"], manifest["ambiguous"]) == (PRODUCTS, 0, 0)
    assert sorted(row["product_id"] for row in manifest["products"]) == sorted(seeded.product_ids)
    for row in manifest["products"]:
        bucket, _, key = row["video"].removeprefix("s3://").partition("/")
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
        assert hashlib.sha256(body).hexdigest() == row["sha256"] == tags["sha256"], row["video"]
        assert body[4:8] == b"ftyp", f"{row['video']} is not an MP4"

    # The tier held and nothing was paid twice: one job per product, <= 5 in flight, no 1302.
    stats = emulator.stats()
    key_id = parse_keys(DEFAULT_TEST_KEY)[0].key_id
    retried = sorted(i for i, n in tries.items() if n > 1)
    assert stats["submits"] == PRODUCTS, f"one paid job per product (generation tasks retried: {retried})"
    assert len(set(stats["request_ids"])) == PRODUCTS, "a request id was sent twice"
    assert stats["max_in_flight_by_key_model"][f"{key_id}/{MODEL}"] <= TIER_SLOTS
    assert "1302" not in stats["rejections"], stats["rejections"]
    assert manifest["actual_price"] == manifest["estimated_price"] == manifest["total_price"] == PRODUCTS * 1.0
    assert 3 <= monitor.seen.max_in_pool <= TIER_SLOTS, monitor.seen
    db.close()
    with capsys.disabled():
        phases = ", ".join(f"{what} at {t:.0f} s" for what, t in timeline.items())
        print(
            f"\n[distributed Airflow] {PRODUCTS} products in {elapsed:.0f} s ({phases}); "
            f"triggerer {dead_triggerer} killed holding {len(killed_triggers)} trigger(s), {len(adopted)} seen adopted "
            f"by {live_triggerer}; {victim} killed running generation task(s) "
            f"{ {i: f'try {n}, ' + ('resuming' if nm else 'job stored') for i, (n, nm) in killed_tasks.items()} }; "
            f"retried: {retried}; max in flight {stats['max_in_flight']}, max in pool {monitor.seen.max_in_pool}"
        )
