"""Parse cost: what importing our operators adds to a DAG file's parse time over ``airflow.sdk`` alone.

    .venv/bin/python benchmarks/parse_cost.py             # median of 7 fresh interpreters per snippet
    .venv/bin/python benchmarks/parse_cost.py --runs 15
    .venv/bin/python benchmarks/parse_cost.py --quick     # 3 runs

Each snippet is timed inside a FRESH interpreter (``python -c``; the clock starts after interpreter
start-up, so only the imports count), rounds interleaved so that background load hits every snippet
alike. "added" = the time of the snippet's imports measured in the same interpreter right after
``import airflow.sdk`` (median over the runs): on a shared machine the ~1.3 s of ``airflow.sdk``
varies by +-150 ms between interpreters, far more than the 30 ms target, so the difference of two
medians ("total - sdk") is shown only for reference. A module that is not there yet (ImportError) is
reported as "n/a".

Then ``python -X importtime`` lists what OUR imports pull in after ``airflow.sdk`` is loaded (top
offenders by cumulative and by self time) and which heavy modules (httpx, PIL, boto3, av, starlette,
...) are in ``sys.modules`` after each snippet but not after ``import airflow.sdk`` alone.

Target (issue 7): <= 30 ms added. No assertion: a measurement. Results: ``results/parse_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, table, write_results

BASE = "import airflow.sdk"
OURS = {
    "CogVideoGenerateOperator": "from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator",
    "CogVideoTaskSensor": "from airflow_provider_cogvideo.sensors.cogvideo import CogVideoTaskSensor",
    "S3ProductImagesOperator": "from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator",
    "CogVideoToS3Operator": "from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator",
}
HTTP = [
    "from airflow.providers.http.operators.http import HttpOperator",
    "from airflow.providers.http.sensors.http import HttpSensor",
]
OPENAI = [
    "from airflow.providers.openai.operators.openai import OpenAIEmbeddingOperator",
    "from airflow.providers.openai.hooks.openai import OpenAIHook",
]
HEAVY = (
    "httpx",
    "PIL",
    "boto3",
    "botocore",
    "av",
    "starlette",
    "uvicorn",
    "aiohttp",
    "requests",
    "tenacity",
    "jwt",
    "numpy",
    "airflow_provider_cogvideo.emulator",
    "airflow_provider_cogvideo.hooks.cogvideo",
    "airflow.providers.amazon",
)

# Runs in the fresh interpreter: time the statements, report the time, the heavy modules, or n/a.
_PROBE = """
import json, sys, time
t = time.perf_counter()
exec({base!r})
t_base = time.perf_counter()
try:
    exec({code!r})
except ImportError as exc:
    print(json.dumps({{"na": repr(exc)}}))
    raise SystemExit(0)
t_end = time.perf_counter()
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"seconds": t_end - t, "added_seconds": t_end - t_base, "modules": len(sys.modules),
                  "heavy": heavy}}))
"""


def _snippets() -> dict[str, list[str]]:
    snippets: dict[str, list[str]] = {"airflow.sdk alone": [BASE]}
    snippets["ours: all four operators/sensor"] = [BASE, *OURS.values()]
    snippets["ours: generate operator + sensor"] = [BASE, OURS["CogVideoGenerateOperator"], OURS["CogVideoTaskSensor"]]
    for name, line in OURS.items():
        snippets[f"ours: {name} only"] = [BASE, line]
    snippets["http provider: HttpOperator + HttpSensor"] = [BASE, *HTTP]
    snippets["openai provider operators"] = [BASE, *OPENAI]
    return snippets


def _run_probe(lines: list[str]) -> dict[str, Any]:
    code = _PROBE.format(base=lines[0], code="\n".join(lines[1:]), heavy=HEAVY)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    proc = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _importtime(lines: list[str]) -> dict[str, Any]:
    """``-X importtime`` of ``lines[1:]`` after ``lines[0]`` (the base import) is already done."""
    code = lines[0] + "\nimport sys; sys.stderr.write('@@MARK@@\\n'); sys.stderr.flush()\n" + "\n".join(lines[1:])
    proc = subprocess.run([PYTHON, "-X", "importtime", "-c", code], cwd=ROOT, capture_output=True, text=True)
    after = proc.stderr.split("@@MARK@@", 1)[1] if "@@MARK@@" in proc.stderr else ""
    entries = []
    for line in after.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        first, cum_us, name = line.split("|", 2)
        self_us = first.replace("import time:", "").strip()
        depth = (len(name) - len(name.lstrip(" "))) // 2
        entries.append({"module": name.strip(), "self_us": int(self_us), "cumulative_us": int(cum_us), "depth": depth})
    top_level_depth = min((e["depth"] for e in entries), default=0)
    top = sorted((e for e in entries if e["depth"] == top_level_depth), key=lambda e: -e["cumulative_us"])
    # Third-party packages pulled in (first component), with their total self time.
    by_package: dict[str, int] = {}
    for e in entries:
        pkg = e["module"].split(".")[0]
        by_package[pkg] = by_package.get(pkg, 0) + e["self_us"]
    return {
        "modules_imported": len(entries),
        "total_self_ms": sum(e["self_us"] for e in entries) / 1000,
        "top_level_by_cumulative": top[:15],
        "by_self_time": sorted(entries, key=lambda e: -e["self_us"])[:20],
        "by_package_self_ms": {k: v / 1000 for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:20]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per snippet (default 7)")
    parser.add_argument("--quick", action="store_true", help="3 runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 3)

    snippets = _snippets()
    samples: dict[str, list[float]] = {name: [] for name in snippets}
    added: dict[str, list[float]] = {name: [] for name in snippets}
    info: dict[str, dict[str, Any]] = {}
    _run_probe([BASE])  # warm the OS page cache and the .pyc files
    for r in range(args.runs):
        for name, lines in snippets.items():
            if name in info and ("na" in info[name] or "error" in info[name]):
                continue
            out = _run_probe(lines)
            if "seconds" in out:
                samples[name].append(out["seconds"])
                added[name].append(out["added_seconds"])
            info[name] = out
        print(f"  round {r + 1}/{args.runs}", flush=True)

    base_median = statistics.median(samples["airflow.sdk alone"])
    base_heavy = set(info["airflow.sdk alone"].get("heavy", []))
    rows, results = [], {}
    for name in snippets:
        o = info[name]
        if "seconds" not in o:
            reason = o.get("na") or o.get("error")
            rows.append([name, "n/a", "n/a", "n/a", "n/a", "", reason[:70] if reason else ""])
            results[name] = {"status": "n/a", "reason": reason}
            continue
        med = statistics.median(samples[name])
        diff = None if name == "airflow.sdk alone" else (med - base_median) * 1000
        inside = None if name == "airflow.sdk alone" else statistics.median(added[name]) * 1000
        new_heavy = sorted(set(o["heavy"]) - base_heavy)
        rows.append(
            [
                name,
                med * 1000,
                "-" if inside is None else f"{inside:.1f}",
                f"{min(added[name]) * 1000:.0f}-{max(added[name]) * 1000:.0f}" if inside is not None else "-",
                "-" if diff is None else f"{diff:+.0f}",
                o["modules"],
                ", ".join(new_heavy) or "-",
            ]
        )
        results[name] = {
            "median_total_ms": med * 1000,
            "added_ms_median": inside,
            "added_ms_samples": [s * 1000 for s in added[name]],
            "difference_of_total_medians_ms": diff,
            "total_samples_ms": [s * 1000 for s in samples[name]],
            "modules_loaded": o["modules"],
            "heavy_modules_loaded": o["heavy"],
            "heavy_modules_added_over_airflow_sdk": new_heavy,
        }
    print()
    print(
        table(
            [
                "snippet",
                "total ms",
                "added ms (median)",
                "added range",
                "total - sdk ms",
                "modules",
                "heavy modules added (over airflow.sdk)",
            ],
            rows,
        )
    )
    print(f"\nalready loaded by `import airflow.sdk` alone: {', '.join(sorted(base_heavy)) or '-'}")

    lines = snippets["ours: all four operators/sensor"]
    available = [BASE] + [ln for ln in lines[1:] if _run_probe([BASE, ln]).get("seconds") is not None]
    it = _importtime(available)
    print(
        f"\n-X importtime, our imports after airflow.sdk: {it['modules_imported']} modules, "
        f"{it['total_self_ms']:.1f} ms self time in total"
    )
    print(
        table(
            ["top-level import", "cumulative ms", "self ms"],
            [[e["module"], e["cumulative_us"] / 1000, e["self_us"] / 1000] for e in it["top_level_by_cumulative"]],
        )
    )
    print()
    print(
        table(
            ["module (by self time)", "self ms", "cumulative ms"],
            [[e["module"], e["self_us"] / 1000, e["cumulative_us"] / 1000] for e in it["by_self_time"][:15]],
        )
    )
    print()
    print(table(["package", "self ms (sum)"], list(it["by_package_self_ms"].items())[:12]))
    path = write_results(
        "parse_cost",
        {
            "settings": {"runs": args.runs, "target_added_ms": 30},
            "snippets": {k: v for k, v in snippets.items()},
            "results": results,
            "importtime_ours_after_sdk": it,
        },
    )
    print(f"\nwritten {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
