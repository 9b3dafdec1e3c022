"""CogVideoRunPlanOperator: the run priced from what will be paid, refused over budget, a spend plan per item."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.budget import SpendPlan, checked_spend_plan
from airflow_provider_cogvideo.operators.run_plan import CogVideoRunPlanOperator

from ..conftest import FakeTI

pytestmark = pytest.mark.usefixtures("conn_without_retries")


def item(product_id: str) -> dict[str, Any]:
    return {
        "image": f"s3://products/incoming/{product_id}.jpg",
        "prompt": f"{product_id}: a product video",
        "metadata": {"product_id": product_id, "variant": "default"},
    }


def plan(products: Any, **kw: Any) -> tuple[Any, dict[str, Any]]:
    """Run the plan as a task does; returns (its return value, its XComs)."""
    ti = FakeTI()
    result = CogVideoRunPlanOperator(task_id="plan", products=products, **kw).execute({"ti": ti})
    return result, ti.xcom


def test_the_estimate_prices_every_item_and_hands_each_its_share(api, capsys, caplog) -> None:
    products = [item("lamp"), item("mug"), item("chair")]
    sent = json.loads(json.dumps(products))
    result, xcom = plan(products, model="cogvideox-3", max_total_price="5")
    assert xcom["estimate"] == {
        "price": 3.0,
        "currency": "CNY",
        "budget": 5.0,
        "refused": False,
        "paid": 3,
        "writing": None,
    }
    assert result == [{**p, "spend_plan": {"run_estimate": 3.0, "share": 1.0}} for p in sent]
    assert products == sent, "the items it received are not changed in place"
    assert "Run plan: 3 item(s) to pay x 1 CNY (model cogvideox-3) = 3 CNY (list price); max_total_price=5" in (
        capsys.readouterr().out + caplog.text
    )
    assert all(checked_spend_plan(r["spend_plan"]) == SpendPlan(3.0, 1.0) for r in json.loads(json.dumps(result)))
    assert not api.calls, "pricing sends nothing"


def test_a_run_over_its_budget_is_refused_naming_what_it_would_cost(api) -> None:
    ti = FakeTI()
    operator = CogVideoRunPlanOperator(task_id="plan", products=[item("a"), item("b"), item("c")], max_total_price=2.5)
    refusal = (
        r"^The run would cost 3 CNY \(3 products x 1 CNY, model cogvideox-3\), over max_total_price=2\.5: "
        r"nothing was submitted\.$"
    )
    with pytest.raises(AirflowFailException, match=refusal):
        operator.execute({"ti": ti})
    assert ti.xcom["estimate"] == {
        "price": 3.0,
        "currency": "CNY",
        "budget": 2.5,
        "refused": True,
        "paid": 3,
        "writing": None,
    }
    assert not api.calls


def test_an_estimate_equal_to_the_budget_fits() -> None:
    result, xcom = plan([item("a"), item("b")], max_total_price=2)
    assert xcom["estimate"]["refused"] is False and len(result) == 2


def test_an_empty_run_costs_nothing() -> None:
    result, xcom = plan([], max_total_price="0")
    assert result == []
    assert xcom["estimate"] == {
        "price": 0.0,
        "currency": "CNY",
        "budget": 0.0,
        "refused": False,
        "paid": 0,
        "writing": None,
    }


@pytest.mark.parametrize(
    ("base_url", "model", "price", "currency"),
    [
        ("https://api.z.ai/api/paas/v4", "CogVideoX-3", 0.2, "USD"),
        ("https://open.bigmodel.cn/api/paas/v4", "CogVideoX-3", 1.0, "CNY"),
        ("https://open.bigmodel.cn/api/paas/v4", "viduq1-image", 2.5, "CNY"),
    ],
)
def test_the_currency_and_price_follow_the_connection_s_endpoint(
    make_conn, base_url: str, model: str, price: float, currency: str
) -> None:
    make_conn("cogvideo_plan", extra={"base_url": base_url})
    result, xcom = plan([item("a"), item("b")], model=model, cogvideo_conn_id="cogvideo_plan")
    assert xcom["estimate"] == {
        "price": 2 * price,
        "currency": currency,
        "budget": None,
        "refused": False,
        "paid": 2,
        "writing": None,
    }
    assert [r["spend_plan"] for r in result] == [{"run_estimate": 2 * price, "share": price}] * 2


def test_unset_template_values_mean_the_defaults() -> None:
    result, xcom = plan([item("a")], model="None", max_total_price="None", cogvideo_conn_id="")
    assert xcom["estimate"] == {
        "price": 1.0,
        "currency": "CNY",
        "budget": None,
        "refused": False,
        "paid": 1,
        "writing": None,
    }
    assert result[0]["spend_plan"] == {"run_estimate": 1.0, "share": 1.0}


def test_a_model_without_a_list_price_cannot_be_budgeted() -> None:
    with pytest.raises(AirflowFailException, match=r"model 'my-model' has no list price .* nothing is submitted"):
        plan([item("a")], model="my-model", max_total_price=10)
    result, xcom = plan([item("a")], model="my-model")
    assert xcom["estimate"] == {
        "price": None,
        "currency": None,
        "budget": None,
        "refused": False,
        "paid": 1,
        "writing": None,
    }
    assert result == [item("a")], "no price, no limit: the items go on without a spend plan"


@pytest.mark.parametrize(
    ("kw", "refusal"),
    [
        ({"products": "[{'image': 'x'}]"}, r"products: must be a list of items \(dicts\), got str$"),
        ({"products": None}, r"products: must be a list of items \(dicts\), got NoneType$"),
        (
            {"products": [item("a"), "b"]},
            r"products: must be a list of items \(dicts\), got a list holding a non-dict$",
        ),
        ({"products": [], "max_total_price": -1}, r"max_total_price: must be a number from 0 to 1000000000, got -1$"),
    ],
)
def test_bad_arguments_fail_without_retry_naming_the_field(kw: dict[str, Any], refusal: str) -> None:
    with pytest.raises(AirflowFailException, match=refusal):
        CogVideoRunPlanOperator(task_id="plan", **kw).execute({"ti": FakeTI()})


def test_the_items_and_the_budget_are_templated() -> None:
    assert {"products", "model", "max_total_price", "cogvideo_conn_id"} <= set(CogVideoRunPlanOperator.template_fields)


def test_writings_are_counted_at_their_ceiling_in_the_estimate_and_each_share(api) -> None:
    from airflow_provider_cogvideo.prompt_writer import PromptWriter, planned_writing_ceiling

    ceiling = planned_writing_ceiling(PromptWriter(), "CNY")
    assert 0 < ceiling < 0.1, "a glm-4-plus writing (three calls at most) is a fraction of a video's price"
    result, xcom = plan([item("a"), item("b")], max_total_price=5, prompt_writer={})
    assert xcom["estimate"]["price"] == pytest.approx(2 * (1.0 + ceiling))
    assert xcom["estimate"]["writing"] == {
        "model": "glm-4-plus",
        "calls_at_most": 6,
        "ceiling": pytest.approx(2 * ceiling),
        "currency": "CNY",
    }
    assert result[0]["spend_plan"]["share"] == pytest.approx(1.0 + ceiling)
    with pytest.raises(AirflowFailException, match="over max_total_price=2"):
        plan([item("a"), item("b")], max_total_price=2, prompt_writer={})
    assert not api.calls


def test_an_unpriced_writer_is_refused_with_a_budget_and_priced_at_its_stated_ceiling(api) -> None:
    with pytest.raises(AirflowFailException, match=r"prompt_writer\.max_price_per_call"):
        plan([item("a")], max_total_price=5, prompt_writer={"model": "glm-4-air-250414"})
    _, xcom = plan(
        [item("a")], max_total_price=5, prompt_writer={"model": "glm-4-air-250414", "max_price_per_call": 0.1}
    )
    assert xcom["estimate"]["price"] == pytest.approx(1.3), "the video and three calls at the stated ceiling"
    _, unbudgeted = plan([item("a")], prompt_writer={"model": "glm-4-air-250414"})
    assert unbudgeted["estimate"]["writing"]["ceiling"] is None and unbudgeted["estimate"]["price"] is None
