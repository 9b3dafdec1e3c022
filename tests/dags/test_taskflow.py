"""CogVideoHook.generate / agenerate: submit and wait in one call for @task users, against the emulator."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig
from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoJobFailedError,
    CogVideoJobTimeoutError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook


@pytest.fixture
def cogvideo_emulator_config() -> EmulatorConfig:
    return EmulatorConfig(duration=1.0, jitter=0.0, seed=11)


def test_generate_returns_the_finished_job(cogvideo_emulator, cogvideo_conn) -> None:
    job = CogVideoHook().generate(model="cogvideox-flash", prompt="a teapot", size="720x480", poll_interval=1)
    assert job.task_status == "SUCCESS" and job.video_url.startswith(cogvideo_emulator.url_root)
    assert cogvideo_emulator.stats()["submits"] == 1


def test_generate_validates_before_paying(cogvideo_emulator, cogvideo_conn) -> None:
    with pytest.raises(CogVideoValidationError, match=r"size: '640x360' is not allowed for model 'cogvideox-3'"):
        CogVideoHook().generate(model="cogvideox-3", prompt="a teapot", size="640x360")
    with pytest.raises(CogVideoValidationError, match=r"poll_interval: must be a number from 1 to 3600, got 0$"):
        CogVideoHook().generate(prompt="a teapot", poll_interval=0)
    assert cogvideo_emulator.stats()["submits"] == 0


def test_generate_raises_job_errors(cogvideo_emulator, cogvideo_conn) -> None:
    cogvideo_emulator.faults.set(fail_rate=1.0)
    with pytest.raises(CogVideoJobFailedError, match="task_status FAIL") as failed:
        CogVideoHook().generate(prompt="a teapot", poll_interval=1)
    assert failed.value.job_id and failed.value.event["status"] == "failed"
    cogvideo_emulator.faults.set(fail_rate=0.0)
    with pytest.raises(CogVideoJobTimeoutError, match="deadline reached") as late:
        CogVideoHook().generate(prompt="a teapot", poll_interval=1, timeout=0.2)
    assert late.value.retryable
    cogvideo_emulator.faults.set(submit_lost_rate=1.0)
    with pytest.raises(CogVideoAmbiguousSubmitError, match="request_id"):
        CogVideoHook().generate(prompt="a teapot", poll_interval=1)
    assert cogvideo_emulator.stats()["submits"] == 3, "one paid job per call, none resent"
