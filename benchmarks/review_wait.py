"""What waiting reviews cost a deployment while nobody answers them (issue 24, item 4).

One real deployment of the Airflow this interpreter has (api-server, scheduler with the LocalExecutor,
dag-processor, one triggerer; SQLite, as ``airflow standalone`` runs), a DAG of ``--reviews`` mapped
human-in-the-loop tasks (the standard provider's ``HITLOperator``, what ``CogVideoReviewOperator`` is
built on; a timeout of an hour, nobody answering). It measures, over ``--measure`` seconds each:

* ``idle``: the deployment with no run (the baseline);
* ``waiting``: once every review waits: on Airflow before 3.3 each is a deferred task whose
  ``HITLTrigger`` polls every 5 s from the triggerer; on 3.3 each is ``awaiting_input`` (no trigger).

For each component: CPU seconds per minute (its whole process tree), and the triggerer's triggers
(``trigger`` rows), so the difference is what the reviews cost. Run it with each Airflow::

    .venv/bin/python benchmarks/review_wait.py                      # Airflow 3.3
    .venv-lowest-py3.10/bin/python benchmarks/review_wait.py --output review_wait_3.1   # Airflow 3.1.3

(``make unit-lowest-py3.10`` creates that venv.) Figures: benchmarks/README.md section 9.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ROOT, process_cpu, table, write_results

from airflow_provider_cogvideo.testing.airflow_env import AirflowEnvironment, api_healthy, served_settings
from airflow_provider_cogvideo.testing.processes import ProcessGroup, wait_until
from airflow_provider_cogvideo.testing.seaweedfs import free_ports

DAG_ID = "review_wait_bench"
DAG_FILE = textwrap.dedent(
    f"""
    from datetime import datetime, timedelta

    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.sdk import DAG

    with DAG("{DAG_ID}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, max_active_tasks=10000):
        HITLOperator.partial(
            task_id="review",
            subject="Review a video",
            options=["Approve", "Reject"],
            response_timeout=timedelta(hours=1),
        ).expand(body=[f"video {{i}}" for i in range(int(open(__file__ + ".n").read()))])
    """
)


def _count(db: Path, sql: str, *params: Any) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


def _measure(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """CPU seconds per minute of each component's process tree over ``seconds``."""
    before, started = process_cpu(pids), time.monotonic()
    time.sleep(seconds)
    after, elapsed = process_cpu(pids), time.monotonic() - started
    return {
        name: round((after[name]["tree"] - before[name]["tree"]) * 60 / elapsed, 2)
        for name in pids
        if name in before and name in after
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    import airflow

    home = Path(tempfile.mkdtemp(prefix="review-wait-"))
    api_port, worker_logs, trigger_logs = free_ports(3)
    api = f"http://127.0.0.1:{api_port}"
    env = AirflowEnvironment(
        home=home,
        config={
            ("core", "executor"): "LocalExecutor",
            **served_settings(api, worker_log_port=worker_logs, trigger_log_port=trigger_logs),
            ("core", "dags_are_paused_at_creation"): "False",
            ("core", "parallelism"): "8",
            ("dag_processor", "refresh_interval"): "5",
        },
    )
    env.dags_folder.mkdir(parents=True, exist_ok=True)
    (env.dags_folder / "review_wait_bench.py").write_text(DAG_FILE)
    (env.dags_folder / "review_wait_bench.py.n").write_text(str(args.reviews))
    env.migrate()
    db = env.db_path
    results: dict[str, Any] = {"airflow": airflow.__version__, "reviews": args.reviews, "measure_s": args.measure}
    with ProcessGroup(home / "logs") as group:
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            argv = env.command(
                *(["api-server", "--host", "127.0.0.1", "--port", str(api_port)] if name == "api-server" else [name])
            )
            group.start(name, argv, env.env(), cwd=ROOT)
        wait_until(lambda: api_healthy(api), timeout=180, what="the api-server", alive=group.check_alive)
        wait_until(
            lambda: _count(db, "SELECT COUNT(*) FROM serialized_dag WHERE dag_id = ?", DAG_ID),
            timeout=180,
            what="the DAG to be parsed",
            alive=group.check_alive,
        )
        pids = {name: process.pid for name, process in group.processes.items()}
        print(f"idle: measuring {args.measure:g} s", flush=True)
        results["idle"] = _measure(pids, args.measure)
        env.run("dags", "trigger", DAG_ID)
        started = time.monotonic()

        def all_waiting() -> bool:
            # Before Airflow 3.3 a waiting review is deferred (its trigger polls); on 3.3 awaiting_input.
            sql = "SELECT COUNT(*) FROM task_instance WHERE dag_id = ? AND state IN ('deferred', 'awaiting_input')"
            n = _count(db, sql, DAG_ID)
            return n >= args.reviews

        wait_until(all_waiting, timeout=1800, interval=2.0, what="every review to wait", alive=group.check_alive)
        results["seconds_to_start_all"] = round(time.monotonic() - started, 1)
        time.sleep(10)  # let the last deferrals' triggers start in the triggerer
        results["triggers"] = _count(db, "SELECT COUNT(*) FROM trigger")
        print(f"waiting ({results['triggers']} triggers): measuring {args.measure:g} s", flush=True)
        results["waiting"] = _measure(pids, args.measure)
    results["extra_cpu_s_per_min"] = {
        name: round(results["waiting"][name] - results["idle"].get(name, 0.0), 2) for name in results["waiting"]
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=200, help="mapped reviews waiting at once")
    parser.add_argument("--measure", type=float, default=60.0, help="seconds each window lasts")
    parser.add_argument("--output", default="review_wait")
    args = parser.parse_args()
    results = run(args)
    rows = [
        (name, results["idle"].get(name), results["waiting"][name], results["extra_cpu_s_per_min"][name])
        for name in results["waiting"]
    ]
    print(
        f"\nAirflow {results['airflow']}: {results['reviews']} reviews waiting, {results['triggers']} triggers "
        f"(all started in {results['seconds_to_start_all']} s)"
    )
    print(table(["component (process tree)", "idle CPU s/min", "waiting CPU s/min", "extra CPU s/min"], rows))
    print(f"results: {write_results(args.output, results)}")


if __name__ == "__main__":
    main()
