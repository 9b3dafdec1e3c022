"""Compression bombs against the hook: peak RSS growth of reading them (run by hand).

    .venv/bin/python benchmarks/compression_bomb.py                 # the bombs below, 3 runs each
    .venv/bin/python benchmarks/compression_bomb.py --repeat 1 --no-reference

A local server on 127.0.0.1 (a thread of this process) serves, both as a result file and as an API
answer (``GET async-result/{id}``, a valid job's JSON padded with spaces, so a reader that takes it
whole gets a perfectly good job):

* ``2x gzip 1 GiB``: ``Content-Encoding: gzip, gzip``, two layers decoding to 1 GiB (a few KB on the
  wire);
* ``gzip 2 GiB``: one layer decoding to 2 GiB (~2 MB on the wire).

Each case runs in a fresh child process, after a warm-up request (imports, connection, clients):

* ``download``: ``CogVideoHook.stream_download`` read through the transfer's reader
  (``CogVideoToS3Operator._opened``, default ``max_video_bytes`` of 4 GiB): the file is refused when
  its headers arrive (downloads ask for ``identity``);
* ``answer (sync)`` / ``answer (async)``: ``CogVideoHook.get_task`` / ``aget_task`` with
  ``retry=False``: one layer is decoded in bounded steps up to ``MAX_ANSWER_BYTES``, two are refused;
* ``reference``: plain ``httpx.Client().get()`` of the single-layer answer, shrunk to
  ``--reference-mib`` (256 MiB) so the reference itself stays affordable: what reading it whole
  costs (``--no-reference`` skips it).

Peak RSS growth = highest RSS sampled every 2 ms during the call (and ``ru_maxrss``) minus the RSS
just before it; a refusal takes milliseconds, so the child then makes the same call again under
``tracemalloc`` for the most Python held at once (the "Python peak" column). Prints a table and
writes ``benchmarks/results/compression_bomb.json``; no assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The repository root: the bomb is built by the unit tests' own helper.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import API_PREFIX, PYTHON, ROOT, TEST_KEY, cogvideo_conn_json, rss_bytes, table, write_results

from tests.unit.local_server import gzip_bytes

MiB = 1024 * 1024
GiB = 1024 * MiB
JOB_ID = "8868902201637896192"
JOB = {"id": JOB_ID, "model": "cogvideox-3", "task_status": "PROCESSING"}
BOMBS = {"2x gzip 1 GiB": (1 * GiB, 2), "gzip 2 GiB": (2 * GiB, 1)}


def gzip_bomb(size: int, layers: int, *, json_padding: bool) -> bytes:
    """``size`` decoded bytes (zeros, or a job's JSON padded with spaces) gzipped ``layers`` times,
    compressed block by block (the decoded whole never exists here either)."""
    if json_padding:
        return gzip_bytes(size, prefix=json.dumps(JOB)[:-1].encode(), suffix=b"}", layers=layers, fill=b" ")
    return gzip_bytes(size, layers=layers)


class BombServer:
    """``/files/<name>`` and ``/api/paas/v4/async-result/<id>?bomb=<name>``: the bombs, encoded as built."""

    def __init__(self, bodies: dict[str, tuple[bytes, str]]) -> None:
        self.bodies = bodies
        self.bomb = ""
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path.endswith("/async-result/warmup"):
                    body, encoding = json.dumps({**JOB, "id": "warmup"}).encode(), ""
                else:
                    body, encoding = server.bodies[server.bomb + (":answer" if "async-result" in path else "")]
                self.send_response(200)
                self.send_header("Content-Type", "application/json" if "async-result" in path else "video/mp4")
                if encoding:
                    self.send_header("Content-Encoding", encoding)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # a refused body: the client hangs up
        self.root = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, name="bomb-server", daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class PeakSampler:
    """Highest RSS seen every 2 ms while the block runs (a thread of the child)."""

    def __enter__(self) -> PeakSampler:
        self.baseline = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = max(self.peak, rss_bytes(), max_rss)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


# ------------------------------------------------------------------------------- child side
def _child(mode: str, root: str) -> None:
    import asyncio

    import httpx

    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook, aclose_clients
    from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import _VIDEO, CogVideoToS3Operator

    hook = CogVideoHook()
    hook.get_task("warmup", retry=False)
    op = CogVideoToS3Operator(task_id="bench", result=f"{root}/files/v.mp4", s3_bucket="b", s3_key="k.mp4")
    op._job_id = "bench"
    op.hook = hook  # the warmed-up hook

    def download() -> int:
        with op._opened(f"{root}/files/v.mp4", _VIDEO, op.max_video_bytes) as (_, chunks):
            return sum(len(c) for c in chunks)

    async def answer_async() -> Any:
        try:
            return await hook.aget_task(JOB_ID, retry=False)
        finally:
            await aclose_clients()

    def reference() -> int:
        with httpx.Client() as client:
            return len(client.get(f"{root}{API_PREFIX}/async-result/{JOB_ID}").content)

    calls = {
        "download": download,
        "answer (sync)": lambda: hook.get_task(JOB_ID, retry=False),
        "answer (async)": lambda: asyncio.run(answer_async()),
        "reference": reference,
    }

    def call() -> str:
        try:
            calls[mode]()
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "read through"

    start, cpu = time.perf_counter(), time.process_time()
    with PeakSampler() as sampler:
        outcome = call()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    tracemalloc.start()  # the same call again, for what Python allocated at most (RSS sampling can miss a short peak)
    call()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "growth_mib": sampler.growth / MiB,
                "traced_peak_mib": traced_peak / MiB,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "outcome": outcome,
            }
        )
    )


def _run_child(mode: str, server: BombServer) -> dict[str, Any]:
    env = {**os.environ, "AIRFLOW_CONN_COGVIDEO_DEFAULT": cogvideo_conn_json(server.root + API_PREFIX, TEST_KEY)}
    cmd = [PYTHON, __file__, "--child", mode, "--root", server.root]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        nan = float("nan")
        return {"growth_mib": nan, "traced_peak_mib": nan, "seconds": nan, "cpu_seconds": nan,
                "outcome": f"child failed (rc {done.returncode}): {done.stderr.strip()[-300:]}"}  # fmt: skip
    return json.loads(lines[-1])


def _short(outcome: str) -> str:
    """The exception and the reason, without the URL."""
    name, _, message = outcome.partition(": ")
    for marker in ("refused: ", "/async-result/" + JOB_ID + " "):
        if marker in message:
            message = message.split(marker, 1)[1]
    return f"{name}: {message}"[:120] if message else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-mib", type=int, default=256)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.root)
        return

    bodies: dict[str, tuple[bytes, str]] = {}
    wire: dict[str, int] = {}
    for name, (size, layers) in BOMBS.items():
        encoding = ", ".join(["gzip"] * layers)
        bodies[name] = (gzip_bomb(size, layers, json_padding=False), encoding)
        bodies[f"{name}:answer"] = (gzip_bomb(size, layers, json_padding=True), encoding)
        wire[name] = len(bodies[f"{name}:answer"][0])
    reference = f"gzip {args.reference_mib} MiB"
    if not args.no_reference:
        bodies[f"{reference}:answer"] = (gzip_bomb(args.reference_mib * MiB, 1, json_padding=True), "gzip")
        wire[reference] = len(bodies[f"{reference}:answer"][0])
    server = BombServer(bodies)
    cases = [(bomb, mode) for bomb in BOMBS for mode in ("download", "answer (sync)", "answer (async)")]
    if not args.no_reference:
        cases.append((reference, "reference"))
    rows, results = [], []
    try:
        for bomb, mode in cases:
            server.bomb = bomb
            runs = [_run_child(mode, server) for _ in range(args.repeat)]
            growth = [run["growth_mib"] for run in runs]
            results.append({"bomb": bomb, "mode": mode, "wire_bytes": wire[bomb], "runs": runs})
            rows.append(
                [bomb, f"{wire[bomb]:,}", mode, max(growth), min(growth),
                 max(run["traced_peak_mib"] for run in runs), max(run["seconds"] for run in runs),
                 _short(runs[-1]["outcome"])]
            )  # fmt: skip
    finally:
        server.close()
    print(table(["bomb", "bytes on the wire", "read by", "peak RSS growth MiB (max)", "(min)",
                 "Python peak MiB (max)", "s (max)", "outcome"], rows))  # fmt: skip
    path = write_results("compression_bomb", {"repeat": args.repeat, "results": results})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
