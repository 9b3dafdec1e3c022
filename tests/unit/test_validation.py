"""Arguments read and checked in one place: what text means unset, booleans as text, one wording for
a value out of range."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.validation import (
    allowed_range,
    as_bool,
    bounded,
    checked_budget,
    is_unset,
    rendered_none,
    seconds,
)


@pytest.mark.parametrize("value", [None, "", "None", "none", "NONE", "null", "Null", " None ", "\tnull\n"])
def test_unset_values(value) -> None:
    assert is_unset(value) and rendered_none(value) is None


@pytest.mark.parametrize("value", [" ", "   ", "0", "false", "nil", "None of these", 0, False, [], {}, "cogvideox-3"])
def test_values_that_are_not_unset(value) -> None:
    assert not is_unset(value) and rendered_none(value) is value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(True, True), ("true", True), (" YES ", True), ("on", True), ("1", True)],
        *[(False, False), ("off", False), ("No", False), ("0", False), ("false", False)],
        *[(None, False), ("", False), ("None", False), ("null", False)],
    ],
)
def test_booleans_as_text(value, expected) -> None:
    assert as_bool("dry_run", value) is expected


@pytest.mark.parametrize("value", ["maybe", "   ", 1, 0.0, []])
def test_other_values_are_not_booleans(value) -> None:
    with pytest.raises(CogVideoValidationError) as exc:
        as_bool("dry_run", value)
    assert str(exc.value) == f"dry_run: must be true or false, got {value!r}"


@pytest.mark.parametrize(
    ("value", "integer", "message"),
    [
        (0, False, "must be a number from 1 to 3600, got 0"),
        (3600.5, False, "must be a number from 1 to 3600, got 3600.5"),
        (float("nan"), False, "must be a number from 1 to 3600, got nan"),
        (float("inf"), False, "must be a number from 1 to 3600, got inf"),
        ("10", False, "must be a number from 1 to 3600, got '10'"),
        (True, False, "must be a number from 1 to 3600, got True"),
        (2.5, True, "must be an integer from 1 to 3600, got 2.5"),
        (None, True, "must be an integer from 1 to 3600, got None"),
    ],
)
def test_one_wording_for_a_value_out_of_range(value, integer, message) -> None:
    with pytest.raises(CogVideoValidationError) as exc:
        bounded("poll_interval", value, (1, 3600), integer=integer)
    assert str(exc.value) == f"poll_interval: {message}"


def test_values_in_range_come_back_typed() -> None:
    assert bounded("n", 3.0, (1, 10), integer=True) == 3 and isinstance(bounded("n", 3.0, (1, 10), integer=True), int)
    assert bounded("x", 1, (1, 10)) == 1.0 and isinstance(bounded("x", 1, (1, 10)), float)
    assert allowed_range((64 * 1024, 52428800), integer=True) == "an integer from 65536 to 52428800"
    assert allowed_range((0.001, 0.5)) == "a number from 0.001 to 0.5"


def test_durations_in_seconds() -> None:
    assert seconds(timedelta(minutes=2)) == 120.0 and seconds(5) == 5.0 and seconds(None) is None


def test_checked_budget() -> None:
    assert checked_budget(None) is None and checked_budget("") is None and checked_budget(" NULL ") is None
    assert checked_budget("None") is None and checked_budget("none") is None
    assert checked_budget("12.5") == 12.5 and checked_budget(0) == 0.0
