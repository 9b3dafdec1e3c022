"""``cogvideo demo``: the example pipeline end to end on one machine, nothing leaving it.

The demo runs the pipeline DAG shipped next to this module (:func:`pipeline_dag_file`, the same file
users copy into their DAGs folder) with nothing but this package installed (the ``emulator`` and
``local-s3`` extras): the CogVideoX emulator (a thread of this process), a SeaweedFS S3 server
(``weed``), sample product images drawn with Pillow, and a throwaway Airflow home under ``.demo/``.
The harness it shares with the integration tests lives in :mod:`airflow_provider_cogvideo.testing`
(``products``, ``processes``, ``airflow_env``, ``seaweedfs``).

The pipeline writes its manifest and review gallery to the local S3, which stops with the demo:
the demo keeps local copies, the manifest (``.demo/manifest.json``) and the gallery
(``.demo/gallery.html``, playing the downloaded videos from ``.demo/videos/`` by relative paths), and
a screenshot of the gallery (``.demo/gallery.png``) taken with headless Chromium when one is
installed.

A tool, like the emulator: the provider's runtime modules never import this package. Importing it
imports neither Airflow nor Pillow nor boto3, nor the emulator's Starlette and uvicorn.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from airflow_provider_cogvideo.manifest import RowStatus
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.sizes import human_size
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment, api_healthy, served_settings
from airflow_provider_cogvideo.testing.processes import ProcessGroup, log_tail, wait_until
from airflow_provider_cogvideo.testing.products import SAMPLE_PRODUCTS, ensure_bucket, sample_products, seed_products
from airflow_provider_cogvideo.testing.seaweedfs import aws_connection_json, free_ports, running_seaweedfs

PIPELINE_DAG_ID = "product_video_pipeline"
REVIEW_DAG_ID = "product_video_review"
OUTPUT_BUCKET = "product-videos"  # the pipeline's default output_bucket
PUBLISHED_PREFIX = "published/"  # the review DAG's default publish_prefix (in the same bucket)
DEMO_DIR_NAME = ".demo"
DEMO_NOTE = "Make the background a warm sunset beach and the product spin faster"
"""The demo reviewer's note on the one video it rejects: it reaches the regenerated video's prompt."""


def pipeline_dag_file() -> Path:
    """The pipeline DAG shipped in this package: the demo and the tests run the file users copy, not a twin."""
    return Path(__file__).resolve().with_name(f"{PIPELINE_DAG_ID}.py")


def review_dag_file() -> Path:
    """The review DAG shipped next to the pipeline DAG (it is scheduled on the pipeline's runs)."""
    return Path(__file__).resolve().with_name(f"{REVIEW_DAG_ID}.py")


def review_by_rest(
    reviewer: Any, expected: int, rejected_product: str, note: str, *, timeout: float = 300.0
) -> list[str]:
    """What the demo's reviewer does through the REST API: once the ``expected`` first-round reviews
    wait, approve every video but ``rejected_product``'s, reject that one with ``note``, then approve
    its regenerated video. The lines it prints, one per answer."""
    said = []
    first = reviewer.wait_for(REVIEW_DAG_ID, expected, task_id="video.review_1", timeout=timeout)
    for review in first:
        product = (review.label or "").split(" / ")[0]
        option, given = ("Reject", note) if product == rejected_product else ("Approve", None)
        reviewer.answer(REVIEW_DAG_ID, review, option, given)
        said.append(f"  round 1  {review.label}: {option}" + (f" — “{note}”" if given else ""))
    second, *more = reviewer.wait_for(REVIEW_DAG_ID, 1, task_id="video.review_2", timeout=timeout)
    if more:
        raise RuntimeError(f"{len(more) + 1} second-round reviews wait; only {rejected_product} was rejected")
    reviewer.answer(REVIEW_DAG_ID, second, "Approve")
    said.append(f"  round 2  {second.label}: Approve (its regenerated video)")
    return said


def _say(text: str = "") -> None:
    print(text, flush=True)


class _Progress(threading.Thread):
    """Prints one concise line whenever something visible changes: the task dag.test() is running
    (from Airflow's log), jobs at the emulator, videos in S3."""

    def __init__(self, emulator: Any, s3_client: Any, airflow_log: Path, expected: int, started: float) -> None:
        super().__init__(name="cogvideo-demo-progress", daemon=True)
        self.emulator, self.s3, self.airflow_log = emulator, s3_client, airflow_log
        self.expected, self.started = expected, started
        self.stopped = threading.Event()
        self._offset = 0
        self._task = "starting Airflow"

    def _current_task(self) -> str:
        with suppress(OSError), open(self.airflow_log, errors="replace") as log:
            log.seek(self._offset)
            for line in log.read().splitlines():
                match = re.search(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)", line)
                if match:
                    task_id, index = match.groups()
                    self._task = task_id if index == "-1" else f"{task_id}[{index}]"
            self._offset = log.tell()
        return self._task

    def _videos(self) -> int:
        with suppress(Exception):  # progress is cosmetic: S3 hiccups must not end the demo
            listing = self.s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="videos/")
            return sum(1 for o in listing.get("Contents", []) if o["Key"].endswith(".mp4"))
        return 0

    def run(self) -> None:
        last = None
        while not self.stopped.wait(1.0):
            stats = self.emulator.stats()
            state = (self._current_task(), stats["submits"], stats["in_flight"], self._videos())
            if state != last:
                task, submits, rendering, videos = state
                elapsed = time.monotonic() - self.started
                _say(
                    f"  [{elapsed:4.0f}s] {task:<22} jobs submitted {submits}/{self.expected}, rendering {rendering}"
                    f" | videos in S3 {videos}/{self.expected}"
                )
                last = state


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from a CI runner) unwinds like Ctrl-C, so every started process is stopped."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it: what a user types to open it."""
    with suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _latest_manifest(s3_client: Any) -> tuple[str, dict[str, Any]]:
    listing = s3_client.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/").get("Contents", [])
    if not listing:
        raise RuntimeError(f"the pipeline wrote no manifest under s3://{OUTPUT_BUCKET}/manifests/")
    key = max(listing, key=lambda o: o["LastModified"])["Key"]
    body = s3_client.get_object(Bucket=OUTPUT_BUCKET, Key=key)["Body"].read()
    return f"s3://{OUTPUT_BUCKET}/{key}", json.loads(body)


def _download_videos(s3_client: Any, rows: list[dict[str, Any]], target: Path) -> dict[str, Path]:
    """Local copies of the uploaded MP4s, checked against the manifest's sha256."""
    target.mkdir(parents=True, exist_ok=True)
    local = {}
    for row in rows:
        bucket, key = parse_s3_uri(row["video"]) or ("", "")
        data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise RuntimeError(f"{row['video']}: the downloaded bytes do not match the manifest's sha256")
        path = target / f"{row['product_id']}.mp4"
        path.write_bytes(data)
        local[row["product_id"]] = path
    return local


def _local_gallery(s3_client: Any, manifest: dict[str, Any], demo_dir: Path) -> Path:
    """A copy of the run's gallery under ``demo_dir`` that needs no server: covers next to the videos
    in ``videos/``, source images in ``images/``, all referenced by paths relative to the page."""
    from airflow_provider_cogvideo.gallery import mapped_media, render_gallery

    paths: dict[str, str] = {}
    for index, row in enumerate(manifest["products"]):
        product_id = str(row["product_id"])
        if row.get("video"):
            paths[row["video"]] = f"videos/{product_id}.mp4"  # downloaded (and checked) by _download_videos
        wanted = [(row.get("cover"), "videos", f"{product_id}{posixpath.splitext(str(row.get('cover')))[1]}")]
        wanted.append((row.get("image"), "images", f"{index}-{posixpath.basename(str(row.get('image')))}"))
        for uri, folder, name in wanted:
            parsed = parse_s3_uri(uri)
            if parsed is None or uri in paths:
                continue
            with suppress(Exception):  # a missing cover or source image leaves a gap, not a failed demo
                data = s3_client.get_object(Bucket=parsed[0], Key=parsed[1])["Body"].read()
                (demo_dir / folder).mkdir(exist_ok=True)
                (demo_dir / folder / name).write_bytes(data)
                paths[uri] = f"{folder}/{name}"
    page = demo_dir / "gallery.html"
    run = manifest.get("dag_run")
    offline = _without_review_links(manifest)  # the api-server they lead to stops with the demo
    page.write_text(render_gallery(offline, mapped_media(paths), title=f"Product videos (local copy): {run}"))
    return page


def _without_review_links(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` without its links to the review's required actions (the local copy is offline)."""
    rows = [
        {**row, "review": {**row["review"], "link": None}} if isinstance(row.get("review"), dict) else row
        for row in manifest["products"]
    ]
    review = manifest.get("review")
    return {**manifest, "products": rows, "review": {**review, "link": None} if isinstance(review, dict) else review}


def _screenshot(page: Path, target: Path, cards: int) -> bool:
    """``page`` rendered by headless Chromium into ``target`` (tall enough for every card); False when
    no Chromium is installed or it fails (the demo does not depend on it)."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        return False
    height = 300 + math.ceil(max(cards, 1) / 3) * 760  # three columns at 1280 px; a card is ~700-800 px tall
    with tempfile.TemporaryDirectory(prefix="cogvideo-chromium-") as profile:
        argv = [
            chromium,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={profile}",
            f"--window-size=1280,{height}",
            "--virtual-time-budget=10000",  # lets the videos' posters and the images load first
            f"--screenshot={target}",
            page.as_uri(),
        ]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            subprocess.run(argv, capture_output=True, timeout=90, check=True, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return False
    return target.exists()


def _reencoded_notes(airflow_log: Path) -> list[str]:
    """Which images ingestion re-encoded, from Airflow's log (the manifest lists outcomes, not inputs)."""
    notes = []
    for line in airflow_log.read_text(errors="replace").splitlines():
        # "<id>: <format> (<reasons>) re-encoded to JPEG (<n> bytes) at <uri>"
        found = re.search(r"(\S+): (\S+ \(.*\)) re-encoded to JPEG \(\d+ bytes\) at (s3://\S+)", line)
        if found:
            product, source, staged = found.groups()
            notes.append(f"{product}: {source} re-encoded to a JPEG at {staged}")
    return list(dict.fromkeys(notes))


def _review_run(
    env: AirflowEnvironment,
    processes: ProcessGroup,
    api_url: str,
    manifest_uri: str,
    manifest: dict[str, Any],
    demo_dir: Path,
) -> list[str] | None:
    """The review DAG over the pipeline run's new videos, with an api-server for the scripted reviewer
    (``dag.test()`` never answers a human-in-the-loop task itself); the answers said, or None when the
    run failed (its log's tail printed)."""
    from airflow_provider_cogvideo.testing.reviewer import Reviewer

    uploaded = sorted(row["product_id"] for row in manifest["products"] if row["status"] == RowStatus.UPLOADED)
    if not uploaded:
        return []
    _say(f"\nStarting the api-server at {api_url} for the review (Required actions: {api_url}/required_actions)")
    port = api_url.rsplit(":", 1)[1]
    processes.start("api-server", env.command("api-server", "--host", "127.0.0.1", "--port", port), env.env())
    alive = lambda: processes.check_alive("api-server")  # noqa: E731
    wait_until(lambda: api_healthy(api_url), timeout=180, what="the api-server", alive=alive)
    review_log = demo_dir / "review.log"
    _say(f"Running {REVIEW_DAG_ID} with `airflow dags test` over {manifest_uri}; log {_shown(review_log)}")
    processes.start(
        "review", env.command("dags", "test", REVIEW_DAG_ID, "-c", json.dumps({"manifest": manifest_uri})), env.env()
    )
    try:
        lines = review_by_rest(Reviewer(api_url), len(uploaded), uploaded[-1], DEMO_NOTE)
    except RuntimeError as exc:
        _say(f"The review did not go as planned: {exc}")
        _say(log_tail(processes.logs["review"], 40))
        return None
    returncode = processes.processes["review"].wait()
    if returncode != 0:
        _say(f"The review run failed (exit code {returncode}):")
        _say(log_tail(processes.logs["review"], 40))
        return None
    return lines


def run_demo(workdir: Path, *, products: int = len(SAMPLE_PRODUCTS), duration: float = 4.0) -> int:
    """The whole demo; every process and thread it starts is stopped before it returns or raises."""
    # The emulator (Starlette, uvicorn) loads when the demo runs, not when this package is imported.
    from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, parse_keys, running_emulator

    demo_dir = workdir / DEMO_DIR_NAME
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    airflow_log = demo_dir / "airflow.log"
    started = time.monotonic()
    _say("== CogVideoX product pipeline demo (local emulator + local S3; nothing leaves this machine) ==")
    with _sigterm_as_interrupt(), ExitStack() as stack:
        s3 = stack.enter_context(running_seaweedfs(demo_dir / "s3"))
        _say(f"S3 (SeaweedFS)       {s3.endpoint_url}   log {_shown(s3.log_path)}")
        config = EmulatorConfig(keys=parse_keys(f"{DEFAULT_TEST_KEY}:V0"), duration=duration, jitter=0.25)
        emulator = stack.enter_context(running_emulator(config))
        _say(f"CogVideoX emulator   {emulator.base_url}   tier V0 (5 jobs in flight), renders take ~{duration:g} s")

        client = s3.boto3_client()
        seeded = seed_products(client, sample_products(products))
        ensure_bucket(client, OUTPUT_BUCKET)
        _say(
            f"Seeded s3://{seeded.bucket}/{seeded.prefix}: {len(seeded.image_keys)} product images + sidecars "
            f"({len(seeded.reencoded)} WebP to re-encode, {len(seeded.rejected_keys)} corrupt to reject)"
        )

        api_port, worker_log_port, trigger_log_port = free_ports(3)
        api_url = f"http://127.0.0.1:{api_port}"
        env = AirflowEnvironment(
            home=demo_dir / "airflow",
            connections={
                "cogvideo_default": connection_json(emulator),
                "aws_default": json.dumps(aws_connection_json(s3)),
            },
            # The api-server the reviewer answers through, sharing the demo's metadata DB.
            config=served_settings(api_url, worker_log_port=worker_log_port, trigger_log_port=trigger_log_port),
            # dag.test() runs one task at a time: poll each job every second instead of the adaptive
            # schedule (first poll 45 s after a cogvideox-3 submit), so the demo takes a minute, not several.
            extra_env={"COGVIDEO_PIPELINE_POLL_INTERVAL": "1"},
        )
        env.install_dags(pipeline_dag_file(), review_dag_file())
        with open(demo_dir / "setup.log", "w") as setup_log:
            _say(f"Airflow home         {_shown(env.home)}   (airflow db migrate ...)")
            env.migrate(log=setup_log)
            pool_line = env.cogvideo("pool", "--conn-id", "cogvideo_default", log=setup_log).strip().splitlines()[-1]
        _say(f"Pool                 {pool_line}")
        _say(
            "Note: dag.test() runs the tasks one at a time in this process and ignores pools; the tier limit "
            "under a real scheduler, Celery workers and triggerers is shown by tests/integration/test_distributed.py."
        )
        _say(f"Running {PIPELINE_DAG_ID} with `airflow dags test`; Airflow's log: {_shown(airflow_log)}")

        processes = stack.enter_context(ProcessGroup(demo_dir))
        run_started = time.monotonic()
        progress = _Progress(emulator, client, airflow_log, len(seeded.product_ids), run_started)
        processes.start("airflow", env.command("dags", "test", PIPELINE_DAG_ID), env.env())
        progress.start()
        stack.callback(progress.stopped.set)
        dag_test = processes.processes["airflow"]
        returncode = dag_test.wait()
        progress.stopped.set()
        progress.join()
        if returncode != 0:
            _say(f"\nThe DAG run failed (exit code {returncode}). Last lines of {_shown(airflow_log)}:")
            _say(log_tail(airflow_log, 40))
            return 1

        manifest_uri, manifest = _latest_manifest(client)
        review_lines = _review_run(env, processes, api_url, manifest_uri, manifest, demo_dir)
        if review_lines is None:
            return 1
        manifest_uri, manifest = _latest_manifest(client)  # rewritten with the decisions
        published = client.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix=PUBLISHED_PREFIX).get("Contents", [])
        published_events = env.query(
            "SELECT COUNT(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
            "cogvideo_published_videos",
        )[0][0]
        manifest_copy = demo_dir / "manifest.json"  # the S3 server stops with the demo
        manifest_copy.write_text(json.dumps(manifest, indent=2))
        uploaded = [row for row in manifest["products"] if row["status"] == "uploaded"]
        failed = [row for row in manifest["products"] if row["status"] == "failed"]
        rejected = [row for row in manifest["products"] if row["status"] == RowStatus.REFUSED]
        local = _download_videos(client, uploaded, demo_dir / "videos")
        gallery_uri = manifest.get("gallery")
        bucket, gallery_key = parse_s3_uri(gallery_uri) or ("", "")
        client.head_object(Bucket=bucket, Key=gallery_key)  # the pipeline wrote it (else this raises)
        gallery_copy = _local_gallery(client, manifest, demo_dir)
        stats = emulator.stats()
    screenshot = demo_dir / "gallery.png"
    shot = _screenshot(gallery_copy, screenshot, len(manifest["products"]))

    _say(
        f"\nDone in {time.monotonic() - run_started:.0f} s: {len(uploaded)} videos uploaded, {len(failed)} failed, "
        f"{len(rejected)} image(s) rejected at ingestion; "
        f"{stats['submits']} jobs submitted to the API, {sum(stats['rejections'].values())} requests refused by it."
    )
    for note in _reencoded_notes(airflow_log):
        _say(f"  ingest: {note}")
    for row in rejected:
        _say(f"  ingest: rejected {row['image']}: {row['error']}")
    _say("")
    width = max([len(r["product_id"]) for r in manifest["products"]] + [7])
    _say(f"{'product':<{width}}  {'size':>7}  {'sha256':<12}  S3 video / cover / local copy")
    local_dir = demo_dir / "videos"
    for row in uploaded:
        _say(f"{row['product_id']:<{width}}  {human_size(row['size']):>7}  {row['sha256'][:12]}  {row['video']}")
        _say(f"{'':<{width}}  {'':>7}  {'':<12}  {row['cover']}")
        _say(f"{'':<{width}}  {'':>7}  {'':<12}  {_shown(local[row['product_id']])}")
    for row in failed:
        _say(f"{row['product_id']:<{width}}  FAILED: {row.get('error')}")
    _say(f"\nReview ({REVIEW_DAG_ID}, answered through Airflow's REST API as a reviewer would):")
    for line in review_lines:
        _say(line)
    _say(
        f"Published:   s3://{OUTPUT_BUCKET}/{PUBLISHED_PREFIX} holds {len(published)} object(s) (videos and covers "
        f"of the approved products); {published_events} asset event(s) on cogvideo_published_videos"
    )
    for item in sorted(published, key=lambda o: o["Key"]):
        if item["Key"].endswith(".mp4"):
            _say(f"             s3://{OUTPUT_BUCKET}/{item['Key']}")
    _say(f"\nManifest:    {_shown(manifest_copy)}  (a copy of {manifest_uri})")
    currency = manifest.get("currency") or ""
    regenerations = (manifest.get("review") or {}).get("paid") or 0.0
    _say(
        f"Total cost:  {manifest['total_price']:.2f} {currency} + {regenerations:.2f} for the review's regeneration "
        "(list price; emulated, nothing billed)"
    )
    _say(f"Videos:      {_shown(demo_dir / 'videos')}/  (open with any video player, e.g. xdg-open or open)")
    _say(f"Gallery:     {gallery_uri}  (the pipeline's review page; its presigned links need the S3 server)")
    _say(f"             local copy {_shown(gallery_copy)}  (open it in a browser: plays from {_shown(local_dir)}/)")
    _say(f"Screenshot:  {_shown(screenshot) if shot else 'skipped (no Chromium found: apt-get install chromium)'}")
    _say(f"Logs:        {_shown(airflow_log)}, {_shown(demo_dir / 'setup.log')}")
    _say(f"Stopped the emulator, SeaweedFS and Airflow ({time.monotonic() - started:.0f} s in all).")
    return 0 if not failed else 1


__all__ = [
    "DEMO_NOTE",
    "OUTPUT_BUCKET",
    "PIPELINE_DAG_ID",
    "REVIEW_DAG_ID",
    "pipeline_dag_file",
    "review_by_rest",
    "review_dag_file",
    "run_demo",
]
