"""The README's tables, generated from the code's tables (a unit test keeps the README's copy in sync).

Documentation tooling: no runtime module imports this. ``python -m airflow_provider_cogvideo.docs``
prints both tables, ready to paste between the README's ``<!-- ...:start -->`` markers.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES
from airflow_provider_cogvideo.errors import API_ERROR_CODES
from airflow_provider_cogvideo.hooks.submit_policy import SUBMIT_POLICY
from airflow_provider_cogvideo.metrics import METRICS
from airflow_provider_cogvideo.sizes import MiB


def capability_table_markdown() -> str:
    """The README's model table, generated from :data:`MODEL_CAPABILITIES`."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, tuple):
            return ", ".join(str(x) for x in v)
        return str(v)

    rows = [
        "| model | images | sizes | fps | duration | quality | Vidu options | image formats, max | price |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in MODEL_CAPABILITIES.values():
        images = "0" if c.max_images == 0 else f"{c.min_images}-{c.max_images}"
        vidu = "; ".join(
            f"{label}: {cell(getattr(c, col))}"
            for label, col in (("aspect_ratio", "aspect_ratios"), ("style", "styles"),
                               ("movement_amplitude", "movement_amplitudes"))
            if getattr(c, col) is not None
        ) or "-"  # fmt: skip
        price = f"{c.price_cny:g} CNY" + (f" / ${c.price_usd:g}" if c.price_usd is not None else "")
        rows.append(
            f"| `{c.name}` | {images} | {cell(c.sizes)} | {cell(c.fps)} | {cell(c.durations)} | "
            f"{cell(c.qualities)} | {vidu} | {cell(c.image_formats)}, {c.image_max_bytes // MiB} MB | {price} |"
        )
    return "\n".join(rows)


def error_table_markdown() -> str:
    """The README's error table, generated from :data:`~airflow_provider_cogvideo.errors.API_ERROR_CODES`."""
    rows = ["| code | HTTP | exception | retried | meaning |", "|---|---|---|---|---|"]
    rows += [
        f"| {r.code} | {r.http_status} | `{r.exception.__name__}` | {'yes' if r.retryable else 'no'} | {r.message} |"
        for r in API_ERROR_CODES.values()
    ]
    return "\n".join(rows)


def submit_policy_markdown() -> str:
    """The README's submit policy, generated from
    :data:`~airflow_provider_cogvideo.hooks.submit_policy.SUBMIT_POLICY`."""
    rows = ["| a submit answered | the hook | why | when the resends run out |", "|---|---|---|---|"]
    rows += [
        f"| {rule.answer} | {rule.decision} | {rule.why} | "
        f"{'the operator waits (deferred) and submits again within its deadline' if rule.capacity else '-'} |"
        for rule in SUBMIT_POLICY.values()
    ]
    return "\n".join(rows)


def metrics_table_markdown() -> str:
    """The README's metrics table, generated from :data:`~airflow_provider_cogvideo.metrics.METRICS`."""
    rows = ["| metric | kind | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {kind} | {meaning} |" for name, (kind, meaning) in METRICS.items()]
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    tables = (capability_table_markdown(), error_table_markdown(), submit_policy_markdown(), metrics_table_markdown())
    print(*tables, sep="\n\n")
