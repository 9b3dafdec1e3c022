"""A run's spending limit: the mapped instances of one generate task never submit past ``max_total_price``.

An upfront estimate (products x list price, checked before the first submit) cannot see what retries
and resubmits add, so every submit also asks a ledger first. The ledger lives where every mapped
instance of the task can read it and no extra infrastructure is needed:

* each task instance keeps what it has paid (list price of every submit sent, over all its tries) in
  its ``task_state_store`` (key :data:`SPENT_KEY`), which survives retries;
* and publishes ``{"paid", "reserved", "at", "map_index"}`` (plus its ``share``, with a spend plan)
  in XCom :data:`~airflow_provider_cogvideo.xcom.XCOM_SPEND`, which its siblings read with one
  ``xcom_pull`` and the run's manifest sums.

It works in one of two modes.

**With a spend plan** (:class:`SpendPlan`, handed to each mapped item by
:class:`~airflow_provider_cogvideo.operators.run_plan.CogVideoRunPlanOperator`): the plan has already
checked that the list prices of everything the run will pay, its ``run_estimate`` E, fit the budget B,
and gave each item its ``share`` (its own list price). A submit that keeps this instance's paid amount
within its share is covered by E: it reads **no** sibling entry (a run of N products makes N reads of
nothing, where reading every entry on every submit made N x N). Only a submit beyond the share (a retry
that may pay again, a resubmit after a failed job) draws on the slack B - E: it publishes the part
beyond its share as a reservation and reads the siblings' entries once, counting E, everyone's *extra*
(paid beyond their share, plus the reservations made before its own: ordered by time, then map index,
so two instances reserving at once agree on who came first) and its own extra. Every instance's payment
is at most its share plus its extra, so this sum bounds the run's spend. An entry without a share (an
instance without a plan) counts wholly as extra.

**Without a spend plan** (a task used on its own, or a pipeline without a run plan): before every
submit an instance *reserves* the price (publishes it), then reads every sibling's entry: the run's
spend is everyone's ``paid`` plus the reservations made before its own (ordered as above). This is
quadratic over a mapped run (N submits each read N entries): fine for tens of products, which is why
a pipeline over a catalog plans its run.

In both modes, over the budget, an instance withdraws its reservation and fails without paying. A
submit whose outcome is unknown keeps its reservation: it may have been billed. Without a
``task_state_store`` (Airflow < 3.3) the paid amount covers the current try only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.validation import BUDGET_RANGE, bounded, is_unset
from airflow_provider_cogvideo.xcom import XCOM_SPEND

SPENT_KEY = "cogvideo_spent"
"""This task instance's paid amount in ``task_state_store`` (beside the job store's record)."""
TOLERANCE = 1e-9
"""Sums of list prices are floats: an amount exceeds a budget only by more than this."""


def over_budget(amount: float, budget: float | None) -> bool:
    """Whether ``amount`` exceeds ``budget`` (None: no limit); the run plan and the ledger share it."""
    return budget is not None and amount > budget + TOLERANCE


@dataclass(frozen=True)
class SpendPlan:
    """What the run plan allotted one mapped item: the run's estimate E and this item's ``share`` of it."""

    run_estimate: float
    share: float

    def to_json(self) -> dict[str, float]:
        return {"run_estimate": self.run_estimate, "share": self.share}


def checked_spend_plan(value: Any) -> SpendPlan | None:
    """``spend_plan`` as rendered: unset is None; else a dict of exactly ``run_estimate`` and ``share``,
    each a number from 0 to 1e9 (the bounds of ``max_total_price``), the share at most the estimate."""
    if is_unset(value):
        return None
    if not isinstance(value, Mapping) or set(value) != {"run_estimate", "share"}:
        shown = sorted(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
        raise CogVideoValidationError("spend_plan", f"must be a dict of run_estimate and share, got {shown}")
    plan = SpendPlan(
        run_estimate=bounded("spend_plan.run_estimate", value["run_estimate"], BUDGET_RANGE),
        share=bounded("spend_plan.share", value["share"], BUDGET_RANGE),
    )
    if plan.share > plan.run_estimate + TOLERANCE:
        raise CogVideoValidationError(
            "spend_plan.share", f"must be at most run_estimate ({plan.run_estimate:g}), got {plan.share:g}"
        )
    return plan


class SpendLedger:
    """One task instance's view of its run's spending (see the module docstring)."""

    def __init__(
        self,
        ti: Any,
        store: Any,
        budget: float | None,
        plan: SpendPlan | None = None,
        *,
        peers: Sequence[str] | None = None,
    ) -> None:
        self.ti = ti
        self.peers = list(peers) if peers else [ti.task_id]
        """The task ids whose mapped instances share the budget (a review run's regenerations of every
        round); by default this task's own."""
        self.store = store
        self.budget = budget
        self.plan = plan
        self.paid = float((store.get(SPENT_KEY) if store is not None else None) or 0.0)
        self._reserved = False

    def _publish(self, reserved: float) -> float:
        at = time.time()
        entry: dict[str, Any] = {
            "paid": self.paid,
            "reserved": reserved,
            "at": at,
            "map_index": self.ti.map_index,
            "task_id": self.ti.task_id,
        }
        if self.plan is not None:
            entry["share"] = self.plan.share
        self.ti.xcom_push(key=XCOM_SPEND, value=entry)
        self._reserved = reserved > 0
        return at

    def publish(self) -> None:
        """At the start of a try (XCom is cleared between tries): show siblings what was paid before."""
        self._publish(0.0)

    def _sibling_entries(self) -> Iterator[dict[str, Any]]:
        """Every other instance's entry (of this task and its peers), one ``xcom_pull`` per task id."""
        own = (self.ti.task_id, self.ti.map_index)
        for task_id in self.peers:
            entries = self.ti.xcom_pull(task_ids=task_id, key=XCOM_SPEND)
            if isinstance(entries, dict):  # a task that is not mapped gets its one entry back
                entries = [entries]
            for entry in entries or []:
                if isinstance(entry, dict) and (entry.get("task_id", task_id), entry.get("map_index")) != own:
                    yield entry  # ours is counted by the caller

    @staticmethod
    def _reserved_before(entry: dict[str, Any], before: tuple[float, int]) -> float:
        earlier = (entry.get("at", 0.0), entry.get("map_index", -1)) < before
        return float(entry.get("reserved") or 0.0) if earlier else 0.0

    def run_spend(self, *, before: tuple[float, int]) -> float:
        """Without a plan: the siblings' paid amounts, plus their reservations ordered before ``before``
        (time, map index)."""
        return sum(float(e.get("paid") or 0.0) + self._reserved_before(e, before) for e in self._sibling_entries())

    def extra_spend(self, *, before: tuple[float, int]) -> float:
        """With a plan: what the siblings paid beyond their shares, plus their reservations (each one
        beyond a share) ordered before ``before``."""
        return sum(
            max(0.0, float(e.get("paid") or 0.0) - float(e.get("share") or 0.0)) + self._reserved_before(e, before)
            for e in self._sibling_entries()
        )

    def reserve(self, price: float) -> str | None:
        """Reserve ``price``; returns None when it fits, else a reason (the reservation is withdrawn)."""
        if self.budget is None:
            return None
        if self.plan is not None:
            return self._reserve_planned(price, self.plan, self.budget)
        at = self._publish(price)
        spent = self.run_spend(before=(at, self.ti.map_index)) + self.paid
        if not over_budget(spent + price, self.budget):
            return None
        self._publish(0.0)
        return (
            f"the run's budget max_total_price={self.budget:g} would be exceeded: {spent:g} already spent or "
            f"reserved by this run's submits, and this job costs {price:g}"
        )

    def _reserve_planned(self, price: float, plan: SpendPlan, budget: float) -> str | None:
        if over_budget(plan.run_estimate, budget):
            return f"the run plan's estimate {plan.run_estimate:g} is over max_total_price={budget:g}"
        extra_before = max(0.0, self.paid - plan.share)
        beyond_share = max(0.0, self.paid + price - plan.share) - extra_before
        if beyond_share <= TOLERANCE:
            return None  # within this item's share, which the plan's estimate already counts
        at = self._publish(beyond_share)
        spent = plan.run_estimate + self.extra_spend(before=(at, self.ti.map_index)) + extra_before
        if not over_budget(spent + beyond_share, budget):
            return None
        self._publish(0.0)
        return (
            f"the run's budget max_total_price={budget:g} would be exceeded: {spent:g} already spent or "
            f"reserved by this run's submits (the run plan's estimate {plan.run_estimate:g} and "
            f"{spent - plan.run_estimate:g} beyond it), and this job costs {price:g}, {beyond_share:g} of it "
            f"beyond this product's share of {plan.share:g}"
        )

    def confirm(self, price: float) -> None:
        """The submit was sent (created a job, or may have): count it as paid, for good."""
        self.paid += price
        if self.store is not None:
            self.store.set(SPENT_KEY, self.paid)
        self._publish(0.0)

    def release(self) -> None:
        """The submit was refused (nothing was created): withdraw the reservation, if one was published."""
        if self._reserved:
            self._publish(0.0)


__all__ = ["SPENT_KEY", "TOLERANCE", "SpendLedger", "SpendPlan", "checked_spend_plan", "over_budget"]
