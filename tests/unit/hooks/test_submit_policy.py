"""The submit policy on the wire: a submit is resent only when its answer proves no job was created.

Every submit costs money. These scenarios count the POSTs the server saw: an answer that may follow a
created job must cost exactly one POST and raise CogVideoAmbiguousSubmitError naming the request_id.
"""

from __future__ import annotations

import json

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
from airflow_provider_cogvideo.hooks.cogvideo import aclose_clients
from airflow_provider_cogvideo.hooks.submit_policy import SUBMIT_POLICY, refused_for_capacity, resends, submit_answer
from airflow_provider_cogvideo.models import VideoGenerationRequest

from ..conftest import error_answer

REQUEST_ID = "req-policy-1"
CREATED = {"id": "8868902201637896192", "model": "cogvideox-3", "request_id": REQUEST_ID, "task_status": "PROCESSING"}
ATTEMPTS = 4  # the default max_retries=3


@pytest.fixture
def submits(api) -> respx.Route:
    return api.post("/videos/generations")


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
    [
        error_answer(500, "500"),
        error_answer(500),
        error_answer(502),
        error_answer(504),
        error_answer(502, "1234", "network error"),
        error_answer(501, "1200"),
    ],
    ids=["500/500", "500", "502", "504", "502/1234", "501/1200"],
)
def test_5xx_at_submit_is_ambiguous_and_sent_once(hook_for, submits, answer) -> None:
    submits.mock(return_value=answer)
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook_for().submit(request())
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
def test_lost_answer_is_ambiguous_and_sent_once(hook_for, submits, failure) -> None:
    submits.mock(side_effect=failure)
    with pytest.raises(CogVideoAmbiguousSubmitError, match=type(failure).__name__) as exc:
        hook_for().submit(request())
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
def test_2xx_without_a_usable_job_id_is_ambiguous_and_sent_once(hook_for, submits, answer, why) -> None:
    submits.mock(return_value=answer)
    with pytest.raises(CogVideoAmbiguousSubmitError, match=why) as exc:
        hook_for().submit(request())
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
def test_a_2xx_with_wrongly_typed_fields_is_ambiguous_and_sent_once(hook_for, submits, answer) -> None:
    """A 200 that cannot be read as a job may follow a created job: ambiguous (never pydantic's raw
    ValidationError, which Airflow would retry into a second paid submit); ``true`` is no job id."""
    submits.mock(return_value=httpx.Response(200, json=answer))
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook_for().submit(request())
    assert submits.call_count == 1
    assert exc.value.request_id == REQUEST_ID
    assert "could not be read" in str(exc.value)


@pytest.mark.parametrize("answer", WRONGLY_TYPED.values(), ids=WRONGLY_TYPED.keys())
def test_a_query_answer_that_cannot_be_read_spends_the_retries_like_a_5xx(hook_for, api, answer) -> None:
    success = {"task_status": "SUCCESS", "video_result": [{"url": "https://cdn.test/v.mp4"}]}
    route = api.get("/async-result/1").mock(
        side_effect=[httpx.Response(200, json=answer), httpx.Response(200, json=success)]
    )
    assert hook_for().get_task("1").task_status == "SUCCESS", "a query creates nothing: asked again"
    assert route.call_count == 2
    route.mock(return_value=httpx.Response(200, json=answer))
    with pytest.raises(CogVideoUnexpectedAnswerError, match="could not be read") as exc:
        hook_for(max_retries=0).get_task("1")
    assert exc.value.retryable


def test_numeric_job_id_is_accepted(hook_for, submits) -> None:
    submits.mock(return_value=httpx.Response(200, json={**CREATED, "id": 8868902201637896192}))
    assert hook_for().submit(request()).id == "8868902201637896192"


# ------------------------------------------------------------------ refusals that created nothing: resent


@pytest.mark.parametrize(
    "refusal",
    [
        error_answer(429, "1302"),
        error_answer(429, "1303"),
        error_answer(429, "1305"),
        error_answer(503),
        error_answer(503, "500"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
    ],
    ids=["429/1302", "429/1303", "429/1305", "503", "503/500", "ConnectError", "ConnectTimeout"],
)
def test_refusals_that_created_nothing_are_resent_with_the_same_request_id(hook_for, submits, refusal) -> None:
    submits.mock(side_effect=[refusal, httpx.Response(200, json=CREATED)])  # raised or answered, then created
    assert hook_for().submit(request()).id == CREATED["id"]
    assert_resent_identically(submits, 2)


def test_rate_limit_that_does_not_clear_raises_the_rate_limit_error(hook_for, submits) -> None:
    submits.mock(return_value=error_answer(429, "1302"))
    with pytest.raises(CogVideoRateLimitError):
        hook_for().submit(request())
    assert_resent_identically(submits, ATTEMPTS)


def test_503_that_does_not_clear_raises_a_capacity_refusal(hook_for, submits) -> None:
    """A 503 refusal created nothing, so its last failure is not ambiguous: like a 1302, the operator
    waits and submits again (``refused_for_capacity``)."""
    submits.mock(return_value=error_answer(503))
    with pytest.raises(CogVideoServerError) as exc:
        hook_for().submit(request())
    assert exc.value.retryable and not isinstance(exc.value, CogVideoAmbiguousSubmitError)
    assert refused_for_capacity(exc.value)
    assert_resent_identically(submits, ATTEMPTS)


def test_expired_jwt_at_submit_is_resent_with_a_fresh_token(hook_for, submits) -> None:
    submits.mock(side_effect=[error_answer(401, "1003", "expired"), httpx.Response(200, json=CREATED)])
    assert hook_for(auth="jwt").submit(request()).id == CREATED["id"]
    assert_resent_identically(submits, 2)
    tokens = [call.request.headers["authorization"] for call in submits.calls]
    assert tokens[0] != tokens[1]


# ------------------------------------------------------------------ other 4xx: final, sent once


@pytest.mark.parametrize(
    ("answer", "exc"),
    [
        (error_answer(400, "1214"), CogVideoBadRequestError),
        (error_answer(429, "1113"), CogVideoAccountError),
        (error_answer(401, "1003"), CogVideoAPIError),  # auth=api_key: no token to re-sign
        (error_answer(408), CogVideoServerError),
        (error_answer(409), CogVideoServerError),
        (error_answer(404), CogVideoAPIError),
    ],
    ids=["400/1214", "429/1113", "401/1003-api-key", "408", "409", "404"],
)
def test_other_4xx_is_final_and_sent_once(hook_for, submits, answer, exc) -> None:
    submits.mock(return_value=answer)
    with pytest.raises(exc) as raised:
        hook_for().submit(request())
    assert not isinstance(raised.value, CogVideoAmbiguousSubmitError)
    assert submits.call_count == 1


# ------------------------------------------------------------------ opt-in: resend_submit_on_5xx


@pytest.mark.parametrize("status", [500, 502, 504])
def test_opt_in_resends_5xx_with_the_identical_request_id(hook_for, submits, status) -> None:
    submits.mock(side_effect=[error_answer(status), error_answer(status), httpx.Response(200, json=CREATED)])
    assert hook_for(resend_submit_on_5xx=True).submit(request()).id == CREATED["id"]
    assert_resent_identically(submits, 3)


def test_opt_in_still_ends_ambiguous_when_5xx_never_clears(hook_for, submits) -> None:
    """Resends may each have created the job: after the last one, the outcome is still unknown."""
    submits.mock(return_value=error_answer(502))
    with pytest.raises(CogVideoAmbiguousSubmitError) as exc:
        hook_for(resend_submit_on_5xx="true").submit(request())
    assert exc.value.request_id == REQUEST_ID
    assert_resent_identically(submits, ATTEMPTS)


def test_opt_in_does_not_resend_lost_answers(hook_for, submits) -> None:
    submits.mock(side_effect=httpx.ReadTimeout("lost"))
    with pytest.raises(CogVideoAmbiguousSubmitError):
        hook_for(resend_submit_on_5xx=True).submit(request())
    assert submits.call_count == 1


# ------------------------------------------------------------------ async path, polls


@pytest.mark.asyncio
@pytest.mark.parametrize(("opt_in", "posts"), [(False, 1), (True, 2)])
async def test_async_submit_follows_the_same_policy(hook_for, submits, opt_in, posts) -> None:
    submits.mock(side_effect=[error_answer(502), httpx.Response(200, json=CREATED)])
    hook = hook_for(resend_submit_on_5xx=opt_in)
    if opt_in:
        assert (await hook.asubmit(request())).id == CREATED["id"]
    else:
        with pytest.raises(CogVideoAmbiguousSubmitError):
            await hook.asubmit(request())
    assert_resent_identically(submits, posts)
    await aclose_clients()


@pytest.mark.parametrize("status", [500, 502, 504])
def test_polls_keep_retrying_5xx(hook_for, api, status) -> None:
    """A query creates nothing: it keeps today's retries whatever the submit policy says."""
    success = {"task_status": "SUCCESS", "video_result": [{"url": "https://cdn.test/v.mp4"}]}
    route = api.get("/async-result/1").mock(
        side_effect=[error_answer(status), error_answer(status), httpx.Response(200, json=success)]
    )
    assert hook_for().get_task("1").task_status == "SUCCESS"
    assert route.call_count == 3


# ------------------------------------------------------------------ the table itself


EXPECTED_ROWS = [
    (CogVideoTransportError("x", may_have_arrived=False), "not_sent", "resend", False),
    (CogVideoRateLimitError("x", code="1302", http_status=429, retryable=True), "rate_limited", "resend", True),
    (CogVideoServerError("x", http_status=503, retryable=True), "flow_exceeded", "resend", True),
    (CogVideoAPIError("x", code="1003", http_status=401, retryable=True), "token_expired", "resend", False),
    (CogVideoBadRequestError("x", code="1214", http_status=400), "refused", "final", False),
    (CogVideoAccountError("x", code="1304", http_status=429), "refused", "final", False),
    (CogVideoServerError("x", http_status=502, retryable=True), "server_error", "ambiguous", False),
    (CogVideoUnexpectedAnswerError("x", http_status=200), "no_job_id", "ambiguous", False),
    (CogVideoTransportError("x", may_have_arrived=True), "lost_answer", "ambiguous", False),
]
"""A failure of each kind -> (its row, the decision, whether it was turned away for capacity), written
out here: only what proves no job was created is resent; a 5xx, an unreadable 2xx and a lost answer
may follow a created (billed) job."""


@pytest.mark.parametrize(
    ("failure", "answer", "decision", "capacity"),
    EXPECTED_ROWS,
    ids=[f"{answer}-{type(failure).__name__}" for failure, answer, _, _ in EXPECTED_ROWS],
)
def test_each_failure_lands_in_its_row_with_its_decision(failure, answer, decision, capacity) -> None:
    assert submit_answer(failure) == answer
    assert SUBMIT_POLICY[answer].decision == decision
    assert resends(failure, resend_on_5xx=False) is (decision == "resend")
    assert refused_for_capacity(failure) is capacity


def test_every_row_is_reachable_and_a_rate_limit_is_capacity_whatever_its_status() -> None:
    assert sorted(SUBMIT_POLICY) == sorted({answer for _, answer, _, _ in EXPECTED_ROWS})
    assert refused_for_capacity(CogVideoRateLimitError("x", code="1302", http_status=400, retryable=True))
