"""Catalog scale: the example pipeline over one catalog, first run and unchanged re-run (run by hand).

    .venv/bin/python benchmarks/catalog_scale.py                    # a, b (150 products), c (1,000 and 5,000)
    .venv/bin/python benchmarks/catalog_scale.py --parts "" --expansion 5000 --output catalog_scale_expansion
    .venv/bin/python benchmarks/catalog_scale.py --products 30 --sizes 1000 --repeat 1   # smoke (~4 min)

The defaults take about 10 minutes on an idle 2-core machine, most of it part (a): 150 products
through a real deployment cost about 3.5 CPU-seconds each here, so a few hundred would take 15 and
more (``--products 300`` is fine, just slow). Three parts (``--parts a,b,c``) and a probe, every
figure measured, no assertion on any of them:

(a) **First run under a real scheduler.** A PostgreSQL metadata DB, api-server, scheduler
    (LocalExecutor), dag-processor and ONE triggerer run the example pipeline
    (``airflow_provider_cogvideo/demo/product_video_pipeline.py``, the file users copy) over
    ``--products`` sample products in SeaweedFS, against the emulator (a thread of this process, API
    key at ``--tier``, renders of ``--render`` seconds, 160 px clips encoded halfway through each
    job as a real server's are ready at SUCCESS) with a pool sized by ``cogvideo pool --tier``.
    ``[core] max_map_length`` is the catalog's size, so the run maps every product. Measured: videos
    per hour (uploaded x 3600 / DAG run) against the tier limit (slots x 3600 / render), CPU seconds
    per product of the scheduler process (``/proc/<pid>/stat``: its own, and with its whole tree, the
    LocalExecutor workers and the task processes they reap), of the other components and of the
    machine, and how the scheduler copes with the mapped expansion: from the plan task's end to every
    generate task instance existing, the first queued, the pool full, the last queued (sampled every
    0.5 s from the metadata DB).
(b) **The unchanged second run** of the same catalog on the same deployment: DAG run wall time,
    requests to the API (the emulator's counts), S3 requests by kind (the manifest's ``reads``, which
    ingestion counts), and the S3 requests and bytes of the run's ingestion and run-record tasks
    replayed in this process against the same buckets, counted with botocore event hooks on the
    ``S3Hook`` clients (image bytes read: 0).
(c) **Decision and record at ``--sizes`` products** (1,000 and 5,000), in this process, against
    SeaweedFS (a real S3 over HTTP; moto would be faster to prepare but its listing and request
    costs are not a server's). The benchmark prepares each catalog as a first run would leave it:
    small PNG images (64 x 48) and sidecars are read by the real ingestion operator (that first
    read is timed too), then every paid item gets a placeholder video and cover object (1 KiB) and
    its index entry (``video_index.entry_from_upload`` / ``write_entry``) and the index is compacted,
    as the uploads and the run record do. Then, over the unchanged catalog: the ingestion task's
    decision (``S3ProductImagesOperator.execute``: listing, ``load_index``, the choice per product),
    the run record (``CogVideoRunRecordOperator.execute``: ``build_manifest``, the manifest PUT, the
    gallery with 2 presigned URLs per product, the compaction), their S3 requests, the sizes of the
    XCom and documents they produce, and each task's peak Python memory (``tracemalloc``, a second
    pass: tracing slows the code down, so times come from the untraced pass).
(e) **Expansion probe** (``--expansion N``, off by default): on the same deployment (with
    ``max_map_length`` raised to N), a dry run of the pipeline over N new tiny products, so that
    every product is mapped and nothing is paid; watched until every generate task instance exists
    and the pool has been filled, then a minute more (the scheduler's CPU rate with N instances
    waiting for the pool), and left unfinished.

Everything binds 127.0.0.1 on free ports and is stopped by its own pid or process group.
Results: ``benchmarks/results/<output>.json`` (machine, load, command, every figure).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import posixpath
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
# This checkout's package, in this process and in every Airflow component (cwd below).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ROOT, TEST_KEY, machine_cpu, process_cpu, table, write_results

from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY
from airflow_provider_cogvideo.demo import PIPELINE_DAG_ID, pipeline_dag_file
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment, api_healthy, served_settings
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.products import (
    SOURCE_BUCKET,
    SOURCE_PREFIX,
    ensure_bucket,
    sample_products,
    seed_products,
)
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS, aws_connection_json, free_ports, running_seaweedfs
from tests.harness.distributed import bytecode_cache_env
from tests.harness.postgres import PostgresServer, running_postgres

MODEL = "cogvideox-3"
OUTPUT_BUCKET = "product-videos"  # the pipeline's default output_bucket (its video index: videos/)
BENCH_CONN = "aws_bench"  # the in-process replays' S3 connection (AIRFLOW_CONN_AWS_BENCH)
MEDIA_MAX_SIDE = 160  # emulator clips: see tier_throughput.MEDIA_MAX_SIDE
PLACEHOLDER_BYTES = 1024  # (c): each placeholder video and cover
PREPARE_WORKERS = 16  # (c): PUTs at once while preparing a catalog
STARTED = ("queued", "running", "deferred", "success", "failed", "up_for_retry")
"""A task instance in one of these states has been queued at least once."""
EXPANSION_OBSERVE_S = 60.0
"""The expansion probe watches the scheduler this long once the pool is filled."""


# ------------------------------------------------------------------------- S3 requests, in process
def _object_kind(operation: str, params: dict[str, Any]) -> str:
    """What an S3 request touched, from its parameters: the catalog's images and sidecars, the video
    index's parts, or the run's own documents."""
    key = str(params.get("Key") or params.get("Prefix") or "")
    if ".index/" in key:
        return "index document" if key.endswith("index.json") else "index entries/holds"
    if operation == "ListObjectsV2":
        return "video index root" if key.endswith("videos/") else "catalog"
    ext = posixpath.splitext(key)[1].lower()
    if key.startswith(("manifests/", "gallery/")):
        return "manifest/gallery"
    if ext == ".json":
        return "sidecar"
    if ext in (".png", ".jpg", ".jpeg", ".webp"):
        return "image"
    return "other"


class S3Requests:
    """S3 requests of every ``S3Hook`` client made while :meth:`counting` is active, counted with
    botocore's event hooks: by operation and kind of object, and the bytes of each GetObject answer."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.bytes_read: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.task = "?"
        """The in-process task making the requests (set by :func:`replay_second_run`)."""
        self._clients: set[int] = set()

    def _params(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_kind"] = _object_kind(model.name, params)
        context["bench_started"] = time.perf_counter()

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        what = f"{self.task}: {model.name} {context.get('bench_kind', 'other')}"
        self.requests[what] += 1
        self.seconds[what] += time.perf_counter() - context.get("bench_started", time.perf_counter())
        if model.name == "GetObject":
            self.bytes_read[what] += int(parsed.get("ContentLength") or 0)

    def attach(self, client: Any) -> Any:
        if id(client) not in self._clients:
            self._clients.add(id(client))
            client.meta.events.register("provide-client-params.s3", self._params)
            client.meta.events.register("after-call.s3", self._after)
        return client

    def reset(self) -> None:
        for counts in (self.requests, self.bytes_read, self.seconds):
            counts.clear()

    @contextmanager
    def counting(self) -> Iterator[S3Requests]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        original = S3Hook.get_conn

        def get_conn(hook: Any) -> Any:
            return self.attach(original(hook))

        with mock.patch.object(S3Hook, "get_conn", get_conn):
            yield self

    def summary(self) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "bytes_read": dict(sorted(self.bytes_read.items())),
            # each request's time from its parameters to its parsed answer (serialising, signing, the
            # round trip, parsing: a listing page's XML included)
            "request_seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
        }


# -------------------------------------------------------------------- in-process tasks (b) and (c)
class ReplayTI:
    """The task instance of an in-process task: XComs pushed and pulled by (task id, key)."""

    def __init__(self, task_id: str, store: dict[tuple[str, str], Any]) -> None:
        self.task_id, self.store = task_id, store

    def xcom_push(self, key: str, value: Any) -> None:
        self.store[(self.task_id, key)] = json.loads(json.dumps(value))

    def xcom_pull(self, *, task_ids: str, key: str = "return_value", **_: Any) -> Any:
        return self.store.get((task_ids, key))


def ingest_operator(bucket: str, prefix: str, index_uri: str) -> Any:
    """The example pipeline's ingestion, as its DAG file configures it (template, model, options)."""
    from airflow_provider_cogvideo.demo.product_video_pipeline import GENERATION, PROMPT
    from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator

    return S3ProductImagesOperator(
        task_id="ingest",
        s3_bucket=bucket,
        prefix=prefix,
        staging_prefix="staging/bench/",
        prompt_template=PROMPT,
        video_index=index_uri,
        generation=GENERATION,
        aws_conn_id=BENCH_CONN,
    )


def record_operator(bucket: str, index_uri: str, run: str) -> Any:
    from airflow_provider_cogvideo.operators.run_record import CogVideoRunRecordOperator

    return CogVideoRunRecordOperator(
        task_id="manifest",
        s3_bucket=bucket,
        manifest_key=f"manifests/bench/{run}.json",
        gallery_key=f"gallery/bench/{run}.html",
        video_index=index_uri,
        aws_conn_id=BENCH_CONN,
    )


@dataclass
class Replay:
    """One unchanged re-run of ingestion and the run record, in this process."""

    paid: list[dict[str, Any]]
    xcom: dict[tuple[str, str], Any]
    seconds: dict[str, float]
    peak_mib: dict[str, float] = field(default_factory=dict)


def _timed(seconds: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def replay_second_run(
    bucket: str, prefix: str, output_bucket: str, run: str, *, trace: bool = False, counter: S3Requests | None = None
) -> Replay:
    """Ingestion then the run record over an unchanged catalog (nothing mapped: the plan's estimate
    is 0), each timed whole and by phase; with ``trace``, each task's peak Python memory too (and
    slower times); ``counter`` is told which task makes the requests it counts."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_cogvideo.operators import run_record

    index_uri = f"s3://{output_bucket}/videos/"
    xcom: dict[tuple[str, str], Any] = {}
    seconds: dict[str, float] = {}
    peaks: dict[str, float] = {}
    ingest = ingest_operator(bucket, prefix, index_uri)
    for name in ("_load_catalog", "_list_candidates", "_load_index"):
        setattr(ingest, name, _timed(seconds, f"ingest {name.strip('_').replace('_', ' ')}", getattr(ingest, name)))
    record = record_operator(output_bucket, index_uri, run)
    counter = counter or S3Requests()
    counter.task = "ingest"
    get_conn = S3Hook.get_conn

    def timed_get_conn(hook: Any) -> Any:
        return _timed(seconds, f"{counter.task} s3 client", get_conn)(hook)

    def traced(name: str, fn: Callable[[], Any]) -> Any:
        if trace:
            tracemalloc.start()
        started = time.perf_counter()
        try:
            return fn()
        finally:
            seconds[name] = time.perf_counter() - started
            if trace:
                peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()

    patches = [mock.patch.object(S3Hook, "get_conn", timed_get_conn)]
    patches += [
        mock.patch.object(run_record, name, _timed(seconds, f"record {name}", getattr(run_record, name)))
        for name in ("build_manifest", "write_gallery", "compact")
    ]
    for patch in patches:
        patch.start()
    try:
        paid = traced("ingest", lambda: ingest.execute({"ti": ReplayTI("ingest", xcom)}))
        xcom[("ingest", "return_value")] = paid
        xcom[("plan", "estimate")] = {"price": 0.0, "currency": "CNY", "budget": None, "refused": False, "paid": 0}
        counter.task = "record"
        traced("record", lambda: record.execute({"ti": ReplayTI("manifest", xcom), "run_id": run}))
    finally:
        for patch in reversed(patches):
            patch.stop()
    seconds["ingest decisions"] = seconds["ingest"] - sum(v for k, v in seconds.items() if k.startswith("ingest "))
    return Replay(paid, xcom, {k: round(v, 4) for k, v in seconds.items()}, peaks)


# --------------------------------------------------------------------------------- (c) preparation
def tiny_png(n: int) -> bytes:
    """A small, valid, distinct product image (ingestion reads and checks it on the first run)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), ((n * 37) % 256, (n * 91) % 256, (n // 256) % 256)).save(out, format="PNG")
    return out.getvalue()


def seed_tiny_catalog(client: Any, bucket: str, prefix: str, n: int) -> float:
    """``n`` sample products (sidecars as :func:`sample_products` writes them) with :func:`tiny_png`
    images, put :data:`PREPARE_WORKERS` at a time; the seconds it took. ``client`` needs a connection
    pool that large (``max_pool_connections``)."""
    ensure_bucket(client, bucket)
    products = sample_products(n)
    started = time.perf_counter()

    def seed(i: int) -> None:
        product = products[i]
        client.put_object(Bucket=bucket, Key=f"{prefix}{product.product_id}.png", Body=tiny_png(i))
        client.put_object(Bucket=bucket, Key=f"{prefix}{product.product_id}.json", Body=json.dumps(product.sidecar()))

    with ThreadPoolExecutor(PREPARE_WORKERS) as pool:
        list(pool.map(seed, range(n)))
    return time.perf_counter() - started


def prepare_catalog(client: Any, bucket: str, prefix: str, output_bucket: str, n: int) -> dict[str, Any]:
    """What a first run leaves: ``n`` images and sidecars, read by the real ingestion (timed), and for
    every item it hands on a placeholder video and cover and the index entry, then a compaction."""
    from airflow_provider_cogvideo.video_index import (
        IndexLocation,
        StoredObject,
        compact,
        entry_from_upload,
        indexed_key,
        write_entry,
    )

    seeded = seed_tiny_catalog(client, bucket, prefix, n)
    ensure_bucket(client, output_bucket)
    location = IndexLocation.parse(f"s3://{output_bucket}/videos/")
    xcom: dict[tuple[str, str], Any] = {}
    started = time.perf_counter()
    with mock.patch.dict(os.environ, {"AIRFLOW__CORE__MAX_MAP_LENGTH": str(n)}):
        items = ingest_operator(bucket, prefix, location.uri).execute({"ti": ReplayTI("ingest", xcom)})
    first_ingest = time.perf_counter() - started
    if len(items) != n:
        raise RuntimeError(f"the first run should pay for all {n} products, it hands on {len(items)}")

    paid_at = datetime.now(timezone.utc)
    placeholder = secrets.token_bytes(PLACEHOLDER_BYTES)

    def upload(i: int) -> tuple[str, str, Any]:
        item = items[i]
        result = {
            "id": f"bench-job-{i}",
            "model": MODEL,
            "prompt": item["prompt"],
            "price": 1.0,
            "price_currency": "CNY",
            "metadata": item["metadata"],
        }
        stored = []
        for key in (video_key := indexed_key(location, result), posixpath.splitext(video_key)[0] + ".png"):
            answer = client.put_object(Bucket=output_bucket, Key=key, Body=placeholder)
            digest = hashlib.sha256(placeholder).hexdigest()
            stored.append(StoredObject(key, PLACEHOLDER_BYTES, answer["ETag"].strip('"'), digest))
        entry = entry_from_upload(
            location=location,
            result=result,
            video=stored[0],
            cover=stored[1],
            run_id="bench-first-run",
            paid_at=paid_at,
        )
        key, etag = write_entry(client, location, entry)
        return key, etag, entry.to_json()

    started = time.perf_counter()
    with ThreadPoolExecutor(PREPARE_WORKERS) as pool:
        known = list(pool.map(upload, range(n)))
    compact(client, location, known=known)
    return {
        "seed_s": round(seeded, 1),
        "first_run_ingest_s": round(first_ingest, 2),
        "first_run_reads": xcom.get(("ingest", "catalog_reads")),
        "uploads_and_entries_s": round(time.perf_counter() - started, 1),
    }


def _pooled_client(s3: SeaweedFS) -> Any:
    from botocore.config import Config

    return s3.boto3_client(config=Config(max_pool_connections=PREPARE_WORKERS))


def measure_size(s3: SeaweedFS, n: int, repeat: int) -> dict[str, Any]:
    """Part (c) at ``n`` products: prepare, then time (untraced), count and trace the unchanged re-run."""
    client = _pooled_client(s3)
    bucket, output_bucket, prefix = f"catalog-{n}", f"videos-{n}", "incoming/"
    print(f"== (c) {n} products: preparing the catalog and its index", flush=True)
    prepared = prepare_catalog(client, bucket, prefix, output_bucket, n)
    print(f"   prepared: {prepared}", flush=True)
    counter = S3Requests()
    runs = []
    with counter.counting():
        for r in range(repeat):
            counter.reset()
            runs.append(replay_second_run(bucket, prefix, output_bucket, f"rerun-{r}", counter=counter))
    requests = counter.summary()
    last = runs[-1]
    if last.paid:
        raise RuntimeError(f"an unchanged catalog should pay for nothing; {len(last.paid)} items handed on")
    catalog_rows = last.xcom[("ingest", "catalog")]
    traced = replay_second_run(bucket, prefix, output_bucket, "rerun-traced", trace=True)
    document = client.get_object(Bucket=output_bucket, Key="videos/.index/index.json")["Body"].read()
    manifest = client.head_object(Bucket=output_bucket, Key="manifests/bench/rerun-0.json")["ContentLength"]
    gallery = client.head_object(Bucket=output_bucket, Key="gallery/bench/rerun-0.html")["ContentLength"]
    phases = sorted({k for run in runs for k in run.seconds})
    return {
        "products": n,
        "prepared": prepared,
        "repeat": repeat,
        "seconds_median": {k: round(statistics.median(run.seconds.get(k, 0.0) for run in runs), 4) for k in phases},
        "seconds_all": [run.seconds for run in runs],
        "peak_python_mib": {k: round(v, 1) for k, v in traced.peak_mib.items()},
        "reused": sum(1 for row in catalog_rows if row["status"] == "reused"),
        "manifest_reads": last.xcom[("ingest", "catalog_reads")],
        "s3_last_rerun": requests,
        "sizes_bytes": {
            "xcom catalog rows": len(json.dumps(catalog_rows)),
            "index document": len(document),
            "manifest": manifest,
            "gallery page": gallery,
        },
    }


# ------------------------------------------------------------------------ (a)/(b) the deployment
@dataclass
class Deployment:
    env: AirflowEnvironment
    group: ProcessGroup
    postgres: PostgresServer
    pids: dict[str, int]
    """Whose CPU is measured: each component's process tree, PostgreSQL's, SeaweedFS's, and this
    process's own (the emulator's thread and the sampler)."""


@contextmanager
def running_deployment(
    home: Path, postgres: PostgresServer, s3: SeaweedFS, emulator: Any, args: argparse.Namespace
) -> Iterator[Deployment]:
    """api-server, scheduler (LocalExecutor), dag-processor and one triggerer on ``postgres``,
    ``[core] max_map_length`` = the catalog's size, the pool from ``cogvideo pool --tier``."""
    api_port, worker_logs, trigger_logs = free_ports(3)
    api = f"http://127.0.0.1:{api_port}"
    env = AirflowEnvironment(
        home=home,
        connections={
            "cogvideo_default": connection_json(emulator),
            "aws_default": json.dumps(aws_connection_json(s3)),
        },
        config={
            ("core", "executor"): "LocalExecutor",
            ("database", "sql_alchemy_conn"): postgres.url("airflow"),
            **served_settings(api, worker_log_port=worker_logs, trigger_log_port=trigger_logs),
            ("core", "max_map_length"): str(max(args.products, args.expansion)),
            # Start-up only (the DAG is parsed and unpaused sooner); the runs use Airflow's defaults.
            ("core", "dags_are_paused_at_creation"): "False",
            ("dag_processor", "refresh_interval"): "5",
        },
        extra_env={
            "COGVIDEO_PIPELINE_SCHEDULE": "none",
            "COGVIDEO_PIPELINE_MODEL": MODEL,
            "COGVIDEO_PIPELINE_POLL_INTERVAL": str(args.poll),
            **bytecode_cache_env(),  # compiled once, like a production image's bytecode
            "PYTHONPATH": str(ROOT),
        },
    )
    env.install_dags(pipeline_dag_file())
    env.migrate()
    env.cogvideo("pool", "--tier", args.tier)
    with ProcessGroup(home / "component-logs") as group:
        components = {
            "api-server": env.command("api-server", "--host", "127.0.0.1", "--port", str(api_port)),
            "scheduler": env.command("scheduler"),
            "dag-processor": env.command("dag-processor"),
            "triggerer": env.command("triggerer"),
        }
        for name, argv in components.items():
            group.start(name, argv, env.env(), cwd=ROOT)
        wait_until(
            lambda: api_healthy(f"http://127.0.0.1:{api_port}"),
            timeout=180,
            what="the api-server",
            alive=group.check_alive,
        )
        conn = postgres.connect("airflow")
        try:
            cursor = conn.cursor()

            def parsed() -> bool:
                cursor.execute("SELECT stacktrace FROM import_error")
                if errors := cursor.fetchall():
                    raise RuntimeError(f"{PIPELINE_DAG_ID} failed to import: {errors}")
                cursor.execute("SELECT 1 FROM serialized_dag WHERE dag_id = %s", (PIPELINE_DAG_ID,))
                return bool(cursor.fetchall())

            wait_until(parsed, timeout=180, what="the DAG to be parsed", alive=group.check_alive)
        finally:
            conn.close()
        pids = {name: p.pid for name, p in group.processes.items()}
        pids.update({"seaweedfs": s3.process.pid, "this process (emulator)": os.getpid()})
        if (pid := postgres.postmaster_pid()) is not None:
            pids["postgres"] = pid
        yield Deployment(env, group, postgres, pids)


class RunSampler(threading.Thread):
    """Every 0.5 s: each task instance's state in one DAG run (first time seen in each state), the
    CPU of every component's process and tree, and the machine's."""

    def __init__(self, deployment: Deployment, run_id: str) -> None:
        super().__init__(daemon=True)
        self.deployment, self.run_id = deployment, run_id
        self.first_seen: dict[tuple[str, int, str], float] = {}
        self.started: set[int] = set()  # generate map indexes seen queued or later
        self.samples: list[dict[str, Any]] = []
        self.stopped = threading.Event()
        self.pids = deployment.pids

    def sample_cpu(self) -> dict[str, Any]:
        return {"t": time.time(), "cpu": process_cpu(self.pids), "machine": machine_cpu()}

    def run(self) -> None:
        conn = self.deployment.postgres.connect("airflow")
        cursor = conn.cursor()
        try:
            while not self.stopped.wait(0.5):
                now = time.time()
                # Instances still waiting (no state, scheduled) are only counted: thousands of rows
                # every 0.5 s would take the CPU the scheduler is measured on.
                cursor.execute(
                    "SELECT count(*) FROM task_instance WHERE dag_id = %s AND run_id = %s "
                    "AND task_id = 'product.generate' AND map_index >= 0",
                    (PIPELINE_DAG_ID, self.run_id),
                )
                (generate,) = cursor.fetchone()
                cursor.execute(
                    "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = %s AND run_id = %s "
                    "AND state IS NOT NULL AND state <> 'scheduled'",
                    (PIPELINE_DAG_ID, self.run_id),
                )
                for task_id, map_index, state in cursor.fetchall():
                    self.first_seen.setdefault((task_id, map_index, str(state)), now)
                    if task_id == "product.generate" and map_index >= 0 and str(state) in STARTED:
                        self.started.add(map_index)
                self.samples.append(
                    {**self.sample_cpu(), "generate_tis": generate, "generate_started": len(self.started)}
                )
        finally:
            conn.close()


def _ts(value: Any) -> float | None:
    return value.timestamp() if value is not None else None


def _newest_manifest(client: Any) -> dict[str, Any]:
    listed = client.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/").get("Contents", [])
    listed = [o for o in listed if not o["Key"].startswith("manifests/bench/")]
    newest = max(listed, key=lambda o: o["LastModified"])
    return json.loads(client.get_object(Bucket=OUTPUT_BUCKET, Key=newest["Key"])["Body"].read())


def pipeline_run(dep: Deployment, emulator: Any, s3_client: Any, run_id: str, args: argparse.Namespace) -> dict:
    """Trigger one run of the pipeline and measure it (see the module docstring, (a) and (b))."""
    sampler = RunSampler(dep, run_id)
    before_stats = emulator.stats()
    load_start = os.getloadavg()[0]
    sampler.start()
    time.sleep(1.2)  # a baseline sample or two: the components idle
    dep.env.run("dags", "trigger", PIPELINE_DAG_ID, "--run-id", run_id)
    conn = dep.postgres.connect("airflow")
    cursor = conn.cursor()

    def finished() -> tuple[Any, ...] | None:
        cursor.execute(
            "SELECT state, start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s",
            (PIPELINE_DAG_ID, run_id),
        )
        rows = cursor.fetchall()
        return rows[0] if rows and rows[0][0] in ("success", "failed") else None

    budget = 600 + 8 * args.products * max(1.0, args.render / TIER_CONCURRENCY[args.tier])
    state, run_start, run_end = wait_until(
        finished, timeout=budget, interval=1.0, what=f"run {run_id}", alive=dep.group.check_alive
    )
    time.sleep(1.0)  # the last task's processes reaped into their supervisors' counts
    sampler.stopped.set()
    sampler.join()
    end = sampler.sample_cpu()
    tis = task_instances(cursor, run_id)
    conn.close()
    after_stats = emulator.stats()
    manifest = _newest_manifest(s3_client)
    return analyse_run(
        run_id,
        args,
        state=state,
        window=(_ts(run_start), _ts(run_end)),
        tis=tis,
        sampler=sampler,
        end=end,
        stats=(before_stats, after_stats),
        manifest=manifest,
        load=(load_start, os.getloadavg()[0]),
    )


def task_instances(cursor: Any, run_id: str) -> list[tuple[Any, ...]]:
    """(task_id, map_index, state, queued_dttm, start_date, end_date) of every task instance of a run."""
    cursor.execute(
        "SELECT task_id, map_index, state, queued_dttm, start_date, end_date FROM task_instance "
        "WHERE dag_id = %s AND run_id = %s",
        (PIPELINE_DAG_ID, run_id),
    )
    return cursor.fetchall()


def expansion_probe(dep: Deployment, s3: SeaweedFS, args: argparse.Namespace) -> dict[str, Any]:
    """A dry run of the pipeline over ``--expansion`` new (tiny) products: nothing is paid, every
    product is mapped. Watched until every generate task instance exists and the pool has been
    filled, then :data:`EXPANSION_OBSERVE_S` more; the run is left unfinished (the deployment stops)."""
    n, slots = args.expansion, TIER_CONCURRENCY[args.tier]
    client = _pooled_client(s3)
    bucket, output = f"expansion-{n}", f"expansion-{n}-out"
    seeded = seed_tiny_catalog(client, bucket, SOURCE_PREFIX, n)
    ensure_bucket(client, output)
    print(f"== (e) {n} products seeded in {seeded:.0f} s; dry run", flush=True)
    run_id = f"expansion_{n}"
    sampler = RunSampler(dep, run_id)
    sampler.start()
    time.sleep(1.2)
    conf = {"source_bucket": bucket, "source_prefix": SOURCE_PREFIX, "output_bucket": output, "dry_run": True}
    dep.env.run("dags", "trigger", PIPELINE_DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))

    def filled() -> bool:
        last = sampler.samples[-1] if sampler.samples else {}
        return last.get("generate_tis", 0) >= n and last.get("generate_started", 0) >= min(n, slots)

    wait_until(filled, timeout=600 + n / 10, interval=1.0, what="the expansion", alive=dep.group.check_alive)
    reached = time.time()
    time.sleep(EXPANSION_OBSERVE_S)
    sampler.stopped.set()
    sampler.join()
    conn = dep.postgres.connect("airflow")
    try:
        cursor = conn.cursor()
        tis = task_instances(cursor, run_id)
        cursor.execute(
            "SELECT task_id, octet_length(value::text) FROM xcom WHERE dag_id = %s AND run_id = %s "
            "AND key = 'return_value' AND task_id IN ('ingest', 'plan')",
            (PIPELINE_DAG_ID, run_id),
        )
        xcom_bytes = dict(cursor.fetchall())
        cursor.execute("SELECT start_date FROM dag_run WHERE dag_id = %s AND run_id = %s", (PIPELINE_DAG_ID, run_id))
        (run_start,) = cursor.fetchone()
    finally:
        conn.close()
    watched = [sample for sample in sampler.samples if sample["t"] >= reached]
    return {
        "products": n,
        "seed_s": round(seeded, 1),
        "phases_s": {k: v for k, v in phases(tis, run_start.timestamp()).items() if not k.startswith("manifest")},
        "xcom_return_value_bytes": xcom_bytes,
        **expansion(tis, sampler, slots),
        "observed_s": EXPANSION_OBSERVE_S,
        "scheduler_cores_while_n_wait": scheduler_cores(watched),
        "generate_started_when_observed": watched[-1]["generate_started"] if watched else None,
    }


def _cpu_between(start: dict[str, Any], end: dict[str, Any]) -> dict[str, float]:
    """CPU seconds per process between two samples: the scheduler's own and its tree (LocalExecutor
    workers and their task processes), this process's own (its tree holds every other), the others'
    trees; and their sum."""
    cpu: dict[str, float] = {}
    for name in start["cpu"]:
        if name not in end["cpu"]:
            continue
        kinds = ("own", "tree") if name == "scheduler" else ("own",) if name.startswith("this") else ("tree",)
        for kind in kinds:
            label = f"{name} ({kind})" if name == "scheduler" else name
            cpu[label] = round(end["cpu"][name][kind] - start["cpu"][name][kind], 2)
    cpu["all of these"] = round(sum(v for k, v in cpu.items() if k != "scheduler (own)"), 2)
    return cpu


def analyse_run(run_id: str, args: argparse.Namespace, **data: Any) -> dict[str, Any]:
    sampler: RunSampler = data["sampler"]
    run_start, run_end = data["window"]
    before, after = data["stats"]
    manifest = data["manifest"]
    slots = TIER_CONCURRENCY[args.tier]
    # CPU over the DAG run: from the last sample before it started to the end
    start = next((s for s in reversed(sampler.samples) if s["t"] <= run_start), sampler.samples[0])
    cpu = _cpu_between(start, data["end"])
    busy = data["end"]["machine"][0] - start["machine"][0]
    wall = data["end"]["t"] - start["t"]
    counts = manifest.get("counts", {})
    uploaded = counts.get("uploaded", 0)
    products = sum(counts.values())
    dag_run_s = run_end - run_start
    out: dict[str, Any] = {
        "run_id": run_id,
        "state": data["state"],
        "dag_run_s": round(dag_run_s, 1),
        "manifest_counts": {k: v for k, v in counts.items() if v},
        "manifest_reads": manifest.get("reads"),
        "api_requests": {
            k: after[k] - before[k] for k in ("submits", "polls", "downloads") if isinstance(after.get(k), int)
        },
        "api_rejections": {k: v - before["rejections"].get(k, 0) for k, v in after["rejections"].items()},
        "max_in_flight": after.get("max_in_flight"),
        "cpu_s": cpu,
        "cpu_s_per_product": {name: round(v / max(1, products), 3) for name, v in cpu.items()},
        "scheduler_cores_during_run": round(cpu.get("scheduler (own)", 0.0) / (wall or 1), 3),
        "machine_busy_fraction": round(busy / (wall * (os.cpu_count() or 1)), 2),
        "loadavg_1min_start_end": [round(x, 2) for x in data["load"]],
    }
    if uploaded:
        rate = uploaded * 3600 / dag_run_s
        limit = slots * 3600 / args.render
        out["videos_per_hour"] = round(rate)
        out["tier_limit_videos_per_hour"] = round(limit)
        out["x_limit"] = round(rate / limit, 3)
    out["phases_s"] = phases(data["tis"], run_start)
    if uploaded and (span := out["phases_s"].get("generation span")):
        # the tier's busy fraction: jobs x mean render over slots x the span they were made in
        out["tier_busy_fraction"] = round(uploaded * args.render / (slots * span), 3)
    out.update(expansion(data["tis"], sampler, slots))
    return out


def phases(tis: list[tuple[Any, ...]], run_start: float) -> dict[str, float]:
    """When each step of the run started and ended, from its start (task instances' own times)."""
    times: dict[str, list[float]] = {}
    for task_id, _, _, _, start, end in tis:
        for value in (_ts(start), _ts(end)):
            if value is not None:
                times.setdefault(task_id, []).append(value - run_start)
    out = {}
    for task_id in ("ingest", "plan", "product.generate", "product.upload", "manifest"):
        if task_id in times:
            out[f"{task_id} start"] = round(min(times[task_id]), 1)
            out[f"{task_id} end"] = round(max(times[task_id]), 1)
    if "product.generate start" in out:
        out["generation span"] = round(out["product.generate end"] - out["product.generate start"], 1)
    return out


def scheduler_cores(window: list[dict[str, Any]]) -> float | None:
    """The scheduler process's own CPU rate (cores) over a window of samples."""
    if len(window) < 2 or "scheduler" not in window[0]["cpu"] or "scheduler" not in window[-1]["cpu"]:
        return None
    spent = window[-1]["cpu"]["scheduler"]["own"] - window[0]["cpu"]["scheduler"]["own"]
    return round(spent / (window[-1]["t"] - window[0]["t"]), 3)


def expansion(tis: list[tuple[Any, ...]], sampler: RunSampler, slots: int) -> dict[str, Any]:
    """How the scheduler handled the mapped expansion (see the module docstring, (a))."""
    plan_end = next((_ts(row[5]) for row in tis if row[0] == "plan"), None)
    generate = [row for row in tis if row[0] == "product.generate" and row[1] >= 0]
    if plan_end is None or not generate:
        return {"mapped": len(generate)}
    n = len(generate)
    first: dict[int, float] = {}  # map index -> first sample that saw it queued or later
    for (task, index, state), t in sampler.first_seen.items():
        if task == "product.generate" and index >= 0 and state in STARTED:
            first[index] = min(t, first.get(index, math.inf))
    queued = sorted(first.values())

    def nth_queued(k: int) -> float | None:  # the k-th (from 1) generate instance queued, if seen
        return queued[k - 1] if 0 < k <= len(queued) else None

    expanded = next((s["t"] for s in sampler.samples if s["generate_tis"] >= n), None)

    # the scheduler's own CPU rate (cores) while the expansion is pending, against its idle rate
    idle = [s for s in sampler.samples if s["t"] <= plan_end - 2]
    busy = [s for s in sampler.samples if plan_end <= s["t"] <= (nth_queued(n) or sampler.samples[-1]["t"])]

    def after_plan(t: float | None) -> float | None:  # None: not seen while watched
        return None if t is None else round(t - plan_end, 1)

    return {
        "mapped": n,
        "plan_end_to_all_tis_created_s": after_plan(expanded),
        "plan_end_to_first_queued_s": after_plan(nth_queued(1)),
        "plan_end_to_pool_filled_s": after_plan(nth_queued(min(n, slots))),  # as many queued as the pool holds
        "plan_end_to_half_queued_s": after_plan(nth_queued((n + 1) // 2)),
        "plan_end_to_last_queued_s": after_plan(nth_queued(n)),
        "scheduler_cores_idle": scheduler_cores(idle),
        "scheduler_cores_while_queueing": scheduler_cores(busy),
    }


# ------------------------------------------------------------------------------------ (a) and (b)
def measure_pipeline(s3: SeaweedFS, args: argparse.Namespace) -> dict[str, Any]:
    from airflow_provider_cogvideo.emulator import EmulatorConfig, parse_keys, running_emulator

    client = s3.boto3_client()
    if "a" in args.parts:
        started = time.perf_counter()
        seed_products(client, sample_products(args.products), corrupt=False)
        ensure_bucket(client, OUTPUT_BUCKET)
        print(f"== (a) {args.products} products seeded in {time.perf_counter() - started:.0f} s", flush=True)
    home = Path(tempfile.mkdtemp(prefix="catalog-scale-"))
    config = EmulatorConfig(
        keys=parse_keys(f"{TEST_KEY}:{args.tier}"),
        duration=args.render,
        jitter=0.2,
        seed=14,
        media_max_side=MEDIA_MAX_SIDE,
        render_ahead=True,
    )
    results: dict[str, Any] = {}
    try:
        with (
            running_postgres() as postgres,
            running_emulator(config) as emulator,
            running_deployment(home / "airflow", postgres, s3, emulator, args) as dep,
        ):
            if "a" in args.parts:
                print("== (a) first run", flush=True)
                results["first_run"] = pipeline_run(dep, emulator, client, "catalog_first", args)
                print(json.dumps(results["first_run"], indent=1), flush=True)
            if "b" in args.parts:
                print("== (b) unchanged second run", flush=True)
                results["second_run"] = pipeline_run(dep, emulator, client, "catalog_second", args)
                print(json.dumps(results["second_run"], indent=1), flush=True)
            if args.expansion:
                results["expansion_probe"] = expansion_probe(dep, s3, args)
                print(json.dumps(results["expansion_probe"], indent=1), flush=True)
    finally:
        if args.keep:
            print(f"kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    if "b" in args.parts:
        counter = S3Requests()
        with counter.counting():
            replay = replay_second_run(SOURCE_BUCKET, SOURCE_PREFIX, OUTPUT_BUCKET, "replay", counter=counter)
        results["second_run_replayed_in_process"] = {
            "paid": len(replay.paid),
            "task_seconds": replay.seconds,
            "manifest_reads": replay.xcom.get(("ingest", "catalog_reads")),
            **counter.summary(),
        }
    return results


# ------------------------------------------------------------------------------------------- main
def _phase_rows(sizes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    rows = []
    for r in sizes:
        s, peak = r["seconds_median"], r["peak_python_mib"]
        rows.append(
            (
                r["products"],
                r["prepared"]["first_run_ingest_s"],
                s.get("ingest", math.nan),
                s.get("ingest list candidates", math.nan),
                s.get("ingest load index", math.nan),
                s.get("ingest decisions", math.nan),
                s.get("record", math.nan),
                s.get("record build_manifest", math.nan),
                s.get("record write_gallery", math.nan),
                s.get("record compact", math.nan),
                peak.get("ingest", math.nan),
                peak.get("record", math.nan),
                sum(r["s3_last_rerun"]["requests"].values()),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=150, help="(a)/(b): catalog size (default 150)")
    parser.add_argument("--render", type=float, default=10.0, help="(a): emulator render seconds (default 10)")
    parser.add_argument("--poll", type=float, default=2.0, help="(a): fixed poll interval, s (default 2)")
    parser.add_argument("--tier", default="V3", choices=sorted(TIER_CONCURRENCY), help="(a): account tier")
    parser.add_argument("--sizes", default="1000,5000", help="(c): catalog sizes (default 1000,5000)")
    parser.add_argument("--repeat", type=int, default=3, help="(c): timed re-runs per size (median; default 3)")
    parser.add_argument("--parts", default="a,b,c", help="which parts to run (default a,b,c; b needs a)")
    parser.add_argument(
        "--expansion",
        type=int,
        default=0,
        help="also probe the scheduler with a dry run mapping this many (tiny) products (default 0: no probe)",
    )
    parser.add_argument("--output", default="catalog_scale", help="results/<output>.json")
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home (logs) for inspection")
    args = parser.parse_args()
    args.parts = {p for p in args.parts.split(",") if p}
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not args.parts <= {"a", "b", "c"} or ("b" in args.parts and "a" not in args.parts):
        parser.error("--parts: a comma-separated subset of a,b,c; b needs a")

    # The in-process tasks' own log lines (read at Airflow's first import; the deployment's
    # components get a clean environment from AirflowEnvironment).
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    started = time.time()
    payload: dict[str, Any] = {
        "settings": {
            "products": args.products,
            "render_s": args.render,
            "poll_s": args.poll,
            "tier": args.tier,
            "slots": TIER_CONCURRENCY[args.tier],
            "sizes": sizes,
            "repeat": args.repeat,
            "parts": sorted(args.parts),
            "expansion": args.expansion,
        }
    }
    with running_seaweedfs() as s3:
        os.environ[f"AIRFLOW_CONN_{BENCH_CONN.upper()}"] = json.dumps(aws_connection_json(s3))
        if "a" in args.parts or args.expansion:
            payload["pipeline"] = measure_pipeline(s3, args)
        if "c" in args.parts:
            payload["sizes"] = [measure_size(s3, n, args.repeat) for n in sizes]
    payload["wall_s"] = round(time.time() - started, 1)

    runs = [r for k in ("first_run", "second_run") if (r := payload.get("pipeline", {}).get(k))]
    if runs:
        headers = ("run", "DAG run s", "counts", "videos/h", "limit/h", "submits",
                   "scheduler CPU s/product (own, tree)")  # fmt: skip
        print(
            table(
                headers,
                [
                    (
                        r["run_id"],
                        r["dag_run_s"],
                        r["manifest_counts"],
                        r.get("videos_per_hour", "-"),
                        r.get("tier_limit_videos_per_hour", "-"),
                        r["api_requests"].get("submits"),
                        "{}, {}".format(*(r["cpu_s_per_product"].get(f"scheduler ({k})") for k in ("own", "tree"))),
                    )
                    for r in runs
                ],
            )
        )
    if "sizes" in payload:
        headers = ("N", "1st ingest s", "re-run ingest s", "list s", "load index s", "decide s", "record s",
                   "build s", "gallery s", "compact s", "ingest MiB", "record MiB", "S3 requests")  # fmt: skip
        print(table(headers, _phase_rows(payload["sizes"])))
    path = write_results(args.output, payload)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
