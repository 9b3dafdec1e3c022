"""Apache Airflow provider for Zhipu's hosted video generation API (CogVideoX and Vidu).

Importing this package is deliberately cheap: no httpx client, no network, no Airflow import.
Airflow discovers the provider through the ``apache_airflow_provider`` entry point, which calls
:func:`get_provider_info` without importing any hook.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-cogvideo"
CONN_TYPE = "cogvideo"
DEFAULT_CONN_ID = "cogvideo_default"


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
        "extra-links": ["airflow_provider_cogvideo.links.CogVideoVideoLink"],
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
                    "request_timeout": {
                        "label": "Request timeout (s)",
                        "schema": {"type": ["number", "null"], "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Retries for transient errors",
                        "schema": {"type": ["integer", "null"], "minimum": 0, "maximum": 10},
                    },
                },
            }
        ],
    }
