"""A failing task step: its reason left in XCom for the run's manifest, and whether Airflow retries it.

Used by the generate operator and the transfer around each step, so that a pipeline can list a
product with its error while the other products carry on, and so that an error no retry can cure
fails the task at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_cogvideo.errors import (
    CogVideoAmbiguousSubmitError,
    CogVideoConnectionConfigError,
    CogVideoDownloadError,
    CogVideoMissingExtraError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.xcom import XCOM_ERROR

if TYPE_CHECKING:
    from airflow.sdk import Context

NEVER_SUCCEEDS = (CogVideoConnectionConfigError, CogVideoValidationError, CogVideoMissingExtraError)
"""Errors that trying again cannot cure: an unusable connection, an invalid value, a missing extra.
Found at run time they fail the task at once, without Airflow's retries (each retry would fail the
same way, and a user who set ``retries=2`` would wait through all of them)."""


def never_succeeds(exc: BaseException) -> bool:
    """Whether no retry can cure ``exc``: :data:`NEVER_SUCCEEDS`, or a download the hook refused for
    good (an address or scheme it will not reach, an encoding not asked for, a body too large or too
    slow); a dropped or short stream stays retryable."""
    return isinstance(exc, NEVER_SUCCEEDS) or (isinstance(exc, CogVideoDownloadError) and not exc.retryable)


SUBJECT_FIELDS = ("product_id", "variant")
"""What a failure record names of the product it is about: a run's manifest reads every mapped
instance's record in one call, which returns the values without their map indexes."""


def failure_record(exc: BaseException, about: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a manifest needs to know about a failure: the message, the type, the product it is about
    (:data:`SUBJECT_FIELDS` of ``about``, a task's product metadata), and for a submit whose outcome
    is unknown (it may have created a paid job) ``status: "ambiguous"`` with its ``request_id``.

    Operators translate provider errors into Airflow's (``raise AirflowFailException(...) from None``);
    the original stays reachable as ``__context__``, which is where an ambiguous submit is recognised."""
    record: dict[str, Any] = {"error": str(exc), "type": type(exc).__name__}
    if isinstance(about, Mapping):
        record.update({name: str(about[name]) for name in SUBJECT_FIELDS if about.get(name) is not None})
    origin = exc if isinstance(exc, CogVideoAmbiguousSubmitError) else exc.__context__
    if isinstance(origin, CogVideoAmbiguousSubmitError):
        record.update(status="ambiguous", request_id=origin.request_id)
    return record


@contextlib.contextmanager
def failure_recorded(context: Context, about: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Leave a failing step's reason (:func:`failure_record`, naming the product in ``about``) in XCom
    ``error`` before it propagates; an error that
    :func:`never_succeeds` propagates as ``AirflowFailException`` (no retry).
    (``TaskDeferred`` is not an ``Exception``: deferring is not recorded.)"""
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

    try:
        yield
    except AirflowSkipException:
        raise  # skipping (a dry run's upload) is not a failure
    except Exception as exc:
        context["ti"].xcom_push(key=XCOM_ERROR, value=failure_record(exc, about))
        if never_succeeds(exc):
            raise AirflowFailException(f"{exc} (not retried: trying again cannot change this)") from exc
        raise


__all__ = ["NEVER_SUCCEEDS", "SUBJECT_FIELDS", "failure_record", "failure_recorded", "never_succeeds"]
