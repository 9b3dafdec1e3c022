"""Celery workers that start each task with the provider already imported (a deployment option).

Airflow 3 runs every task in a process forked from a long-lived worker process. A forked child has
for free whatever its parent had imported; anything else it imports again, every time. A generate
task needs the Amazon provider's ``S3Hook`` with boto3 (to read a staged ``s3://`` image) and Pillow
(to check it); an upload needs the transfer module and boto3 again. Their imports were the largest
part of the CPU a task start costs here, and on a small worker they land exactly when a tier slot
has just freed and five tasks start at once, so a paid slot sits idle behind them.

Use it by pointing Airflow's Celery configuration at :data:`CELERY_CONFIG`::

    [celery]
    celery_config_options = airflow_provider_cogvideo.worker_preload.CELERY_CONFIG

It is Airflow's default Celery configuration unchanged, plus a ``worker_init`` handler that imports
:data:`PRELOADED` once in the worker's main process, before Celery forks its pool (the scheduler,
which also reads this configuration, imports nothing more): their cost is paid once per worker
instead of once per task, and the memory is shared copy-on-write with every task it forks. What
that saves, and its effect on the tier's hand-off, is measured in ``benchmarks/README.md`` (worker
preload, tier throughput). Nothing here changes what a task does.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

log = logging.getLogger(__name__)

PRELOADED: tuple[str, ...] = (
    "airflow.sdk.execution_time.task_runner",
    "airflow_provider_cogvideo.operators.cogvideo",
    "airflow_provider_cogvideo.operators.product_images",
    "airflow_provider_cogvideo.transfers.cogvideo_to_s3",
    "airflow.providers.amazon.aws.hooks.s3",
    "PIL.Image",
    "PIL.JpegImagePlugin",
    "PIL.PngImagePlugin",
    "PIL.WebPImagePlugin",
)
"""What a generate, ingest or upload task imports at run time (parse-time imports included)."""

CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)
"""Airflow's default Celery configuration (the ``worker_init`` handler below does the preloading)."""


@worker_init.connect
def preload(**_: Any) -> None:
    """Import :data:`PRELOADED` (one that is not installed, an optional extra, is skipped), then
    :func:`warm_caches`."""
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.info("Not preloading %s: %s", name, exc)
    warm_caches()


def warm_caches() -> None:
    """Fill, once, two per-process caches that every task using ``S3Hook`` would otherwise fill again.

    Each ``S3Hook`` client runs ``inspect.stack()`` to name its caller in the user agent, and the
    first stack walk in a process indexes every loaded module by file; the first boto3 client in a
    process loads botocore's lazily imported handlers and data. Done here, the forked tasks inherit
    both, and a task's first ``S3Hook(...).get_conn()`` starts warm.
    The client is built with placeholder credentials and endpoint: no credential lookup, no network.
    """
    try:
        import boto3
    except ImportError:
        pass
    else:
        session = boto3.session.Session(
            aws_access_key_id="preload", aws_secret_access_key="preload", region_name="us-east-1"
        )
        session.client("s3", endpoint_url="http://127.0.0.1:9")
    inspect.stack()  # last: it indexes the modules loaded so far, the client's included


__all__ = ["CELERY_CONFIG", "PRELOADED", "preload", "warm_caches"]
