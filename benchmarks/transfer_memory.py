"""Peak memory and throughput of CogVideoToS3Operator on a large video (run by hand).

    .venv/bin/python benchmarks/transfer_memory.py [--size-mib 300] [--part-size-mib 8]

Starts a local SeaweedFS and a local result-file server (synthetic payload generated on the fly),
then measures, each in a fresh subprocess so earlier runs do not inflate the numbers:

* ``operator``: CogVideoToS3Operator streaming the result URL into S3 (multipart, bounded queue);
* ``boto3 upload_file``: the same bytes uploaded from a local file with boto3's default
  TransferConfig (the "local disk" reference for throughput);
* ``boto3 upload_fileobj``: the naive streaming approach, the HTTP response handed to boto3's managed
  transfer with default settings (shows the buffering the operator avoids).

Peak RSS growth = highest RSS sampled every 5 ms during the transfer minus the RSS just before it
(after imports and a warm-up request). Prints a table; no assertion, this is a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MiB = 1024 * 1024
BUCKET = "bench"
AWS_CONN_ID = "aws_bench"
COGVIDEO_CONN_ID = "cogvideo_bench"
HTTP_CONN_ID = "http_bench"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """Samples this process's RSS in a thread; ``growth`` is the peak above the starting RSS."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.base = _rss()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.base


# ---------------------------------------------------------------------------------------- child side
def _child(args: argparse.Namespace) -> None:
    """One measured transfer; prints a JSON line with the figures."""
    import httpx
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

    key = f"{args.mode}/video.mp4"
    if args.mode == "operator":
        op = CogVideoToS3Operator(
            task_id="bench",
            result={"id": "1", "video_url": args.url, "task_status": "SUCCESS"},
            s3_bucket=BUCKET,
            s3_key=key,
            cover_s3_key=None,
            replace=True,
            aws_conn_id=AWS_CONN_ID,
            cogvideo_conn_id=COGVIDEO_CONN_ID,
            part_size=args.part_size_mib * MiB,
            upload_workers=args.workers,
            max_parts_in_flight=args.in_flight,
        )
        op.s3_client.head_bucket(Bucket=BUCKET)  # warm-up: connection + credentials resolved
        op.hook.settings  # noqa: B018
        context: Any = {"ti": None, "outlet_events": OutletEventAccessors()}
        start = time.perf_counter()
        with PeakSampler() as sampler:
            out = op.execute(context)
        size = out["size"]
    elif args.mode == "http_to_s3":
        from airflow.providers.amazon.aws.transfers.http_to_s3 import HttpToS3Operator

        op = HttpToS3Operator(
            task_id="bench",
            endpoint=urlsplit(args.url).path,
            http_conn_id=HTTP_CONN_ID,
            s3_bucket=BUCKET,
            s3_key=key,
            aws_conn_id=AWS_CONN_ID,
            replace=True,
        )
        S3Hook(aws_conn_id=AWS_CONN_ID).get_conn().head_bucket(Bucket=BUCKET)
        start = time.perf_counter()
        with PeakSampler() as sampler:
            op.execute({})
        size = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn().head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    else:
        client = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
        client.head_bucket(Bucket=BUCKET)
        start = time.perf_counter()
        with PeakSampler() as sampler:
            if args.mode == "upload_file":
                client.upload_file(args.file, BUCKET, key)
                size = os.path.getsize(args.file)
            else:
                with httpx.stream("GET", args.url) as response:
                    stream = _ResponseReader(response)
                    client.upload_fileobj(stream, BUCKET, key)
                    size = stream.read_bytes
    elapsed = time.perf_counter() - start
    print(json.dumps({"mode": args.mode, "size": size, "seconds": elapsed, "growth": sampler.growth}))


class _ResponseReader:
    """A file-like view of a streaming httpx response, for boto3's upload_fileobj."""

    def __init__(self, response: Any) -> None:
        self._chunks = response.iter_bytes(chunk_size=256 * 1024)
        self._pending = b""
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._pending += chunk
        data, self._pending = (self._pending, b"") if size < 0 else (self._pending[:size], self._pending[size:])
        self.read_bytes += len(data)
        return data


# --------------------------------------------------------------------------------------- parent side
def _run_child(mode: str, env: dict[str, str], **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode]
    for name, value in extra.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=300)
    parser.add_argument("--part-size-mib", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3, help="CogVideoToS3Operator upload_workers")
    parser.add_argument("--in-flight", type=int, default=4, help="CogVideoToS3Operator max_parts_in_flight")
    parser.add_argument("--only-operator", action="store_true", help="skip the boto3 reference rows")
    parser.add_argument("--child", choices=["operator", "http_to_s3", "upload_file", "upload_fileobj"])
    parser.add_argument("--url")
    parser.add_argument("--file")
    args = parser.parse_args()
    if args.child:
        args.mode = args.child
        _child(args)
        return

    from airflow_provider_cogvideo.testing.result_files import ResultFileServer, synthetic_chunks
    from airflow_provider_cogvideo.testing.seaweedfs import running_seaweedfs

    size = args.size_mib * MiB
    with running_seaweedfs() as s3, ResultFileServer() as files, tempfile.TemporaryDirectory() as tmp:
        s3.boto3_client().create_bucket(Bucket=BUCKET)
        url = files.add("video.mp4", size=size)
        path = Path(tmp) / "video.mp4"
        with open(path, "wb") as f:
            for chunk in synthetic_chunks(size):
                f.write(chunk)
        cogvideo = {"conn_type": "cogvideo", "password": "bench.secretkey", "extra": {"base_url": files.api_base_url}}
        env = {
            **os.environ,
            **s3.airflow_connection_uri_env(AWS_CONN_ID),
            f"AIRFLOW_CONN_{COGVIDEO_CONN_ID.upper()}": json.dumps(cogvideo),
            f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps(
                {"conn_type": "http", "host": urlsplit(url).hostname, "port": urlsplit(url).port, "schema": "http"}
            ),
            "AIRFLOW_HOME": tmp,
        }
        rows = [
            (
                "CogVideoToS3Operator (HTTP stream → S3)",
                _run_child(
                    "operator",
                    env,
                    url=url,
                    part_size_mib=args.part_size_mib,
                    workers=args.workers,
                    in_flight=args.in_flight,
                ),
            ),
        ]
        if not args.only_operator:
            rows.append(("HttpToS3Operator (Amazon provider)", _run_child("http_to_s3", env, url=url)))
            rows.append(("boto3 upload_file (local disk → S3)", _run_child("upload_file", env, file=path)))
            rows.append(("boto3 upload_fileobj (HTTP stream, defaults)", _run_child("upload_fileobj", env, url=url)))
    print(
        f"\n{args.size_mib} MiB payload; operator: part size {args.part_size_mib} MiB, {args.workers} upload "
        f"workers, {args.in_flight} parts in flight; SeaweedFS on 127.0.0.1\n"
    )
    print(f"| {'transfer':<46} | {'peak RSS growth':>15} | {'throughput':>12} |")
    print(f"|{'-' * 48}|{'-' * 17}|{'-' * 14}|")
    for label, row in rows:
        assert row["size"] == size, (label, row)
        print(f"| {label:<46} | {row['growth'] / MiB:11.1f} MiB | {size / MiB / row['seconds']:7.1f} MiB/s |")


if __name__ == "__main__":
    main()
