"""The pytest plugin, loaded the way a DAG author gets it, in a separate pytest run: installing the
package registers it (``pytest11`` entry point), no ``conftest.py`` line needed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

USER_TESTS = """
import json
import os

import httpx

from airflow_provider_cogvideo.testing import DEFAULT_TEST_KEY


def test_conn_points_at_the_emulator(cogvideo_conn, cogvideo_emulator):
    assert cogvideo_conn == "cogvideo_default"
    conn = json.loads(os.environ["AIRFLOW_CONN_COGVIDEO_DEFAULT"])
    assert conn["conn_type"] == "cogvideo" and conn["password"] == DEFAULT_TEST_KEY
    assert conn["extra"] == {"base_url": cogvideo_emulator.base_url, "tier": "V0"}
    answer = httpx.post(
        conn["extra"]["base_url"] + "/videos/generations",
        json={"model": "cogvideox-3", "prompt": "from a user's test"},
        headers={"Authorization": "Bearer " + conn["password"]},
    )
    assert answer.status_code == 200
    assert cogvideo_emulator.stats()["submits"] == 1


def test_each_test_gets_a_fresh_emulator(cogvideo_emulator):
    assert cogvideo_emulator.stats()["submits"] == 0
    assert cogvideo_emulator.base_url.startswith("http://127.0.0.1:")


def test_session_emulator_is_reset(cogvideo_emulator_session):
    assert cogvideo_emulator_session.stats()["tasks"] == 0
"""

OVERRIDE_TESTS = """
import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig, FaultConfig


@pytest.fixture
def cogvideo_emulator_config():
    return EmulatorConfig(duration=0, faults=FaultConfig(fail_rate=1))


def test_config_can_be_overridden(cogvideo_emulator):
    assert cogvideo_emulator.faults.current.fail_rate == 1
"""


@pytest.mark.parametrize(
    ("autoload", "load"),
    [(True, ()), (False, ("-p", "cogvideo"))],
    ids=["entry-point", "autoload-disabled"],
)
def test_plugin_fixtures_in_a_users_suite(tmp_path: Path, autoload: bool, load: tuple[str, ...]) -> None:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    (tmp_path / "test_override.py").write_text(textwrap.dedent(OVERRIDE_TESTS))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *load, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout
