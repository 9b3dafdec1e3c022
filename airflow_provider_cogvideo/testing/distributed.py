"""Airflow on CeleryExecutor + PostgreSQL + Redis on one machine, and killing its parts like a lost host.

* :func:`celery_settings`: the ``(section, key) -> value`` settings of a Celery deployment whose
  metadata DB and result backend are a :class:`~.postgres.PostgresServer` database and whose broker
  is a :class:`~.redis_server.RedisServer` (for :class:`~.airflow_env.AirflowEnvironment`'s ``config``);
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
from collections.abc import Mapping
from contextlib import suppress
from typing import Protocol


class _Postgres(Protocol):
    def url(self, database: str = ..., driver: str = ...) -> str: ...


class _Redis(Protocol):
    def url(self, db: int = ...) -> str: ...


def celery_settings(postgres: _Postgres, redis: _Redis, *, database: str = "airflow") -> dict[tuple[str, str], str]:
    """CeleryExecutor with the metadata DB and the Celery result backend on ``postgres`` (psycopg2:
    plain ``db+postgresql://`` would pick psycopg 3) and the broker on ``redis``."""
    return {
        ("core", "executor"): "CeleryExecutor",
        ("database", "sql_alchemy_conn"): postgres.url(database),
        ("celery", "broker_url"): redis.url(0),
        ("celery", "result_backend"): "db+" + postgres.url(database),
    }


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


__all__ = ["celery_settings", "descends_from", "kill_tree", "process_tree"]
