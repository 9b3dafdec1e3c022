"""Triggerer scale: N concurrent generation jobs polled from ONE asyncio event loop (run by hand).

    .venv/bin/python benchmarks/trigger_scale.py                 # 1,000 jobs x 30 s, 6 variants (~5.5 min)
    .venv/bin/python benchmarks/trigger_scale.py --duration 60 --experiments
    .venv/bin/python benchmarks/trigger_scale.py --quick         # 200 jobs x 20 s
    .venv/bin/python benchmarks/trigger_scale.py --profile ours_fixed5   # + cProfile/tracemalloc/gc

The emulator runs in its own process (``python -m airflow_provider_cogvideo.cli emulator --unlimited``),
so its CPU never counts here. Each variant runs in a FRESH child process (no warm caches, no
garbage left by the previous variant), which:

1. submits N jobs (``cogvideox-3``) before anything is measured, and polls one extra job once
   through the variant's own code path (lazy imports, pooled client, connection lookup: the
   once-per-process costs belong in the baseline, not in "per job");
2. ``gc.collect()``, then records the baseline: RSS, process CPU time (all threads), emulator counters;
3. starts the N waiters staggered evenly over ``--stagger`` seconds, each as the triggerer runs a
   trigger (``async for event in trigger.run()``), while a side coroutine sleeps 10 ms in a loop and
   records how late it wakes (event-loop lag) and a ``gc.callbacks`` hook times every collection;
4. stops when every waiter has produced its event.

Figures per variant: event-loop lag p50/p99/max over the whole phase, CPU ms per poll (phase CPU /
requests the server saw, and the same over a steady window with no job finishing) and per completed
job, RSS growth per waiting job (RSS ``--stagger + 2 x interval`` seconds in minus the baseline, / N)
and its peak, and garbage collections (gen-2 count, longest pause).

Variants:

* ``ours_fixed5``: ``CogVideoTaskTrigger(poll_interval=5)`` - the per-poll figures;
* ``ours_adaptive``: ``CogVideoTaskTrigger`` with its default adaptive schedule (``PollSchedule.for_model``);
* ``http_event``: ``HttpEventTrigger`` (GET ``async-result/{id}`` every 5 s, an async response check
  in ``benchmarks/_http_checks.py``);
* ``http_sensor``: ``HttpSensorTrigger`` (poke 5 s). It only ends on a non-404 answer, and
  ``async-result`` answers 200 while the job runs, so it polls the job's result file
  ``/files/video/{id}_0.mp4``, which the emulator answers 404 until SUCCESS (the only way to
  wait for a job with it; the real service's URLs are unknown before SUCCESS);
* ``bare_httpx`` / ``bare_aiohttp``: a plain loop (sleep 5 s, GET, parse JSON) over ONE shared
  ``httpx.AsyncClient`` / ``aiohttp.ClientSession``: the lower bounds.

``--experiments`` adds, CLEARLY LABELLED AS EXPERIMENTS (monkeypatches applied inside the child,
the package is not modified):

* ``exp_lean_httpx``: ``CogVideoHook.aget_task`` without tenacity when ``retry=False`` and with the
  headers built once per hook (what our httpx path costs without the retry machinery);
* ``exp_aiohttp``: ``CogVideoHook.aget_task`` over one pooled ``aiohttp.ClientSession`` per event loop
  (same error taxonomy), the trigger otherwise unchanged.

No assertion anywhere: this is a measurement. Results: ``benchmarks/results/trigger_scale.json``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    PYTHON,
    ROOT,
    TEST_KEY,
    EmulatorProcess,
    cogvideo_conn_json,
    http_conn_json,
    percentile,
    rss_bytes,
    table,
    write_results,
)

COGVIDEO_CONN = "cogvideo_bench"
HTTP_CONN = "http_bench"
MODEL = "cogvideox-3"
TERMINAL = ("SUCCESS", "FAIL")
DEFAULT_VARIANTS = ("ours_fixed5", "ours_adaptive", "http_event", "http_sensor", "bare_httpx", "bare_aiohttp")
EXPERIMENTS = ("exp_lean_httpx", "exp_aiohttp")
# More experiments, by name: exp_<patch>[_adaptive] with patch in lean_httpx, aiohttp, pool10, gcfreeze.
MORE_EXPERIMENTS = ("exp_pool10", "exp_pool10_adaptive", "exp_aiohttp_adaptive", "exp_gcfreeze")
RESULT_PREFIX = "RESULT "


# ----------------------------------------------------------------------------------------- child side
class LoopProbe:
    """Event-loop lag (a 10 ms sleeper's lateness) and garbage-collection pauses."""

    def __init__(self, period: float = 0.010) -> None:
        self.period = period
        self.times = array.array("d")
        self.lags = array.array("d")
        self.gc_counts: Counter[int] = Counter()
        self.gc_total: Counter[int] = Counter()
        self.gc_max: dict[int, float] = {0: 0.0, 1: 0.0, 2: 0.0}
        self._gc_start = 0.0
        self._stop = False
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_start
        gen = int(info["generation"])
        self.gc_counts[gen] += 1
        self.gc_total[gen] += pause
        self.gc_max[gen] = max(self.gc_max[gen], pause)

    async def _run(self) -> None:
        sleep, clock = asyncio.sleep, time.perf_counter
        while not self._stop:
            t = clock()
            await sleep(self.period)
            now = clock()
            self.times.append(now)
            self.lags.append(now - t - self.period)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop = True
        gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            await self._task

    def lag_ms(self, since: float = 0.0, until: float = float("inf")) -> list[float]:
        return [lag * 1000 for t, lag in zip(self.times, self.lags, strict=True) if since <= t <= until]


def _emu_stats(root: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{root}/_emulator/stats", timeout=30) as resp:
        stats = json.loads(resp.read())
    stats.pop("request_ids", None)
    return stats


def _requests_seen(stats: dict[str, Any]) -> int:
    """Every poll the server answered: async-result answers, rejections (404/401/5xx...), downloads."""
    return int(stats["polls"]) + sum(stats["rejections"].values()) + int(stats["downloads"])


async def _submit_jobs(base_url: str, n: int) -> list[str]:
    import httpx

    sem = asyncio.Semaphore(50)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    async with httpx.AsyncClient(base_url=base_url + "/", headers=headers, timeout=60) as client:

        async def one(i: int) -> str:
            async with sem:
                r = await client.post("videos/generations", json={"model": MODEL, "prompt": f"bench job {i}"})
                r.raise_for_status()
                return str(r.json()["id"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))


Waiter = Callable[[str], Awaitable[tuple[str, int | None]]]


def _patch_of(variant: str) -> str:
    """``exp_aiohttp_adaptive`` -> ``aiohttp``."""
    return variant.removeprefix("exp_").removesuffix("_adaptive")


async def _apply_experiment(variant: str) -> None:
    """EXPERIMENT monkeypatches (the package on disk is not modified).

    * ``lean_httpx``: ``aget_task`` without tenacity when ``retry=False``, headers built once per hook;
    * ``aiohttp``: ``aget_task`` over one pooled ``aiohttp.ClientSession`` per event loop;
    * ``pool10``: the pooled ``httpx.AsyncClient`` with ``Limits(max_connections=10,
      max_keepalive_connections=10)`` instead of 100/100 (httpcore scans every pooled connection on
      every request);
    * ``gcfreeze``: our code unchanged; ``gc.freeze()`` after the imports and the warm-up (what a
      triggerer could do once at start-up), so full collections skip the import-time objects.
    """
    import weakref

    name = _patch_of(variant)
    if name == "gcfreeze":
        return  # applied in _child, after the warm-up
    if name == "pool10":
        import httpx

        from airflow_provider_cogvideo.hooks import cogvideo as hookmod

        hook = hookmod.CogVideoHook(COGVIDEO_CONN)
        settings = await hook.aget_settings()
        client = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            timeout=hook._timeout(settings),
            headers={"User-Agent": hookmod._user_agent()},
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
        )
        hookmod._ASYNC_CLIENTS.setdefault(asyncio.get_running_loop(), {})[settings.transport_key] = client
        return

    from airflow_provider_cogvideo.backoff import retry_after_seconds
    from airflow_provider_cogvideo.errors import CogVideoTransportError, api_error
    from airflow_provider_cogvideo.hooks import answers
    from airflow_provider_cogvideo.hooks import cogvideo as hookmod

    original = hookmod.CogVideoHook.aget_task

    if name == "lean_httpx":

        async def lean_aget_task(self: Any, job_id: str, *, retry: bool = True) -> Any:
            if retry:
                return await original(self, job_id, retry=retry)
            path = hookmod.QUERY_PATH.format(job_id=answers.checked_job_id(job_id))
            client = await self._async_client()
            headers = self.__dict__.get("_exp_headers")
            if headers is None:  # api_key auth only (a JWT would need refreshing): fine for an experiment
                headers = self.__dict__["_exp_headers"] = self._request_headers()
            response = await answers.asend(lambda: client.get(path, headers=headers))
            return answers.queried(self._raise_for_answer(response), job_id)

        hookmod.CogVideoHook.aget_task = lean_aget_task  # type: ignore[method-assign]
        return

    if name == "aiohttp":
        import aiohttp

        sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
            weakref.WeakKeyDictionary()
        )

        async def aiohttp_aget_task(self: Any, job_id: str, *, retry: bool = True) -> Any:
            if retry:
                return await original(self, job_id, retry=retry)
            settings = await self.aget_settings()
            loop = asyncio.get_running_loop()
            session = sessions.get(loop)
            if session is None or session.closed:
                session = sessions[loop] = aiohttp.ClientSession(
                    base_url=settings.base_url + "/",
                    timeout=aiohttp.ClientTimeout(total=settings.request_timeout, connect=settings.connect_timeout),
                    connector=aiohttp.TCPConnector(limit=100),
                    headers={"User-Agent": "airflow-provider-cogvideo/experiment aiohttp"},
                )
            headers = self.__dict__.get("_exp_headers")
            if headers is None:
                headers = self.__dict__["_exp_headers"] = self._request_headers()
            path = hookmod.QUERY_PATH.format(job_id=answers.checked_job_id(job_id))
            try:
                async with session.get(path, headers=headers) as resp:
                    raw = await resp.read()
                    status, reason, retry_after = resp.status, resp.reason, resp.headers.get("retry-after")
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise CogVideoTransportError(f"request failed before an answer arrived: {type(exc).__name__}") from exc
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if 200 <= status < 300 and isinstance(body, dict):
                return answers.queried(body, job_id)
            code, message = answers.error_fields(body)
            raise api_error(status, code, message or reason or "no message", retry_after_seconds(retry_after))

        hookmod.CogVideoHook.aget_task = aiohttp_aget_task  # type: ignore[method-assign]
        return

    raise ValueError(name)


async def _make_waiter(variant: str, args: argparse.Namespace, root: str, base_url: str) -> Waiter:
    """A coroutine function that waits for one job the variant's way: (status, polls or None)."""
    interval = args.interval
    if variant in ("ours_fixed5", "ours_adaptive") or variant.startswith("exp_"):
        from airflow_provider_cogvideo.triggers.cogvideo import CogVideoTaskTrigger

        if variant.startswith("exp_"):
            await _apply_experiment(variant)
        fixed = None if variant.endswith("_adaptive") else interval

        async def ours(job_id: str) -> tuple[str, int | None]:
            now = time.time()
            trigger = CogVideoTaskTrigger(
                job_id, deadline=now + 3600, cogvideo_conn_id=COGVIDEO_CONN, waiting_since=now, model=MODEL,
                poll_interval=fixed,
            )  # fmt: skip
            async for event in trigger.run():
                return event.payload["status"], event.payload["polls"]
            return "no-event", None

        return ours

    if variant == "http_event":
        from airflow.providers.http.triggers.http import HttpEventTrigger

        async def http_event(job_id: str) -> tuple[str, int | None]:
            trigger = HttpEventTrigger(
                response_check_path="_http_checks.cogvideo_done",
                http_conn_id=HTTP_CONN,
                method="GET",
                endpoint=f"api/paas/v4/async-result/{job_id}",
                poll_interval=interval,
            )
            async for event in trigger.run():
                return str(event.payload["status"]), None
            return "no-event", None

        return http_event

    if variant == "http_sensor":
        from airflow.providers.http.triggers.http import HttpSensorTrigger

        async def http_sensor(job_id: str) -> tuple[str, int | None]:
            trigger = HttpSensorTrigger(
                endpoint=f"files/video/{job_id}_0.mp4", http_conn_id=HTTP_CONN, method="GET", poke_interval=interval
            )
            async for event in trigger.run():
                return ("success" if event.payload is True else str(event.payload)), None
            return "no-event", None

        return http_sensor

    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    if variant == "bare_httpx":
        import httpx

        client = httpx.AsyncClient(
            base_url=base_url + "/",
            headers=headers,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )

        async def bare_httpx(job_id: str) -> tuple[str, int | None]:
            polls = 0
            while True:
                await asyncio.sleep(interval)
                response = await client.get(f"async-result/{job_id}")
                polls += 1
                status = response.json()["task_status"]
                if status in TERMINAL:
                    return status, polls

        return bare_httpx

    if variant == "bare_aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(
            base_url=base_url + "/", headers=headers, connector=aiohttp.TCPConnector(limit=100)
        )

        async def bare_aiohttp(job_id: str) -> tuple[str, int | None]:
            polls = 0
            while True:
                await asyncio.sleep(interval)
                async with session.get(f"async-result/{job_id}") as response:
                    body = json.loads(await response.read())
                polls += 1
                if body["task_status"] in TERMINAL:
                    return body["task_status"], polls

        return bare_aiohttp

    raise SystemExit(f"unknown variant {variant!r}")


async def _warm_up(variant: str, job_id: str, root: str, base_url: str) -> None:
    """One request through the variant's code path: imports, pooled clients, connection parsing."""
    if variant in ("ours_fixed5", "ours_adaptive") or variant.startswith("exp_"):
        from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

        await CogVideoHook(COGVIDEO_CONN).aget_task(job_id, retry=False)
    elif variant == "http_event":
        import _http_checks
        from airflow.providers.http.hooks.http import HttpAsyncHook
        from airflow.providers.http.triggers.http import HttpTrigger

        hook = HttpAsyncHook(method="GET", http_conn_id=HTTP_CONN)
        trigger = HttpTrigger(http_conn_id=HTTP_CONN, method="GET", endpoint=f"api/paas/v4/async-result/{job_id}")
        await _http_checks.cogvideo_done(await trigger._get_response(hook))
        _http_checks.COUNTS["polls"] = 0
    elif variant == "http_sensor":
        import aiohttp
        from airflow.providers.http.hooks.http import HttpAsyncHook

        hook = HttpAsyncHook(method="GET", http_conn_id=HTTP_CONN)
        async with aiohttp.ClientSession() as session:
            await hook.run(session=session, endpoint="api/paas/v4/async-result/" + job_id)


async def _child(args: argparse.Namespace) -> dict[str, Any]:
    root, base_url, variant, n = args.root, args.root + "/api/paas/v4", args.child, args.jobs
    import airflow.sdk
    import airflow.triggers.base  # noqa: F401

    job_ids = await _submit_jobs(base_url, n + 1)
    warm_id, job_ids = job_ids[0], job_ids[1:]
    waiter = await _make_waiter(variant, args, root, base_url)
    await _warm_up(variant, warm_id, root, base_url)
    stats0 = await asyncio.to_thread(_emu_stats, root)

    tracer = None
    if args.profile:
        import cProfile
        import tracemalloc

        tracemalloc.start(8)
        tracer = cProfile.Profile()

    gc.collect()
    if variant.startswith("exp_") and _patch_of(variant) == "gcfreeze":
        gc.freeze()  # EXPERIMENT: import-time objects leave the generations the collector traverses
    probe = LoopProbe()
    probe.start()
    # What the lag probe itself costs with nothing else running: subtracted in the "net" figures.
    idle_c, idle_t = time.process_time(), time.perf_counter()
    await asyncio.sleep(2.0)
    idle_rate = (time.process_time() - idle_c) / (time.perf_counter() - idle_t)
    load0 = round(os.getloadavg()[0], 2)
    rss0, cpu0, t0 = rss_bytes(), time.process_time(), time.perf_counter()
    if tracer is not None:
        tracer.enable()

    done_at: list[float] = []
    samples: list[tuple[float, int, float]] = []  # (seconds since t0, rss, cpu)
    window: dict[str, Any] = {}
    snapshot_holder: list[Any] = []
    waiting_mark = args.stagger + 2 * args.interval
    steady = (args.stagger + 1.0, min(args.stagger + 1.0 + 30.0, args.duration * (1 - args.jitter) - 2.0))

    async def sampler() -> None:
        while len(done_at) < n:
            now = time.perf_counter() - t0
            samples.append((now, rss_bytes(), time.process_time() - cpu0))
            if "start" not in window and now >= steady[0]:
                window["start"] = (time.perf_counter(), time.process_time(), await asyncio.to_thread(_emu_stats, root))
            if "end" not in window and now >= steady[1] and not done_at:
                window["end"] = (time.perf_counter(), time.process_time(), await asyncio.to_thread(_emu_stats, root))
            if args.profile and not snapshot_holder and now >= waiting_mark:
                import tracemalloc

                snapshot_holder.append(tracemalloc.take_snapshot())
            await asyncio.sleep(0.5)

    outcomes: list[tuple[str, int | None]] = []

    async def one(job_id: str) -> None:
        try:
            outcomes.append(await waiter(job_id))
        except Exception as exc:
            outcomes.append((f"raised {type(exc).__name__}", None))
        done_at.append(time.perf_counter() - t0)

    sampler_task = asyncio.create_task(sampler())
    tasks = []
    gap = args.stagger / n
    for i, job_id in enumerate(job_ids):
        tasks.append(asyncio.create_task(one(job_id)))
        target = t0 + (i + 1) * gap
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if tracer is not None:
        tracer.disable()
    await sampler_task
    await probe.stop()
    stats1 = await asyncio.to_thread(_emu_stats, root)

    requests = _requests_seen(stats1) - _requests_seen(stats0)
    statuses = Counter(s for s, _ in outcomes)
    client_polls = [p for _, p in outcomes if p is not None]
    rss_wait = next((rss for t, rss, _ in samples if t >= waiting_mark), samples[-1][1] if samples else rss0)
    peak = max((rss for _, rss, _ in samples), default=rss0)
    lags = probe.lag_ms()
    result: dict[str, Any] = {
        "variant": variant,
        "jobs": n,
        "events": dict(statuses),
        "wall_s": round(wall, 2),
        "requests": requests,
        "polls_per_job": requests / n,
        "client_polls_per_job": (sum(client_polls) / len(client_polls)) if client_polls else None,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_poll": 1000 * cpu / max(1, requests),
        "probe_cpu_share": round(idle_rate, 4),
        "cpu_ms_per_poll_net_of_probe": 1000 * (cpu - idle_rate * wall) / max(1, requests),
        "cpu_ms_per_job": 1000 * cpu / max(1, statuses.get("success", 0) + statuses.get("SUCCESS", 0)),
        "lag_ms": {
            "samples": len(lags),
            "p50": percentile(lags, 50),
            "p99": percentile(lags, 99),
            "p999": percentile(lags, 99.9),
            "max": max(lags, default=float("nan")),
        },
        "rss_baseline_mib": rss0 / 2**20,
        "rss_waiting_kib_per_job": (rss_wait - rss0) / 1024 / n,
        "rss_peak_kib_per_job": (peak - rss0) / 1024 / n,
        "gc": {
            "collections": {str(g): probe.gc_counts[g] for g in (0, 1, 2)},
            "total_ms": {str(g): round(probe.gc_total[g] * 1000, 2) for g in (0, 1, 2)},
            "max_pause_ms": {str(g): round(probe.gc_max[g] * 1000, 2) for g in (0, 1, 2)},
        },
        "loadavg_1min_start_end": [load0, round(os.getloadavg()[0], 2)],
        "first_done_s": min(done_at, default=None),
        "last_done_s": max(done_at, default=None),
    }
    if "start" in window and "end" in window:
        (ta, ca, sa), (tb, cb, sb) = window["start"], window["end"]
        polls = _requests_seen(sb) - _requests_seen(sa)
        steady_lags = probe.lag_ms(ta, tb)
        result["steady_window"] = {
            "seconds": round(tb - ta, 2),
            "requests": polls,
            "requests_per_s": polls / (tb - ta),
            "cpu_ms_per_poll": 1000 * (cb - ca) / max(1, polls),
            "cpu_ms_per_poll_net_of_probe": 1000 * ((cb - ca) - idle_rate * (tb - ta)) / max(1, polls),
            "cpu_share_of_one_core": (cb - ca) / (tb - ta),
            "lag_p50_ms": percentile(steady_lags, 50),
            "lag_p99_ms": percentile(steady_lags, 99),
            "lag_max_ms": max(steady_lags, default=float("nan")),
        }
    if tracer is not None:
        result["profile"] = _profile_report(tracer, snapshot_holder[0] if snapshot_holder else None, n)
    return result


def _profile_report(tracer: Any, snapshot: Any, n: int) -> dict[str, Any]:
    """cProfile top functions (tottime and cumtime) and tracemalloc's retained memory by line."""
    import io
    import pstats

    report: dict[str, Any] = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(tracer, stream=buf).sort_stats(key).print_stats(35)
        report[f"cprofile_by_{key}"] = buf.getvalue().splitlines()
    if snapshot is not None:
        stats = snapshot.statistics("lineno")
        total = sum(s.size for s in stats)
        report["tracemalloc_total_kib_per_job"] = total / 1024 / n
        report["tracemalloc_top_lines"] = [
            f"{s.size / 1024 / n:7.2f} KiB/job  {s.count / n:6.2f} blocks/job  {s.traceback[0]}" for s in stats[:30]
        ]
        by_tb = snapshot.statistics("traceback")
        report["tracemalloc_top_tracebacks"] = [
            {"kib_per_job": round(s.size / 1024 / n, 3), "traceback": [str(f) for f in s.traceback]} for s in by_tb[:8]
        ]
    return report


# ---------------------------------------------------------------------------------------- parent side
def _run_variant(variant: str, args: argparse.Namespace, emu: EmulatorProcess) -> dict[str, Any]:
    emu.admin("POST", "reset")
    env = dict(os.environ)
    env[f"AIRFLOW_CONN_{COGVIDEO_CONN.upper()}"] = cogvideo_conn_json(emu.base_url)
    env[f"AIRFLOW_CONN_{HTTP_CONN.upper()}"] = http_conn_json(emu.port)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    cmd = [PYTHON, __file__, "--child", variant, "--root", emu.root, "--jobs", str(args.jobs)]
    cmd += ["--interval", str(args.interval), "--stagger", str(args.stagger)]
    cmd += ["--duration", str(args.duration), "--jitter", str(args.jitter)]
    if args.profile:
        cmd.append("--child-profile")
    emu_cpu0 = emu.cpu_seconds()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    emu_cpu = emu.cpu_seconds() - emu_cpu0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        return {"variant": variant, "error": f"child exited {proc.returncode}"}
    result = json.loads(lines[-1][len(RESULT_PREFIX) :])
    result["emulator_cpu_s"] = round(emu_cpu, 2)
    return result


def _print_table(results: list[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["variant"], r["error"], *[""] * 10])
            continue
        sw = r.get("steady_window", {})
        rows.append(
            [
                r["variant"],
                r["lag_ms"]["p50"],
                r["lag_ms"]["p99"],
                r["lag_ms"]["max"],
                sw.get("lag_p99_ms", float("nan")),
                r["cpu_ms_per_poll"],
                sw.get("cpu_ms_per_poll", float("nan")),
                r["polls_per_job"],
                r["cpu_ms_per_job"],
                r["rss_waiting_kib_per_job"],
                r["rss_peak_kib_per_job"],
                f"{r['gc']['collections']['2']} / {r['gc']['max_pause_ms']['2']}",
            ]
        )
    print(
        table(
            [
                "variant",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "steady p99",
                "CPU ms/poll",
                "steady ms/poll",
                "polls/job",
                "CPU ms/job",
                "RSS KiB/job",
                "peak KiB/job",
                "gen2 GCs / max ms",
            ],
            rows,
        )
    )
    by = {r["variant"]: r for r in results if "error" not in r}
    generic = [by[v]["cpu_ms_per_job"] for v in ("http_event", "http_sensor") if v in by]
    if generic:
        print()
        for v in ("ours_fixed5", "ours_adaptive", *EXPERIMENTS, *MORE_EXPERIMENTS):
            if v in by:
                ratios = ", ".join(
                    f"{by[v]['cpu_ms_per_job'] / by[g]['cpu_ms_per_job']:.2f}x {g}"
                    for g in ("http_event", "http_sensor")
                    if g in by
                )
                print(f"CPU per completed job, {v}: {ratios}  (target <= 0.5x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=30.0, help="emulated render seconds (default 30)")
    parser.add_argument("--jitter", type=float, default=0.2, help="render time spread, fraction (default 0.2)")
    parser.add_argument("--interval", type=float, default=5.0, help="fixed poll interval (default 5 s)")
    parser.add_argument("--stagger", type=float, default=5.0, help="starts spread over this many seconds")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--experiments", action="store_true", help="add exp_lean_httpx and exp_aiohttp")
    parser.add_argument(
        "--more-experiments", action="store_true", help="add exp_pool10[_adaptive], exp_aiohttp_adaptive, exp_gcfreeze"
    )
    parser.add_argument("--quick", action="store_true", help="200 jobs x 20 s")
    parser.add_argument("--profile", metavar="VARIANTS", help="only these variants, with cProfile + tracemalloc")
    parser.add_argument("--output", default="trigger_scale", help="results/<name>.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        args.profile = args.child_profile
        print(RESULT_PREFIX + json.dumps(asyncio.run(_child(args))), flush=True)
        return 0

    if args.quick:
        args.jobs, args.duration = min(args.jobs, 200), min(args.duration, 20.0)
    variants = [v for v in args.variants.split(",") if v]
    if args.experiments:
        variants += list(EXPERIMENTS)
    if args.more_experiments:
        variants += list(MORE_EXPERIMENTS)
    if args.profile:
        variants = [v for v in args.profile.split(",") if v]
        if args.output == "trigger_scale":
            args.output = "trigger_scale_profile"
    print(
        f"{args.jobs} jobs, render {args.duration:g} s +-{args.jitter:.0%}, poll every {args.interval:g} s "
        f"(ours_adaptive: PollSchedule.for_model({MODEL!r})), starts over {args.stagger:g} s; variants: {variants}",
        flush=True,
    )
    results = []
    with EmulatorProcess(duration=args.duration, jitter=args.jitter, unlimited=True, payload_bytes=1024) as emu:
        for variant in variants:
            t = time.perf_counter()
            results.append(_run_variant(variant, args, emu))
            print(f"  {variant}: done in {time.perf_counter() - t:.0f} s", flush=True)
    print()
    _print_table(results)
    path = write_results(
        args.output,
        {
            "settings": {
                "jobs": args.jobs,
                "duration_s": args.duration,
                "jitter": args.jitter,
                "interval_s": args.interval,
                "stagger_s": args.stagger,
                "model": MODEL,
                "emulator": "separate process, --unlimited, --payload-bytes 1024",
            },
            "results": results,
        },
    )
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
