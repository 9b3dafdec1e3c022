"""The run budget (max_total_price): mapped instances of one task never submit past it, retries included."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_cogvideo import budget
from airflow_provider_cogvideo.budget import SPENT_KEY, SpendLedger, SpendPlan, checked_spend_plan
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


def submit_as(ti: SiblingTI, store: FakeStateStore, **kw: Any) -> None:
    op = CogVideoGenerateOperator(
        task_id="generate", prompt=f"product {ti.map_index}", poll_interval=0.01, deferrable=True, **kw
    )
    with pytest.raises(TaskDeferred):
        op.execute({"ti": ti, "task_state_store": store})


def submit(board: dict, map_index: int, store: FakeStateStore, **kw: Any) -> None:
    submit_as(SiblingTI(board, map_index), store, **kw)


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


# ---------------------------------------------------------------- with a spend plan (the run plan's share)


class CountingTI(SiblingTI):
    """A sibling that counts its reads of the run's spend entries (the O(N^2) the plan removes)."""

    def __init__(self, board: dict[tuple[int, str], Any], map_index: int) -> None:
        super().__init__(board, map_index)
        self.spend_reads = 0

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        if key == "spend" and map_indexes is None:
            self.spend_reads += 1
        return super().xcom_pull(task_ids=task_ids, key=key, map_indexes=map_indexes)


def paid_store(amount: float) -> FakeStateStore:
    store = FakeStateStore()
    store.set(SPENT_KEY, amount)
    return store


def entry(map_index: int, *, paid: float, share: float | None, reserved: float = 0.0, at: float = 1.0) -> dict:
    value = {"paid": paid, "reserved": reserved, "at": at, "map_index": map_index}
    return value if share is None else {**value, "share": share}


def test_a_submit_within_its_share_reads_no_sibling_entry() -> None:
    # The siblings' entries would refuse this submit if they were read: they are not, since the
    # plan's estimate already counts this product's share.
    board: dict = {(n, "spend"): entry(n, paid=9.0, share=None) for n in range(3)}
    ti = CountingTI(board, 3)
    ledger = SpendLedger(ti, FakeStateStore(), budget=4.0, plan=SpendPlan(run_estimate=4.0, share=1.0))
    assert ledger.reserve(1.0) is None
    ledger.confirm(1.0)
    assert ti.spend_reads == 0
    assert board[(3, "spend")] == {
        "paid": 1.0,
        "reserved": 0.0,
        "at": board[(3, "spend")]["at"],
        "map_index": 3,
        "task_id": "generate",
        "share": 1.0,
    }


def test_a_submit_beyond_its_share_reads_once_and_is_refused_over_the_slack() -> None:
    board: dict = {(1, "spend"): entry(1, paid=1.0, share=1.0), (2, "spend"): entry(2, paid=0.0, share=1.0)}
    ti = CountingTI(board, 0)
    ledger = SpendLedger(ti, paid_store(1.0), budget=3.5, plan=SpendPlan(run_estimate=3.0, share=1.0))
    reason = ledger.reserve(1.0)  # a resubmit: its share is paid already; the slack is 0.5
    assert reason is not None and "max_total_price=3.5 would be exceeded: 3 already spent or reserved" in reason
    assert "1 of it beyond this product's share of 1" in reason
    assert ti.spend_reads == 1
    assert board[(0, "spend")]["reserved"] == 0.0, "the refused reservation is withdrawn"


@pytest.mark.parametrize(
    ("sibling", "budget", "fits"),
    [
        (entry(1, paid=1.0, share=1.0), 4.0, True),  # the slack of 1 is free
        (entry(1, paid=2.0, share=1.0), 4.0, False),  # a sibling's resubmit took it
        (entry(1, paid=1.0, share=1.0, reserved=1.0, at=0.5), 4.0, False),  # reserved before ours
        (entry(1, paid=1.0, share=1.0, reserved=1.0, at=9e12), 4.0, True),  # reserved after ours: it yields
        (entry(1, paid=2.0, share=None), 5.0, False),  # no share: all of it is extra (3 + 2 + 1 > 5)
        (entry(1, paid=2.0, share=1.0), 5.0, True),  # 3 + 1 + 1
    ],
)
def test_the_slack_counts_every_siblings_spend_beyond_its_share(sibling: dict, budget: float, fits: bool) -> None:
    ti = CountingTI({(1, "spend"): sibling}, 0)
    ledger = SpendLedger(ti, paid_store(1.0), budget=budget, plan=SpendPlan(run_estimate=3.0, share=1.0))
    assert (ledger.reserve(1.0) is None) is fits
    assert ti.spend_reads == 1


def test_a_confirmed_extra_submit_is_published_as_paid_beyond_the_share() -> None:
    board: dict = {}
    first = SpendLedger(CountingTI(board, 0), paid_store(1.0), budget=5.0, plan=SpendPlan(3.0, 1.0))
    assert first.reserve(1.0) is None
    assert board[(0, "spend")]["reserved"] == 1.0, "published before the siblings are read"
    first.confirm(1.0)
    assert board[(0, "spend")] | {"at": 0} == {
        "paid": 2.0,
        "reserved": 0.0,
        "at": 0,
        "map_index": 0,
        "task_id": "generate",
        "share": 1.0,
    }
    second = SpendLedger(CountingTI(board, 1), paid_store(1.0), budget=5.0, plan=SpendPlan(3.0, 1.0))
    assert second.reserve(1.0) is None, "3 + 1 (the first's extra) + 1 = 5"
    second.release()
    assert board[(1, "spend")]["reserved"] == 0.0
    third = SpendLedger(CountingTI(board, 2), paid_store(1.0), budget=4.5, plan=SpendPlan(3.0, 1.0))
    assert third.reserve(1.0) is not None, "3 + 1 + 1 > 4.5"


class RacingTI(CountingTI):
    """Both instances publish their reservation before either reads: a true race for the slack."""

    def __init__(self, board: dict, map_index: int, barrier: threading.Barrier) -> None:
        super().__init__(board, map_index)
        self.barrier = barrier

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        self.barrier.wait(timeout=10)
        return super().xcom_pull(task_ids=task_ids, key=key, map_indexes=map_indexes)


@pytest.mark.parametrize(("clock", "winner"), [({0: 5.0, 1: 5.0}, 0), ({0: 6.0, 1: 5.0}, 1), ({0: 5.0, 1: 6.0}, 0)])
def test_two_instances_racing_for_the_slack_agree_on_who_gets_it(monkeypatch, clock: dict, winner: int) -> None:
    now = threading.local()
    monkeypatch.setattr(budget, "time", SimpleNamespace(time=lambda: now.value))
    board: dict = {}
    barrier = threading.Barrier(2)
    outcome: dict[int, str | None] = {}

    def race(map_index: int) -> None:
        now.value = clock[map_index]
        ledger = SpendLedger(RacingTI(board, map_index, barrier), paid_store(1.0), 4.0, SpendPlan(3.0, 1.0))
        outcome[map_index] = ledger.reserve(1.0)  # a slack of 1: room for one resubmit

    threads = [threading.Thread(target=race, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert outcome[winner] is None
    assert outcome[1 - winner] is not None and "would be exceeded: 4 already spent or reserved" in outcome[1 - winner]


def test_an_estimate_over_the_budget_refuses_even_a_submit_within_its_share() -> None:
    ti = CountingTI({}, 0)
    reason = SpendLedger(ti, FakeStateStore(), budget=2.0, plan=SpendPlan(3.0, 1.0)).reserve(1.0)
    assert reason == "the run plan's estimate 3 is over max_total_price=2"
    assert ti.spend_reads == 0


def test_without_a_budget_a_plan_reads_nothing() -> None:
    ti = CountingTI({}, 0)
    ledger = SpendLedger(ti, paid_store(5.0), budget=None, plan=SpendPlan(3.0, 1.0))
    assert ledger.reserve(1.0) is None
    assert ti.spend_reads == 0


def test_without_a_plan_every_submit_reads_every_sibling_as_before() -> None:
    board: dict = {
        (1, "spend"): entry(1, paid=1.0, share=None),
        (2, "spend"): entry(2, paid=0.0, share=None, reserved=1.0, at=0.5),
    }
    ti = CountingTI(board, 0)
    ledger = SpendLedger(ti, FakeStateStore(), budget=3.0)
    assert ledger.reserve(1.0) is None, "1 paid + 1 reserved before + 1 = 3"
    ledger.confirm(1.0)
    assert "share" not in board[(0, "spend")]
    assert ledger.reserve(1.0) == (
        "the run's budget max_total_price=3 would be exceeded: 3 already spent or reserved by this run's "
        "submits, and this job costs 1"
    )
    assert ti.spend_reads == 2, "one read per submit"


def test_mapped_products_with_a_spend_plan_submit_without_reading_each_other(api) -> None:
    route = api.post("/videos/generations").mock(
        side_effect=[httpx.Response(200, json={**SUBMITTED, "id": str(n)}) for n in range(1, 5)]
    )
    api.get("/async-result/1").mock(return_value=httpx.Response(200, json={"task_status": "FAIL"}))
    board: dict = {}
    plan = {"run_estimate": 3.0, "share": 1.0}
    stores = [FakeStateStore() for _ in range(3)]
    tis = [CountingTI(board, n) for n in range(3)]
    for n in range(3):
        submit_as(tis[n], stores[n], max_total_price="3.5", spend_plan=plan)
    assert route.call_count == 3
    assert [ti.spend_reads for ti in tis] == [0, 0, 0]
    assert sum(e["paid"] for (_, key), e in board.items() if key == "spend") == 3.0, "each one's paid published"
    # The retry of product 0 (its job 1 failed) pays again: beyond its share, over the slack of 0.5.
    with pytest.raises(AirflowFailException, match=r"max_total_price=3\.5 would be exceeded: 3 already spent"):
        submit_as(tis[0], stores[0], max_total_price="3.5", spend_plan=plan)
    assert route.call_count == 3
    assert tis[0].spend_reads == 1


@pytest.mark.parametrize(
    ("plan", "refusal"),
    [
        ("abc", r"spend_plan: must be a dict of run_estimate and share, got str$"),
        ({"run_estimate": 1.0}, r"spend_plan: must be a dict of run_estimate and share, got \['run_estimate'\]$"),
        ({"run_estimate": 1, "share": 1, "x": 1}, r"got \['run_estimate', 'share', 'x'\]$"),
        ({"run_estimate": -1, "share": 0}, r"spend_plan\.run_estimate: must be a number from 0 to 1000000000, got -1$"),
        ({"run_estimate": 1, "share": "1"}, r"spend_plan\.share: must be a number from 0 to 1000000000, got '1'$"),
        ({"run_estimate": 1, "share": float("nan")}, r"spend_plan\.share: must be a number .*, got nan$"),
        ({"run_estimate": 2e9, "share": 0}, r"spend_plan\.run_estimate: must be .*, got 2000000000\.0$"),
        ({"run_estimate": 1, "share": 2}, r"spend_plan\.share: must be at most run_estimate \(1\), got 2$"),
    ],
)
def test_bad_spend_plan_is_refused_naming_the_field(api, plan: Any, refusal: str) -> None:
    with pytest.raises(AirflowFailException, match=refusal):
        submit({}, 0, FakeStateStore(), max_total_price=5, spend_plan=plan)
    assert not api.calls


@pytest.mark.parametrize("unset", [None, "None", ""])
def test_an_unset_spend_plan_is_no_plan(unset: Any) -> None:
    assert checked_spend_plan(unset) is None
    assert checked_spend_plan({"run_estimate": 2, "share": 1}) == SpendPlan(run_estimate=2.0, share=1.0)


# ---------------------------------------------------------------- peers: one budget over several tasks


class PeerTI:
    """A mapped instance of one of several tasks that share a budget (a review run's regenerations,
    one task per round): every task's spend entries on one board, pulled per task id as the task SDK
    answers ``xcom_pull`` without ``map_indexes`` (every instance's value, in map-index order)."""

    def __init__(self, board: dict[tuple[str, int, str], Any], task_id: str, map_index: int) -> None:
        self.board = board
        self.task_id = task_id
        self.map_index = map_index
        self.pulled: list[str] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.board[(self.task_id, self.map_index, key)] = json.loads(json.dumps(value))

    def xcom_pull(self, *, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        assert map_indexes is None, "the ledger reads every instance of a task"
        self.pulled.append(task_ids)
        return [v for (t, _, k), v in sorted(self.board.items()) if t == task_ids and k == key]


ROUNDS = ["video.regenerate_1", "video.regenerate_2"]


def spent(task_id: str, map_index: int, paid: float, *, tagged: bool = True) -> dict[str, Any]:
    value = {"paid": paid, "reserved": 0.0, "at": 1.0, "map_index": map_index}
    return {**value, "task_id": task_id} if tagged else value


def peer_board() -> dict[tuple[str, int, str], Any]:
    """Round 1 regenerated products 0 and 1; round 2 regenerated product 1, and product 0's first try
    of round 2 paid 5 (its own entry: counted by the ledger from its own store, never as a sibling)."""
    return {
        ("video.regenerate_1", 0, "spend"): spent("video.regenerate_1", 0, 1.0),
        ("video.regenerate_1", 1, "spend"): spent("video.regenerate_1", 1, 2.0),
        ("video.regenerate_2", 1, "spend"): spent("video.regenerate_2", 1, 4.0),
        ("video.regenerate_2", 0, "spend"): spent("video.regenerate_2", 0, 5.0),
    }


def test_peers_see_every_rounds_spend_the_same_product_of_another_round_included() -> None:
    """regenerate_2 of product 0 shares map index 0 with regenerate_1 of product 0: that is another
    task's instance (a sibling whose spend counts), not its own entry."""
    ti = PeerTI(peer_board(), "video.regenerate_2", 0)
    ledger = SpendLedger(ti, FakeStateStore(), budget=100.0, peers=ROUNDS)
    assert ledger.run_spend(before=(0.0, 0)) == 1.0 + 2.0 + 4.0, "all but its own 5"
    assert ti.pulled == ROUNDS, "one read per task id"


def test_without_peers_only_the_tasks_own_instances_count_as_before() -> None:
    ti = PeerTI(peer_board(), "video.regenerate_2", 0)
    ledger = SpendLedger(ti, FakeStateStore(), budget=100.0)
    assert ledger.run_spend(before=(0.0, 0)) == 4.0
    assert ti.pulled == ["video.regenerate_2"]


def test_entries_written_before_they_named_their_task_are_read_as_the_pulled_tasks() -> None:
    board = {
        ("video.regenerate_1", 0, "spend"): spent("video.regenerate_1", 0, 1.0, tagged=False),
        ("video.regenerate_2", 0, "spend"): spent("video.regenerate_2", 0, 5.0, tagged=False),
    }
    ledger = SpendLedger(PeerTI(board, "video.regenerate_2", 0), FakeStateStore(), budget=100.0, peers=ROUNDS)
    assert ledger.run_spend(before=(0.0, 0)) == 1.0


def test_a_round_is_refused_what_the_earlier_rounds_spent() -> None:
    board = {("video.regenerate_1", 0, "spend"): spent("video.regenerate_1", 0, 1.0)}
    ti = PeerTI(board, "video.regenerate_2", 0)
    shared = SpendLedger(ti, FakeStateStore(), budget=1.5, peers=ROUNDS)
    assert shared.reserve(1.0) == (
        "the run's budget max_total_price=1.5 would be exceeded: 1 already spent or reserved by this run's "
        "submits, and this job costs 1"
    )
    assert board[("video.regenerate_2", 0, "spend")]["reserved"] == 0.0, "the refused reservation is withdrawn"
    alone = SpendLedger(PeerTI(board, "video.regenerate_2", 0), FakeStateStore(), budget=1.5)
    assert alone.reserve(1.0) is None, "on its own the task would not see round 1's spend"


def test_a_published_entry_names_its_task() -> None:
    board: dict = {}
    ledger = SpendLedger(PeerTI(board, "video.regenerate_1", 2), paid_store(1.0), budget=None, peers=ROUNDS)
    ledger.publish()
    assert board[("video.regenerate_1", 2, "spend")] | {"at": 0} == {
        "paid": 1.0,
        "reserved": 0.0,
        "at": 0,
        "map_index": 2,
        "task_id": "video.regenerate_1",
    }
