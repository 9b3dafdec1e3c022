"""``airflow_provider_cogvideo.worker_preload``: Airflow's Celery configuration, plus imports in the worker only.

It needs the Celery provider, which the whole suite's venv has (the unit-test matrix does not), so
it lives here. The distributed test runs real Celery workers with it.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import inspect, json, sys
import airflow_provider_cogvideo.worker_preload as preload
from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
heavy = ("boto3", "PIL", "airflow_provider_cogvideo.operators.cogvideo")
before = [name for name in heavy if name in sys.modules]
same_config = preload.CELERY_CONFIG == DEFAULT_CELERY_CONFIG
from celery.signals import worker_init
worker_init.send(sender=None)
indexed = set(inspect.modulesbyfile.values())
print(json.dumps({
    "loaded_by_config": before,
    "same_config": same_config,
    "missing_after_worker_init": [name for name in preload.PRELOADED if name not in sys.modules],
    "stack_index_misses": [name for name in ("botocore.handlers", *preload.PRELOADED) if name not in indexed],
}))
"""


def test_config_is_airflows_and_only_a_worker_imports_the_task_modules() -> None:
    """The scheduler reads this configuration too: importing it loads nothing heavy; ``worker_init``
    (sent by a Celery worker before its pool forks) loads everything in ``PRELOADED``."""
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])  # Airflow may log a line first
    assert result == {
        "loaded_by_config": [],
        "same_config": True,
        "missing_after_worker_init": [],
        # warm_caches: a boto3 client was built (its lazily loaded handlers are in), then the stack
        # walk indexed every module by file, so a task's first S3Hook does not redo either.
        "stack_index_misses": [],
    }


def test_a_module_that_is_not_installed_is_skipped(monkeypatch) -> None:
    """An optional extra left out (Pillow, the Amazon provider) must not stop the worker starting,
    nor the modules listed after it from being preloaded."""
    import importlib

    import airflow_provider_cogvideo.worker_preload as preload

    attempted: list[str] = []

    def import_module(name: str) -> None:
        attempted.append(name)
        if name == "not_installed":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", import_module)
    monkeypatch.setattr(preload, "PRELOADED", ("first", "not_installed", "after_it"))
    monkeypatch.setattr(preload, "warm_caches", lambda: None)  # boto3 would use the fake importer
    preload.preload()  # no exception
    assert attempted == ["first", "not_installed", "after_it"]


def test_caches_are_warmed_without_boto3(monkeypatch) -> None:
    """A worker without the Amazon provider's boto3 still starts: only the stack walk is done."""
    import airflow_provider_cogvideo.worker_preload as preload

    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` raises ImportError
    walked: list[bool] = []
    monkeypatch.setattr(preload.inspect, "stack", lambda: walked.append(True))
    preload.warm_caches()
    assert walked == [True]
