"""One real deployment for the browser tests, built once per module, and a real browser.

:func:`deployment`: SeaweedFS, the emulator (signed result URLs; one product's prompt blocked by its
content filter), sample products in S3 (one with a ``<script>`` in its sidecar title, one corrupt
image), a throwaway Airflow 3 home, one pipeline run with ``airflow dags test`` and, started while that
runs, ``airflow api-server`` on 127.0.0.1 (SimpleAuthManager, everyone admin). Everything started is
stopped when the module's tests are done.

:func:`browser`: Playwright driving Debian's Chromium (``executable_path``: no browser is downloaded;
``--no-sandbox`` as root). Each test gets a fresh context that records console errors and page errors.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo.demo import OUTPUT_BUCKET, PIPELINE_DAG_ID, pipeline_dag_file, review_dag_file
from airflow_provider_cogvideo.emulator import EmulatorConfig, EmulatorHandle, running_emulator
from airflow_provider_cogvideo.emulator.faults import FaultConfig
from airflow_provider_cogvideo.testing import connection_json
from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment, api_healthy
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.products import CORRUPT_PRODUCT_ID, sample_products, seed_products
from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS, aws_connection_json, free_ports, running_seaweedfs

PRODUCTS = 3  # sample products seeded; one of them is made to fail
BLOCKED_WORD = "forbidden-shimmer"
"""In one product's sidecar: the emulator's content filter refuses its prompt (400 / 1301, not retried)."""
SCRIPT_TITLE = '<script>window.__gallery_pwned = 1; document.title = "pwned"</script>Aurora <b>Mug</b>'
RENDER_SECONDS = 0.5
REVIEWER, REVIEWER_PASSWORD = "reviewer", secrets.token_urlsafe(12)
"""The one user of the deployment: the browser logs in as them, the scripted reviewer takes a token."""
RESULT_URL_TTL = 3600.0  # signed result URLs: the generate task's extra link opens one while it is valid


@dataclass
class Deployment:
    """What the browser tests look at."""

    env: AirflowEnvironment
    api_url: str
    s3: SeaweedFS
    emulator: EmulatorHandle
    run_id: str
    manifest_uri: str
    manifest: dict[str, Any]
    failing_product: str
    script_product: str
    timings: dict[str, float] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        """A task's XCom from the metadata DB (JSON)."""
        rows = self.env.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ? AND map_index = ?",
            PIPELINE_DAG_ID,
            self.run_id,
            task_id,
            key,
            map_index,
        )
        assert rows, f"no XCom {key!r} of {task_id}[{map_index}]"
        value = rows[0][0]
        return json.loads(value) if isinstance(value, (str, bytes)) else value  # a JSON column: text in SQLite


def _seed(s3: SeaweedFS) -> tuple[str, str]:
    """Sample products, with a ``<script>`` in one sidecar's title and a blocked word in another's."""
    client = s3.boto3_client()
    products = sample_products(PRODUCTS)
    seeded = seed_products(client, products, corrupt=True)
    script_product, failing_product = products[0], products[1]
    for product, title in (
        (script_product, SCRIPT_TITLE),
        (failing_product, f"{failing_product.title} {BLOCKED_WORD}"),
    ):
        sidecar = {**product.sidecar(), "title": title}
        client.put_object(
            Bucket=seeded.bucket, Key=f"{seeded.prefix}{product.product_id}.json", Body=json.dumps(sidecar)
        )
    client.create_bucket(Bucket=OUTPUT_BUCKET)
    return script_product.product_id, failing_product.product_id


@contextmanager
def deployment(workdir: Path) -> Iterator[Deployment]:
    """The whole setup (see the module docstring); every process and server it starts is stopped on exit."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    (api_port,) = free_ports(1)
    api_url = f"http://127.0.0.1:{api_port}"
    env = AirflowEnvironment(
        home=workdir / "airflow",
        config={
            ("core", "execution_api_server_url"): f"{api_url}/execution/",
            ("api", "base_url"): api_url,
            ("api", "host"): "127.0.0.1",
            ("api", "port"): str(api_port),
            ("api", "workers"): "1",
            ("api_auth", "jwt_secret"): secrets.token_urlsafe(32),
            # A reviewer who logs in (SimpleAuthManager's login form), as the review loop's users do.
            ("core", "simple_auth_manager_users"): f"{REVIEWER}:admin",
            ("core", "simple_auth_manager_passwords_file"): str(workdir / "passwords.json"),
        },
        # One regeneration per product: review_1 -> regenerate_1 -> upload_1 -> review_2 (the last round).
        extra_env={"COGVIDEO_PIPELINE_POLL_INTERVAL": "1", "COGVIDEO_REVIEW_MAX_ROUNDS": "1"},
    )
    env.install_dags(pipeline_dag_file(), review_dag_file())
    (workdir / "passwords.json").write_text(json.dumps({REVIEWER: REVIEWER_PASSWORD}))
    with ThreadPoolExecutor(1) as pool, ExitStack() as stack:
        migrated = pool.submit(env.migrate)  # seconds of work: done while the servers start
        s3 = stack.enter_context(running_seaweedfs(workdir / "s3"))
        faults = FaultConfig(blocked_prompts=(BLOCKED_WORD,))
        config = EmulatorConfig(duration=RENDER_SECONDS, jitter=0.2, url_ttl=RESULT_URL_TTL, faults=faults, seed=11)
        emulator = stack.enter_context(running_emulator(config))
        script_product, failing_product = _seed(s3)
        env.connections = {
            "cogvideo_default": connection_json(emulator),
            "aws_default": json.dumps(aws_connection_json(s3)),
        }
        migrated.result()
        timings["setup"] = time.monotonic() - started

        processes = stack.enter_context(ProcessGroup(workdir / "logs"))
        processes.start(
            "api-server", env.command("api-server", "--host", "127.0.0.1", "--port", str(api_port)), env.env()
        )
        dag_test = subprocess.run(
            env.command("dags", "test", PIPELINE_DAG_ID),
            env=env.env(),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        timings["pipeline run"] = time.monotonic() - started - timings["setup"]
        (workdir / "dags-test.log").write_text(dag_test.stdout + dag_test.stderr)
        output = dag_test.stdout[-4000:] + dag_test.stderr[-4000:]
        runs = env.query("SELECT run_id, state FROM dag_run WHERE dag_id = ?", PIPELINE_DAG_ID)
        assert runs, f"`airflow dags test` made no run (exit {dag_test.returncode}):\n{output}"
        run_id = runs[0][0]
        client = s3.boto3_client()
        listed = client.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/").get("Contents", [])
        assert listed, f"the run wrote no manifest:\n{output}"
        manifest_uri = f"s3://{OUTPUT_BUCKET}/{listed[0]['Key']}"
        manifest = json.loads(client.get_object(Bucket=OUTPUT_BUCKET, Key=listed[0]["Key"])["Body"].read())
        wait_until(lambda: api_healthy(api_url), timeout=120, what="the api-server", alive=processes.check_alive)
        timings["api-server ready"] = time.monotonic() - started
        yield Deployment(
            env=env,
            api_url=api_url,
            s3=s3,
            emulator=emulator,
            run_id=run_id,
            manifest_uri=manifest_uri,
            manifest=manifest,
            failing_product=failing_product,
            script_product=script_product,
            timings=timings,
        )


def login(page: Any) -> None:
    """Log into the Airflow UI as the deployment's reviewer through SimpleAuthManager's form; the page
    then shows what it was sent to (the form comes back to ``next``)."""
    page.locator("input[name=username]").fill(REVIEWER)
    page.locator("input[name=password]").fill(REVIEWER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("browser")) as built:
        yield built
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        shown = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in built.timings.items())
        reporter.write_line(f"\n[browser tests] deployment: {shown}")


def chromium_executable() -> str:
    """Debian's Chromium (Playwright cannot download a browser here)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("no chromium on PATH: `make system-deps` installs Debian's (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package playwright is missing (it is in the whole suite's lock)")
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)  # Airflow's UI renders in seconds on a busy 2-core machine, not in 5
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium refuses root with its sandbox on
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_executable(), args=args, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class WatchedPage:
    """A page of a fresh browser context, with what went wrong on it."""

    page: Any
    console_errors: list[str]
    page_errors: list[str]


@pytest.fixture
def watched(browser: Any) -> Iterator[WatchedPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    watched = WatchedPage(page, [], [])
    page.on("console", lambda m: watched.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watched.page_errors.append(str(exc)))
    try:
        yield watched
    finally:
        context.close()


CORRUPT = CORRUPT_PRODUCT_ID
