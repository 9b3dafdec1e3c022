"""``cogvideo pool`` against a migrated SQLite metadata DB: the row it leaves is what the scheduler reads."""

from __future__ import annotations

import uuid

import pytest

from airflow_provider_cogvideo.cli import main


def _pool(name: str):
    from airflow.models.pool import Pool

    return Pool.get_pool(name)


@pytest.fixture
def pool_name(airflow_db: str) -> str:
    return f"cogvideo-test-{uuid.uuid4().hex[:8]}"


def test_tier_creates_pool_counting_deferred(pool_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pool", "--tier", "v1", "--name", pool_name]) == 0
    pool = _pool(pool_name)
    assert (pool.slots, pool.include_deferred) == (10, True)
    assert "tier V1" in pool.description
    assert f"Created pool {pool_name!r}: 10 slots, include_deferred on" in capsys.readouterr().out


def test_conn_id_updates_a_misconfigured_pool(pool_name: str, make_conn, capsys: pytest.CaptureFixture[str]) -> None:
    """A pool created by hand without include_deferred (the tier-exceeding mistake) is corrected."""
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(name=pool_name, slots=3, description="by hand", include_deferred=False)
    conn_id = make_conn("cogvideo_pooltest", extra={"tier": "V2"})
    assert main(["pool", "--conn-id", conn_id, "--name", pool_name]) == 0
    pool = _pool(pool_name)
    assert (pool.slots, pool.include_deferred) == (15, True)
    out = capsys.readouterr().out
    assert "Updated (was 3 slots, include_deferred off)" in out
    assert f"tier V2 from connection {conn_id!r}" in out

    assert main(["pool", "--conn-id", conn_id, "--name", pool_name]) == 0
    assert f"Unchanged pool {pool_name!r}" in capsys.readouterr().out


def test_model_pool_is_named_after_the_model(airflow_db: str, make_conn) -> None:
    model = "vidu2-image"
    assert main(["pool", "--tier", "V0", "--model", model]) == 0
    pool = _pool(f"cogvideo-{model}")
    assert (pool.slots, pool.include_deferred) == (5, True)
    assert model in pool.description


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tier", "V9"], "unknown tier 'V9'"),
        (["--tier", "V0", "--model", "sora"], "unknown model 'sora'"),
        (["--conn-id", "no_such_conn"], "cannot read connection 'no_such_conn'"),
    ],
)
def test_bad_input_exits_with_a_message(airflow_db: str, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main(["pool", *argv])


def test_tier_or_conn_id_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pool", "--name", "x"])
    assert "one of the arguments --tier --conn-id is required" in capsys.readouterr().err
