"""The connection: one base-URL rule, validated settings, both env-var forms, provider registration."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from airflow_provider_cogvideo import get_provider_info
from airflow_provider_cogvideo.errors import CogVideoConnectionConfigError
from airflow_provider_cogvideo.hooks.cogvideo import (
    DEFAULT_BASE_URL,
    CogVideoConnectionSettings,
    CogVideoHook,
    resolve_base_url,
)

from .conftest import API_KEY


@pytest.mark.parametrize(
    ("host", "schema", "port", "base_url", "expected"),
    [
        (None, None, None, None, DEFAULT_BASE_URL),
        ("", "", None, None, DEFAULT_BASE_URL),
        ("open.bigmodel.cn", None, None, None, "https://open.bigmodel.cn/api/paas/v4"),
        ("api.z.ai", "api/paas/v4", None, None, "https://api.z.ai/api/paas/v4"),
        ("https://api.z.ai", "/api/paas/v4/", None, None, "https://api.z.ai/api/paas/v4"),
        ("api.z.ai/api/paas/v4", None, None, None, "https://api.z.ai/api/paas/v4"),
        ("127.0.0.1", None, 8123, None, "http://127.0.0.1:8123/api/paas/v4"),
        ("localhost", "v4", 80, None, "http://localhost:80/v4"),
        ("http://emulator.internal", None, 9000, None, "http://emulator.internal:9000/api/paas/v4"),
        ("ignored", "ignored", 1, "https://api.z.ai/api/paas/v4/", "https://api.z.ai/api/paas/v4"),
    ],
)
def test_base_url_rule(host, schema, port, base_url, expected) -> None:
    assert resolve_base_url(host, schema, port, base_url) == expected


def test_base_url_rejects_other_schemes() -> None:
    with pytest.raises(CogVideoConnectionConfigError, match="base_url"):
        resolve_base_url(None, None, None, "ftp://x/y")
    with pytest.raises(CogVideoConnectionConfigError, match="scheme"):
        resolve_base_url("ftp://x", None, None, None)


def test_uri_form_path_lands_in_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_COGVIDEO_DEFAULT", f"cogvideo://:{API_KEY}@127.0.0.1:8123/api%2Fpaas%2Fv4?tier=V2&auth=jwt"
    )
    settings = CogVideoHook().settings
    assert settings.base_url == "http://127.0.0.1:8123/api/paas/v4"
    assert (settings.tier, settings.auth, settings.concurrency) == ("V2", "jwt", 15)


def test_json_form(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "cogvideo", "host": "api.z.ai", "schema": "api/paas/v4", "password": API_KEY,
            "extra": {"tier": "v3", "request_timeout": "30", "max_retries": 0}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_COGVIDEO_DEFAULT", json.dumps(conn))
    settings = CogVideoHook().settings
    assert settings.base_url == "https://api.z.ai/api/paas/v4"
    assert (settings.tier, settings.concurrency, settings.request_timeout, settings.max_retries) == ("V3", 20, 30.0, 0)


@pytest.mark.parametrize(
    ("password", "extra", "match"),
    [
        ("nodot", {}, "<id>.<secret>"),
        (".secret", {}, "<id>.<secret>"),
        ("id.", {}, "<id>.<secret>"),
        ("a.b.c", {}, "<id>.<secret>"),
        (None, {}, "<id>.<secret>"),
        (API_KEY, {"tier": "V9"}, "tier must be one of"),
        (API_KEY, {"auth": "oauth"}, "auth must be"),
        (API_KEY, {"request_timeout": "soon"}, "request_timeout must be a number"),
        (API_KEY, {"max_retries": -1}, "max_retries must be >= 0"),
    ],
)
def test_bad_settings_are_named_without_echoing_the_key(password, extra, match) -> None:
    with pytest.raises(CogVideoConnectionConfigError, match=match) as exc:
        CogVideoConnectionSettings.from_fields(password=password, extra=extra)
    assert "testsecretvalue" not in str(exc.value)


def test_settings_repr_hides_key() -> None:
    settings = CogVideoConnectionSettings.from_fields(password=API_KEY)
    assert "testsecretvalue" not in repr(settings)
    assert settings.key_id == "testkeyid"


def test_provider_info_is_registered_and_consistent() -> None:
    (ep,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider_cogvideo")
    ]
    info = ep.load()()
    assert info == get_provider_info()
    assert info["package-name"] == "airflow-provider-cogvideo"
    conn_type = info["connection-types"][0]
    assert conn_type["connection-type"] == CogVideoHook.conn_type == "cogvideo"
    assert set(conn_type["conn-fields"]) <= {"base_url", "tier", "auth", "request_timeout", "max_retries"}
    assert CogVideoHook.get_ui_field_behaviour()["hidden_fields"] == ["login"]


def test_provider_info_lists_importable_modules() -> None:
    import importlib

    info = get_provider_info()
    modules = [
        m for kind in ("hooks", "operators", "sensors", "triggers") for e in info[kind] for m in e["python-modules"]
    ]
    modules += [t["python-module"] for t in info["transfers"]]
    for module in modules:
        importlib.import_module(module)
    for path in [*info["extra-links"], info["connection-types"][0]["hook-class-name"]]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name)


def test_providers_manager_sees_the_connection_type() -> None:
    try:
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as Manager
    except ImportError:  # Airflow < 3.2
        from airflow.providers_manager import ProvidersManager as Manager

    manager = Manager()
    assert "airflow-provider-cogvideo" in manager.providers
    assert "cogvideo" in manager.hooks
