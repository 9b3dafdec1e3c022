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

EXPECTED_CODES: dict[str, tuple[int, type[CogVideoAPIError], bool]] = {
    "500": (500, CogVideoServerError, True),
    **{str(code): (401, CogVideoAuthError, False) for code in range(1000, 1006)},  # 1003: the hook refreshes a JWT
    **{code: (429, CogVideoAccountError, False) for code in ("1100", "1110", "1111", "1112", "1121")},
    "1113": (429, CogVideoAccountError, False),  # no balance: a 429 that waiting does not cure
    "1120": (429, CogVideoAccountError, True),  # "try later"
    "1200": (500, CogVideoServerError, True),
    **{str(code): (400, CogVideoBadRequestError, False) for code in range(1210, 1216)},
    "1220": (403, CogVideoPermissionError, False),
    "1221": (400, CogVideoPermissionError, False),
    "1222": (400, CogVideoPermissionError, False),
    "1230": (500, CogVideoServerError, True),
    "1231": (400, CogVideoDuplicateRequestError, False),
    "1234": (500, CogVideoServerError, True),
    "1261": (400, CogVideoBadRequestError, False),
    "1300": (400, CogVideoContentPolicyError, False),
    "1301": (400, CogVideoContentPolicyError, False),
    "1302": (429, CogVideoRateLimitError, True),
    "1303": (429, CogVideoRateLimitError, True),
    "1304": (429, CogVideoAccountError, False),  # daily quota: not before tomorrow
    "1305": (429, CogVideoRateLimitError, True),
    **{str(code): (429, CogVideoAccountError, False) for code in range(1308, 1322)},  # caps, plans, quotas
}
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
