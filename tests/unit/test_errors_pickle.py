"""Every exception of the tree crosses a process boundary intact: ``pickle`` keeps its class, message
and fields (Celery and the triggerer move exceptions between processes)."""

from __future__ import annotations

import inspect
import pickle

import pytest

from airflow_provider_cogvideo import errors
from airflow_provider_cogvideo.errors import CogVideoError

# A value per constructor parameter of the tree (named as the classes name them).
SAMPLE_ARGUMENTS = {
    "message": "what went wrong",
    "field_name": "size",
    "code": "1302",
    "http_status": 429,
    "retryable": True,
    "retry_after": 12.5,
    "may_have_arrived": True,
    "request_id": "req-pickle-1",
    "cause": "the answer was lost",
    "job_id": "8868902201637896192",
    "event": {"status": "failed", "reason": "job_failed"},
    "extras": ("images",),
    "needed_for": "CogVideoGenerateOperator",
    "max_bytes": 52428800,
    "received": 52494336,
}


def tree() -> list[type[CogVideoError]]:
    found, todo = [], [CogVideoError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def example(cls: type[CogVideoError]) -> CogVideoError:
    params = inspect.signature(cls.__init__).parameters
    if list(params) == ["self", "args", "kwargs"]:  # Exception's own __init__
        return cls(SAMPLE_ARGUMENTS["message"])
    kwargs = {name: SAMPLE_ARGUMENTS[name] for name in list(params)[1:]}
    return cls(**kwargs)


def test_the_tree_is_every_public_error() -> None:
    public = {name for name in errors.__all__ if name.startswith("CogVideo") and name.endswith("Error")}
    assert {cls.__name__ for cls in tree()} == public
    assert len(public) >= 20


@pytest.mark.parametrize("cls", tree(), ids=lambda cls: cls.__name__)
def test_an_error_survives_pickle_with_its_message_and_fields(cls: type[CogVideoError]) -> None:
    original = example(cls)
    copy = pickle.loads(pickle.dumps(original))
    assert type(copy) is cls
    assert str(copy) == str(original) and copy.args == original.args
    assert vars(copy) == vars(original)
    assert copy.retryable == original.retryable
