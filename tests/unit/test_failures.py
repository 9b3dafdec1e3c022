"""failure_recorded: a failing step leaves its reason in XCom, and what no retry can cure is not retried."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.errors import (
    CogVideoConnectionConfigError,
    CogVideoDownloadError,
    CogVideoServerError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.failures import failure_recorded

from .conftest import FakeTI


@pytest.mark.parametrize(
    "error",
    [
        CogVideoConnectionConfigError("connection 'c': extra tier must be one of V0..V3"),
        CogVideoValidationError("size", "not allowed"),
        CogVideoDownloadError("download of https://cdn.test/v.mp4 refused: a link-local address"),
    ],
    ids=["connection", "validation", "refused-download"],
)
def test_what_no_retry_can_cure_fails_the_task_at_once(error: Exception) -> None:
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match="not retried") as exc, failure_recorded({"ti": ti}):
        raise error
    assert exc.value.__cause__ is error
    assert ti.xcom["error"] == {"error": str(error), "type": type(error).__name__}


@pytest.mark.parametrize(
    "error",
    [CogVideoDownloadError("download dropped after 10 bytes", retryable=True), CogVideoServerError("busy")],
    ids=["dropped-download", "server-error"],
)
def test_what_a_retry_may_cure_is_left_to_airflow(error: Exception) -> None:
    ti = FakeTI()
    with pytest.raises(type(error)), failure_recorded({"ti": ti}):
        raise error
    assert ti.xcom["error"]["type"] == type(error).__name__
