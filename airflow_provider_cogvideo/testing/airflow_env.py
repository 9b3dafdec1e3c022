"""A throwaway Airflow deployment for the demo and the integration tests.

:class:`AirflowEnvironment` is an ``AIRFLOW_HOME`` with connections and settings passed as
environment variables, isolated from whatever ``AIRFLOW__*`` the caller has set; it runs ``airflow``
and ``cogvideo`` commands against that home in subprocesses (this interpreter's Airflow, whatever
PATH says).

Importing this module imports neither Airflow nor anything outside the standard library.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# Inherited settings that would make the throwaway deployment read or write someone else's (or a test
# session's) configuration, connections or DAGs.
_ISOLATED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "COGVIDEO_PIPELINE_", "COGVIDEO_REVIEW_")
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
    """A read-only connection to the SQLite file, closed on exit (sqlite3's own ``with`` only commits)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        yield db
    finally:
        db.close()


def api_healthy(api_url: str) -> bool:
    """Whether the api-server at ``api_url`` answers its health check."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/api/v2/monitor/health", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def served_settings(api_url: str, *, worker_log_port: int, trigger_log_port: int) -> dict[tuple[str, str], str]:
    """The settings of a deployment whose components run as separate processes on this machine: the
    api-server at ``api_url`` (loopback) that workers reach through the Execution API, a fresh JWT
    secret, every user an admin (no login to script), and the log servers on free ports (the defaults,
    8793/8794, would collide with any other deployment here)."""
    import secrets
    from urllib.parse import urlsplit

    port = urlsplit(api_url).port
    return {
        ("core", "execution_api_server_url"): f"{api_url}/execution/",
        ("api", "base_url"): api_url,
        ("api", "host"): "127.0.0.1",
        ("api", "port"): str(port),
        ("api_auth", "jwt_secret"): secrets.token_urlsafe(32),
        ("core", "simple_auth_manager_all_admins"): "True",
        ("logging", "worker_log_server_port"): str(worker_log_port),
        ("logging", "trigger_log_server_port"): str(trigger_log_port),
    }


__all__ = ["AirflowEnvironment", "api_healthy", "closing_sqlite", "served_settings"]
