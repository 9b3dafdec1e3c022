"""What the pipeline DAG and its review DAG share, in one place: the generation settings every video of
the catalog is fingerprinted with (a regeneration after a reject must use the very same), the pool,
and the two assets that connect the DAGs. Environment variables set them for the demo and the tests;
a deployment edits the values here or in its copy of the DAG files.

Importing this module defines no DAG (a DAG file importing another DAG file would define its DAGs twice).
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.sdk import Asset

GENERATION: dict[str, Any] = {"model": os.environ.get("COGVIDEO_PIPELINE_MODEL", "cogvideox-3")}
"""The model and options of every video: given to the generate step, to ingestion, whose fingerprints
of the videos name them (change one and the catalog is made again), and to the review's regenerations."""
FORMATS = [name.strip() for name in os.environ.get("COGVIDEO_PIPELINE_FORMATS", "").split(",") if name.strip()] or None
"""The default of the pipeline's ``formats`` param: ad formats to render each product in (one video per
format, e.g. ``9:16,16:9``; README "Ad formats"); unset, one video per product in the model's default size."""


def _prompt_writer(setting: str) -> dict[str, Any] | None:
    """``COGVIDEO_PIPELINE_PROMPT_WRITER``: unset or ``off``: none; ``on``: the defaults; else a JSON
    object of :class:`~airflow_provider_cogvideo.prompt_writer.PromptWriter` settings."""
    setting = setting.strip()
    if setting.lower() in ("", "off", "none", "false", "0"):
        return None
    return {} if setting.lower() in ("on", "true", "1") else dict(json.loads(setting))


PROMPT_WRITER = _prompt_writer(os.environ.get("COGVIDEO_PIPELINE_PROMPT_WRITER", ""))
"""The prompt writer of every video (off by default): like ``GENERATION``, ingestion fingerprints the
videos with it, the plan prices its writings and the generate and regenerate steps use it."""
POOL = os.environ.get("COGVIDEO_PIPELINE_POOL", "cogvideo")
# Fixed seconds between polls, for renders of seconds (the emulator in `make demo` and the integration
# test); unset, the adaptive schedule suits real renders of minutes.
POLL_INTERVAL = float(os.environ.get("COGVIDEO_PIPELINE_POLL_INTERVAL") or 0) or None
RUN_VIDEOS = Asset(name="cogvideo_pipeline_runs")
"""Emitted by the pipeline's ``manifest`` task once per run that wrote its record (``extra``: the
manifest's and the gallery's URIs, the review mode): the review DAG is scheduled on it."""
PUBLISHED_VIDEOS = Asset(name="cogvideo_published_videos")
"""Emitted once per published product (``extra``: product id, variant, URI, sha256, cover, job, round):
schedule a distribution DAG on it."""
