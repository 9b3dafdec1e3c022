"""A throwaway PostgreSQL server for the distributed integration test and the benchmarks.

Debian's PostgreSQL binaries (``pg_config --bindir``, or ``initdb``/``pg_ctl`` on PATH) initialise a
cluster in a fresh directory under the system temp dir (not under pytest's ``tmp_path``, whose
parents are private to the current user), trust authentication for one superuser, listening on
127.0.0.1 only, on a free port, with its Unix socket in the same directory. Durability is traded
for speed (``fsync``, ``synchronous_commit`` and ``full_page_writes`` off): the data is thrown away.

PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres`` system user and
every server command runs through ``runuser -u postgres``. The postmaster daemonises (``pg_ctl
start``), so it is stopped with ``pg_ctl stop -m fast`` and, failing that, by the pid in its own
``postmaster.pid``: never by name.

Importing this module imports nothing outside the standard library (psycopg2 loads on first query).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_cogvideo.testing.seaweedfs import free_ports

HOST = "127.0.0.1"
SYSTEM_USER = "postgres"
"""Who owns the cluster when the caller is root (PostgreSQL will not run as root)."""
DEFAULT_SUPERUSER = "airflow"
# Settings for a throwaway server: no durability, room for every Airflow component's pool.
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}


class PostgresError(RuntimeError):
    """The server could not be initialised, started or queried."""


def pg_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: ``pg_config --bindir``, else next to ``pg_ctl`` on PATH."""
    with suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
        if out and (Path(out) / "initdb").is_file():
            return Path(out)
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").is_file():
        return Path(found).resolve().parent
    if found and shutil.which("initdb"):
        return Path(found).parent
    raise PostgresError("PostgreSQL's initdb/pg_ctl were not found: apt-get install postgresql (or put them on PATH)")


def _as_server_user(argv: Sequence[str]) -> list[str]:
    """``argv`` run as the cluster's owner: ``runuser -u postgres --`` when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SYSTEM_USER, "--", *argv]
    return list(argv)


def _run(argv: Sequence[str], timeout: float = 60.0) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise PostgresError(f"{' '.join(argv)} failed with exit code {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class PostgresServer:
    """A running cluster. ``url()`` is what Airflow's ``sql_alchemy_conn`` takes."""

    root: Path  # holds data/, the log and the Unix socket
    port: int
    bindir: Path
    user: str = DEFAULT_SUPERUSER
    host: str = HOST
    _owned: bool = field(default=True, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "airflow", driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL, e.g. ``postgresql+psycopg2://airflow@127.0.0.1:PORT/airflow``."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "airflow") -> str:
        """A libpq connection string (psycopg2, psql)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE name`` (a name of letters, digits and underscores only)."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        conn = self.connect("postgres")
        try:
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()

    def connect(self, database: str = "airflow") -> Any:
        """A psycopg2 connection in autocommit mode (each read sees the latest commits)."""
        import psycopg2

        conn = psycopg2.connect(self.dsn(database), connect_timeout=10)
        conn.autocommit = True
        return conn

    def postmaster_pid(self) -> int | None:
        """The server's pid, from its own ``postmaster.pid`` (None when it is not running)."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout: float = 30.0) -> None:
        """``pg_ctl stop -m fast``; if that fails, SIGKILL the postmaster by its pid. Safe to call twice."""
        pid = self.postmaster_pid()
        if pid is not None:
            try:
                _run(
                    _as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
                )
            except (PostgresError, subprocess.TimeoutExpired):
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)
            self._owned = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_postgres(*, user: str = DEFAULT_SUPERUSER, databases: Sequence[str] = ("airflow",)) -> PostgresServer:
    """initdb + ``pg_ctl start`` on a free port; creates ``databases``. Stop it with ``.stop()``.

    A port taken between our check and the server's bind makes ``pg_ctl start`` fail: retried with
    another port (three attempts)."""
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="cogvideo-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user=SYSTEM_USER)
    server = PostgresServer(root=root, port=0, bindir=bindir, user=user)
    try:
        _run(
            _as_server_user(
                [str(bindir / "initdb"), "-D", str(server.data_dir), "-A", "trust", "-U", user, "-E", "UTF8"]
            )
        )
        last = ""
        for _attempt in range(3):
            (server.port,) = free_ports(1)
            options = " ".join(
                [f"-p {server.port}", f"-k {root}", *(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())]
            )
            argv = [str(bindir / "pg_ctl"), "-D", str(server.data_dir), "-o", options, "-l", str(server.log_path)]
            try:
                _run(_as_server_user([*argv, "-w", "-t", "60", "start"]), timeout=90)
                break
            except PostgresError as exc:
                last = f"{exc}\n{_tail(server.log_path)}"
        else:
            raise PostgresError(f"PostgreSQL did not start after 3 attempts: {last}")
        for name in databases:
            server.create_database(name)
    except BaseException:
        server.stop()
        raise
    return server


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


@contextmanager
def running_postgres(
    *, user: str = DEFAULT_SUPERUSER, databases: Sequence[str] = ("airflow",)
) -> Iterator[PostgresServer]:
    """``with running_postgres() as pg: ...``: a server for the block, stopped and removed after."""
    server = start_postgres(user=user, databases=databases)
    try:
        yield server
    finally:
        server.stop()


__all__ = ["PostgresError", "PostgresServer", "pg_bindir", "running_postgres", "start_postgres"]
