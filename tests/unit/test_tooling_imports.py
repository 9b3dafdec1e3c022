"""The test helpers and the demo stay cheap to import: pytest loads the plugin's package in every run
of the environment, and the demo and the local servers are used without pytest or the emulator.

Each import runs in a fresh interpreter, so modules this test session already loaded do not hide one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MODULES = (
    "airflow_provider_cogvideo.testing",
    "airflow_provider_cogvideo.testing.seaweedfs",
    "airflow_provider_cogvideo.testing.result_files",
    "airflow_provider_cogvideo.testing.products",
    "airflow_provider_cogvideo.testing.processes",
    "airflow_provider_cogvideo.testing.airflow_env",
    "tests.harness.postgres",
    "tests.harness.redis_server",
    "tests.harness.distributed",
    "airflow_provider_cogvideo.demo",
)
# pytest and the emulator's server stack never; Airflow, Pillow and boto3 only once used (lazy imports).
FORBIDDEN = frozenset({"pytest", "_pytest", "starlette", "uvicorn", "airflow", "PIL", "boto3", "botocore"})

PROBE = """
import json, sys
import {module}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def _top_level_modules_after_import(module: str) -> set[str]:
    argv = [sys.executable, "-c", PROBE.format(module=module)]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=ROOT)  # tests.harness from here
    assert run.returncode == 0, run.stderr
    return set(json.loads(run.stdout))


@pytest.mark.parametrize("module", MODULES)
def test_import_stays_cheap(module: str) -> None:
    loaded = _top_level_modules_after_import(module)
    assert module.split(".")[0] in loaded  # the probe did import it
    unwanted = sorted(loaded & FORBIDDEN)
    assert unwanted == [], f"importing {module} imports {unwanted}"


def test_plugin_defers_the_emulator_to_its_fixtures() -> None:
    # pytest imports the plugin at start-up, before any conftest.py could set AIRFLOW_HOME.
    loaded = _top_level_modules_after_import("airflow_provider_cogvideo.testing.pytest_plugin")
    assert "pytest" in loaded
    unwanted = sorted(loaded & {"starlette", "uvicorn", "airflow", "PIL", "av"})
    assert unwanted == [], f"importing the pytest plugin imports {unwanted}"
