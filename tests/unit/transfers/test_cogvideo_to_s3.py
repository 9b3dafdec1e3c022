"""A dry run's result reaches the upload: it skips (nothing to download, nothing written, no error)."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

from ..conftest import FakeTI


def test_upload_of_a_dry_run_skips_without_touching_s3_or_recording_an_error() -> None:
    result = {"id": None, "request_id": "af-plan", "task_status": "DRY_RUN", "video_url": None, "metadata": {}}
    op = CogVideoToS3Operator(task_id="upload", result=result, s3_bucket="b", s3_key="videos/{request_id}.mp4")
    ti = FakeTI()
    with pytest.raises(AirflowSkipException, match="dry run"):
        op.execute({"ti": ti})
    assert "s3_client" not in op.__dict__, "S3 was never contacted"
    assert "error" not in ti.xcom, "a skip is not a failure for the manifest"
