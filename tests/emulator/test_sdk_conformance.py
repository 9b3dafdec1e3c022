"""Conformance: the official ``zhipuai`` SDK (pinned, in its own virtualenv) against the emulator.

Never skipped: without the SDK's interpreter the test fails and says how to get it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from airflow_provider_cogvideo.emulator import EmulatorConfig, running_emulator
from tests.emulator.helpers import KEY_ID, data_uri

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("sdk_client.py")


def sdk_python() -> Path:
    configured = os.environ.get("COGVIDEO_SDK_PYTHON")
    candidate = Path(configured) if configured else REPO / ".venv-zhipuai" / "bin" / "python"
    if not candidate.exists():
        pytest.fail(
            f"the official zhipuai SDK interpreter {candidate} does not exist: run `make test` "
            "(or `make .venv-zhipuai/.installed`), or set COGVIDEO_SDK_PYTHON"
        )
    return candidate


@pytest.mark.conformance
def test_official_sdk_against_the_emulator() -> None:
    python = sdk_python()
    with running_emulator(EmulatorConfig(duration=0.3, jitter=0.0, unlimited=True)) as handle:
        args = {
            "base_url": handle.base_url,
            "key": handle.api_key,
            "wrong_key": f"{KEY_ID}.not-the-right-secret-at-all-0000",
            "image": data_uri(160, 90),
        }
        run = subprocess.run(
            [str(python), str(SCRIPT)], input=json.dumps(args), capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        video_url, cover_url = out["image_jwt"]["urls"][0]
        downloads = [httpx.get(video_url), httpx.get(cover_url)]
        stats = handle.stats()

    for case in ("text_raw_key", "text_jwt", "image_jwt", "first_last_raw_key", "vidu_image"):
        assert out[case]["submitted"]["status"] == "PROCESSING", case
        assert out[case]["submitted"]["id"].isdigit(), case
        assert out[case]["status"] == "SUCCESS", case
        assert len(out[case]["urls"]) == 1, case
    assert out["text_raw_key"]["request_id"] == "sdk-text-1"
    assert out["vidu_image"]["model"] == "vidu2-image"
    assert out["invalid_size"] == {"type": "APIRequestFailedError", "status": 400}
    assert out["unknown_model"] == {"type": "APIRequestFailedError", "status": 400}
    assert out["wrong_key_raw"] == {"type": "APIAuthenticationError", "status": 401}
    assert out["wrong_key_jwt"] == {"type": "APIAuthenticationError", "status": 401}
    assert [d.headers["content-type"] for d in downloads] == ["video/mp4", "image/png"]
    # Errors are not retried by the SDK (4xx), so each was seen exactly once.
    assert stats["rejections"] == {"1214": 1, "1211": 1, "1000": 1, "1002": 1}
    assert stats["submits"] == 5
