"""Narrow secret leaks: a JWT echoed in pieces, a key pasted into the wrong extra, credentials in a
result URL of any scheme."""

from __future__ import annotations

import traceback

import httpx
import pytest
import respx
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.errors import (
    CogVideoBadRequestError,
    CogVideoConnectionConfigError,
    CogVideoDownloadError,
    CogVideoUnexpectedAnswerError,
)
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
from airflow_provider_cogvideo.hooks.connection import CogVideoConnectionSettings
from airflow_provider_cogvideo.models import TaskResult
from airflow_provider_cogvideo.redact import has_credentials, redact_url
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.xcom import job_result

from .conftest import API_KEY, BASE_URL, FakeTI

SECRET = API_KEY.partition(".")[2]
CREDENTIAL_URLS = {
    "ftp://user:pw@host/v.mp4": ("pw", "ftp://host/v.mp4"),
    "s3://AKIA:secret@bucket/key": ("secret", "s3://bucket/key"),
    "https://user:pw@cdn.test/v.mp4?X-Amz-Signature=sig": ("pw", "https://cdn.test/v.mp4?<redacted>"),
}


def _everything_shown(exc: BaseException) -> str:
    """The message and repr of ``exc`` and of every exception chained to it (cause or context, shown
    or not: whatever a traceback printer or a debugger could reach)."""
    shown, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        shown += [str(current), repr(current), *traceback.format_exception_only(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(shown)


# ------------------------------------------------------------------ a: a JWT echoed in pieces
def test_jwt_payload_and_signature_echoed_apart_are_scrubbed_and_masked(make_conn, monkeypatch) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_provider_cogvideo.hooks.connection._mask", masked.append)
    make_conn(extra={"auth": "jwt", "max_retries": 0})
    hook = CogVideoHook()
    with respx.mock(base_url=BASE_URL) as api:
        route = api.get("/async-result/1").mock(
            return_value=httpx.Response(400, json={"error": {"code": "1214", "message": "placeholder"}})
        )
        with pytest.raises(CogVideoBadRequestError):
            hook.get_task("1")
        token = route.calls.last.request.headers["authorization"].removeprefix("Bearer ")
        header, payload, signature = token.split(".")
        echo = f"claims {payload} do not match signature {signature} (header {header})"
        route.mock(return_value=httpx.Response(400, json={"error": {"code": "1214", "message": echo}}))
        with pytest.raises(CogVideoBadRequestError) as exc:
            hook.get_task("1")
    assert route.calls.last.request.headers["authorization"] == f"Bearer {token}", "the same cached token"
    shown = _everything_shown(exc.value)
    assert payload not in shown and signature not in shown
    assert f"claims *** do not match signature *** (header {header})" in str(exc.value), "the header is public"
    assert {token, payload, signature} <= set(masked)
    assert header not in masked


# ------------------------------------------------------------------ b: a key pasted into an extra
@pytest.mark.parametrize("field", ["tier", "auth"])
@pytest.mark.parametrize("pasted", [API_KEY, SECRET, f"  {API_KEY} "], ids=["key", "secret", "key-with-blanks"])
def test_key_pasted_into_an_extra_is_masked_first_and_never_echoed(monkeypatch, field: str, pasted: str) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_provider_cogvideo.hooks.connection._mask", masked.append)
    with pytest.raises(CogVideoConnectionConfigError, match=f"^extra {field} must be .*got '.*\\*\\*\\*") as exc:
        CogVideoConnectionSettings.from_fields(password=API_KEY, extra={field: pasted})
    assert {API_KEY, SECRET} <= set(masked), "registered with the masker before validation failed"
    assert SECRET not in _everything_shown(exc.value)


@pytest.mark.parametrize("field", ["tier", "auth"])
def test_settings_built_directly_never_echo_the_key_either(field: str) -> None:
    with pytest.raises(CogVideoConnectionConfigError, match=f"^extra {field} must be") as exc:
        CogVideoConnectionSettings(base_url=BASE_URL, api_key=API_KEY, **{field: SECRET})
    assert SECRET not in _everything_shown(exc.value)


def test_key_pasted_into_an_extra_is_not_shown_through_the_hook(make_conn) -> None:
    make_conn(extra={"tier": API_KEY})
    with pytest.raises(CogVideoConnectionConfigError, match="tier must be one of") as exc:
        CogVideoHook().settings  # noqa: B018
    assert SECRET not in _everything_shown(exc.value)


def test_key_as_a_host_scheme_is_not_echoed() -> None:
    with pytest.raises(CogVideoConnectionConfigError, match="host scheme must be http or https") as exc:
        CogVideoConnectionSettings.from_fields(password=API_KEY, host=f"{SECRET}://api.z.ai")
    assert SECRET not in _everything_shown(exc.value)


# ------------------------------------------------------------------ c: credentials in a result URL
@pytest.mark.parametrize(("url", "expected"), [(u, shown) for u, (_, shown) in CREDENTIAL_URLS.items()])
def test_redact_url_drops_credentials_and_query_of_any_scheme(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert has_credentials(url)


@pytest.mark.parametrize(
    "url",
    ["https://cdn.test/v.mp4?X-Amz-Signature=s", "https://cdn.test/a@2x.png", "s3://bucket/key", "data:image/png,x"],
)
def test_urls_without_credentials_are_not_flagged(url: str) -> None:
    assert not has_credentials(url)


def test_redact_url_keeps_no_credentials_when_the_port_does_not_parse() -> None:
    assert redact_url("http://user:pw@host:notaport/v.mp4?sig=1") == "http://host:notaport/v.mp4?<redacted>"


@pytest.mark.parametrize("field", ["video_url", "cover_image_url"])
@pytest.mark.parametrize("url", list(CREDENTIAL_URLS))
def test_transfer_refuses_a_result_url_with_credentials_without_showing_them(field: str, url: str) -> None:
    password, shown = CREDENTIAL_URLS[url]
    result = {"id": "1", "task_status": "SUCCESS", "video_url": "https://cdn.test/v.mp4", "metadata": {}}
    result[field] = url
    op = CogVideoToS3Operator(task_id="upload", result=result, s3_bucket="b", s3_key="videos/{id}.mp4")
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match=f"^{field} must ") as exc:
        op.execute({"ti": ti})
    assert password not in _everything_shown(exc.value)
    assert shown in str(exc.value), "the URL is named, without its credentials"
    assert password not in str(ti.xcom["error"])
    assert "s3_client" not in op.__dict__, "refused before S3 was contacted"


@pytest.mark.parametrize("url", list(CREDENTIAL_URLS))
def test_transfer_refuses_a_plain_url_with_credentials_without_showing_them(url: str) -> None:
    password, _ = CREDENTIAL_URLS[url]
    op = CogVideoToS3Operator(task_id="upload", result=url, s3_bucket="b", s3_key="videos/{url_stem}.mp4")
    with pytest.raises(AirflowFailException) as exc:
        op.execute({"ti": FakeTI()})
    assert password not in _everything_shown(exc.value)


@pytest.mark.parametrize("url", ["ftp://user:pw@host/v.mp4", "s3://AKIA:secret@bucket/key"])
def test_hook_download_refusal_does_not_show_credentials(make_conn, url: str) -> None:
    make_conn()
    password, shown = CREDENTIAL_URLS[url]
    with pytest.raises(CogVideoDownloadError, match="not an http") as exc, CogVideoHook().stream_download(url):
        pass
    assert password not in _everything_shown(exc.value)
    assert shown in str(exc.value)


@pytest.mark.parametrize("field", ["url", "cover_image_url"])
@pytest.mark.parametrize("url", list(CREDENTIAL_URLS))
def test_an_answer_with_a_result_url_with_credentials_is_not_read(make_conn, field: str, url: str) -> None:
    """Refused where the answer is read (``VideoResult``): such a URL never reaches a trigger event,
    the operator's and the sensor's XCom, a log or a manifest, and the refusal does not show it."""
    make_conn(extra={"max_retries": 0})
    password, _ = CREDENTIAL_URLS[url]
    video = {"url": "https://cdn.test/v.mp4", "cover_image_url": "https://cdn.test/c.png", field: url}
    with respx.mock(base_url=BASE_URL) as api:
        api.get("/async-result/7").mock(
            return_value=httpx.Response(200, json={"task_status": "SUCCESS", "video_result": [video]})
        )
        with pytest.raises(CogVideoUnexpectedAnswerError, match=f"video_result.0.{field}' could not be read") as exc:
            CogVideoHook().get_task("7")
    assert password not in _everything_shown(exc.value)


def test_job_result_keeps_the_signed_url_the_transfer_downloads(make_conn) -> None:
    make_conn()
    signed = "https://cdn.test/v.mp4?X-Amz-Signature=sig"
    job = TaskResult(id="7", model="cogvideox-3", task_status="SUCCESS", video_result=[{"url": signed}])
    assert job_result(job, hook=CogVideoHook(), metadata=None, request=None)["video_url"] == signed


def test_lineage_datasets_carry_no_credentials() -> None:
    """OpenLineage names a result or image URL as a dataset: ``s3://`` with credentials included."""
    pytest.importorskip("airflow.providers.openlineage")
    from airflow_provider_cogvideo.lineage import dataset_for

    for url, (password, _) in CREDENTIAL_URLS.items():
        dataset = dataset_for(url)
        assert dataset is None or password not in f"{dataset.namespace} {dataset.name}"
    s3 = dataset_for("s3://AKIA:secret@bucket/key")
    assert (s3.namespace, s3.name) == ("s3://bucket", "key")
