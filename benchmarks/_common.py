"""Shared plumbing of the benchmark scripts (not a benchmark itself).

* :class:`EmulatorProcess`: the CogVideoX emulator in a separate process (``cogvideo emulator``), so
  its CPU never counts against the code being measured;
* :func:`machine_info` / :func:`write_results`: every result file says where, when and how it was made;
* :func:`process_cpu` / :func:`machine_cpu`: CPU seconds of process trees and of the machine, from ``/proc``;
* :func:`percentile`, :func:`table`: small formatting helpers.

Binds 127.0.0.1 only; every process started here is stopped by its own handle.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PYTHON = sys.executable
TEST_KEY = "c0ffee00c0ffee00c0ffee00c0ffee00.EmulatorTestSecretNotForProduction"
API_PREFIX = "/api/paas/v4"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmulatorProcess:
    """``python -m airflow_provider_cogvideo.cli emulator`` on a free 127.0.0.1 port, as a context manager."""

    def __init__(
        self,
        *,
        duration: float = 5.0,
        jitter: float = 0.2,
        seed: int = 7,
        unlimited: bool = True,
        payload_bytes: int | None = None,
        faults: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.root = f"http://127.0.0.1:{self.port}"
        self.base_url = self.root + API_PREFIX
        args = [PYTHON, "-m", "airflow_provider_cogvideo.cli", "emulator", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--duration", str(duration), "--jitter", str(jitter), "--seed", str(seed)]
        if unlimited:
            args.append("--unlimited")
        if payload_bytes is not None:
            args += ["--payload-bytes", str(payload_bytes)]
        for name, value in (faults or {}).items():
            args += ["--fault", f"{name}={value}"]
        self.args = args
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in __exit__
            prefix="cogvideo-emulator-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited early, see {self._log.name}")
            try:
                self.admin("GET", "stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"emulator did not start, see {self._log.name}") from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        os.unlink(self._log.name)

    def admin(self, method: str, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the emulator's admin API (``/_emulator/stats|reset|faults``)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.root}/_emulator/{what}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the emulator process has used so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cogvideo_conn_json(base_url: str, key: str = TEST_KEY) -> str:
    """The cogvideo connection as Airflow reads it from ``AIRFLOW_CONN_<ID>``."""
    return json.dumps({"conn_type": "cogvideo", "password": key, "extra": {"base_url": base_url}})


def http_conn_json(port: int, key: str = TEST_KEY) -> str:
    """An ``http`` connection to the emulator whose extras become request headers (HttpAsyncHook)."""
    return json.dumps(
        {
            "conn_type": "http",
            "host": "127.0.0.1",
            "port": port,
            "schema": "http",
            "extra": {"Authorization": f"Bearer {key}"},
        }
    )


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def machine_info() -> dict[str, Any]:
    """Where and when: CPU, cores, memory, OS, Python, key package versions, git commit."""
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("apache-airflow-core", "apache-airflow-providers-http", "httpx", "aiohttp", "pydantic"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "n/a"
    try:
        with open("/proc/meminfo") as f:
            mem_kib = int(f.readline().split()[1])
    except OSError:
        mem_kib = 0
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _git_commit(),
        "loadavg_1_5_15_at_write": [round(x, 2) for x in os.getloadavg()],
    }


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            stats[int(entry)] = fields
    return stats


def process_cpu(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    """Per named process: ``own`` CPU seconds (utime + stime) and ``tree``: its own plus every live
    descendant's, each with the CPU of the children it has reaped (cutime + cstime), so a task
    process that ended counts once its supervisor waited for it."""
    stats = _all_stats()
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)
    out = {}
    for name, root in pids.items():
        if root not in stats:
            continue
        own = (int(stats[root][11]) + int(stats[root][12])) / CLK_TCK
        tree, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            f = stats[pid]
            tree += sum(int(f[i]) for i in (11, 12, 13, 14)) / CLK_TCK
            todo.extend(children.get(pid, ()))
        out[name] = {"own": own, "tree": tree}
    return out


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot (``/proc/stat``)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    total = sum(values[:8])
    return (total - values[3] - values[4]) / CLK_TCK, total / CLK_TCK


def _interpreter() -> str:
    """This interpreter as typed from the repository's root (``.venv/bin/python``, or another venv's)."""
    path = Path(sys.executable)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """``benchmarks/results/<name>.json`` with machine, date (UTC) and the command line."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [_interpreter(), *sys.argv]),
        "machine": machine_info(),
        **payload,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table (also valid Markdown)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            if v != v:  # NaN
                return "n/a"
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    body = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in body]
    return "\n".join(lines)
