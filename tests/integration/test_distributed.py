"""The pipeline DAG on the production topology, with a triggerer and a Celery worker lost mid-run.

Started by this test, all on 127.0.0.1 and free ports, each stopped by its own pid or group:
PostgreSQL (the metadata DB and Celery's result backend), Redis (the Celery broker, persistence
off), an api-server, a scheduler, a dag-processor, **two triggerers**, **two Celery workers**, the
emulator (a tier V0 key, renders of ~10 s) and SeaweedFS (S3).

What ``dag.test()`` (the other DAG tests, the demo) cannot show, this test does, on the topology
teams run in production:

* the tier-sized pool with ``include_deferred`` (made by ``cogvideo pool`` from the connection's
  tier) keeps the API at or under 5 jobs in flight while generation tasks wait *in a triggerer*;
* a manual run from the CLI has no logical date, and the grid labels mapped tasks by product id;
* a triggerer killed with SIGKILL while it runs generation triggers: the *other* triggerer adopts
  them (one trigger row, two triggerer ids), nothing is restarted by hand;
* a Celery worker lost (its whole process tree SIGKILLed, like its host) while it runs
  generation tasks: Airflow finds them without a heartbeat, retries them on the other worker, and
  the retries reconnect to their jobs through ``task_state_store`` instead of paying again;
* through all that: exactly one paid job per product, never more than 5 in flight, no 1302, every
  video in S3 with the sha256 the manifest and the object tag say, the manifest listing every product;
* the review DAG, scheduled on the run's asset event, asks about every video; a script answers two
  through the REST API the moment they appear (approve one: published; reject one with a note: made
  again, one paid job carrying the note), and nobody answers the others: each times out
  (``REVIEW_TIMEOUT``, resolved by the scheduler's sweep: no triggerer, no worker while it waits) into
  the DAG's default, ``hold``: nothing published, nothing paid, recorded ``held`` for the next run.

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
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo.demo import (
    OUTPUT_BUCKET,
    PIPELINE_DAG_ID,
    REVIEW_DAG_ID,
    pipeline_dag_file,
    review_dag_file,
)
from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, EmulatorHandle, parse_keys
from airflow_provider_cogvideo.emulator import running_emulator as start_emulator
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment, api_healthy, served_settings
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.products import ensure_bucket, sample_products, seed_products
from airflow_provider_cogvideo.testing.reviewer import Reviewer
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS, aws_connection_json, free_ports, running_seaweedfs
from tests.harness.distributed import bytecode_cache_env, celery_settings, component_env, kill_tree
from tests.harness.postgres import PostgresServer, running_postgres
from tests.harness.redis_server import RedisServer, running_redis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(660)]

PRODUCTS = 20
TIER_SLOTS = 5  # tier V0
RENDER_SECONDS = 10.0  # +-20 %: four waves of renders; long enough for a triggerer kill to land mid-render
POLL_SECONDS = 2
MODEL = "cogvideox-3"
GENERATE, UPLOAD = "product.generate", "product.upload"
REVIEW_TIMEOUT = 20  # seconds each review waits for an answer nobody gives
REVIEW_NOTE = "Show it on a wooden desk"
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
    # How often the scheduler ends reviews past their response timeout [15 s].
    ("scheduler", "trigger_timeout_check_interval"): "2",
    # Two workers of 4 processes: room for the 5 generation tasks' hand-offs and the uploads.
    ("celery", "worker_concurrency"): "4",
    # Each worker imports the provider's task modules once, before its pool forks (docs/deploy.md).
    ("celery", "celery_config_options"): "airflow_provider_cogvideo.worker_preload.CELERY_CONFIG",
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
        # One log server of each kind (the second worker and triggerer skip theirs).
        **served_settings(api, worker_log_port=worker_logs_port, trigger_log_port=trigger_logs_port),
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
            "COGVIDEO_REVIEW_TIMEOUT_SECONDS": str(REVIEW_TIMEOUT),  # the default: hold
            "COGVIDEO_REVIEW_MAX_ROUNDS": "1",
            # Every component and task process compiles boto3, Pillow... once, not at each start.
            **bytecode_cache_env(),
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
class GenerateTask:
    state: str | None
    try_number: int
    hostname: str | None  # the component name (tests.harness.distributed.component_hostname)
    next_method: str | None  # set while a task resumes from its deferral
    trigger_id: int | None  # while deferred


@dataclass(frozen=True)
class Snapshot:
    """One look at the metadata DB."""

    generate: dict[int, GenerateTask]  # by map index
    queued: int  # task instances of the run in state queued
    triggers: dict[int, tuple[int | None, str | None]]  # trigger id -> (triggerer job id, its hostname)
    stored_job: dict[int, str | None]  # map_index -> job id in task_state_store (None: a pending marker)

    def in_state(self, *states: str) -> set[int]:
        return {i for i, ti in self.generate.items() if ti.state in states}

    def running_on(self, host: str) -> dict[int, GenerateTask]:
        return {i: ti for i, ti in self.generate.items() if ti.state == "running" and ti.hostname == host}

    def triggers_on(self, host: str) -> set[int]:
        """The triggers ``host`` runs for generation tasks still deferred (not those that just fired)."""
        waiting = {ti.trigger_id for ti in self.generate.values() if ti.state == "deferred"}
        return {t for t, (_, owner) in self.triggers.items() if owner == host and t in waiting}


SNAPSHOT_SQL = {
    "generate": "SELECT map_index, state, try_number, hostname, next_method, trigger_id FROM task_instance "
    "WHERE dag_id = %s AND task_id = %s",
    "queued": "SELECT count(*) FROM task_instance WHERE dag_id = %s AND state = 'queued'",
    "triggers": 'SELECT t.id, t.triggerer_id, j.hostname FROM "trigger" t LEFT JOIN job j ON j.id = t.triggerer_id',
    "stored": "SELECT map_index, value FROM task_state_store WHERE dag_id = %s AND task_id = %s AND key = %s",
}


def take_snapshot(cursor: Any) -> Snapshot:
    cursor.execute(SNAPSHOT_SQL["generate"], (PIPELINE_DAG_ID, GENERATE))
    generate = {row[0]: GenerateTask(*row[1:]) for row in cursor.fetchall()}
    cursor.execute(SNAPSHOT_SQL["queued"], (PIPELINE_DAG_ID,))
    (queued,) = cursor.fetchone()
    cursor.execute(SNAPSHOT_SQL["triggers"])
    triggers = {trigger_id: (owner, host) for trigger_id, owner, host in cursor.fetchall()}
    cursor.execute(SNAPSHOT_SQL["stored"], (PIPELINE_DAG_ID, GENERATE, "cogvideo_job"))
    stored = {}
    for index, value in cursor.fetchall():
        try:
            stored[index] = json.loads(value).get("job_id")
        except (ValueError, AttributeError):
            stored[index] = None
    return Snapshot(generate, queued, triggers, stored)


@dataclass
class Observations:
    max_deferred: int = 0
    max_in_pool: int = 0
    triggerers_by_trigger: dict[int, set[str]] = field(default_factory=dict)  # trigger id -> triggerers seen
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
        for trigger_id, (_, owner) in snap.triggers.items():
            if owner is not None:
                self.seen.triggerers_by_trigger.setdefault(trigger_id, set()).add(owner)

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


def _has_pillow_loaded(pid: int) -> bool:
    """Whether the process has Pillow's C extension mapped: what ``worker_preload`` imported there."""
    try:
        return "PIL/_imaging" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


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
    env.install_dags(pipeline_dag_file(), review_dag_file())
    # The schema migration is the slowest step of the set-up (30 s on 2 busy cores): seed meanwhile.
    migration = _Background(env.migrate)
    seeded = seed_products(s3, sample_products(PRODUCTS), corrupt=False)
    ensure_bucket(s3, OUTPUT_BUCKET)
    migration.join()
    mark("migrated")
    db = postgres.connect()
    cursor = db.cursor()

    monitor = Monitor(postgres)
    killed_triggers: set[int] = set()  # the triggers the killed triggerer held
    killed_tasks: dict[int, tuple[int, str | None]] = {}  # map_index -> (try at the kill, next_method)
    dead_triggerer = live_triggerer = None
    victim = None
    with ProcessGroup(tmp_path / "component-logs") as components:
        try:
            base_env = env.env()
            for name, argv in _components(env, ports[0]).items():
                components.start(name, argv, component_env(base_env, name))
            living = list(components.processes)

            def alive() -> None:
                components.check_alive(*living)

            # The pool, while the components start: the tier (V0) comes from the connection.
            env.cogvideo("pool", "--conn-id", "cogvideo_default")
            assert _query(cursor, "SELECT slots, include_deferred FROM slot_pool WHERE pool = 'cogvideo'") == [
                (TIER_SLOTS, True)
            ]
            wait_until(
                lambda: api_healthy(f"http://127.0.0.1:{ports[0]}"), timeout=120, what="the api-server", alive=alive
            )

            def dag_parsed() -> bool:
                errors = _query(cursor, "SELECT filename, stacktrace FROM import_error")
                if errors:
                    raise AssertionError(f"the pipeline DAG failed to import: {errors}")
                parsed = _query(
                    cursor, "SELECT dag_id FROM serialized_dag WHERE dag_id IN (%s, %s)", PIPELINE_DAG_ID, REVIEW_DAG_ID
                )
                return len(parsed) == 2

            wait_until(dag_parsed, timeout=120, what="the DAG to be parsed", alive=alive)
            wait_until(
                lambda: all(_has_pillow_loaded(components.processes[name].pid) for name in WORKERS),
                timeout=120,
                what="the workers to preload the task modules (Pillow mapped in their main process)",
                alive=alive,
            )
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

            # 1. A triggerer dies while it runs generation triggers (their jobs render); the other one
            # must adopt them. The victim is whichever holds more.
            def triggerer_to_kill() -> tuple[str, Snapshot] | None:
                snap = take_snapshot(cursor)
                held = {name: snap.triggers_on(name) for name in TRIGGERERS}
                victim = max(TRIGGERERS, key=lambda name: len(held[name]))
                # Two or more: one of them could fire in the instant between this look and the kill.
                return (victim, snap) if len(held[victim]) >= 2 else None

            dead_triggerer, before = wait_until(
                triggerer_to_kill, timeout=180, interval=0.2, what="triggers in a triggerer", alive=still_running
            )
            (live_triggerer,) = set(TRIGGERERS) - {dead_triggerer}
            living.remove(dead_triggerer)
            kill_tree(components.processes[dead_triggerer].pid)
            components.stop(dead_triggerer, sig=signal.SIGKILL)
            mark("triggerer killed")
            killed_triggers = before.triggers_on(dead_triggerer)

            # 2. A worker dies while it runs generation tasks, at a moment when each of them has its
            # job id stored and nothing is queued (see the module docstring), and one of them has
            # only just started resuming: it is still loading the DAG, seconds from finishing, so
            # the kill lands mid-task rather than after its last call to the API server.
            was_running: set[tuple[int, int]] = set()

            def worker_to_kill() -> tuple[str, dict[int, GenerateTask]] | None:
                snap = take_snapshot(cursor)
                running = {(i, ti.try_number) for i, ti in snap.generate.items() if ti.state == "running"}
                just_started = running - was_running
                was_running.clear()
                was_running.update(running)
                if snap.queued:
                    return None
                for name in WORKERS:
                    on_it = snap.running_on(name)
                    safe = all(ti.next_method or snap.stored_job.get(i) for i, ti in on_it.items())
                    resuming = {i for i, ti in on_it.items() if ti.next_method and (i, ti.try_number) in just_started}
                    if on_it and safe and resuming:
                        return name, on_it
                return None

            victim, on_victim = wait_until(
                worker_to_kill,
                timeout=240,
                interval=0.1,
                what="generation tasks resuming on a worker",
                alive=still_running,
            )
            living.remove(victim)
            kill_tree(components.processes[victim].pid)
            components.stop(victim, sig=signal.SIGKILL)
            mark("worker killed")
            # A task that got its last word to the API server in before the kill is not "killed
            # mid-run": only those still running after it (until Airflow notices) must be retried.
            time.sleep(2)
            after = take_snapshot(cursor)
            killed_tasks = {
                i: (ti.try_number, ti.next_method)
                for i, ti in on_victim.items()
                if after.generate[i].state == "running" and after.generate[i].try_number == ti.try_number
            }
            assert killed_tasks, f"{victim}'s generation tasks {sorted(on_victim)} all finished before the kill"

            def finished() -> str | None:
                state = run_state()
                return state if state in ("success", "failed") else None

            final = wait_until(finished, timeout=300, interval=1.0, what="the run to finish", alive=alive)
            mark("run finished")
            monitor.stopped.set()
            monitor.join()
            monitor.record(take_snapshot(cursor))
            assert final == "success", f"the run ended {final}:\n{_task_states(cursor)}"

            # The review DAG, queued by the run's asset event. A script answers two reviews the moment they
            # appear, through the REST API (approve one, reject one with a note); nobody answers the others,
            # nor the rejected product's second round: those time out.
            reviewer = Reviewer(f"http://127.0.0.1:{ports[0]}")
            waiting = reviewer.wait_for(REVIEW_DAG_ID, PRODUCTS, task_id="video.review_1", timeout=240)
            approved, rejected = sorted(waiting, key=lambda review: review.map_index)[:2]
            reviewer.answer(REVIEW_DAG_ID, approved, "Approve")
            reviewer.answer(REVIEW_DAG_ID, rejected, "Reject", REVIEW_NOTE)
            mark("two reviews answered")

            def review_finished() -> str | None:
                rows = _query(cursor, "SELECT state FROM dag_run WHERE dag_id = %s", REVIEW_DAG_ID)
                return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None

            review_final = wait_until(
                review_finished, timeout=240, interval=1.0, what="the review run to time out", alive=alive
            )
            mark("reviews answered or timed out")
            assert review_final == "success", f"the review run ended {review_final}:\n{_task_states(cursor)}"
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
    # A manual run from the CLI, as Airflow 3 makes it: no logical date (S3 keys use run_after's day).
    assert _query(cursor, "SELECT logical_date FROM dag_run WHERE dag_id = %s", PIPELINE_DAG_ID) == [(None,)]
    labels = _query(
        cursor, "SELECT rendered_map_index FROM task_instance WHERE dag_id = %s AND task_id IN (%s, %s)",
        PIPELINE_DAG_ID, GENERATE, UPLOAD,
    )  # fmt: skip
    assert sorted(label for (label,) in labels) == sorted(2 * list(seeded.product_ids)), "the grid shows product ids"
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
        assert tries[index] > try_at_kill, f"generation task {index} was not retried:\n{_task_states(cursor)}"
        later = {n: text for n, text in _attempt_logs(env.home, GENERATE, index).items() if n > try_at_kill}
        assert later, f"no log of generation task {index}'s retry"
        assert any(phrase in text for text in later.values() for phrase in RECONNECTED), (
            f"generation task {index}'s retry did not reconnect to its job:\n" + "\n".join(later.values())[-3000:]
        )
        assert not any("Submitting " in text for text in later.values()), f"task {index}'s retry submitted again"

    # The killed triggerer's triggers were adopted by the other one.
    adopted = {t for t in killed_triggers if live_triggerer in monitor.seen.triggerers_by_trigger.get(t, set())}
    assert adopted, f"no trigger of {dead_triggerer} was seen moving to {live_triggerer}: {monitor.seen}"

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
        assert row["cover"] and s3.head_object(Bucket=bucket, Key=row["cover"].split("/", 3)[3])["ContentLength"] > 0

    # The answered two: one published, one made again with the note (one paid job) whose second round,
    # unanswered, timed out. The eighteen nobody answered ended by their timeout with the default (hold):
    # nothing made again or published. The run's record says so.
    review_tasks = _query(
        cursor, "SELECT task_id, state, count(*) FROM task_instance WHERE dag_id = %s GROUP BY task_id, state",
        REVIEW_DAG_ID,
    )  # fmt: skip
    once = [("video.publish_1", "success", 1), ("video.regenerate_1", "success", 1), ("video.upload_1", "success", 1)]
    assert sorted(review_tasks) == sorted(
        [("pending", "success", 1), ("record", "success", 1), ("video.review_1", "success", PRODUCTS)]
        + once
        + [(task, "skipped", PRODUCTS - 1) for task in ("video.publish_1", "video.regenerate_1", "video.upload_1")]
        + [("video.review_2", "success", 1), ("video.review_2", "skipped", PRODUCTS - 1)]
        + [("video.publish_2", "skipped", PRODUCTS)]
    ), review_tasks
    decisions = {
        (d := value if isinstance(value, dict) else json.loads(value))["product_id"]: d
        for (value,) in _query(
            cursor,
            "SELECT value FROM xcom WHERE dag_id = %s AND task_id = 'video.review_1' AND key = 'return_value'",
            REVIEW_DAG_ID,
        )
    }
    approved_id, rejected_id = (review.label.split(" / ")[0] for review in (approved, rejected))
    assert (decisions[approved_id]["answer"], decisions[approved_id]["state"]) == ("Approve", "approved")
    assert (decisions[rejected_id]["answer"], decisions[rejected_id]["note"]) == ("Reject", REVIEW_NOTE)
    others = [d for pid, d in decisions.items() if pid not in (approved_id, rejected_id)]
    assert sorted((d["answer"], d["state"], d["by"]) for d in others) == [("timeout", "held", None)] * (PRODUCTS - 2)
    published = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="published/").get("Contents", [])
    assert sorted(o["Key"] for o in published if o["Key"].endswith(".mp4")) == [f"published/{approved_id}/default.mp4"]
    counts = manifest["review"]["counts"]
    assert (counts["approved"], counts["held"], counts["published"]) == (1, PRODUCTS - 1, 1), counts
    assert manifest["review"]["paid"] == 1.0 and manifest["review"]["regenerated"] == 1

    # The tier held and nothing was paid twice: one job per product and one for the reject (its prompt
    # carrying the note), <= 5 in flight, no 1302.
    stats = emulator.stats()
    key_id = parse_keys(DEFAULT_TEST_KEY)[0].key_id
    retried = sorted(i for i, n in tries.items() if n > 1)
    assert stats["submits"] == PRODUCTS + 1, f"one paid job per product and reject (generation retried: {retried})"
    assert len(set(stats["request_ids"])) == PRODUCTS + 1, "a request id was sent twice"
    assert REVIEW_NOTE in stats["prompts"][-1]
    assert stats["max_in_flight_by_key_model"][f"{key_id}/{MODEL}"] <= TIER_SLOTS
    assert "1302" not in stats["rejections"], stats["rejections"]
    assert manifest["actual_price"] == manifest["estimated_price"] == manifest["total_price"] == PRODUCTS * 1.0
    assert 3 <= monitor.seen.max_in_pool <= TIER_SLOTS, monitor.seen
    # An answer given at once may be lost by Airflow 3.3.2 (its review retried): the retry decided with it.
    review_tries = dict(
        _query(
            cursor,
            "SELECT map_index, try_number FROM task_instance WHERE dag_id = %s AND task_id = 'video.review_1'",
            REVIEW_DAG_ID,
        )
    )
    db.close()
    with capsys.disabled():
        phases = ", ".join(f"{what} at {t:.0f} s" for what, t in timeline.items())
        print(
            f"\n[distributed Airflow] {PRODUCTS} products in {elapsed:.0f} s ({phases}); "
            f"triggerer {dead_triggerer} killed holding {len(killed_triggers)} trigger(s), {len(adopted)} seen adopted "
            f"by {live_triggerer}; {victim} killed running generation task(s) "
            f"{ {i: f'try {n}, ' + ('resuming' if nm else 'job stored') for i, (n, nm) in killed_tasks.items()} }; "
            f"retried: {retried}; max in flight {stats['max_in_flight']}, max in pool {monitor.seen.max_in_pool}; "
            f"answered reviews' tries {[review_tries[r.map_index] for r in (approved, rejected)]}"
        )
