"""Wrong key, broken server: how many requests ONE waiting trigger sends, and when (run by hand).

    .venv/bin/python benchmarks/failure_modes.py            # 30 s window per case
    .venv/bin/python benchmarks/failure_modes.py --quick    # 5 s window

Cases (the emulator runs in its own process; jobs never finish):

* ``wrong key``: the job exists, the connection's key does not (401, code 1000);
* ``HTTP 500``: every poll answered 500 (``--fault poll_error_rate=1 --fault error_codes=500`` via
  the admin API ``PUT /_emulator/faults``).

Triggers, each alone in a fresh event loop for ``--window`` seconds (then cancelled if still waiting):

* ``CogVideoTaskTrigger`` with its default schedule, ``waiting_since`` set so that its first poll is due
  at once (the moment polling starts for a real job);
* ``HttpSensorTrigger(poke_interval=5)`` on ``async-result/{id}`` (it treats any non-404 error as
  "try again now", without sleeping);
* ``HttpEventTrigger(poll_interval=5)`` on ``async-result/{id}`` (for reference).

Every request is timestamped on the client side by wrapping ``httpx.AsyncClient.send`` and
``aiohttp.ClientSession._request`` (observation only) and cross-checked with the emulator's counters.
Also printed: the trigger's full back-off schedule for transient errors (``error_backoff``, jittered
ranges) up to its error budget. No assertion: a measurement. Results: ``results/failure_modes.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TEST_KEY, EmulatorProcess, table, write_results

WRONG_KEY = "0badc0de0badc0de.ThisIsNotTheRightSecret"
MODEL = "cogvideox-3"


class RequestLog:
    """Client-side timestamps and outcomes of every HTTP request (httpx and aiohttp)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.entries: list[tuple[float, str]] = []

    def install(self) -> None:
        import aiohttp
        import httpx

        log = self
        send = httpx.AsyncClient.send
        request = aiohttp.ClientSession._request

        async def logged_send(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.monotonic() - log.t0
            try:
                response = await send(self, req, *args, **kwargs)
            except Exception as exc:
                log.entries.append((t, type(exc).__name__))
                raise
            log.entries.append((t, str(response.status_code)))
            return response

        async def logged_request(self: Any, *args: Any, **kwargs: Any) -> Any:
            t = time.monotonic() - log.t0
            try:
                response = await request(self, *args, **kwargs)
            except Exception as exc:
                log.entries.append((t, type(exc).__name__))
                raise
            log.entries.append((t, str(response.status)))
            return response

        httpx.AsyncClient.send = logged_send  # type: ignore[method-assign]
        aiohttp.ClientSession._request = logged_request  # type: ignore[method-assign]

    def reset(self) -> None:
        self.t0 = time.monotonic()
        self.entries.clear()


def _make_trigger(kind: str, job_id: str) -> Any:
    if kind == "CogVideoTaskTrigger":
        from airflow_provider_cogvideo.polling import PollSchedule
        from airflow_provider_cogvideo.triggers.cogvideo import CogVideoTaskTrigger

        first = PollSchedule.for_model(MODEL).first
        now = time.time()
        return CogVideoTaskTrigger(
            job_id, deadline=now + 3600, cogvideo_conn_id="cogvideo_fail", waiting_since=now - first, model=MODEL
        )
    if kind == "HttpSensorTrigger":
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        return HttpSensorTrigger(
            endpoint=f"api/paas/v4/async-result/{job_id}", http_conn_id="http_fail", method="GET", poke_interval=5.0
        )
    if kind == "HttpEventTrigger":
        from airflow.providers.http.triggers.http import HttpEventTrigger

        return HttpEventTrigger(
            response_check_path="_http_checks.cogvideo_done",
            http_conn_id="http_fail",
            method="GET",
            endpoint=f"api/paas/v4/async-result/{job_id}",
            poll_interval=5.0,
        )
    raise ValueError(kind)


async def _run_one(kind: str, job_id: str, window: float, log: RequestLog) -> dict[str, Any]:
    trigger = _make_trigger(kind, job_id)
    outcome: dict[str, Any] = {}

    async def consume() -> None:
        async for event in trigger.run():
            outcome["event"] = event.payload
            outcome["event_after_s"] = round(time.monotonic() - log.t0, 3)
            return

    log.reset()
    try:
        await asyncio.wait_for(consume(), timeout=window)
    except TimeoutError:
        outcome["event"] = None
        outcome["still_waiting_after_s"] = window
    except Exception as exc:  # the trigger itself raised (the triggerer would log and fail the task)
        outcome["raised"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        outcome["raised_after_s"] = round(time.monotonic() - log.t0, 3)
    entries = [e for e in log.entries if e[0] <= window]
    outcome["requests"] = len(entries)
    outcome["answers"] = dict(Counter(s for _, s in entries))
    outcome["request_times_s"] = [round(t, 3) for t, _ in entries[:40]]
    return outcome


def backoff_schedule() -> list[dict[str, float]]:
    """The trigger's documented back-off after the n-th consecutive transient error (jitter range)."""
    from airflow_provider_cogvideo.polling import DEFAULT_ERROR_BUDGET, POLL_ERROR_BACKOFF

    rows, lo_sum, hi_sum = [], 0.0, 0.0
    (lo_factor, hi_factor) = POLL_ERROR_BACKOFF.jitter
    for n in range(1, DEFAULT_ERROR_BUDGET + 1):
        value = min(POLL_ERROR_BACKOFF.ceiling, POLL_ERROR_BACKOFF.first * 2 ** (n - 1))
        lo_sum += lo_factor * value
        hi_sum += hi_factor * value
        rows.append(
            {
                "error": n,
                "wait_min_s": lo_factor * value,
                "wait_max_s": hi_factor * value,
                "next_request_at_min_s": lo_sum,
                "next_request_at_max_s": hi_sum,
            }
        )
    return rows


async def _main_async(args: argparse.Namespace, emu: EmulatorProcess) -> dict[str, Any]:
    import httpx

    from airflow_provider_cogvideo.hooks.cogvideo import aclose_clients

    log = RequestLog()
    log.install()
    async with httpx.AsyncClient(base_url=emu.base_url + "/", headers={"Authorization": f"Bearer {TEST_KEY}"}) as c:
        r = await c.post("videos/generations", json={"model": MODEL, "prompt": "failure modes"})
        job_id = r.json()["id"]

    results: dict[str, Any] = {}
    cases = {
        "wrong key (401)": ({"poll_error_rate": 0.0}, WRONG_KEY),
        "HTTP 500 on every poll": ({"poll_error_rate": 1.0, "error_codes": ["500"]}, TEST_KEY),
    }
    for case, (faults, key) in cases.items():
        emu.admin("PUT", "faults", faults)
        os.environ["AIRFLOW_CONN_COGVIDEO_FAIL"] = json.dumps(
            {"conn_type": "cogvideo", "password": key, "extra": {"base_url": emu.base_url}}
        )
        os.environ["AIRFLOW_CONN_HTTP_FAIL"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": emu.port, "schema": "http",
             "extra": {"Authorization": f"Bearer {key}"}}
        )  # fmt: skip
        for kind in args.triggers:
            before = emu.admin("GET", "stats")
            outcome = await _run_one(kind, job_id, args.window, log)
            await aclose_clients()
            await asyncio.sleep(0.5)  # let cancelled requests land before reading the server's counters
            after = emu.admin("GET", "stats")
            outcome["server_saw"] = (after["polls"] + sum(after["rejections"].values())) - (
                before["polls"] + sum(before["rejections"].values())
            )
            results.setdefault(case, {})[kind] = outcome
            print(f"  {case} / {kind}: {outcome['requests']} requests", flush=True)
    emu.admin("PUT", "faults", {})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=30.0, help="seconds per case (default 30)")
    parser.add_argument("--triggers", default="CogVideoTaskTrigger,HttpSensorTrigger,HttpEventTrigger")
    parser.add_argument("--seed", type=int, default=5, help="seeds the back-off jitter")
    parser.add_argument("--quick", action="store_true", help="5 s window")
    args = parser.parse_args(argv)
    if args.quick:
        args.window = min(args.window, 5.0)
    args.triggers = [t for t in args.triggers.split(",") if t]
    random.seed(args.seed)

    with EmulatorProcess(duration=3600, jitter=0.0, unlimited=True) as emu:
        results = asyncio.run(_main_async(args, emu))

    print()
    rows = []
    for case, per in results.items():
        for kind, o in per.items():
            if o.get("event") is not None:
                ev = o["event"]
                end = f"event after {o['event_after_s']} s: " + (
                    f"{ev.get('status')}/{ev.get('reason')}"
                    if isinstance(ev, dict) and "reason" in ev
                    else str(ev)[:60]
                )
            elif "raised" in o:
                end = f"raised after {o['raised_after_s']} s"
            else:
                end = f"still waiting after {o['still_waiting_after_s']:g} s"
            times = o["request_times_s"]
            shown = ", ".join(f"{t:g}" for t in times[:8]) + (" ..." if o["requests"] > 8 else "")
            rows.append([case, kind, o["requests"], o["server_saw"], end, shown])
    print(
        table(["case", "trigger", f"requests in {args.window:g} s", "server saw", "outcome", "request times (s)"], rows)
    )
    for case, per in results.items():
        ev = per.get("CogVideoTaskTrigger", {}).get("event")
        if isinstance(ev, dict):
            print(f"\n{case}, CogVideoTaskTrigger event message: {ev.get('message')}")
    sched = backoff_schedule()
    print("\nCogVideoTaskTrigger back-off after consecutive transient errors (jitter: uniform in [max/2, max]):")
    print(
        table(
            ["error #", "wait min s", "wait max s", "next request at (cumulative) s"],
            [
                [
                    r["error"],
                    r["wait_min_s"],
                    r["wait_max_s"],
                    f"{r['next_request_at_min_s']:g}-{r['next_request_at_max_s']:g}",
                ]
                for r in sched
            ],
        )
    )
    print(
        f"-> gives up with an 'error/transient_errors_exhausted' event at the {len(sched) + 1}th consecutive error, "
        f"{sched[-1]['next_request_at_min_s']:g}-{sched[-1]['next_request_at_max_s']:g} s after the first."
    )
    path = write_results(
        "failure_modes",
        {"settings": {"window_s": args.window, "seed": args.seed}, "results": results, "backoff_schedule": sched},
    )
    print(f"\nwritten {path.relative_to(path.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
