"""Airflow on CeleryExecutor + PostgreSQL + Redis on one machine, and killing its parts like a lost host.

* :func:`celery_settings`: the ``(section, key) -> value`` settings of a Celery deployment whose
  metadata DB and result backend are a :class:`~.postgres.PostgresServer` database and whose broker
  is a :class:`~.redis_server.RedisServer` (for ``AirflowEnvironment``'s ``config``);
* :func:`component_hostname` (Airflow's ``[core] hostname_callable``, set by :func:`celery_settings`)
  and :func:`component_env`: each component reports the name it was given as its hostname, so
  ``task_instance.hostname`` says which of two workers on one machine runs a task and
  ``job.hostname`` which triggerer is which (these names do not resolve: the UI cannot fetch the
  log of a task *while* it runs; finished tasks' logs are local files here);
* :func:`bytecode_cache_env`: child processes that compile each module once. A venv installed
  without bytecode (uv's default) and ``PYTHONDONTWRITEBYTECODE=1`` make every Airflow process, and
  every task process, compile Airflow, boto3 and the rest from source again: 6 s of CPU instead of
  2 s per start here. Production images ship bytecode;
* :func:`process_tree`, :func:`descends_from`, :func:`kill_tree`: a component's whole process tree
  from ``/proc``. Airflow puts each task runner in a process group of its own (so that signals
  reach whatever the task spawned), so SIGKILL to a Celery worker's group leaves its task runners
  alive; :func:`kill_tree` freezes the tree (SIGSTOP) and then kills every process in it, which is
  what losing the worker's host or pod does.

Linux only (``/proc``). Importing this module imports nothing outside the standard library.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Protocol


class _Postgres(Protocol):
    def url(self, database: str = ..., driver: str = ...) -> str: ...


class _Redis(Protocol):
    def url(self, db: int = ...) -> str: ...


HOSTNAME_ENV = "COGVIDEO_COMPONENT_HOSTNAME"
HOSTNAME_CALLABLE = f"{__name__}.component_hostname"
REPOSITORY_ROOT = str(Path(__file__).resolve().parents[2])
"""The checkout this module is imported from: ``tests.harness`` is importable from there."""


def component_hostname() -> str:
    """The hostname an Airflow process reports: ``$COGVIDEO_COMPONENT_HOSTNAME``, else the FQDN."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def component_env(env: Mapping[str, str], name: str) -> dict[str, str]:
    """``env`` for the component called ``name`` (its task processes inherit the name), with this
    checkout on ``PYTHONPATH``: :data:`HOSTNAME_CALLABLE` lives in this module, outside the wheel."""
    path = [REPOSITORY_ROOT, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, HOSTNAME_ENV: name, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}


def celery_settings(postgres: _Postgres, redis: _Redis, *, database: str = "airflow") -> dict[tuple[str, str], str]:
    """CeleryExecutor with the metadata DB and the Celery result backend on ``postgres`` (psycopg2:
    plain ``db+postgresql://`` would pick psycopg 3) and the broker on ``redis``; hostnames from
    :func:`component_hostname`."""
    return {
        ("core", "executor"): "CeleryExecutor",
        ("database", "sql_alchemy_conn"): postgres.url(database),
        ("celery", "broker_url"): redis.url(0),
        ("celery", "result_backend"): "db+" + postgres.url(database),
        ("core", "hostname_callable"): HOSTNAME_CALLABLE,
    }


def bytecode_cache_env() -> dict[str, str]:
    """Environment for children that write and reuse ``.pyc`` files in a per-user cache directory
    under the system temp dir (``PYTHONPYCACHEPREFIX``; the venv itself is left untouched)."""
    cache = Path(tempfile.gettempdir()) / f"cogvideo-pycache-{os.getuid()}"
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(cache)}


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, state) of ``pid`` from ``/proc/<pid>/stat``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            after_name = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(after_name[1]), after_name[0]


def _parents() -> Mapping[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[0]
    return parents


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant of it (children first found by ``/proc/*/stat`` ppid)."""
    parents = _parents()
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid] if pid in parents else []
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is ``pid`` or one of its ancestors (both alive)."""
    seen = set()
    while pid > 1 and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        stat = _stat(pid)
        if stat is None:
            return False
        pid = stat[0]
    return False


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and all its descendants, whatever process group they are in; returns the pids.

    The tree is frozen first (SIGSTOP until no new process appears), so nothing in it forks, exits
    into a reparenting or reacts while the kill goes out: a host loss, not a shutdown."""
    frozen: set[int] = set()
    for _ in range(10):
        tree = [p for p in process_tree(pid) if p not in frozen]
        if not tree:
            break
        for p in tree:
            with suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGSTOP)
            frozen.add(p)
    for p in frozen:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(p, signal.SIGKILL)
    return sorted(frozen)


__all__ = [
    "HOSTNAME_CALLABLE",
    "HOSTNAME_ENV",
    "REPOSITORY_ROOT",
    "bytecode_cache_env",
    "celery_settings",
    "component_env",
    "component_hostname",
    "descends_from",
    "kill_tree",
    "process_tree",
]
