"""What a user installs: the wheel, built from this tree, installed with ``[amazon,images]`` into a
fresh virtualenv and imported there.

The install is offline, from uv's cache (``make install`` filled it from the suite's lock file), with
the lock as constraints: the versions the suite ran against, as ``docs/deploy.md``'s image installs
them. It catches what an editable install hides: a module or a data file the wheel leaves out, a
runtime import of the tooling (the emulator, the test helpers, the demo) or of something only the
repository has (``tests/harness``).

Never skipped: without uv the test fails and says how to get it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from airflow_provider_cogvideo import __version__

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements" / "airflow-3.3-py3.11.lock"

RUNTIME_MODULES = (
    "airflow_provider_cogvideo.hooks.cogvideo",
    "airflow_provider_cogvideo.operators.cogvideo",
    "airflow_provider_cogvideo.operators.product_images",
    "airflow_provider_cogvideo.operators.gallery",
    "airflow_provider_cogvideo.sensors.cogvideo",
    "airflow_provider_cogvideo.transfers.cogvideo_to_s3",
    "airflow_provider_cogvideo.triggers.cogvideo",
)
TOOLING = ("airflow_provider_cogvideo.emulator", "airflow_provider_cogvideo.testing", "airflow_provider_cogvideo.demo")

PROBE = """
import importlib, importlib.metadata, json, sys
import airflow_provider_cogvideo as provider
for name in {modules!r}:
    importlib.import_module(name)
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
# Built as a DAG file builds them: the extras are there (a missing one would raise here).
CogVideoGenerateOperator(task_id="generate", prompt="a paper boat", deferrable=True)
S3ProductImagesOperator(task_id="ingest", s3_bucket="b", prefix="in/", prompt_template="{{title}}", staging_prefix="s/")
CogVideoToS3Operator(task_id="upload", result={{}}, s3_bucket="b", s3_key="videos/{{id}}.mp4")
entry_points = importlib.metadata.entry_points(group="apache_airflow_provider")
print(json.dumps({{
    "file": provider.__file__,
    "version": provider.__version__,
    "distribution": importlib.metadata.version("airflow-provider-cogvideo"),
    "provider_info": [
        ep.load()()["package-name"] for ep in entry_points if ep.value.startswith("airflow_provider_cogvideo")
    ],
    "modules": sorted(name for name in sys.modules if name.startswith(("airflow_provider_cogvideo", "tests"))),
    "tooling_libraries": sorted({{"starlette", "uvicorn", "av", "pytest"}} & set(sys.modules)),
}}))
"""


def uv() -> Path:
    configured = os.environ.get("COGVIDEO_UV")
    candidate = Path(configured) if configured else REPO / ".venv-boot" / "bin" / "uv"
    if not candidate.exists():
        pytest.fail(f"uv ({candidate}) does not exist: run `make install` (or `make test`), or set COGVIDEO_UV")
    return candidate


def _run(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    """A uv command, with none of the caller's uv or virtualenv settings (never an interpreter download)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PYTHON", "VIRTUAL_ENV"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    argv_text = [str(a) for a in argv]
    done = subprocess.run(argv_text, capture_output=True, text=True, timeout=240, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_installs_offline_and_imports_without_tooling(tmp_path: Path) -> None:
    tool = uv()
    _run([tool, "build", "--offline", "-q", "--wheel", "--out-dir", tmp_path / "dist", REPO])
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"airflow_provider_cogvideo-{__version__}-py3-none-any.whl"

    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if not n.startswith(("airflow_provider_cogvideo/", "airflow_provider_cogvideo-"))]
    for shipped in ("py.typed", "templates/gallery.html", "demo/product_video_pipeline.py"):
        assert f"airflow_provider_cogvideo/{shipped}" in names
    for harness in ("postgres.py", "redis_server.py", "distributed.py"):  # tests/harness: this repository's CI only
        assert f"airflow_provider_cogvideo/testing/{harness}" not in names

    venv = tmp_path / "venv"
    _run([tool, "venv", "-q", "--python", sys.executable, venv])
    python = venv / "bin" / "python"
    try:
        _run([tool, "pip", "install", "--offline", "-q", "--python", python, "-c", LOCK, f"{wheel}[amazon,images]"])
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nuv's cache lacks a package of the lock: run `make install` first") from None

    home = tmp_path / "airflow"
    home.mkdir()
    probe = _probe(python, home, tmp_path)
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert Path(seen["file"]).is_relative_to(venv), seen["file"]
    assert seen["version"] == seen["distribution"] == __version__
    assert seen["provider_info"] == ["airflow-provider-cogvideo"]
    assert set(RUNTIME_MODULES) <= set(seen["modules"])
    assert [m for m in seen["modules"] if m.startswith((*TOOLING, "tests"))] == []
    assert seen["tooling_libraries"] == []


def _probe(python: Path, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run :data:`PROBE` in the fresh venv: ``-I`` (no PYTHONPATH, no working directory on sys.path, so
    this checkout stays out), a throwaway ``AIRFLOW_HOME``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    done = subprocess.run(
        [str(python), "-I", "-c", PROBE.format(modules=RUNTIME_MODULES)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return done
