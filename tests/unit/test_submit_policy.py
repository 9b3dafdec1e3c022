"""The submit policy on the wire: a submit is resent only when its answer proves no job was created.

Every submit costs money. These scenarios count the POSTs the server saw: an answer that may follow a
created job must cost exactly one POST and raise CogVideoAmbiguousSubmitError naming the request_id.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from airflow_provider_cogvideo.errors import (
    CogVideoAccountError,
    CogVideoAmbiguousSubmitError,
    CogVideoAPIError,
    CogVideoBadRequestError,
    CogVideoRateLimitError,
    CogVideoServerError,
    CogVideoTransportError,
    CogVideoUnexpectedAnswerError,
)
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook, aclose_clients
from airflow_provider_cogvideo.hooks.submit_policy import SUBMIT_POLICY, refused_for_capacity, submit_answer
from airflow_provider_cogvideo.models import VideoGenerationRequest

from .conftest import BASE_URL

README = Path(__file__).resolve().parents[2] / "README.md"
REQUEST_ID = "req-policy-1"
CREATED = {"id": "8868902201637896192", "model": "cogvideox-3", "request_id": REQUEST_ID, "task_status": "PROCESSING"}
ATTEMPTS = 4  # the default max_retries=3


def error(status: int, code: str | None = None, message: str = "refused") -> httpx.Response:
    if code is None:
        return httpx.Response(status, text=f"<html>{status}</html>")
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@pytest.fixture
def api():
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as mock:
        yield mock


@pytest.fixture
def submits(api) -> respx.Route:
    return api.post("/videos/generations")


def hook_for(make_conn, **extra) -> CogVideoHook:
    make_conn(extra=extra)
    return CogVideoHook()


def request() -> VideoGenerationRequest:
    return VideoGenerationRequest.build(prompt="a cat surfing", request_id=REQUEST_ID)


def sent_bodies(route: respx.Route) -> list[bytes]:
    return [call.request.content for call in route.calls]


def assert_resent_identically(route: respx.Route, times: int) -> None:
    bodies = sent_bodies(route)
    assert len(bodies) == times
    assert len(set(bodies)) == 1, "every resend is the same body"
    assert json.loads(bodies[0])["request_id"] == REQUEST_ID


# ------------------------------------------------------------------ ambiguous: exactly one POST


@pytest.mark.parametrize(
    "answer",
    [error(500, "500"), error(500), error(502), error(504), error(502, "1234", "network error"), error(501, "1200")],
    ids=["500/500", "500", "502", "504", "502/1234", "501/1200"],
)
def test_5xx_at_submit_is_ambiguous_and_sent_once(make_conn, submits, answer) -> None:
    submits.mock(return_value=answer)
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook_for(make_conn).submit(request())
    assert submits.call_count == 1
    assert exc.value.request_id == REQUEST_ID
    assert not exc.value.retryable
    message = str(exc.value)
    assert f"request_id={REQUEST_ID!r}" in message and "console" in message
    assert f"HTTP {answer.status_code}" in message, "the message says what the server answered"
    assert isinstance(exc.value.__cause__, CogVideoServerError)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("lost"),
        httpx.WriteTimeout("half sent"),
        httpx.RemoteProtocolError("dropped"),
        httpx.ReadError("reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_lost_answer_is_ambiguous_and_sent_once(make_conn, submits, failure) -> None:
    submits.mock(side_effect=failure)
    with pytest.raises(CogVideoAmbiguousSubmitError, match=type(failure).__name__) as exc:
        hook_for(make_conn).submit(request())
    assert submits.call_count == 1
    assert exc.value.request_id == REQUEST_ID


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (httpx.Response(200, text="<html>ok</html>"), "non-JSON"),
        (httpx.Response(200, json={"task_status": "PROCESSING"}), "no job id"),
        (httpx.Response(200, json={**CREATED, "id": ""}), "no job id"),
        (httpx.Response(200, json={**CREATED, "id": "."}), "job_id"),
        (httpx.Response(200, json={**CREATED, "id": ".."}), "job_id"),
        (httpx.Response(200, json={**CREATED, "id": "../../v4/videos/generations"}), "job_id"),
        (httpx.Response(200, json={**CREATED, "id": "88 68\r\nX-Injected: 1"}), "job_id"),
        (httpx.Response(200, json={**CREATED, "id": "9" * 129}), "job_id"),
    ],
    ids=["html", "no-id", "empty-id", "dot", "dotdot", "traversal", "crlf", "too-long"],
)
def test_2xx_without_a_usable_job_id_is_ambiguous_and_sent_once(make_conn, submits, answer, why) -> None:
    submits.mock(return_value=answer)
    with pytest.raises(CogVideoAmbiguousSubmitError, match=why) as exc:
        hook_for(make_conn).submit(request())
    assert submits.call_count == 1
    assert exc.value.request_id == REQUEST_ID
    assert "\r" not in str(exc.value) and "\n" not in str(exc.value)


WRONGLY_TYPED = {
    "float-id": {**CREATED, "id": 1.5},
    "object-id": {**CREATED, "id": {"value": "8868902201637896192"}},
    "list-id": {**CREATED, "id": ["8868902201637896192"]},
    "bool-id": {**CREATED, "id": True},
    "null-status": {**CREATED, "task_status": None},
    "string-video-result": {**CREATED, "video_result": "x"},
    "number-request-id": {**CREATED, "request_id": 1.25},
}


@pytest.mark.parametrize("answer", WRONGLY_TYPED.values(), ids=WRONGLY_TYPED.keys())
def test_a_2xx_with_wrongly_typed_fields_is_ambiguous_and_sent_once(make_conn, submits, answer) -> None:
    """A 200 that cannot be read as a job may follow a created job: ambiguous (never pydantic's raw
    ValidationError, which Airflow would retry into a second paid submit); ``true`` is no job id."""
    submits.mock(return_value=httpx.Response(200, json=answer))
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook_for(make_conn).submit(request())
    assert submits.call_count == 1
    assert exc.value.request_id == REQUEST_ID
    assert "could not be read" in str(exc.value)


@pytest.mark.parametrize("answer", WRONGLY_TYPED.values(), ids=WRONGLY_TYPED.keys())
def test_a_query_answer_that_cannot_be_read_spends_the_retries_like_a_5xx(make_conn, api, answer) -> None:
    success = {"task_status": "SUCCESS", "video_result": [{"url": "https://cdn.test/v.mp4"}]}
    route = api.get("/async-result/1").mock(
        side_effect=[httpx.Response(200, json=answer), httpx.Response(200, json=success)]
    )
    assert hook_for(make_conn).get_task("1").task_status == "SUCCESS", "a query creates nothing: asked again"
    assert route.call_count == 2
    route.mock(return_value=httpx.Response(200, json=answer))
    with pytest.raises(CogVideoUnexpectedAnswerError, match="could not be read") as exc:
        hook_for(make_conn, max_retries=0).get_task("1")
    assert exc.value.retryable


def test_numeric_job_id_is_accepted(make_conn, submits) -> None:
    submits.mock(return_value=httpx.Response(200, json={**CREATED, "id": 8868902201637896192}))
    assert hook_for(make_conn).submit(request()).id == "8868902201637896192"


# ------------------------------------------------------------------ refusals that created nothing: resent


@pytest.mark.parametrize(
    "refusal",
    [
        error(429, "1302"),
        error(429, "1303"),
        error(429, "1305"),
        error(503),
        error(503, "500"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
    ],
    ids=["429/1302", "429/1303", "429/1305", "503", "503/500", "ConnectError", "ConnectTimeout"],
)
def test_refusals_that_created_nothing_are_resent_with_the_same_request_id(make_conn, submits, refusal) -> None:
    submits.mock(side_effect=[refusal, httpx.Response(200, json=CREATED)])  # raised or answered, then created
    assert hook_for(make_conn).submit(request()).id == CREATED["id"]
    assert_resent_identically(submits, 2)


def test_rate_limit_that_does_not_clear_raises_the_rate_limit_error(make_conn, submits) -> None:
    submits.mock(return_value=error(429, "1302"))
    with pytest.raises(CogVideoRateLimitError):
        hook_for(make_conn).submit(request())
    assert_resent_identically(submits, ATTEMPTS)


def test_503_that_does_not_clear_raises_a_capacity_refusal(make_conn, submits) -> None:
    """A 503 refusal created nothing, so its last failure is not ambiguous: like a 1302, the operator
    waits and submits again (``refused_for_capacity``)."""
    submits.mock(return_value=error(503))
    with pytest.raises(CogVideoServerError) as exc:
        hook_for(make_conn).submit(request())
    assert exc.value.retryable and not isinstance(exc.value, CogVideoAmbiguousSubmitError)
    assert refused_for_capacity(exc.value)
    assert_resent_identically(submits, ATTEMPTS)


def test_expired_jwt_at_submit_is_resent_with_a_fresh_token(make_conn, submits) -> None:
    submits.mock(side_effect=[error(401, "1003", "expired"), httpx.Response(200, json=CREATED)])
    assert hook_for(make_conn, auth="jwt").submit(request()).id == CREATED["id"]
    assert_resent_identically(submits, 2)
    tokens = [call.request.headers["authorization"] for call in submits.calls]
    assert tokens[0] != tokens[1]


# ------------------------------------------------------------------ other 4xx: final, sent once


@pytest.mark.parametrize(
    ("answer", "exc"),
    [
        (error(400, "1214"), CogVideoBadRequestError),
        (error(429, "1113"), CogVideoAccountError),
        (error(401, "1003"), CogVideoAPIError),  # auth=api_key: no token to re-sign
        (error(408), CogVideoServerError),
        (error(409), CogVideoServerError),
        (error(404), CogVideoAPIError),
    ],
    ids=["400/1214", "429/1113", "401/1003-api-key", "408", "409", "404"],
)
def test_other_4xx_is_final_and_sent_once(make_conn, submits, answer, exc) -> None:
    submits.mock(return_value=answer)
    with pytest.raises(exc) as raised:
        hook_for(make_conn).submit(request())
    assert not isinstance(raised.value, CogVideoAmbiguousSubmitError)
    assert submits.call_count == 1


# ------------------------------------------------------------------ opt-in: resend_submit_on_5xx


@pytest.mark.parametrize("status", [500, 502, 504])
def test_opt_in_resends_5xx_with_the_identical_request_id(make_conn, submits, status) -> None:
    submits.mock(side_effect=[error(status), error(status), httpx.Response(200, json=CREATED)])
    assert hook_for(make_conn, resend_submit_on_5xx=True).submit(request()).id == CREATED["id"]
    assert_resent_identically(submits, 3)


def test_opt_in_still_ends_ambiguous_when_5xx_never_clears(make_conn, submits) -> None:
    """Resends may each have created the job: after the last one, the outcome is still unknown."""
    submits.mock(return_value=error(502))
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook_for(make_conn, resend_submit_on_5xx="true").submit(request())
    assert exc.value.request_id == REQUEST_ID
    assert_resent_identically(submits, ATTEMPTS)


def test_opt_in_does_not_resend_lost_answers(make_conn, submits) -> None:
    submits.mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(CogVideoAmbiguousSubmitError):
        hook_for(make_conn, resend_submit_on_5xx=True).submit(request())
    assert submits.call_count == 1


# ------------------------------------------------------------------ async path, polls


@pytest.mark.asyncio
@pytest.mark.parametrize(("opt_in", "posts"), [(False, 1), (True, 2)])
async def test_async_submit_follows_the_same_policy(make_conn, submits, opt_in, posts) -> None:
    submits.mock(side_effect=[error(502), httpx.Response(200, json=CREATED)])
    hook = hook_for(make_conn, resend_submit_on_5xx=opt_in)
    if opt_in:
        assert (await hook.asubmit(request())).id == CREATED["id"]
    else:
        with pytest.raises(CogVideoAmbiguousSubmitError):
            await hook.asubmit(request())
    assert_resent_identically(submits, posts)
    await aclose_clients()


@pytest.mark.parametrize("status", [500, 502, 504])
def test_polls_keep_retrying_5xx(make_conn, api, status) -> None:
    """A query creates nothing: it keeps today's retries whatever the submit policy says."""
    success = {"task_status": "SUCCESS", "video_result": [{"url": "https://cdn.test/v.mp4"}]}
    route = api.get("/async-result/1").mock(
        side_effect=[error(status), error(status), httpx.Response(200, json=success)]
    )
    assert hook_for(make_conn).get_task("1").task_status == "SUCCESS"
    assert route.call_count == 3


# ------------------------------------------------------------------ the table itself


def test_every_failure_lands_in_a_row_and_every_row_is_reachable() -> None:
    failures = [
        CogVideoTransportError("x", may_have_arrived=False),
        CogVideoRateLimitError("x", code="1302", http_status=429, retryable=True),
        CogVideoServerError("x", http_status=503, retryable=True),
        CogVideoAPIError("x", code="1003", http_status=401, retryable=True),
        CogVideoBadRequestError("x", code="1214", http_status=400),
        CogVideoServerError("x", http_status=502, retryable=True),
        CogVideoUnexpectedAnswerError("x", http_status=200),
        CogVideoTransportError("x", may_have_arrived=True),
    ]
    assert [submit_answer(f) for f in failures] == list(SUBMIT_POLICY)
    capacity = {"rate_limited", "flow_exceeded"}  # turned away, nothing created: the operator waits
    assert [refused_for_capacity(f) for f in failures] == [answer in capacity for answer in SUBMIT_POLICY]
    assert refused_for_capacity(CogVideoRateLimitError("x", code="1302", http_status=400, retryable=True))
    assert not refused_for_capacity(CogVideoAccountError("x", code="1304", http_status=429))
    assert {rule.decision for rule in SUBMIT_POLICY.values()} == {"resend", "final", "ambiguous"}


def test_readme_shows_the_policy_table() -> None:
    from airflow_provider_cogvideo.docs import submit_policy_markdown

    section = README.read_text().split("<!-- submit-policy:start -->\n", 1)[1].split("\n<!-- submit-policy:end -->")[0]
    assert section == submit_policy_markdown()
