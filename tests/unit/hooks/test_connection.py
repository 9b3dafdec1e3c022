"""The connection: one base-URL rule, validated settings, both env-var forms, provider registration."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

from airflow_provider_cogvideo import NUMBER_EXTRAS, get_provider_info
from airflow_provider_cogvideo.errors import CogVideoConnectionConfigError, CogVideoValidationError
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
from airflow_provider_cogvideo.hooks.connection import DEFAULT_BASE_URL, CogVideoConnectionSettings, resolve_base_url

from ..conftest import API_KEY


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
        ("localhost:9000", None, 8123, None, "http://localhost:9000/api/paas/v4"),  # the host's own port wins
        ("[::1]", None, 8123, None, "http://[::1]:8123/api/paas/v4"),
        ("::1", None, 8123, None, "http://[::1]:8123/api/paas/v4"),
        ("[::1]:9000", "v4", 8123, None, "http://[::1]:9000/v4"),
        ("[::ffff:127.0.0.1]", None, None, None, "http://[::ffff:127.0.0.1]/api/paas/v4"),
        ("2001:db8::1", None, 443, None, "https://[2001:db8::1]:443/api/paas/v4"),
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
        (API_KEY, {"request_timeout": "soon"}, "request_timeout must be a number from 1 to 600, got 'soon'"),
        (API_KEY, {"max_retries": -1}, "max_retries must be an integer from 0 to 10, got -1"),
        (API_KEY, {"request_timeout": API_KEY}, r"request_timeout must be a number from 1 to 600, got '\*\*\*'"),
        (API_KEY, {"retry_max_wait": "testsecretvalue"}, r"retry_max_wait must be .*, got '\*\*\*'"),
        (
            API_KEY,
            {"base_url": "https://testkeyid:testsecretvalue@api.z.ai/api/paas/v4"},
            "must not contain credentials",
        ),
    ],
)
def test_bad_settings_are_named_without_echoing_the_key(password, extra, match) -> None:
    with pytest.raises(CogVideoConnectionConfigError, match=match) as exc:
        CogVideoConnectionSettings.from_fields(password=password, extra=extra)
    assert "testsecretvalue" not in str(exc.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"request_timeout": "nan"}, "extra request_timeout must be a number from 1 to 600, got 'nan'"),
        ({"request_timeout": float("inf")}, "extra request_timeout must be a number from 1 to 600, got inf"),
        ({"connect_timeout": float("nan")}, "extra connect_timeout must be a number from 0.5 to 120, got nan"),
        ({"connect_timeout": 0.1}, "extra connect_timeout must be a number from 0.5 to 120, got 0.1"),
        ({"max_retries": 10**9}, "extra max_retries must be an integer from 0 to 10, got 1000000000"),
        ({"max_retries": 2.9}, "extra max_retries must be an integer from 0 to 10, got 2.9"),
        ({"max_retries": "2.9"}, "extra max_retries must be an integer from 0 to 10, got '2.9'"),
        ({"max_retries": True}, "extra max_retries must be an integer from 0 to 10, got True"),
        ({"retry_min_wait": 0}, "extra retry_min_wait must be a number from 0.001 to 60, got 0"),
        ({"retry_max_wait": 601}, "extra retry_max_wait must be a number from 0.001 to 600, got 601"),
        ({"retry_min_wait": 5, "retry_max_wait": 2}, "extra retry_max_wait (2) must be >= retry_min_wait (5)"),
        ({"jwt_ttl_seconds": 1e400}, "extra jwt_ttl_seconds must be a number from 30 to 86400, got inf"),
        ({"jwt_ttl_seconds": 10}, "extra jwt_ttl_seconds must be a number from 30 to 86400, got 10"),
        ({"resend_submit_on_5xx": "maybe"}, "extra resend_submit_on_5xx must be true or false, got 'maybe'"),
        ({"resend_submit_on_5xx": 1}, "extra resend_submit_on_5xx must be true or false, got 1"),
    ],
)
def test_extras_are_bounded_finite_and_typed(extra, message) -> None:
    with pytest.raises(CogVideoConnectionConfigError) as exc:
        CogVideoConnectionSettings.from_fields(password=API_KEY, extra=extra)
    assert str(exc.value) == message


def test_extras_accept_what_the_form_and_uri_give() -> None:
    """The URI form and Airflow's form hand over strings; whole-number strings are integers, "" is unset."""
    settings = CogVideoConnectionSettings.from_fields(
        password=API_KEY,
        extra={"max_retries": "3", "request_timeout": "30.5", "resend_submit_on_5xx": "True", "jwt_ttl_seconds": ""},
    )
    assert (settings.max_retries, settings.request_timeout, settings.resend_submit_on_5xx) == (3, 30.5, True)
    assert settings.jwt_ttl_seconds == NUMBER_EXTRAS["jwt_ttl_seconds"].default
    assert CogVideoConnectionSettings.from_fields(password=API_KEY).resend_submit_on_5xx is False


@pytest.mark.parametrize("name", sorted(NUMBER_EXTRAS))
def test_form_bounds_are_the_enforced_bounds(name: str) -> None:
    """One source of truth: the connection form's schema shows exactly the range the hook enforces."""
    extra = NUMBER_EXTRAS[name]
    schema = get_provider_info()["connection-types"][0]["conn-fields"][name]["schema"]
    assert (schema["minimum"], schema["maximum"]) == (extra.minimum, extra.maximum)
    assert schema["type"] == ["integer" if extra.integer else "number", "null"]
    lo_wait = {"retry_max_wait": {"retry_min_wait": extra.minimum}}.get(name, {})
    hi_wait = {"retry_min_wait": {"retry_max_wait": extra.maximum}}.get(name, {})
    for value, others in ((extra.minimum, lo_wait), (extra.maximum, hi_wait)):
        settings = CogVideoConnectionSettings.from_fields(password=API_KEY, extra={name: value, **others})
        assert getattr(settings, name) == value
    step = 1 if extra.integer else extra.minimum / 2 or 1
    for value in (extra.minimum - step, extra.maximum + step):
        with pytest.raises(CogVideoConnectionConfigError, match=f"extra {name} must be"):
            CogVideoConnectionSettings.from_fields(password=API_KEY, extra={name: value})


def test_settings_built_directly_are_validated_too() -> None:
    with pytest.raises(CogVideoConnectionConfigError, match="max_retries") as exc:
        CogVideoConnectionSettings(base_url="https://api.z.ai/api/paas/v4", api_key=API_KEY, max_retries=11)
    with pytest.raises(CogVideoConnectionConfigError, match=r"<id>\.<secret>") as bad_key:
        CogVideoConnectionSettings(base_url="https://api.z.ai/api/paas/v4", api_key="testsecretvalue")
    assert "testsecretvalue" not in str(exc.value) + str(bad_key.value)


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        (None, "https://user:testsecretvalue@api.z.ai/api/paas/v4"),
        (None, "https://testsecretvalue@api.z.ai/api/paas/v4"),
        ("user:testsecretvalue@api.z.ai", None),
        ("https://user:testsecretvalue@api.z.ai", None),
    ],
)
def test_credentials_in_the_url_are_refused_without_echo(host, base_url) -> None:
    with pytest.raises(CogVideoConnectionConfigError, match="must not contain credentials") as exc:
        resolve_base_url(host, None, None, base_url)
    assert "testsecretvalue" not in str(exc.value)


@pytest.mark.parametrize("value", [11, -1, 2.9, True, "3"])
def test_hook_max_retries_override_is_bounded(value) -> None:
    with pytest.raises(CogVideoValidationError, match=r"max_retries: must be an integer from 0 to 10"):
        CogVideoHook(max_retries=value)


def test_hook_max_retries_override_replaces_the_extra(make_conn) -> None:
    make_conn(extra={"max_retries": 2})
    assert CogVideoHook(max_retries=10).settings.max_retries == 10
    assert CogVideoHook(max_retries=0).settings.max_retries == 0


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
    assert set(conn_type["conn-fields"]) == {"base_url", "tier", "auth", "resend_submit_on_5xx", *NUMBER_EXTRAS}
    resend = conn_type["conn-fields"]["resend_submit_on_5xx"]
    assert resend["schema"] == {"type": ["boolean", "null"], "default": False}
    assert "request_id" in resend["description"]
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
