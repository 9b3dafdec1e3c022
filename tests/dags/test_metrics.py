"""The provider's metrics, observed as a deployment's StatsD server would see them: Airflow's statsd
metrics on, a real UDP listener, a real dag.test() run (submit, deferral, polls in the trigger, a
retry that reconnects) against the emulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig
from airflow_provider_cogvideo.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
RUN_DAG = """
from tests.dags.dag_files.cogvideo_test_dags import retry_dag
assert retry_dag.test().state == "success"
"""


@pytest.fixture
def cogvideo_emulator_config() -> EmulatorConfig:
    # Far longer than try 1's 0.3 s wait and the start of try 2: try 2 finds the job still rendering
    # (the reconnect this test counts) and its trigger sees it finish (render_time).
    return EmulatorConfig(duration=6.0, jitter=0.0, seed=5)


def _statsd_lines(sock: socket.socket) -> list[str]:
    sock.settimeout(0.5)
    lines: list[str] = []
    try:
        while True:
            lines += sock.recv(65535).decode().splitlines()
    except TimeoutError:
        return lines


def test_metrics_reach_a_statsd_listener(airflow_db, cogvideo_emulator, cogvideo_conn, tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    try:
        env = {
            **os.environ,
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "COGVIDEO_TEST_OUT": str(tmp_path / "out.json"),
        }
        # A fresh interpreter: Airflow picks its metrics backend once, when Stats is first used.
        run = subprocess.run([sys.executable, "-c", RUN_DAG], cwd=ROOT, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        lines = _statsd_lines(listener)
    finally:
        listener.close()
    names = {line.split(":", 1)[0] for line in lines}
    # The retry DAG's try 1 times out while the job renders, try 2 reconnects: one submit, one reconnect.
    for name in (
        "airflow.cogvideo.submits",
        "airflow.cogvideo.polls",
        "airflow.cogvideo.reconnects",
        "airflow.cogvideo.render_time",
        "airflow.cogvideo.resume.fresh_submit",
        "airflow.cogvideo.resume.reconnect_success",
    ):
        assert name in names, f"{name} not received; got {sorted(n for n in names if 'cogvideo' in n)}"
    assert "airflow.cogvideo.submits:1|c" in lines
    assert any(line.startswith("airflow.cogvideo.render_time:") and line.endswith("|ms") for line in lines)
    documented = {name.split(".<", 1)[0] for name in METRICS}
    ours = {n.removeprefix("airflow.") for n in names if n.startswith("airflow.cogvideo.")}
    undocumented = {n for n in ours if not any(n == d or n.startswith(d + ".") for d in documented)}
    assert not undocumented, f"emitted but not in metrics.METRICS (and so not in the README): {undocumented}"
    assert json.loads((tmp_path / "out.json").read_text())["task_status"] == "SUCCESS"
