"""The error table: every documented code maps to one HTTP status, one class and one retry decision.

The expectations are written out here from the API documentation (shared/spec/cogvideox-api.md §5.2,
§5.3, §6), not read back from ``API_ERROR_CODES``: a wrong row there fails below.
"""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo import errors
from airflow_provider_cogvideo.errors import (
    API_ERROR_CODES,
    HTTP_STATUS_FALLBACK,
    CogVideoAccountError,
    CogVideoAPIError,
    CogVideoAuthError,
    CogVideoBadRequestError,
    CogVideoContentPolicyError,
    CogVideoDuplicateRequestError,
    CogVideoNotFoundError,
    CogVideoPermissionError,
    CogVideoRateLimitError,
    CogVideoServerError,
    CogVideoUnexpectedAnswerError,
    api_error,
    classify,
)

QUOTA_CODES = [str(code) for code in range(1308, 1322)]
"""Usage caps, an expired plan, Coding-Plan and enterprise quotas: not before the next reset."""

_OUTCOMES: list[tuple[tuple[int, type[CogVideoAPIError], bool], list[str]]] = [
    ((500, CogVideoServerError, True), ["500", "1200", "1230", "1234"]),
    ((401, CogVideoAuthError, False), ["1000", "1001", "1002", "1003", "1004", "1005"]),  # 1003: the hook re-signs
    # 1113 (no balance) is a 429 that waiting does not cure; 1304 (daily quota) not before tomorrow.
    ((429, CogVideoAccountError, False), ["1100", "1110", "1111", "1112", "1113", "1121", "1304", *QUOTA_CODES]),
    ((429, CogVideoAccountError, True), ["1120"]),  # "cannot access the account now, try later"
    ((400, CogVideoBadRequestError, False), ["1210", "1211", "1212", "1213", "1214", "1215", "1261"]),
    ((403, CogVideoPermissionError, False), ["1220"]),
    ((400, CogVideoPermissionError, False), ["1221", "1222"]),
    ((400, CogVideoDuplicateRequestError, False), ["1231"]),
    ((400, CogVideoContentPolicyError, False), ["1300", "1301"]),
    ((429, CogVideoRateLimitError, True), ["1302", "1303", "1305"]),
]
EXPECTED_CODES = {code: outcome for outcome, codes in _OUTCOMES for code in codes}
"""Business code -> (HTTP status the API answers with, class, retryable). The spec leaves the status of
1100-1112, 1120, 1121, 1231 and 1300 open ("?"): 429 for the account codes, 400 for the others."""

EXPECTED_FALLBACK: dict[int, tuple[type[CogVideoAPIError], bool]] = {
    400: (CogVideoBadRequestError, False),
    401: (CogVideoAuthError, False),
    403: (CogVideoPermissionError, False),
    404: (CogVideoNotFoundError, False),
    408: (CogVideoServerError, True),  # the SDKs retry 408, 409, 429 and every 5xx (§6)
    409: (CogVideoServerError, True),
    418: (CogVideoAPIError, False),  # any other status: a plain API error, not retried
    429: (CogVideoRateLimitError, True),
    434: (CogVideoPermissionError, False),  # no API permission (beta APIs)
    435: (CogVideoBadRequestError, False),  # file over 100 MB
    500: (CogVideoServerError, True),
    502: (CogVideoServerError, True),
    503: (CogVideoServerError, True),
    504: (CogVideoServerError, True),
}
"""HTTP status -> (class, retryable) when the body carries no known business code."""


def test_the_table_has_every_documented_code_and_no_other() -> None:
    assert sorted(API_ERROR_CODES, key=int) == sorted(EXPECTED_CODES, key=int)


@pytest.mark.parametrize("code", list(EXPECTED_CODES))
def test_every_code_maps_to_its_status_class_and_retry_flag(code: str) -> None:
    status, cls, retryable = EXPECTED_CODES[code]
    assert API_ERROR_CODES[code].http_status == status  # what the emulator answers with
    exc = api_error(status, code, "server text")
    assert (type(exc), exc.retryable) == (cls, retryable)
    assert f"code {code}" in str(exc) and f"HTTP {status}" in str(exc) and "server text" in str(exc)
    assert classify(418, code) == (cls, retryable), "the code decides, whatever the status"


@pytest.mark.parametrize("status", list(EXPECTED_FALLBACK))
def test_status_fallback_without_a_known_code(status: int) -> None:
    assert classify(status, None) == EXPECTED_FALLBACK[status]
    assert classify(status, "99999") == EXPECTED_FALLBACK[status]


def test_the_fallback_table_has_no_status_unaccounted_for() -> None:
    assert set(HTTP_STATUS_FALLBACK) <= set(EXPECTED_FALLBACK)


@pytest.mark.parametrize("status", [200, 201, 299])
def test_an_unreadable_2xx_is_an_unexpected_answer_retried(status: int) -> None:
    assert classify(status, "1214") == (CogVideoUnexpectedAnswerError, True)


def test_hierarchy_is_catchable_from_one_base() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.CogVideoError)
    assert issubclass(errors.CogVideoValidationError, ValueError)
    assert errors.CogVideoTransportError.retryable is True


def test_table_renders_for_docs() -> None:
    from airflow_provider_cogvideo.docs import error_table_markdown

    assert "| 1302 | 429 | `CogVideoRateLimitError` | yes |" in error_table_markdown()
