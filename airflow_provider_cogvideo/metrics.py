"""The provider's metrics: one table of names (documented in the README from here) and two emitters.

They go through Airflow's ``Stats`` (StatsD, Datadog or OpenTelemetry, as the deployment's
``[metrics]`` section says), so a team sees spend and API behaviour in the dashboards it already has.
Crash-safe retries count their decisions as ``cogvideo.resume.<decision>``: the decisions Airflow
3.3's ``ResumableJobMixin`` counts as ``resumable_job.*``, in this provider's namespace because the
store is this provider's own (:mod:`.job_store` says why).

StatsD counters are integers: the list price is counted in hundredths of its currency
(``cogvideo.list_price.CNY`` +100 for a 1 CNY video).
"""

from __future__ import annotations

import contextlib
from typing import Any

METRICS: dict[str, tuple[str, str]] = {
    "cogvideo.submits": ("counter", "submits the API accepted (a job was created and is billed)"),
    "cogvideo.submit_refused": ("counter", "submits the API refused (no job was created)"),
    "cogvideo.submit_ambiguous": ("counter", "submits whose outcome is unknown (a job may exist and be billed)"),
    "cogvideo.rate_limited": ("counter", "submits refused by the tier's rate limit, tried again later"),
    "cogvideo.reconnects": ("counter", "retries that reconnected to their still-rendering job"),
    "cogvideo.reused": ("counter", "retries that returned their already finished job without paying"),
    "cogvideo.polls": ("counter", "status polls answered by the API"),
    "cogvideo.poll_errors": ("counter", "status polls that failed (transient errors included)"),
    "cogvideo.render_time": ("timer", "from the submit to the poll that saw the job succeed"),
    "cogvideo.list_price.<currency>": ("counter", "list price of accepted submits, in hundredths (CNY, USD)"),
    "cogvideo.dry_runs": ("counter", "dry runs (validated and priced, nothing sent)"),
    "cogvideo.prompt_writes": ("counter", "prompts written by the chat model (tags model, source: writer or fallback)"),
    "cogvideo.prompt_cache_hits": ("counter", "prompts found already written beside the video index (no chat call)"),
    "cogvideo.resume.<decision>": (
        "counter",
        "crash-safe retry decisions: fresh_submit, reconnect_attempt, reconnect_success, "
        "already_succeeded, terminal_resubmit (tag operator)",
    ),
}
"""Every metric this provider emits: name → (kind, meaning)."""


def incr(name: str, count: int = 1, **tags: str) -> None:
    """Count ``name`` (never raises: a metrics backend must not fail a paid job)."""
    from airflow.providers.common.compat.sdk import Stats

    with contextlib.suppress(Exception):  # a misconfigured backend
        Stats.incr(name, count, tags=tags or None)


def timing(name: str, seconds: float, **tags: str) -> None:
    """Record a duration for ``name``, in milliseconds as StatsD expects."""
    from airflow.providers.common.compat.sdk import Stats

    with contextlib.suppress(Exception):  # a misconfigured backend
        Stats.timing(name, seconds * 1000.0, tags=tags or None)


def count_price(price: float | None, currency: str | None, **tags: Any) -> None:
    """Add one accepted submit's list price to ``cogvideo.list_price.<currency>`` (hundredths)."""
    if price and currency:
        incr(f"cogvideo.list_price.{currency}", round(price * 100), **tags)


__all__ = ["METRICS", "count_price", "incr", "timing"]
