"""Tier throughput: how close a real Airflow deployment keeps a V0 tier (5 jobs in flight) to busy (run by hand).

    .venv/bin/python benchmarks/tier_throughput.py                      # N=20, R=30 s, three variants (~20 min)
    .venv/bin/python benchmarks/tier_throughput.py --render 60 --output tier_throughput_r60
    .venv/bin/python benchmarks/tier_throughput.py --products 10 --render 10 --variants ours_fixed5   # smoke

N products rendered by the emulator in exactly R seconds each (``--jitter 0``), at tier V0, under a
real Airflow 3 deployment: PostgreSQL metadata DB, api-server, scheduler, dag-processor, ONE
triggerer and, by default, the Celery topology (Redis broker, ONE Celery worker; ``--executor local``:
LocalExecutor instead). Each variant gets a fresh deployment (Airflow home, metadata database copied
from one migrated template, Redis DB, emulator) on the same PostgreSQL, Redis and SeaweedFS:

* ``ours_default``: the pipeline DAG (``airflow_provider_cogvideo/demo/product_video_pipeline.py``)
  as shipped: deferrable generate tasks in a 5-slot pool with ``include_deferred``, the default
  adaptive poll schedule;
* ``ours_fixed5``: the same DAG with ``COGVIDEO_PIPELINE_POLL_INTERVAL=5``;
* ``generic``: what a user builds without this provider (a DAG generated into the Airflow home): per
  product an ``HttpOperator`` POST then an ``HttpSensor`` (``mode="reschedule"``, poke every 5 s) on
  ``async-result/{id}``, both in a 5-slot pool. A sensor between pokes holds no pool slot, so the
  pool cannot hold the tier: submits beyond 5 get 429/1302 and retry every 5 s (``retries=100``).
  It does no ingestion, no image and no upload (that only flatters it);
* the limit ``ceil(N/5) x R``: five slots always busy.

Measured (no assertion anywhere):

* makespan = first job created -> last job finished, on the server's clock (the part the tier bounds;
  the limit is the same measure); tier utilisation = sum of render seconds / (5 x makespan); the DAG
  run's own duration (ingest, uploads and manifest included) beside it, and videos per hour = jobs
  done x 3600 / DAG run (what a marketing team buys; the generic DAG uploads nothing, which flatters
  it; the limit's is N x 3600 / limit);
* per slot, each idle gap between a job finishing on the server and the next job being created,
  split into **detection** (finish -> the poll answered SUCCESS) and **hand-off** (that poll -> the
  next submit). A gap pairs each new job with the earliest-finished job whose slot is not reused yet;
* for the provider, the hand-off split further along the task instances' path (metadata DB
  timestamps, plus every state change sampled every 0.2 s): event -> TI scheduled, -> queued for
  resumption, -> running on the worker, -> resumed task done (slot free), -> next generate TI queued,
  -> running, -> its POST.

Where the per-job times come from: the emulator's stats are counters only, so the benchmark serves
the emulator app behind a small ASGI wrapper that logs every API request (time, path, status, answer's
``id``/``task_status``); a job's creation is its submit's answer, its finish is creation + R x (1 +
its jitter), the jitter drawn exactly as the emulator draws it (``emulator.rng.draw(seed, "duration",
n)`` for the n-th job). What the emulator could add: per-job ``created_at``/``finished_at`` and the
first poll that saw SUCCESS in a ``GET /_emulator/jobs``.

Deployment settings, the same for every variant: Celery workers start with
``airflow_provider_cogvideo.worker_preload`` (``--no-worker-preload``: without), and the emulator
renders result clips of at most :data:`MEDIA_MAX_SIDE` pixels, each halfway through its job
(``render_ahead``) rather than at the first download: its renders run on this machine, a real
server's do not, and jobs of one wave end together.

Everything binds 127.0.0.1 on free ports and is stopped by its own pid or process group.
Results: ``benchmarks/results/<output>.json`` (machine, load, command, every figure).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# This checkout's package, in this process and in every Airflow component (cwd below), whatever the
# venv's editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ROOT, TEST_KEY, percentile, table, write_results

from airflow_provider_cogvideo.demo import PIPELINE_DAG_ID, pipeline_dag_file
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment, api_healthy, served_settings
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.products import ensure_bucket, sample_products, seed_products
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS, aws_connection_json, free_ports, running_seaweedfs
from tests.harness.distributed import bytecode_cache_env, celery_settings, component_env
from tests.harness.postgres import PostgresServer, running_postgres
from tests.harness.redis_server import RedisServer, running_redis

MODEL = "cogvideox-3"
SLOTS = 5  # tier V0
VARIANTS = ("ours_default", "ours_fixed5", "generic")
GENERIC_DAG_ID = "generic_http_pipeline"
GENERIC_POOL = "generic_tier"
API_PREFIX = "/api/paas/v4"
MEDIA_MAX_SIDE = 160
"""The emulator renders each result clip on this machine when the upload first downloads it (a real
server renders elsewhere): at its default 480 px, five renders cost ~3 CPU-seconds (0.65 each,
PyAV) in this process exactly while the next tasks start, so the benchmark renders small clips."""
TEMPLATE_DB = "template_airflow"


# ------------------------------------------------------------------------------------- the emulator
@dataclass
class Request:
    start: float  # time.time() when the request arrived
    end: float  # when the answer's first byte went out
    method: str
    path: str
    status: int | None
    job_id: str | None
    task_status: str | None


class RequestLog:
    """An ASGI wrapper that logs every API request the emulator answers (not the file downloads)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[Request] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        start, answer = time.time(), {"status": None, "end": None, "body": bytearray()}

        async def logged_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["end"] = message["status"], time.time()
            elif message["type"] == "http.response.body":
                answer["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            try:
                body = json.loads(bytes(answer["body"]) or b"{}")
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            self.requests.append(
                Request(
                    start,
                    answer["end"] or time.time(),
                    scope["method"],
                    scope["path"],
                    answer["status"],
                    str(body["id"]) if body.get("id") else None,
                    body.get("task_status"),
                )
            )


@dataclass
class Emulator:
    root: str
    log: RequestLog
    seed: int
    duration: float
    jitter: float
    stats: Callable[[], dict[str, Any]]

    @property
    def base_url(self) -> str:
        return self.root + API_PREFIX


@contextmanager
def running_emulator(duration: float, jitter: float, seed: int) -> Iterator[Emulator]:
    """The emulator app (a V0 test key) behind :class:`RequestLog`, served by uvicorn in a thread."""
    import uvicorn

    from airflow_provider_cogvideo.emulator import EmulatorConfig, create_app, parse_keys
    from airflow_provider_cogvideo.emulator.server import KEEP_ALIVE_SECONDS

    config = EmulatorConfig(
        keys=parse_keys(f"{TEST_KEY}:V0"),
        duration=duration,
        jitter=jitter,
        seed=seed,
        media_max_side=MEDIA_MAX_SIDE,
        render_ahead=True,
    )
    app = create_app(config)
    log = RequestLog(app)
    (port,) = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(
            log,
            host="127.0.0.1",
            port=port,
            access_log=False,
            log_config=None,
            lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    thread = threading.Thread(target=server.run, name="emulator", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=30, what="the emulator", interval=0.05)
        yield Emulator(f"http://127.0.0.1:{port}", log, seed, duration, jitter, app.state.emulator.stats)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.emulator.close()


@dataclass
class Job:
    id: str
    created: float
    finished: float
    seen: float | None  # the first poll answered SUCCESS
    polls: int


def jobs_from(emulator: Emulator) -> list[Job]:
    """Every created job, in creation order, with its server-side times (see the module docstring)."""
    from airflow_provider_cogvideo.emulator.rng import draw

    created = [r for r in emulator.log.requests if r.method == "POST" and r.status == 200 and r.job_id]
    created.sort(key=lambda r: r.end)
    polls: dict[str, list[Request]] = {}
    for r in emulator.log.requests:
        if r.method == "GET" and r.job_id:
            polls.setdefault(r.job_id, []).append(r)
    jobs = []
    for n, r in enumerate(created):
        spread = emulator.jitter * (2 * draw(emulator.seed, "duration", n) - 1)
        finished = r.end + max(0.0, emulator.duration * (1 + spread))
        answers = sorted(polls.get(r.job_id, []), key=lambda p: p.end)
        seen = next((p.end for p in answers if p.task_status == "SUCCESS"), None)
        jobs.append(Job(r.job_id, r.end, finished, seen, len(answers)))
    return jobs


# ---------------------------------------------------------------------------------- the generic DAG
GENERIC_DAG = '''
"""What a user builds without the provider: HttpOperator submit + HttpSensor (reschedule) per product."""
import json
import os
from datetime import datetime, timedelta

from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG

N = int(os.environ["TIER_BENCH_PRODUCTS"])
POKE = float(os.environ.get("TIER_BENCH_POKE", "5"))

with DAG(dag_id="{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=1):
    for i in range(N):
        submit = HttpOperator(
            task_id=f"submit_{{i}}",
            http_conn_id="cogvideo_http",
            endpoint="api/paas/v4/videos/generations",
            method="POST",
            data=json.dumps({{"model": "{model}", "prompt": f"Product video {{i}}, turning slowly in studio light"}}),
            headers={{"Content-Type": "application/json"}},
            response_filter=lambda response: response.json()["id"],
            pool="{pool}",
            retries=100,  # a 429/1302 (the tier is full) fails the try: wait 5 s and submit again
            retry_delay=timedelta(seconds=5),
        )
        wait = HttpSensor(
            task_id=f"wait_{{i}}",
            http_conn_id="cogvideo_http",
            endpoint="api/paas/v4/async-result/{{{{ ti.xcom_pull(task_ids='submit_%d') }}}}" % i,
            response_check=lambda response: response.json()["task_status"] in ("SUCCESS", "FAIL"),
            mode="reschedule",
            poke_interval=POKE,
            pool="{pool}",
            retries=3,
        )
        submit >> wait
'''


def generic_dag_source() -> str:
    return textwrap.dedent(GENERIC_DAG).format(dag_id=GENERIC_DAG_ID, model=MODEL, pool=GENERIC_POOL).lstrip()


# ------------------------------------------------------------------------------------ a deployment
@dataclass
class Deployment:
    env: AirflowEnvironment
    api_port: int
    dag_id: str
    database: str
    components: dict[str, list[str]] = field(default_factory=dict)


def deployment(
    variant: str,
    home: Path,
    args: argparse.Namespace,
    postgres: PostgresServer,
    redis: RedisServer,
    s3: SeaweedFS,
    emulator: Emulator,
    index: int,
) -> Deployment:
    database = f"bench_{index}_{variant}"
    postgres_db(postgres, database)
    api_port, worker_logs, trigger_logs = free_ports(3)
    api = f"http://127.0.0.1:{api_port}"
    config = {
        **celery_settings(postgres, redis, database=database),
        ("celery", "broker_url"): redis.url(index + 1),  # a clean broker DB per variant
        **served_settings(api, worker_log_port=worker_logs, trigger_log_port=trigger_logs),
        # Start-up only (the DAG is parsed and unpaused sooner); the run itself uses Airflow's defaults.
        ("core", "dags_are_paused_at_creation"): "False",
        ("dag_processor", "refresh_interval"): "5",
    }
    if args.worker_preload:
        config[("celery", "celery_config_options")] = "airflow_provider_cogvideo.worker_preload.CELERY_CONFIG"
    if args.executor == "local":
        config[("core", "executor")] = "LocalExecutor"
    host = "127.0.0.1"
    http_conn = {
        "conn_type": "http",
        "host": host,
        "port": int(emulator.root.rsplit(":", 1)[1]),
        "schema": "http",
        "extra": {"Authorization": f"Bearer {TEST_KEY}"},
    }
    cogvideo_conn = {
        "conn_type": "cogvideo",
        "password": TEST_KEY,
        "extra": {"base_url": emulator.base_url, "tier": "V0"},
    }
    extra_env = {
        "COGVIDEO_PIPELINE_SCHEDULE": "none",
        "COGVIDEO_PIPELINE_MODEL": MODEL,
        "COGVIDEO_PIPELINE_OUTPUT_BUCKET": f"videos-{index}",
        "TIER_BENCH_PRODUCTS": str(args.products),
        "TIER_BENCH_POKE": str(args.generic_poke),
        # Compiled once, like a production image's bytecode (see tests/harness/distributed.py).
        **bytecode_cache_env(),
        "PYTHONPATH": str(ROOT),
    }
    if variant == "ours_fixed5":
        extra_env["COGVIDEO_PIPELINE_POLL_INTERVAL"] = "5"
    env = AirflowEnvironment(
        home=home,
        connections={
            "cogvideo_default": json.dumps(cogvideo_conn),
            "cogvideo_http": json.dumps(http_conn),
            "aws_default": json.dumps(aws_connection_json(s3)),
        },
        config=config,
        extra_env=extra_env,
    )
    env.dags_folder.mkdir(parents=True, exist_ok=True)
    if variant == "generic":
        (env.dags_folder / f"{GENERIC_DAG_ID}.py").write_text(generic_dag_source())
        dag_id = GENERIC_DAG_ID
    else:
        env.install_dags(pipeline_dag_file())
        dag_id = PIPELINE_DAG_ID
    components = {
        "api-server": env.command("api-server", "--host", "127.0.0.1", "--port", str(api_port)),
        "scheduler": env.command("scheduler"),
        "dag-processor": env.command("dag-processor"),
        "triggerer": env.command("triggerer"),
    }
    if args.executor == "celery":
        components["worker"] = env.command("celery", "worker", "-H", f"bench{index}@localhost")
    return Deployment(env, api_port, dag_id, database, components)


def postgres_db(postgres: PostgresServer, database: str) -> None:
    """A fresh metadata database: a copy of the migrated template (instant, instead of a 30 s migration)."""
    conn = postgres.connect("postgres")
    try:
        conn.cursor().execute(f'CREATE DATABASE "{database}" TEMPLATE "{TEMPLATE_DB}"')
    finally:
        conn.close()


class StateSampler(threading.Thread):
    """Every task instance's state changes, sampled every 0.2 s: (task_id, map_index) -> [(time, state, try)]."""

    def __init__(self, postgres: PostgresServer, database: str, dag_id: str) -> None:
        super().__init__(daemon=True)
        self.postgres, self.database, self.dag_id = postgres, database, dag_id
        self.changes: dict[tuple[str, int], list[tuple[float, str | None, int]]] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        conn = self.postgres.connect(self.database)
        cursor = conn.cursor()
        try:
            while not self.stopped.wait(0.2):
                now = time.time()
                cursor.execute(
                    "SELECT task_id, map_index, state, try_number FROM task_instance WHERE dag_id = %s", (self.dag_id,)
                )
                for task_id, map_index, state, try_number in cursor.fetchall():
                    history = self.changes.setdefault((task_id, map_index), [])
                    if not history or history[-1][1:] != (state, try_number):
                        history.append((now, state, try_number))
        finally:
            conn.close()


# ------------------------------------------------------------------------------------- one variant
def run_variant(
    variant: str, index: int, args: argparse.Namespace, postgres: PostgresServer, redis: RedisServer, s3: SeaweedFS
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"tier-bench-{variant}-"))
    load_start = os.getloadavg()[0]
    with running_emulator(args.render, args.jitter, seed=100 + index) as emulator:
        dep = deployment(variant, home / "airflow", args, postgres, redis, s3, emulator, index)
        env = dep.env
        if variant == "generic":
            env.run("pools", "set", GENERIC_POOL, str(SLOTS), "V0 tier (5 jobs in flight)")
        else:
            env.cogvideo("pool", "--conn-id", "cogvideo_default")
        sampler = StateSampler(postgres, dep.database, dep.dag_id)
        with ProcessGroup(home / "component-logs") as group:
            base = env.env()
            for name, argv in dep.components.items():
                group.start(name, argv, component_env(base, name), cwd=ROOT)
            wait_until(
                lambda: api_healthy(f"http://127.0.0.1:{dep.api_port}"),
                timeout=180,
                what="the api-server",
                alive=group.check_alive,
            )
            conn = postgres.connect(dep.database)
            cursor = conn.cursor()

            def parsed() -> bool:
                cursor.execute("SELECT stacktrace FROM import_error")
                errors = cursor.fetchall()
                if errors:
                    raise RuntimeError(f"{dep.dag_id} failed to import: {errors}")
                cursor.execute("SELECT 1 FROM serialized_dag WHERE dag_id = %s", (dep.dag_id,))
                return bool(cursor.fetchall())

            wait_until(parsed, timeout=180, what="the DAG to be parsed", alive=group.check_alive)
            sampler.start()
            env.run("dags", "trigger", dep.dag_id)
            triggered = time.time()

            def finished() -> tuple[str, Any, Any] | None:
                cursor.execute("SELECT state, start_date, end_date FROM dag_run WHERE dag_id = %s", (dep.dag_id,))
                rows = cursor.fetchall()
                return rows[0] if rows and rows[0][0] in ("success", "failed") else None

            budget = 600 + 6 * math.ceil(args.products / SLOTS) * args.render
            state, run_start, run_end = wait_until(
                finished, timeout=budget, interval=1.0, what="the run to finish", alive=group.check_alive
            )
            sampler.stopped.set()
            sampler.join()
            cursor.execute(
                "SELECT task_id, map_index, state, try_number, scheduled_dttm, queued_dttm, start_date, end_date "
                "FROM task_instance WHERE dag_id = %s",
                (dep.dag_id,),
            )
            tis = cursor.fetchall()
            cursor.execute("SELECT count(*) FROM task_reschedule")
            (reschedules,) = cursor.fetchone()
            cursor.execute(
                "SELECT map_index, value FROM task_state_store WHERE dag_id = %s AND task_id = %s AND key = %s",
                (dep.dag_id, "product.generate", "cogvideo_job"),
            )
            job_of = {index: json.loads(value).get("job_id") for index, value in cursor.fetchall()}
            conn.close()
        stats = emulator.stats()
        jobs = jobs_from(emulator)
        requests = list(emulator.log.requests)
    load_end = os.getloadavg()[0]
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return analyse(
        variant,
        args,
        jobs=jobs,
        requests=requests,
        stats=stats,
        tis=tis,
        changes=sampler.changes,
        run=(state, run_start.timestamp(), run_end.timestamp(), triggered),
        reschedules=reschedules,
        job_of=job_of,
        load=(load_start, load_end),
        home=str(home) if args.keep else None,
    )


# ------------------------------------------------------------------------------------------ figures
def pair_slots(jobs: list[Job]) -> list[tuple[int, Job, Job]]:
    """(slot, finished job, the next job created in its slot): each new job takes the slot of the
    earliest-finished job not reused yet (the server frees a slot when a job finishes)."""
    ordered = sorted(jobs, key=lambda j: j.created)
    slot_of: dict[str, int] = {}
    pairs = []
    for job in ordered:
        if len(slot_of) < SLOTS:
            slot_of[job.id] = len(slot_of)
            continue
        candidates = [j for j in ordered if j.id in slot_of and j.id not in {p[1].id for p in pairs}]
        candidates = [j for j in candidates if j.finished <= job.created + 0.5] or candidates
        prev = min(candidates, key=lambda j: j.finished)
        slot_of[job.id] = slot_of[prev.id]
        pairs.append((slot_of[job.id], prev, job))
    return pairs


def _ts(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 2),
        "p50": round(percentile(values, 50), 2),
        "max": round(max(values), 2),
    }


def analyse(variant: str, args: argparse.Namespace, **data: Any) -> dict[str, Any]:
    jobs: list[Job] = data["jobs"]
    state, run_start, run_end, triggered = data["run"]
    n, r = args.products, args.render
    out: dict[str, Any] = {"variant": variant, "run_state": state, "jobs": len(jobs)}
    if not jobs:
        return out
    first = min(j.created for j in jobs)
    last = max(j.finished for j in jobs)
    makespan = last - first
    rendered = sum(j.finished - j.created for j in jobs)
    limit = math.ceil(n / SLOTS) * r
    pairs = pair_slots(jobs)
    gaps = [nxt.created - prev.finished for _, prev, nxt in pairs]
    detection = [prev.seen - prev.finished for _, prev, _ in pairs if prev.seen is not None]
    handoff = [nxt.created - prev.seen for _, prev, nxt in pairs if prev.seen is not None]
    per_slot = {}
    for slot in range(SLOTS):
        mine = [(prev, nxt) for s, prev, nxt in pairs if s == slot]
        per_slot[slot] = {
            "transitions": len(mine),
            "idle_s": round(sum(nxt.created - prev.finished for prev, nxt in mine), 2),
            "detection_mean_s": round(statistics.fmean([p.seen - p.finished for p, _ in mine if p.seen]), 2)
            if mine
            else None,
            "handoff_mean_s": round(statistics.fmean([nx.created - p.seen for p, nx in mine if p.seen]), 2)
            if mine
            else None,
        }
    rejections = data["stats"]["rejections"]
    out.update(
        {
            "makespan_s": round(makespan, 1),
            # ... to the last result *seen* by Airflow (what downstream tasks wait for)
            "results_makespan_s": round(max(j.seen or j.finished for j in jobs) - first, 1),
            "limit_s": limit,
            "throughput_vs_limit": round(limit / makespan, 3),
            "tier_utilisation": round(rendered / (SLOTS * makespan), 3),
            "rendered_s": round(rendered, 1),
            "dag_run_s": round(run_end - run_start, 1),
            # what a marketing team buys: videos per hour of DAG run, not of busy tier
            "videos_per_hour": round(len(jobs) * 3600 / (run_end - run_start)),
            "trigger_to_first_submit_s": round(first - triggered, 1),
            "last_finish_to_run_end_s": round(run_end - last, 1),
            "gap_s": _stats(gaps),
            "detection_s": _stats(detection),
            "handoff_s": _stats(handoff),
            "per_slot": per_slot,
            "polls_per_job": round(statistics.fmean(j.polls for j in jobs), 1),
            "server": {
                "submits": data["stats"]["submits"],
                "rejections": rejections,
                "max_in_flight": data["stats"]["max_in_flight"],
                "api_requests": len(data["requests"]),
            },
            "task_tries": sum(row[3] for row in data["tis"]),
            "task_reschedules": data["reschedules"],
            "loadavg_1min_start_end": [round(x, 2) for x in data["load"]],
            "jobs_detail": [
                {
                    "created_s": round(j.created - first, 2),
                    "finished_s": round(j.finished - first, 2),
                    "seen_s": round(j.seen - first, 2) if j.seen else None,
                    "polls": j.polls,
                }
                for j in sorted(jobs, key=lambda j: j.created)
            ],
            "kept_home": data["home"],
        }
    )
    if variant.startswith("ours"):
        out["handoff_breakdown_s"] = breakdown(pairs, data["tis"], data["changes"], data["job_of"])
    return out


def breakdown(
    pairs: list[tuple[int, Job, Job]], tis: list[tuple[Any, ...]], changes: dict, job_of: dict[int, str]
) -> dict[str, Any]:
    """Where a provider hand-off goes, along the generate task instances (see the module docstring).

    ``job_of``: map index -> the job id its task_state_store record holds (kept after success)."""
    generate = {row[1]: row for row in tis if row[0] == "product.generate"}
    index_of = {job: index for index, job in job_of.items()}
    phases: dict[str, list[float]] = {
        "SUCCESS seen -> TI scheduled (trigger event)": [],
        "-> queued (resume)": [],
        "-> running on the worker (resume)": [],
        "-> resumed task done (slot free)": [],
        "-> next generate TI queued": [],
        "-> next TI running": [],
        "-> next TI's POST (job created)": [],
    }
    for _, prev, nxt in pairs:
        i, k = index_of.get(prev.id), index_of.get(nxt.id)
        if i is None or k is None or prev.seen is None:
            continue
        hist_i, hist_k = changes.get(("product.generate", i), []), changes.get(("product.generate", k), [])
        fired = _ts(generate[i][4])  # scheduled_dttm: set when the trigger's event arrived
        marks = [
            prev.seen,
            fired,
            _first(hist_i, "queued", after=fired),
            _first(hist_i, "running", after=fired),
            _ts(generate[i][7]),  # end_date
            _first(hist_k, "queued"),
            _ts(generate[k][6]) or _first(hist_k, "running"),  # start_date: the first try's start
            nxt.created,
        ]
        if any(m is None for m in marks):
            continue
        for name, a, b in zip(phases, marks, marks[1:], strict=False):
            phases[name].append(b - a)
    return {name: _stats(values) for name, values in phases.items()}


def _first(history: list[tuple[float, str | None, int]], state: str, after: float | None = None) -> float | None:
    for at, s, _ in history:
        if s == state and (after is None or at >= after - 0.25):
            return at
    return None


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=20, help="N products (default 20)")
    parser.add_argument("--render", type=float, default=30.0, help="R: render seconds per job (default 30)")
    parser.add_argument("--jitter", type=float, default=0.0, help="render time spread, a fraction of R (default 0)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--executor", choices=("celery", "local"), default="celery")
    parser.add_argument("--generic-poke", type=float, default=5.0, help="HttpSensor poke_interval (default 5)")
    parser.add_argument("--output", default="tier_throughput", help="results/<output>.json")
    parser.add_argument(
        "--no-worker-preload",
        dest="worker_preload",
        action="store_false",
        help="Celery workers without airflow_provider_cogvideo.worker_preload (docs/deploy.md)",
    )
    parser.add_argument("--keep", action="store_true", help="keep each variant's Airflow home (logs) for inspection")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {sorted(unknown)}")

    results = []
    started = time.time()
    with running_postgres(databases=(TEMPLATE_DB,)) as postgres, running_redis() as redis, running_seaweedfs() as s3:
        client = s3.boto3_client()
        seed_products(client, sample_products(args.products), corrupt=False)
        for index in range(len(variants)):
            ensure_bucket(client, f"videos-{index}")
        template = AirflowEnvironment(
            home=Path(tempfile.mkdtemp(prefix="tier-bench-template-")),
            config={("database", "sql_alchemy_conn"): postgres.url(TEMPLATE_DB)},
            extra_env=bytecode_cache_env(),
        )
        template.migrate()
        shutil.rmtree(template.home, ignore_errors=True)
        for index, variant in enumerate(variants):
            print(f"== {variant}: N={args.products}, R={args.render:g} s, {args.executor} executor", flush=True)
            result = run_variant(variant, index, args, postgres, redis, s3)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k not in ("per_slot",)}, indent=1), flush=True)

    limit = math.ceil(args.products / SLOTS) * args.render
    headers = ("variant", "makespan s", "x limit", "tier util.", "gap mean s", "detection mean s", "hand-off mean s",
               "DAG run s", "videos/h", "polls/job", "429s", "task tries")  # fmt: skip
    rows = [
        (
            r["variant"],
            r.get("makespan_s", float("nan")),
            r.get("throughput_vs_limit", float("nan")),
            r.get("tier_utilisation", float("nan")),
            r.get("gap_s", {}).get("mean", float("nan")),
            r.get("detection_s", {}).get("mean", float("nan")),
            r.get("handoff_s", {}).get("mean", float("nan")),
            r.get("dag_run_s", float("nan")),
            r.get("videos_per_hour", float("nan")),
            r.get("polls_per_job", float("nan")),
            sum(r.get("server", {}).get("rejections", {}).values()),
            r.get("task_tries", 0),
        )
        for r in results
    ]
    nan, per_hour = float("nan"), round(args.products * 3600 / limit)
    rows.append(("limit ceil(N/5) x R", float(limit), 1.0, 1.0, 0.0, 0.0, 0.0, nan, per_hour, nan, 0, 0))
    print(table(headers, rows))
    for r in results:
        if "handoff_breakdown_s" in r:
            print(f"\n{r['variant']}: hand-off breakdown (s)")
            print(
                table(
                    ("phase", "n", "mean", "p50", "max"),
                    [
                        (k, v["n"], v.get("mean", float("nan")), v.get("p50", float("nan")), v.get("max", float("nan")))
                        for k, v in r["handoff_breakdown_s"].items()
                    ],
                )
            )
    path = write_results(
        args.output,
        {
            "settings": {
                "products": args.products,
                "render_s": args.render,
                "jitter": args.jitter,
                "executor": args.executor,
                "generic_poke_s": args.generic_poke,
                "limit_s": limit,
            },
            "wall_s": round(time.time() - started, 1),
            "results": results,
        },
    )
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
