"""Apache Airflow provider for Zhipu's hosted video generation API (CogVideoX and Vidu).

Importing this package is deliberately cheap: no httpx client, no network, no Airflow import.
Airflow discovers the provider through the ``apache_airflow_provider`` entry point, which calls
:func:`get_provider_info` without importing any hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-cogvideo"
CONN_TYPE = "cogvideo"
DEFAULT_CONN_ID = "cogvideo_default"


@dataclass(frozen=True)
class NumberExtra:
    """A numeric connection extra: its default and inclusive bounds.

    Defined here, at the bottom layer, because two readers need the same numbers: the hook enforces
    them (``CogVideoConnectionSettings``) and the connection form shows them (``conn-fields``), and
    this module must stay importable without the hook.
    """

    label: str
    default: float
    minimum: float
    maximum: float
    integer: bool = False
    description: str = ""

    def allowed(self) -> str:
        """``an integer from 0 to 10``: the allowed range, as error messages state it."""
        kind = "an integer" if self.integer else "a number"
        return f"{kind} from {self.text(self.minimum)} to {self.text(self.maximum)}"

    @staticmethod
    def text(value: float) -> str:
        """A bound or default as people read it: ``60``, ``0.5``, ``1073741824`` (``:g`` would show
        the last as ``1.07374e+09``)."""
        return str(int(value)) if float(value).is_integer() else f"{value:g}"


NUMBER_EXTRAS: dict[str, NumberExtra] = {
    "request_timeout": NumberExtra(
        "Request timeout (s)", 60.0, 1.0, 600.0, description="Seconds per HTTP request (a submit uploads its images)."
    ),
    "connect_timeout": NumberExtra("Connect timeout (s)", 10.0, 0.5, 120.0),
    "max_retries": NumberExtra(
        "Retries for transient errors",
        3,
        0,
        10,
        integer=True,
        description="Attempts after the first; a submit is resent only when that cannot create a second job.",
    ),
    "retry_min_wait": NumberExtra("First retry wait (s)", 1.0, 0.001, 60.0),
    "retry_max_wait": NumberExtra("Longest retry wait (s)", 30.0, 0.001, 600.0, description="At least retry_min_wait."),
    "jwt_ttl_seconds": NumberExtra("JWT lifetime (s)", 210.0, 30.0, 86400.0, description="Only with auth=jwt."),
    "min_transfer_rate": NumberExtra(
        "Minimum transfer rate (bytes/s)",
        32768,
        1024,
        1073741824,
        integer=True,
        description="An API answer or result download slower than this on average, after a grace of "
        "request_timeout, is cut off. Lower it on a slow network.",
    ),
}
"""Every numeric extra of a ``cogvideo`` connection: the one source of its default and bounds."""

RESEND_SUBMIT_ON_5XX = "resend_submit_on_5xx"
"""The boolean extra that lets a submit answered with a 5xx be resent (same request_id)."""


def _number_field(extra: NumberExtra) -> dict[str, Any]:
    """The form field of a numeric extra: its bounds in the JSON schema, default and range in words."""
    return {
        "label": extra.label,
        "schema": {
            "type": ["integer" if extra.integer else "number", "null"],
            "minimum": extra.minimum,
            "maximum": extra.maximum,
        },
        "description": f"{extra.description} Default {extra.text(extra.default)}; {extra.allowed()}.".lstrip(),
    }


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's providers manager (validated against provider_info.schema.json)."""
    integration = "CogVideoX"
    return {
        "package-name": PACKAGE_NAME,
        "name": "CogVideoX (Zhipu BigModel / Z.AI video generation)",
        "description": "Submit CogVideoX and Vidu video generation jobs, wait for them in the triggerer, "
        "and stream the videos to S3.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": integration,
                "external-doc-url": "https://docs.bigmodel.cn/cn/guide/models/video-generation/cogvideox-3",
                "tags": ["ai", "service"],
            }
        ],
        "hooks": [{"integration-name": integration, "python-modules": ["airflow_provider_cogvideo.hooks.cogvideo"]}],
        "operators": [
            {
                "integration-name": integration,
                "python-modules": [
                    "airflow_provider_cogvideo.operators.cogvideo",
                    "airflow_provider_cogvideo.operators.product_images",
                    "airflow_provider_cogvideo.operators.gallery",
                    "airflow_provider_cogvideo.operators.run_plan",
                    "airflow_provider_cogvideo.operators.run_record",
                    "airflow_provider_cogvideo.operators.review_plan",
                    "airflow_provider_cogvideo.operators.review",
                    "airflow_provider_cogvideo.operators.regenerate",
                    "airflow_provider_cogvideo.operators.publish",
                    "airflow_provider_cogvideo.operators.review_record",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": integration,
                "python-modules": ["airflow_provider_cogvideo.sensors.cogvideo"],
            }
        ],
        "triggers": [
            {
                "integration-name": integration,
                "python-modules": ["airflow_provider_cogvideo.triggers.cogvideo"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": integration,
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_provider_cogvideo.transfers.cogvideo_to_s3",
            }
        ],
        "extra-links": [
            "airflow_provider_cogvideo.links.CogVideoVideoLink",
            "airflow_provider_cogvideo.links.CogVideoS3VideoLink",
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook",
                "hook-name": "CogVideoX",
                "connection-type": CONN_TYPE,
                "ui-field-behaviour": {
                    "hidden-fields": ["login"],
                    "relabeling": {
                        "password": "API Key (id.secret)",
                        "host": "Host (optional; may include http:// or https://)",
                        "schema": "Path (optional)",
                    },
                    "placeholders": {
                        "host": "open.bigmodel.cn  (default)  |  api.z.ai  |  http://127.0.0.1",
                        "schema": "api/paas/v4",
                        "password": "<id>.<secret>",
                    },
                },
                "conn-fields": {
                    "base_url": {
                        "label": "Base URL (overrides host/port/path)",
                        "schema": {"type": ["string", "null"]},
                        "description": "Full API base, e.g. https://api.z.ai/api/paas/v4",
                    },
                    "tier": {
                        "label": "Concurrency tier",
                        "schema": {"type": ["string", "null"], "enum": ["V0", "V1", "V2", "V3", None]},
                        "description": "Account tier: V0/V1/V2/V3 = 5/10/15/20 tasks in flight per model.",
                    },
                    "auth": {
                        "label": "Auth mode",
                        "schema": {"type": ["string", "null"], "enum": ["api_key", "jwt", None]},
                        "description": "api_key sends the key as Bearer; jwt sends a short-lived HS256 token.",
                    },
                    **{name: _number_field(extra) for name, extra in NUMBER_EXTRAS.items()},
                    RESEND_SUBMIT_ON_5XX: {
                        "label": "Resend a submit answered with a 5xx",
                        "schema": {"type": ["boolean", "null"], "default": False},
                        "description": "Off by default: a 500/502/504 may follow a created (billed) job, so the "
                        "submit fails as ambiguous. Turn on only if your endpoint de-duplicates by request_id: "
                        "the resend carries the same request_id.",
                    },
                },
            }
        ],
    }
