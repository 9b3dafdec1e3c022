"""CogVideoReviewPlanOperator: how many reviews one run asks about, and where its links lead."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.operators import review_plan
from airflow_provider_cogvideo.operators.review_plan import (
    DEFAULT_MAX_DEFERRED_REVIEWS,
    DEFAULT_MAX_REVIEWS,
    CogVideoReviewPlanOperator,
    required_actions_link,
)


def cap(monkeypatch: pytest.MonkeyPatch, *, triggerer: bool, map_length: int = 1024, **kw: Any) -> int:
    monkeypatch.setattr(review_plan, "reviews_wait_in_triggerer", lambda: triggerer)
    monkeypatch.setattr(review_plan, "max_map_length", lambda: map_length)
    return CogVideoReviewPlanOperator(task_id="pending", **kw)._cap()


def test_a_run_asks_about_fewer_reviews_by_default_where_each_polls_from_the_triggerer(monkeypatch) -> None:
    """Before Airflow 3.3 a waiting review is a trigger (about 0.15 CPU-s a minute each, measured): the
    default is 100 there, 1000 on 3.3 where it is a row; never more than [core] max_map_length."""
    assert cap(monkeypatch, triggerer=False) == DEFAULT_MAX_REVIEWS == 1000
    assert cap(monkeypatch, triggerer=True) == DEFAULT_MAX_DEFERRED_REVIEWS == 100
    assert cap(monkeypatch, triggerer=False, map_length=300) == 300


def test_a_chosen_max_reviews_is_kept_with_a_warning_where_it_costs_the_triggerer(monkeypatch, capsys, caplog) -> None:
    assert cap(monkeypatch, triggerer=True, max_reviews=400) == 400
    said = capsys.readouterr().out + caplog.text
    assert "each of up to 400 waiting reviews is a trigger polling every 5 s" in said
    assert cap(monkeypatch, triggerer=False, max_reviews=5000, map_length=2048) == 2048


@pytest.mark.parametrize("bad", [0, -1, 100_001, 2.5, "10"])
def test_max_reviews_out_of_bounds_is_refused_naming_it(bad: Any) -> None:
    with pytest.raises(CogVideoValidationError, match=r"^max_reviews: must be an integer from 1 to 100000, got "):
        CogVideoReviewPlanOperator(task_id="pending", max_reviews=bad)


def test_the_links_go_to_the_ui_routes_that_show_a_mapped_review() -> None:
    """A mapped instance's page is .../mapped/<i>/required_actions (the ?map_index= form opens "No Task
    Instance found" for a mapped task in Airflow 3.3.2's UI); the run-level page lists every round."""
    base = "https://airflow.example.com/"
    run = "manual__2026-12-07T07:00:00+00:00"
    assert required_actions_link(base, "product_video_review", run, "video.review_1", map_index=3) == (
        "https://airflow.example.com/dags/product_video_review/runs/manual__2026-12-07T07%3A00%3A00%2B00%3A00"
        "/tasks/video.review_1/mapped/3/required_actions"
    )
    assert required_actions_link(base, "product_video_review", run) == (
        "https://airflow.example.com/dags/product_video_review/runs/manual__2026-12-07T07%3A00%3A00%2B00%3A00"
        "/required_actions"
    )
    assert required_actions_link(None, "product_video_review", run, "video.review_1", map_index=3) is None
