"""A task argument's value, read and checked: unset text, booleans, durations, numbers within bounds.

The operators, the sensor, the transfer and the triggers take their arguments from DAG files, from
rendered templates (always text: ``"{{ params.fps }}"`` renders to ``"30"`` or, unset, to
``"None"``) and from serialized trigger kwargs. They read them here, so that one rule says what
text means "unset" and one wording says what is out of range: a ``CogVideoValidationError`` naming
the field, what is allowed and the value, ``poll_interval: must be a number from 1 to 3600, got 0.5``
(the wording of the connection extras too, :meth:`~airflow_provider_cogvideo.NumberExtra.allowed`).

Bounds are read when a check runs, not frozen at import, so every caller shares one definition.
"""

from __future__ import annotations

import contextlib
import math
from datetime import timedelta
from typing import Any

from airflow_provider_cogvideo.errors import CogVideoValidationError

UNSET_WORDS = frozenset({"none", "null"})
"""Text that means "unset" in any case, surrounding whitespace ignored: what Jinja renders for a
param that is None (``"None"``), and JSON's word for it. Empty text is unset too; whitespace alone
is not (a template that rendered blanks is a mistake to report, not a missing value)."""

POLL_INTERVAL_RANGE = (1.0, 3600.0)
"""A fixed poll interval, in seconds: never a hot loop against a paid API, never less than hourly."""
ERROR_BUDGET_RANGE = (0, 100)
"""Consecutive transient poll errors tolerated: 100 already means hours of backoff."""
TIMEOUT_RANGE = (0.001, 7 * 24 * 3600.0)
"""How long one try may wait for a job, in seconds: a week is far beyond any render."""
BUDGET_RANGE = (0.0, 1e9)
"""``max_total_price``, in the endpoint's currency: anything above a billion is surely a typo."""

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def is_unset(value: Any) -> bool:
    """Whether a templated field's value means "unset": None, empty text, or :data:`UNSET_WORDS`."""
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    word = value.strip().lower()
    return word in UNSET_WORDS if word else value == ""


def rendered_none(value: Any) -> Any:
    """``value``, or None when it means unset (:func:`is_unset`): a rendered template's "no value"."""
    return None if is_unset(value) else value


def as_bool(field_name: str, value: Any) -> bool:
    """A boolean argument that may arrive as text (a rendered template such as ``"{{ params.dry_run }}"``):
    ``true/1/yes/on`` or ``false/0/no/off`` in any case; unset is False, the default of every such field."""
    if isinstance(value, bool):
        return value
    if is_unset(value):
        return False
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise CogVideoValidationError(field_name, f"must be true or false, got {value!r}")


def seconds(value: float | timedelta | None) -> float | None:
    """A duration argument given as seconds or a ``timedelta``, in seconds."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def allowed_range(bounds: tuple[float, float], *, integer: bool = False) -> str:
    """``an integer from 0 to 100``, ``a number from 0.5 to 120``: a range as every message states it."""
    lo, hi = bounds
    return f"{'an integer' if integer else 'a number'} from {_plain(lo)} to {_plain(hi)}"


def _plain(number: float) -> str:
    """``5242880`` rather than ``5.24288e+06``; ``0.5`` stays ``0.5``."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def bounded(field_name: str, value: Any, bounds: tuple[float, float], *, integer: bool = False) -> Any:
    """``value`` if it is a finite number within ``bounds`` (a whole one when ``integer``), else a
    :class:`CogVideoValidationError` naming the field, the allowed range and the value."""
    lo, hi = bounds
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not lo <= value <= hi or (integer and not float(value).is_integer()):
        raise CogVideoValidationError(field_name, f"must be {allowed_range(bounds, integer=integer)}, got {value!r}")
    return int(value) if integer else float(value)


def checked_wait_settings(
    *, poll_interval: float | None, error_budget: int, timeout: float | None = None
) -> tuple[float | None, int, float | None]:
    """The wait settings of the operator, the sensor, the trigger and ``CogVideoHook.generate``."""
    return (
        None if poll_interval is None else bounded("poll_interval", poll_interval, POLL_INTERVAL_RANGE),
        bounded("error_budget", error_budget, ERROR_BUDGET_RANGE, integer=True),
        None if timeout is None else bounded("timeout", timeout, TIMEOUT_RANGE),
    )


def checked_budget(value: Any) -> float | None:
    """``max_total_price`` from a DAG argument or a rendered template (text is read as a number);
    unset means no limit."""
    if is_unset(value):
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # else refused below, as the text it is
            value = float(value)
    return bounded("max_total_price", value, BUDGET_RANGE)


__all__ = [
    "BUDGET_RANGE",
    "ERROR_BUDGET_RANGE",
    "POLL_INTERVAL_RANGE",
    "TIMEOUT_RANGE",
    "UNSET_WORDS",
    "allowed_range",
    "as_bool",
    "bounded",
    "checked_budget",
    "checked_wait_settings",
    "is_unset",
    "rendered_none",
    "seconds",
]
