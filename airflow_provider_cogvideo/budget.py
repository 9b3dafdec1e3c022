"""A run's spending limit: the mapped instances of one generate task never submit past ``max_total_price``.

An upfront estimate (products x list price, checked before the first submit) cannot see what retries
and resubmits add, so every submit also asks a ledger first. The ledger lives where every mapped
instance of the task can read it and no extra infrastructure is needed:

* each task instance keeps what it has paid (list price of every submit sent, over all its tries) in
  its ``task_state_store`` (key :data:`SPENT_KEY`), which survives retries;
* and publishes ``{"paid", "reserved", "at", "map_index"}`` in XCom
  :data:`~airflow_provider_cogvideo.xcom.XCOM_SPEND`, which its
  siblings read with one ``xcom_pull``.

Before a submit an instance *reserves* the price (publishes it), then reads every sibling's entry:
the run's spend is everyone's ``paid`` plus the reservations made before its own (ordered by time,
then map index, so two instances reserving at once agree on who came first). Over the budget, it
withdraws and fails without paying. A submit whose outcome is unknown keeps its reservation: it may
have been billed. Without a ``task_state_store`` (Airflow < 3.3) the paid amount covers the current
try only.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_provider_cogvideo.xcom import XCOM_SPEND

SPENT_KEY = "cogvideo_spent"
"""This task instance's paid amount in ``task_state_store`` (beside the job store's record)."""


class SpendLedger:
    """One task instance's view of its run's spending (see the module docstring)."""

    def __init__(self, ti: Any, store: Any, budget: float | None) -> None:
        self.ti = ti
        self.store = store
        self.budget = budget
        self.paid = float((store.get(SPENT_KEY) if store is not None else None) or 0.0)

    def _publish(self, reserved: float) -> float:
        at = time.time()
        entry = {"paid": self.paid, "reserved": reserved, "at": at, "map_index": self.ti.map_index}
        self.ti.xcom_push(key=XCOM_SPEND, value=entry)
        return at

    def publish(self) -> None:
        """At the start of a try (XCom is cleared between tries): show siblings what was paid before."""
        self._publish(0.0)

    def run_spend(self, *, before: tuple[float, int] | None = None) -> float:
        """Everyone's paid amounts, plus the reservations ordered before ``before`` (time, map index)."""
        entries = self.ti.xcom_pull(task_ids=self.ti.task_id, key=XCOM_SPEND)
        if isinstance(entries, dict):  # a task that is not mapped gets its one entry back
            entries = [entries]
        total = 0.0
        for entry in entries or []:
            if not isinstance(entry, dict):
                continue
            if entry.get("map_index") == self.ti.map_index:
                continue  # ours is counted by the caller
            total += float(entry.get("paid") or 0.0)
            if before is not None and (entry.get("at", 0.0), entry.get("map_index", -1)) < before:
                total += float(entry.get("reserved") or 0.0)
        return total

    def reserve(self, price: float) -> str | None:
        """Reserve ``price``; returns None when it fits, else a reason (the reservation is withdrawn)."""
        if self.budget is None:
            return None
        at = self._publish(price)
        spent = self.run_spend(before=(at, self.ti.map_index)) + self.paid
        if spent + price <= self.budget + 1e-9:
            return None
        self._publish(0.0)
        return (
            f"the run's budget max_total_price={self.budget:g} would be exceeded: {spent:g} already spent or "
            f"reserved by this run's submits, and this job costs {price:g}"
        )

    def confirm(self, price: float) -> None:
        """The submit was sent (created a job, or may have): count it as paid, for good."""
        self.paid += price
        if self.store is not None:
            self.store.set(SPENT_KEY, self.paid)
        self._publish(0.0)

    def release(self) -> None:
        """The submit was refused (nothing was created): withdraw the reservation."""
        if self.budget is not None:
            self._publish(0.0)


__all__ = ["SPENT_KEY", "SpendLedger"]
