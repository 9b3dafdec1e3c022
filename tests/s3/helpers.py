"""Small helpers shared by the S3 tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any
from unittest import mock

AWS_CONN_ID = "aws_s3test"
COGVIDEO_CONN_ID = "cogvideo_s3test"


def make_context(**extra: Any) -> dict[str, Any]:
    """The parts of an Airflow task context these operators use."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": mock.MagicMock(), "outlet_events": OutletEventAccessors(), **extra}


def pushed(context: dict[str, Any], key: str) -> Any:
    """The value ``execute`` pushed with ``ti.xcom_push(key=...)``."""
    for call in context["ti"].xcom_push.call_args_list:
        if call.kwargs.get("key") == key:
            return call.kwargs["value"]
    raise AssertionError(f"nothing pushed under {key!r}")


def object_keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def pending_uploads(s3: Any, bucket: str) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
