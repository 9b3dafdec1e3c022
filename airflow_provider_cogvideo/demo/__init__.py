"""``cogvideo demo``, and the machinery it shares with the real-Airflow integration test.

The demo runs the example pipeline (``dags_examples/product_video_pipeline.py``) end to end on one
machine with nothing but this package installed: the CogVideoX emulator (a thread of this process),
a SeaweedFS S3 server (``weed``, from the ``local-s3`` extra), sample product images drawn here with
Pillow, and a throwaway Airflow home under ``.demo/``. Reusable pieces:

* :func:`sample_products` / :func:`seed_products`: product images + ``<name>.json`` sidecars in S3,
  optionally with a WebP (re-encoded by ingestion) and a corrupt file (rejected by it);
* :class:`AirflowEnvironment`: an ``AIRFLOW_HOME`` with connections and settings passed as
  environment variables, isolated from whatever ``AIRFLOW__*`` the caller has set;
* :class:`ProcessGroup`: child processes, each in its own process group, stopped by group id;
* :func:`wait_until`: polling with a deadline that fails early when a component died.

Importing this module imports neither Airflow nor Pillow nor boto3.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, TypeVar

SOURCE_BUCKET = "products"
SOURCE_PREFIX = "incoming/"
OUTPUT_BUCKET = "product-videos"
PIPELINE_DAG_ID = "product_video_pipeline"
DEMO_DIR_NAME = ".demo"
CORRUPT_PRODUCT_ID = "broken-upload"

T = TypeVar("T")


def pipeline_dag_file() -> Path:
    """The pipeline DAG of this repository: the demo and the test run the file users copy, not a twin."""
    path = Path(__file__).resolve().parents[1] / "dags_examples" / f"{PIPELINE_DAG_ID}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the demo runs from a clone of the repository (make demo)")
    return path


# ---------------------------------------------------------------------------------------------- products
@dataclass(frozen=True)
class SampleProduct:
    """One sample product: what its sidecar says and how its picture is drawn."""

    product_id: str
    title: str
    selling_points: tuple[str, ...]
    style: str
    shape: str  # one of _SHAPES
    hue: float  # 0..1, the product colour; the background is drawn from the opposite hue
    image_format: str = "PNG"  # PNG / JPEG are sent as they are; WEBP is re-encoded by ingestion

    @property
    def extension(self) -> str:
        return {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[self.image_format]

    def sidecar(self) -> dict[str, Any]:
        return {"title": self.title, "selling_points": list(self.selling_points), "style": self.style}


SAMPLE_PRODUCTS: tuple[SampleProduct, ...] = (
    SampleProduct(
        "aurora-mug", "Aurora Ceramic Mug", ("hand-glazed", "keeps coffee warm", "dishwasher safe"), "cozy", "mug", 0.58
    ),
    SampleProduct(
        "glacier-bottle",
        "Glacier Steel Bottle",
        ("24 h cold", "leak-proof lid", "750 ml"),
        "fresh outdoor",
        "bottle",
        0.5,
    ),
    SampleProduct(
        "stride-runner", "Stride Runner Sneaker", ("featherlight foam", "recycled knit"), "sporty", "sneaker", 0.02
    ),
    SampleProduct(
        "lumen-lamp",
        "Lumen Desk Lamp",
        ("dimmable warm light", "USB-C charging port"),
        "minimal Scandinavian",
        "lamp",
        0.12,
        image_format="JPEG",
    ),
    SampleProduct(
        "echo-headphones",
        "Echo Wireless Headphones",
        ("40 h battery", "active noise cancelling"),
        "sleek tech",
        "headphones",
        0.75,
        image_format="WEBP",
    ),
    SampleProduct(
        "tempo-watch", "Tempo Smart Watch", ("heart-rate tracking", "7-day battery"), "premium", "watch", 0.9
    ),
)

IMAGE_SIZE = (640, 480)


def sample_products(count: int = len(SAMPLE_PRODUCTS)) -> list[SampleProduct]:
    """``count`` products: the six designs in turn; later rounds get an id suffix and another colour."""
    products = []
    for n in range(count):
        base = SAMPLE_PRODUCTS[n % len(SAMPLE_PRODUCTS)]
        rounds = n // len(SAMPLE_PRODUCTS)
        if rounds:
            base = replace(base, product_id=f"{base.product_id}-{rounds + 1}", hue=(base.hue + 0.17 * rounds) % 1.0)
        products.append(base)
    return products


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _draw_shape(draw: Any, shape: str, box: tuple[int, int, int, int], hue: float) -> None:
    """A simple studio render of the product: body in its colour, a darker trim, a highlight."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    body, trim, shine = _rgb(hue, 0.55, 0.85), _rgb(hue, 0.7, 0.45), _rgb(hue, 0.15, 1.0)
    cx = left + w // 2
    if shape == "mug":
        draw.rounded_rectangle((left + w * 0.2, top + h * 0.2, left + w * 0.72, bottom), 18, fill=body)
        draw.ellipse((left + w * 0.6, top + h * 0.35, left + w * 0.92, top + h * 0.75), outline=body, width=18)
        draw.ellipse((left + w * 0.2, top + h * 0.14, left + w * 0.72, top + h * 0.26), fill=trim)
        draw.rounded_rectangle((left + w * 0.27, top + h * 0.32, left + w * 0.33, bottom - h * 0.12), 6, fill=shine)
    elif shape == "bottle":
        draw.rounded_rectangle((cx - w * 0.18, top + h * 0.28, cx + w * 0.18, bottom), 30, fill=body)
        draw.rectangle((cx - w * 0.08, top + h * 0.1, cx + w * 0.08, top + h * 0.3), fill=body)
        draw.rounded_rectangle((cx - w * 0.1, top, cx + w * 0.1, top + h * 0.12), 8, fill=trim)
        draw.rounded_rectangle((cx - w * 0.12, top + h * 0.36, cx - w * 0.07, bottom - h * 0.08), 6, fill=shine)
    elif shape == "sneaker":
        upper = [
            (left, bottom - h * 0.25),
            (left + w * 0.1, top + h * 0.35),
            (left + w * 0.45, top + h * 0.3),
            (left + w * 0.6, top + h * 0.5),
            (right, bottom - h * 0.35),
            (right, bottom - h * 0.18),
            (left, bottom - h * 0.18),
        ]
        draw.polygon(upper, fill=body)
        draw.rounded_rectangle((left - 4, bottom - h * 0.2, right + 4, bottom), 14, fill=(245, 245, 245))
        for i in range(4):
            x = left + w * (0.2 + 0.08 * i)
            draw.line((x, top + h * 0.42, x + w * 0.06, top + h * 0.5), fill=shine, width=6)
    elif shape == "lamp":
        draw.polygon(
            [
                (cx - w * 0.12, top),
                (cx + w * 0.12, top),
                (cx + w * 0.3, top + h * 0.35),
                (cx - w * 0.3, top + h * 0.35),
            ],
            fill=body,
        )
        draw.ellipse((cx - w * 0.08, top + h * 0.3, cx + w * 0.08, top + h * 0.42), fill=(255, 244, 200))
        draw.rectangle((cx - 6, top + h * 0.35, cx + 6, bottom - h * 0.08), fill=trim)
        draw.ellipse((cx - w * 0.25, bottom - h * 0.12, cx + w * 0.25, bottom), fill=trim)
    elif shape == "headphones":
        draw.arc((left + w * 0.15, top, right - w * 0.15, bottom - h * 0.1), 180, 360, fill=trim, width=22)
        for x0 in (left + w * 0.05, right - w * 0.3):
            draw.rounded_rectangle((x0, top + h * 0.42, x0 + w * 0.25, bottom), 36, fill=body)
            draw.ellipse((x0 + w * 0.06, top + h * 0.55, x0 + w * 0.19, bottom - h * 0.15), fill=shine)
    elif shape == "watch":
        draw.rounded_rectangle((cx - w * 0.14, top, cx + w * 0.14, bottom), 20, fill=trim)
        draw.ellipse((cx - w * 0.3, top + h * 0.2, cx + w * 0.3, bottom - h * 0.2), fill=body)
        draw.ellipse((cx - w * 0.24, top + h * 0.26, cx + w * 0.24, bottom - h * 0.26), fill=(25, 25, 35))
        draw.line((cx, top + h * 0.5, cx, top + h * 0.34), fill=shine, width=6)
        draw.line((cx, top + h * 0.5, cx + w * 0.12, top + h * 0.55), fill=shine, width=6)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def render_product_image(product: SampleProduct, size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    """A small product picture: gradient backdrop, soft floor shadow, the product, its name."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    width, height = size
    top, bottom = _rgb(product.hue + 0.5, 0.12, 0.98), _rgb(product.hue + 0.5, 0.35, 0.7)
    column = Image.linear_gradient("L").resize((1, height))
    image = Image.composite(Image.new("RGB", (1, height), bottom), Image.new("RGB", (1, height), top), column)
    image = image.resize(size)
    shadow = Image.new("L", size, 0)
    ImageDraw.Draw(shadow).ellipse((width * 0.25, height * 0.7, width * 0.75, height * 0.8), fill=110)
    image.paste((0, 0, 0), mask=shadow.filter(ImageFilter.GaussianBlur(14)))
    draw = ImageDraw.Draw(image)
    _draw_shape(
        draw, product.shape, (int(width * 0.3), int(height * 0.12), int(width * 0.7), int(height * 0.76)), product.hue
    )
    font = ImageFont.load_default(size=34)
    band_top = int(height * 0.84)
    draw.rectangle((0, band_top, width, height), fill=_rgb(product.hue, 0.6, 0.3))
    draw.text((width / 2, (band_top + height) / 2), product.title, fill=(255, 255, 255), font=font, anchor="mm")
    out = io.BytesIO()
    options = {"quality": 88} if product.image_format in ("JPEG", "WEBP") else {"optimize": True}
    image.save(out, format=product.image_format, **options)
    return out.getvalue()


def corrupt_image() -> bytes:
    """A JPEG cut off after its first third: looks like an image by name and magic bytes, cannot decode."""
    data = render_product_image(replace(SAMPLE_PRODUCTS[0], image_format="JPEG"))
    return data[: len(data) // 3]


@dataclass(frozen=True)
class SeededProducts:
    """What :func:`seed_products` put into S3, and what ingestion should make of it."""

    bucket: str
    prefix: str
    product_ids: tuple[str, ...]  # every decodable image: one video each
    reencoded: tuple[str, ...]  # product ids whose image ingestion must re-encode (WebP)
    rejected_keys: tuple[str, ...]  # keys ingestion must reject (corrupt)


def seed_products(
    s3_client: Any,
    products: Sequence[SampleProduct],
    *,
    bucket: str = SOURCE_BUCKET,
    prefix: str = SOURCE_PREFIX,
    corrupt: bool = True,
) -> SeededProducts:
    """Create ``bucket`` (if needed) and upload each product's image and ``<name>.json`` sidecar;
    with ``corrupt``, also a truncated JPEG (with a sidecar) that ingestion must reject."""
    ensure_bucket(s3_client, bucket)
    rejected = []
    for product in products:
        key = f"{prefix}{product.product_id}{product.extension}"
        content_type = f"image/{product.image_format.lower()}"
        s3_client.put_object(Bucket=bucket, Key=key, Body=render_product_image(product), ContentType=content_type)
        sidecar = json.dumps(product.sidecar(), ensure_ascii=False).encode()
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{product.product_id}.json", Body=sidecar)
    if corrupt:
        key = f"{prefix}{CORRUPT_PRODUCT_ID}.jpg"
        s3_client.put_object(Bucket=bucket, Key=key, Body=corrupt_image(), ContentType="image/jpeg")
        sidecar = {"title": "Broken Upload", "selling_points": ["never rendered"], "style": "none"}
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}{CORRUPT_PRODUCT_ID}.json", Body=json.dumps(sidecar).encode())
        rejected.append(key)
    return SeededProducts(
        bucket=bucket,
        prefix=prefix,
        product_ids=tuple(p.product_id for p in products),
        reencoded=tuple(p.product_id for p in products if p.image_format not in ("PNG", "JPEG")),
        rejected_keys=tuple(rejected),
    )


def ensure_bucket(s3_client: Any, bucket: str) -> None:
    """Create ``bucket`` unless it exists (a rerun against the same server is fine)."""
    from botocore.exceptions import ClientError

    try:
        s3_client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


# ---------------------------------------------------------------------------------------------- waiting
def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy; ``alive`` raises when waiting is pointless
    (a component died), so a crash fails in seconds instead of at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------- processes
class ComponentDied(RuntimeError):
    """A process that should be running has exited."""


@dataclass
class ProcessGroup:
    """Child processes, each started in its own session (process group) and stopped by group id, so
    whatever a component forks (Airflow starts workers, supervisors, gunicorn/uvicorn children) goes
    with it. Never kills anything it did not start."""

    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _starts: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Path:
        """Start ``argv`` as ``name`` with output to a log file (a restart gets a new file); returns its path."""
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        self._starts[name] = self._starts.get(name, 0) + 1
        suffix = "" if self._starts[name] == 1 else f".{self._starts[name]}"
        log_path = self.log_dir / f"{name}{suffix}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.processes[name] = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.logs[name if suffix == "" else f"{name}{suffix}"] = log_path
        return log_path

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, grace: float = 10.0) -> None:
        """Signal ``name``'s process group; SIGKILL the group if the leader outlives ``grace``."""
        process = self.processes.get(name)
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        _signal_group(process.pid, signal.SIGKILL)  # stragglers of the group, if any

    def stop_all(self, grace: float = 10.0) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name, grace=grace)

    def check_alive(self, *names: str) -> None:
        """Raise :class:`ComponentDied` (with the log's tail) if one of ``names`` has exited."""
        for name in names or tuple(self.processes):
            process = self.processes[name]
            if process.poll() is not None:
                tail = _tail(self.logs[name], 40)
                raise ComponentDied(f"{name} exited with code {process.returncode}; last log lines:\n{tail}")

    def log_tails(self, lines: int = 80) -> str:
        """Every component log's last lines, for a failure report."""
        return "\n".join(f"===== {name}: {path} =====\n{_tail(path, lines)}" for name, path in self.logs.items())

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


# ---------------------------------------------------------------------------------------------- Airflow
# Inherited settings that would make the throwaway deployment read or write someone else's (or a test
# session's) configuration, connections or DAGs.
_ISOLATED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "COGVIDEO_PIPELINE_")
_ISOLATED_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG")


@dataclass
class AirflowEnvironment:
    """A throwaway Airflow home: SQLite DB, a DAGs folder, connections and settings as environment
    variables (no secrets in the DB or in airflow.cfg).

    :param home: the ``AIRFLOW_HOME`` (created).
    :param connections: conn id -> connection JSON (``AIRFLOW_CONN_<ID>``).
    :param config: ``(section, key)`` -> value (``AIRFLOW__SECTION__KEY``).
    :param extra_env: anything else the DAGs read (e.g. ``COGVIDEO_PIPELINE_POLL_INTERVAL``).
    """

    home: Path
    connections: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[tuple[str, str], str] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def env(self) -> dict[str, str]:
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(_ISOLATED_PREFIXES) and k not in _ISOLATED_NAMES
        }
        settings = {
            ("core", "dags_folder"): str(self.dags_folder),
            ("core", "load_examples"): "False",
            ("database", "sql_alchemy_conn"): f"sqlite:///{self.db_path}",
            **self.config,
        }
        base["AIRFLOW_HOME"] = str(self.home)
        base.update({f"AIRFLOW__{s.upper()}__{k.upper()}": v for (s, k), v in settings.items()})
        base.update({f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in self.connections.items()})
        base.update(self.extra_env)
        return base

    def install_dags(self, *files: Path) -> None:
        """Copy DAG files into the (created) DAGs folder."""
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy2(path, self.dags_folder / path.name)

    def command(self, *args: str) -> list[str]:
        """``airflow ARGS`` run by this interpreter (the venv's Airflow, whatever PATH says)."""
        return [sys.executable, "-m", "airflow", *args]

    def run(self, *args: str, timeout: float = 300.0, log: IO[str] | None = None) -> str:
        """Run ``airflow ARGS`` to completion; its output, or a RuntimeError carrying it."""
        return self._run(self.command(*args), timeout, log)

    def cogvideo(self, *args: str, timeout: float = 120.0, log: IO[str] | None = None) -> str:
        """Run ``cogvideo ARGS`` (this package's CLI) against this Airflow home."""
        return self._run([sys.executable, "-m", "airflow_provider_cogvideo.cli", *args], timeout, log)

    def _run(self, argv: list[str], timeout: float, log: IO[str] | None) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        output = done.stdout + done.stderr
        if log is not None:
            log.write(f"$ {' '.join(argv[1:])}\n{output}\n")
            log.flush()
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[2:])} failed with exit code {done.returncode}:\n{output[-4000:]}")
        return output

    def migrate(self, log: IO[str] | None = None) -> None:
        self.run("db", "migrate", log=log)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the metadata DB directly (read-only): cheaper than an ``airflow`` CLI call, which costs seconds."""
        with closing_sqlite(self.db_path) as db:
            return db.execute(sql, params).fetchall()


@contextmanager
def closing_sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        yield db
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------- the demo
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


def _human_size(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


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
        bucket, _, key = row["video"].removeprefix("s3://").partition("/")
        data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            raise RuntimeError(f"{row['video']}: the downloaded bytes do not match the manifest's sha256")
        path = target / f"{row['product_id']}.mp4"
        path.write_bytes(data)
        local[row["product_id"]] = path
    return local


def _reencoded_notes(airflow_log: Path) -> list[str]:
    """Which images ingestion re-encoded, from Airflow's log (the manifest lists outcomes, not inputs)."""
    notes = []
    for line in airflow_log.read_text(errors="replace").splitlines():
        found = re.search(r"(\S+): (\S+ \S+) re-encoded to JPEG \(\d+ bytes\) at (s3://\S+)", line)
        if found:
            product, source, staged = found.groups()
            notes.append(f"{product}: {source} re-encoded to a JPEG at {staged}")
    return list(dict.fromkeys(notes))


def run_demo(workdir: Path, *, products: int = len(SAMPLE_PRODUCTS), duration: float = 4.0) -> int:
    """The whole demo; every process and thread it starts is stopped before it returns or raises."""
    from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, parse_keys, running_emulator
    from airflow_provider_cogvideo.testing import connection_json
    from airflow_provider_cogvideo.testing.seaweedfs import aws_connection_json, running_seaweedfs

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
            f"Seeded s3://{seeded.bucket}/{seeded.prefix}: {len(seeded.product_ids)} product images + sidecars "
            f"({len(seeded.reencoded)} WebP to re-encode, {len(seeded.rejected_keys)} corrupt to reject)"
        )

        env = AirflowEnvironment(
            home=demo_dir / "airflow",
            connections={
                "cogvideo_default": connection_json(emulator),
                "aws_default": json.dumps(aws_connection_json(s3)),
            },
            # dag.test() runs one task at a time: poll each job every second instead of the adaptive
            # schedule (first poll after 30 s), so the demo takes a minute rather than several.
            extra_env={"COGVIDEO_PIPELINE_POLL_INTERVAL": "1"},
        )
        env.install_dags(pipeline_dag_file())
        with open(demo_dir / "setup.log", "w") as setup_log:
            _say(f"Airflow home         {_shown(env.home)}   (airflow db migrate ...)")
            env.migrate(log=setup_log)
            pool_line = env.cogvideo("pool", "--conn-id", "cogvideo_default", log=setup_log).strip().splitlines()[-1]
        _say(f"Pool                 {pool_line}")
        _say(
            "Note: dag.test() runs the tasks one at a time in this process and ignores pools; the tier limit "
            "under a real scheduler + triggerer is shown by tests/integration/test_pipeline_real_airflow.py."
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
            _say(_tail(airflow_log, 40))
            return 1

        manifest_uri, manifest = _latest_manifest(client)
        uploaded = [row for row in manifest["products"] if row["status"] == "uploaded"]
        failed = [row for row in manifest["products"] if row["status"] == "failed"]
        rejected = [row for row in manifest["products"] if row["status"] == "rejected"]
        local = _download_videos(client, uploaded, demo_dir / "videos")
        stats = emulator.stats()

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
    for row in uploaded:
        _say(f"{row['product_id']:<{width}}  {_human_size(row['size']):>7}  {row['sha256'][:12]}  {row['video']}")
        _say(f"{'':<{width}}  {'':>7}  {'':<12}  {row['cover']}")
        _say(f"{'':<{width}}  {'':>7}  {'':<12}  {_shown(local[row['product_id']])}")
    for row in failed:
        _say(f"{row['product_id']:<{width}}  FAILED: {row.get('error')}")
    _say(f"\nManifest:    {manifest_uri}")
    currency = manifest.get("currency") or ""
    _say(f"Total cost:  {manifest['total_price']:.2f} {currency} (list price; emulated, nothing billed)")
    _say(f"Videos:      {_shown(demo_dir / 'videos')}/  (open with any video player, e.g. xdg-open or open)")
    _say(f"Logs:        {_shown(airflow_log)}, {_shown(demo_dir / 'setup.log')}")
    _say(f"Stopped the emulator, SeaweedFS and Airflow ({time.monotonic() - started:.0f} s in all).")
    return 0 if not failed else 1


__all__ = [
    "CORRUPT_PRODUCT_ID",
    "OUTPUT_BUCKET",
    "PIPELINE_DAG_ID",
    "SAMPLE_PRODUCTS",
    "SOURCE_BUCKET",
    "SOURCE_PREFIX",
    "AirflowEnvironment",
    "ComponentDied",
    "ProcessGroup",
    "SampleProduct",
    "SeededProducts",
    "ensure_bucket",
    "pipeline_dag_file",
    "render_product_image",
    "run_demo",
    "sample_products",
    "seed_products",
    "wait_until",
]
