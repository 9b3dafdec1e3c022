"""CogVideoRunPlanOperator: price what a run will pay before anything is paid; refuse a run over budget.

It sits between ingestion and the mapped generate tasks::

    planned = CogVideoRunPlanOperator(
        task_id="plan",
        products=ingest.output,  # the items that will be paid for
        model="cogvideox-3",
        max_total_price="{{ params.max_total_price }}",
    )
    product.expand_kwargs(planned.output)

It prices only what it receives: ingestion hands on the products that will be paid for, and a
product whose video is reused never reaches the plan, so it costs nothing. The estimate is the number
of items times the model's list price on the connection's endpoint (the hook's ``price_of``: CNY on
BigModel, USD on Z.AI); the price list is per video, so no generation option changes it.

Over ``max_total_price`` the plan fails (``AirflowFailException``: the same items and budget refuse
the same way on every try) before any generate task runs, so nothing is submitted. Within it, it
returns each item with ``spend_plan = {"run_estimate": E, "share": price}`` added: the generate
operator's ledger (:mod:`~airflow_provider_cogvideo.budget`) then lets a submit within its item's share
through without reading the other products' spend, since the plan already counted it, and keeps
``max_total_price`` for what retries and resubmits add beyond the estimate.

With a ``prompt_writer`` (the generate step's), every item may also cost one writing: the plan counts
each at its ceiling (:func:`~airflow_provider_cogvideo.prompt_writer.planned_writing_ceiling`: a typical
request's characters as tokens plus ``max_tokens``, at the chat model's list price, times the writer's
``attempts``), since which
writings the cache already holds is known only when each item runs. A writer model without a known
price counts the writer's ``max_price_per_call``; with neither, a run with a budget is refused before
anything is sent (the budget could not be enforced), and one without a budget goes on.

Either way it pushes XCom :data:`~airflow_provider_cogvideo.xcom.XCOM_ESTIMATE` for the run's
manifest: ``{"price": E, "currency", "budget", "refused", "paid": number of items, "writing"}`` (``writing``: None,
or ``{"model", "calls_at_most", "ceiling", "currency"}``). A model without
a list price (one the capability table does not know) is priced ``None``: refused when a budget is set
(it cannot be enforced), else the items go on without a spend plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.budget import SpendPlan, over_budget
from airflow_provider_cogvideo.capabilities import DEFAULT_MODEL, canonical_model
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.mixins import CogVideoHookMixin
from airflow_provider_cogvideo.prompt_writer import PromptWriter, planned_writing_ceiling
from airflow_provider_cogvideo.validation import checked_budget, rendered_none
from airflow_provider_cogvideo.xcom import XCOM_ESTIMATE

if TYPE_CHECKING:
    from airflow.sdk import Context


def checked_items(products: Any) -> list[dict[str, Any]]:
    """``products`` as rendered: a list of items (dicts), possibly empty."""
    if not isinstance(products, list | tuple) or not all(isinstance(item, Mapping) for item in products):
        shown = type(products).__name__ if not isinstance(products, list | tuple) else "a list holding a non-dict"
        raise CogVideoValidationError("products", f"must be a list of items (dicts), got {shown}")
    return [dict(item) for item in products]


class CogVideoRunPlanOperator(CogVideoHookMixin, BaseOperator):
    """Price the items a run will pay for, refuse the run over its budget, hand each item its spend plan.

    Returns the items, each with ``spend_plan`` added (see the module docstring), for
    ``.expand_kwargs()`` of the mapped generate tasks; an empty list returns ``[]``.

    :param products: the items that will be paid for (a list of dicts: ingestion's return value, an
        XComArg); each goes on unchanged but for its ``spend_plan``. Products reused from earlier runs
        are not in it and cost nothing.
    :param model: the model the items will be generated with, in any case (``CogVideoX-3`` is
        ``cogvideox-3``); its list price on the connection's endpoint prices each item. Unset:
        ``cogvideox-3``.
    :param max_total_price: the run's budget in list price of the endpoint's currency (CNY on BigModel,
        USD on Z.AI), 0 to 1e9, e.g. ``"{{ params.max_total_price }}"``; give the generate tasks the
        same value. An estimate over it fails this task and nothing is submitted. Unset: no limit.
    :param cogvideo_conn_id: the ``cogvideo`` connection the items will be generated on (its endpoint
        sets the currency); it is read, no request is sent.
    :param prompt_writer: the generate step's ``prompt_writer`` (unset: prompts are not written), whose
        writings are counted at their ceiling (module docstring).
    """

    template_fields: Sequence[str] = ("products", "model", "max_total_price", "cogvideo_conn_id")
    template_fields_renderers = {"products": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        products: list[dict[str, Any]] | Any,
        model: str = DEFAULT_MODEL,
        max_total_price: float | str | None = None,
        cogvideo_conn_id: str = DEFAULT_CONN_ID,
        prompt_writer: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.prompt_writer = PromptWriter.from_value(prompt_writer)
        except CogVideoValidationError as exc:
            raise ValueError(str(exc)) from None
        self.products = products
        self.model = model
        self.max_total_price = max_total_price
        self.cogvideo_conn_id = cogvideo_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        try:
            items, budget = checked_items(self.products), checked_budget(self.max_total_price)
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid run plan: {exc}") from None
        model = canonical_model(rendered_none(self.model) or DEFAULT_MODEL)
        price, currency = self.hook.price_of(model)
        if price is None and budget is not None:
            raise AirflowFailException(
                f"max_total_price is set but model {model!r} has no list price in the capability table: "
                "the budget cannot be enforced, so nothing is submitted"
            )
        writing, per_writing = self._writing(len(items), currency, budget)
        share = None if price is None or per_writing is None else price + per_writing
        estimate = None if share is None else math.fsum(share for _ in items)
        refused = estimate is not None and over_budget(estimate, budget)
        context["ti"].xcom_push(
            key=XCOM_ESTIMATE,
            value={
                "price": estimate,
                "currency": currency,
                "budget": budget,
                "refused": refused,
                "paid": len(items),
                "writing": writing,
            },
        )
        unit = "unknown list price" if price is None else f"{price:g} {currency}"
        limit = "no limit" if budget is None else f"max_total_price={budget:g}"
        self.log.info(
            "Run plan: %d item(s) to pay x %s (model %s)%s = %s (list price); %s",
            len(items),
            unit,
            model,
            f" + at most {per_writing:g} {currency} of prompt writing each" if per_writing else "",
            "unknown" if estimate is None else f"{estimate:g} {currency}",
            limit,
        )
        if refused:
            raise AirflowFailException(
                f"The run would cost {estimate:g} {currency} ({len(items)} products x {share:g} {currency}, "
                f"model {model}), over max_total_price={budget:g}: nothing was submitted."
            )
        if estimate is None or share is None:  # no list price, and no budget to enforce: nothing to plan
            return items
        plan = SpendPlan(run_estimate=estimate, share=share).to_json()
        return [{**item, "spend_plan": dict(plan)} for item in items]

    def _writing(
        self, items: int, currency: str | None, budget: float | None
    ) -> tuple[dict[str, Any] | None, float | None]:
        """The writings' part of the plan (XCom's ``writing``) and each one's ceiling (0 without a writer)."""
        writer = self.prompt_writer
        if writer is None:
            return None, 0.0
        ceiling = planned_writing_ceiling(writer, currency)
        if ceiling is None and budget is not None:
            raise AirflowFailException(
                f"max_total_price is set but the prompt writer's model {writer.model!r} has no known price: set "
                "prompt_writer.max_price_per_call (the most one writing may cost) or unset the budget; nothing was sent"
            )
        total = None if ceiling is None else ceiling * items
        return {
            "model": writer.model,
            "calls_at_most": items * writer.attempts,
            "ceiling": total,
            "currency": currency,
        }, ceiling


__all__ = ["CogVideoRunPlanOperator", "checked_items"]
