"""The extra link on the generate operator and the sensor (registered in the provider info)."""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_provider_cogvideo.common import XCOM_JOB_URL, XCOM_VIDEO_URL


class CogVideoVideoLink(BaseOperatorLink):
    """Link to the generated video (after success) or to the job's status URL (while it renders)."""

    name = "CogVideo video"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return (
            XCom.get_value(key=XCOM_VIDEO_URL, ti_key=ti_key) or XCom.get_value(key=XCOM_JOB_URL, ti_key=ti_key) or ""
        )


__all__ = ["CogVideoVideoLink"]
