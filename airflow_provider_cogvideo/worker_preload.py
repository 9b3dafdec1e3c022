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
which also reads this configuration, imports nothing more). Measured here, with bytecode cached: a
process that has Airflow's Celery executor loaded grows by 17 MiB and spends 0.4 CPU-seconds on
these imports, once per worker instead of once per task (the memory is shared copy-on-write with
every task it forks). The effect on the tier's hand-off is in ``benchmarks/README.md`` (tier
throughput). Nothing here changes what a task does.
"""

from __future__ import annotations

import importlib
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
    """Import :data:`PRELOADED`; one that is not installed (an optional extra) is skipped."""
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.info("Not preloading %s: %s", name, exc)


__all__ = ["CELERY_CONFIG", "PRELOADED", "preload"]
