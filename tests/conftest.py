"""Shared test configuration: an isolated AIRFLOW_HOME so no test touches a real deployment."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cogvideo-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# dag.test() (Airflow 3.3) runs DAGs from a bundle: the test DAG files live here.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "dags", "dag_files"))

import subprocess
import sys

import pytest

# The provider's own fixtures (cogvideo_emulator, cogvideo_conn...) come from its pytest11 entry point.


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (what dag.test() needs)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return os.environ["AIRFLOW_HOME"]
