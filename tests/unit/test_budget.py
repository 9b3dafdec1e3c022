"""The run budget (max_total_price): mapped instances of one task never submit past it, retries included."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator

from .conftest import FakeStateStore

pytestmark = pytest.mark.usefixtures("conn_without_retries")

SUBMITTED = {"model": "cogvideox-3", "request_id": "r-000001", "task_status": "PROCESSING"}


class SiblingTI:
    """A mapped task instance whose XComs live on a board shared with its siblings, as in one run."""

    task_id = "generate"

    def __init__(self, board: dict[tuple[int, str], Any], map_index: int) -> None:
        self.board = board
        self.map_index = map_index
        self.start_date = None

    def xcom_push(self, key: str, value: Any) -> None:
        self.board[(self.map_index, key)] = json.loads(json.dumps(value))

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        assert task_ids == self.task_id
        if map_indexes is not None:
            return self.board.get((map_indexes, key))
        return [value for (_, k), value in sorted(self.board.items()) if k == key]


def submit(board: dict, map_index: int, store: FakeStateStore, **kw: Any) -> None:
    op = CogVideoGenerateOperator(
        task_id="generate", prompt=f"product {map_index}", poll_interval=0.01, deferrable=True, **kw
    )
    with pytest.raises(TaskDeferred):
        op.execute({"ti": SiblingTI(board, map_index), "task_state_store": store})


def test_submits_stop_at_the_budget_before_paying(api) -> None:
    route = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json={**SUBMITTED, "id": str(n)}) for n in range(1, 4)]
    )
    board: dict = {}
    submit(board, 0, FakeStateStore(), max_total_price="2.5")
    submit(board, 1, FakeStateStore(), max_total_price="2.5")
    with pytest.raises(AirflowFailException, match=r"max_total_price=2\.5 would be exceeded: 2 already spent"):
        submit(board, 2, FakeStateStore(), max_total_price="2.5")
    assert route.call_count == 2, "the third product was refused before any request"


def test_resubmits_after_a_failed_job_count_against_the_budget(api) -> None:
    """Retries and resubmits are paid too: the ledger survives the retry through the task_state_store."""
    route = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json={**SUBMITTED, "id": str(n)}) for n in range(1, 4)]
    )
    api.get("/async-result/1").mock(return_value=httpx.Response(200, json={"task_status": "FAIL"}))
    board: dict = {}
    store = FakeStateStore()
    submit(board, 0, store, max_total_price=2)
    submit(board, 0, store, max_total_price=2)  # the retry: job 1 failed, a new (paid) job 2
    with pytest.raises(AirflowFailException, match="would be exceeded: 2 already spent"):
        submit(board, 1, FakeStateStore(), max_total_price=2)
    assert route.call_count == 2


def test_no_budget_means_no_limit(api) -> None:
    route = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json={**SUBMITTED, "id": str(n)}) for n in range(1, 4)]
    )
    board: dict = {}
    for index in range(3):
        submit(board, index, FakeStateStore(), max_total_price="None")
    assert route.call_count == 3
    assert sum(entry["paid"] for (_, key), entry in board.items() if key == "spend") == 3.0, "the actual cost"


@pytest.mark.parametrize(("value", "shown"), [("abc", "'abc'"), (-1, "-1"), ("nan", "nan"), ("   ", "'   '")])
def test_bad_budget_is_refused_naming_the_field(api, value, shown) -> None:
    refusal = rf"max_total_price: must be a number from 0 to 1000000000, got {shown}$"
    with pytest.raises(AirflowFailException, match=refusal):
        submit({}, 0, FakeStateStore(), max_total_price=value)
    assert not api.calls
