"""The error table: every code maps to one class and one retry decision."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo import errors
from airflow_provider_cogvideo.errors import API_ERROR_CODES, api_error, classify

EXPECTED_RETRYABLE = {"500", "1120", "1200", "1230", "1234", "1302", "1303", "1305"}


@pytest.mark.parametrize("code", sorted(API_ERROR_CODES))
def test_every_code_maps_to_its_class_and_retry_flag(code: str) -> None:
    row = API_ERROR_CODES[code]
    exc = api_error(row.http_status, code, "server text")
    assert type(exc) is row.exception
    assert exc.retryable is (code in EXPECTED_RETRYABLE)
    assert f"code {code}" in str(exc) and f"HTTP {row.http_status}" in str(exc) and "server text" in str(exc)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("1000", errors.CogVideoAuthError),
        ("1113", errors.CogVideoAccountError),
        ("1214", errors.CogVideoBadRequestError),
        ("1261", errors.CogVideoBadRequestError),
        ("1301", errors.CogVideoContentPolicyError),
        ("1302", errors.CogVideoRateLimitError),
        ("1231", errors.CogVideoDuplicateRequestError),
    ],
)
def test_named_categories(code: str, cls: type) -> None:
    assert classify(400, code)[0] is cls


def test_no_balance_is_not_retried_although_429() -> None:
    assert classify(429, "1113") == (errors.CogVideoAccountError, False)


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (401, errors.CogVideoAuthError, False),
        (404, errors.CogVideoNotFoundError, False),
        (429, errors.CogVideoRateLimitError, True),
        (500, errors.CogVideoServerError, True),
        (502, errors.CogVideoServerError, True),
        (503, errors.CogVideoServerError, True),
        (418, errors.CogVideoAPIError, False),
    ],
)
def test_status_fallback_without_code(status: int, cls: type, retryable: bool) -> None:
    assert classify(status, None) == (cls, retryable)
    assert classify(status, "99999") == (cls, retryable)


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
