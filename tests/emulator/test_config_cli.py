"""Configuration parsing and the ``cogvideo emulator`` command."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from airflow_provider_cogvideo.cli import main
from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, ApiKey, EmulatorConfig, FaultConfig, parse_keys


def test_keys_parse_and_never_show_the_secret() -> None:
    keys = parse_keys("abc.s3cret-one:V2, def.s3cret-two")
    assert [(k.key_id, k.tier) for k in keys] == [("abc", "V2"), ("def", "V0")]
    assert "s3cret" not in repr(keys) and "s3cret" not in repr(EmulatorConfig(keys=keys))
    for bad in ("nodot", "a.b.c", "a.b:V9"):
        with pytest.raises(ValueError):
            ApiKey.parse(bad)


def test_fault_config_from_cli_strings() -> None:
    config = FaultConfig.from_mapping(
        {"submit_error_rate": "0.25", "error_codes": "500, 1305", "retry_after": "", "delay_ops": "poll"}
    )
    assert (config.submit_error_rate, config.error_codes, config.retry_after) == (0.25, ("500", "1305"), None)
    assert config.delay_ops == ("poll",)
    answer = FaultConfig.from_mapping(
        {"submit_created_error_codes": "502,504", "malformed_id_kinds": "slash, null", "submit_lost_rate": "0.1"}
    )
    assert (answer.submit_created_error_codes, answer.malformed_id_kinds) == (("502", "504"), ("slash", "null"))
    assert answer.submit_lost_rate == 0.1
    with pytest.raises(ValueError, match="unknown error code"):
        FaultConfig(error_codes=("999",))
    with pytest.raises(ValueError, match="unknown fault setting"):
        FaultConfig.from_mapping({"typo_rate": 1})
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        FaultConfig(fail_rate=1.5)


def test_answer_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="5xx codes"):
        FaultConfig(submit_created_error_codes=("1305",))
    with pytest.raises(ValueError, match="5xx codes"):
        FaultConfig(submit_created_error_codes=())
    with pytest.raises(ValueError, match="malformed_id_kinds"):
        FaultConfig(malformed_id_kinds=("slash", "emoji"))
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultConfig(submit_created_error_rate=0.5, submit_lost_rate=0.4, submit_malformed_id_rate=0.2)
    assert FaultConfig(submit_created_error_codes=("1200", "503")).submit_created_error_codes == ("1200", "503")


def test_cli_rejects_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit, match="unknown fault setting"):
        main(["emulator", "--fault", "nonsense=1"])
    with pytest.raises(SystemExit):
        main(["emulator", "--payload-bytes", "lots"])
    assert "not a byte count" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="admin_token"):
        main(["emulator", "--admin-token", "has spaces"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_stats(base: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    for _ in range(300):  # bounded wait for the port, not a timing assertion
        try:
            return httpx.get(f"{base}/_emulator/stats", headers=headers).json()
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the emulator CLI did not start")


def test_cli_serves_the_api() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "airflow_provider_cogvideo.cli", "emulator", "--port", str(port)]
    command += ["--keys", "cli.cli-secret-value:V1", "--duration", "0", "--seed", "4", "--payload-bytes", "1KiB"]
    command += ["--fault", "blocked_prompts=forbidden"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        stats = _wait_for_stats(base)
        headers = {"Authorization": "Bearer cli.cli-secret-value"}
        submitted = httpx.post(
            f"{base}/api/paas/v4/videos/generations", json={"model": "cogvideox-3", "prompt": "x"}, headers=headers
        )
        blocked = httpx.post(
            f"{base}/api/paas/v4/videos/generations",
            json={"model": "cogvideox-3", "prompt": "forbidden"},
            headers=headers,
        )
        result = httpx.get(f"{base}/api/paas/v4/async-result/{submitted.json()['id']}", headers=headers).json()
        video = httpx.get(result["video_result"][0]["url"])
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert stats["seed"] == 4
    assert blocked.json()["error"]["code"] == "1301"
    assert len(video.content) == 1024
    assert f"base URL http://127.0.0.1:{port}/api/paas/v4" in output
    assert "key id cli, tier V1" in output
    assert "cli-secret-value" not in output and DEFAULT_TEST_KEY not in output


def test_cli_exposed_takes_an_admin_token_and_answer_faults() -> None:
    port = _free_port()
    command = [sys.executable, "-m", "airflow_provider_cogvideo.cli", "emulator", "--host", "0.0.0.0"]
    command += ["--port", str(port), "--admin-token", "cli-admin-token", "--fault", "submit_lost_rate=1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        token = {"X-Emulator-Admin-Token": "cli-admin-token"}
        _wait_for_stats(base, token)
        refused = httpx.get(f"{base}/_emulator/stats")
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.post(
                f"{base}/api/paas/v4/videos/generations",
                json={"model": "cogvideox-3", "prompt": "x", "request_id": "cli-1"},
                headers={"Authorization": f"Bearer {DEFAULT_TEST_KEY}"},
            )
        stats = httpx.get(f"{base}/_emulator/stats", headers=token).json()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert refused.status_code == 401
    assert (stats["submits"], stats["request_ids"], stats["answer_faults"]) == (1, ["cli-1"], {"lost": 1})
    assert "WARNING" in output and "bound to 0.0.0.0" in output
    assert "cli-admin-token" not in output and DEFAULT_TEST_KEY not in output
