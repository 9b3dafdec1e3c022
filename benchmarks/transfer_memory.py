"""Peak memory, throughput and failure behaviour of the video upload to S3 (run by hand).

    .venv/bin/python benchmarks/transfer_memory.py [--size-mib 300 1024] [--repeat 3] [--part-size-mib 8]

Starts a local SeaweedFS and a local result-file server (synthetic payload generated on the fly),
then measures, each in a fresh subprocess so earlier runs do not inflate the numbers:

* ``operator``: CogVideoToS3Operator streaming the result URL into S3 (today's hand-written
  multipart upload: ``s3_multipart.upload_stream``, bounded queue);
* ``candidate``: ``upload_stream`` from ``_upload_candidate.py``: boto3's managed upload with a tuned
  TransferConfig (8 MiB parts, the operator's 3 workers and 4 parts in memory) behind
  ``HashingReader``, over the same ``CogVideoHook.stream_download``;
* ``candidate_m3``: the same with one part less in memory (3), to see whether that closes the memory
  gap and what it costs (no part waits queued behind the 3 uploading);
* ``fileobj_issue``: ``client.upload_fileobj(HashingReader)`` with the TransferConfig the issue names
  (8 MiB parts, 3 threads, ``max_io_queue=2``, ``io_chunksize=256 KiB``) but s3transfer's default of
  10 in-memory upload chunks, to show which knob bounds memory;
* references: ``HttpToS3Operator``; boto3 ``upload_file`` from a local file (the "local disk" limit);
  boto3 ``upload_fileobj`` on the HTTP stream with default settings (the naive streaming approach).

``operator``, ``candidate`` and ``candidate_m3`` run ``--repeat`` times, interleaved; the others once.
Peak RSS growth = highest RSS sampled every 5 ms during the transfer minus the RSS just before it
(after imports and a warm-up request); CPU = user + system time of the process during the transfer.
The machine may be shared: over the same window the child also records, from ``/proc``, the CPU
time of SeaweedFS, of the result-file server (this script's parent process) and of every *other*
process (busy time of the machine minus those and the child), plus steal time.

Failure behaviour (``--no-failures`` skips it), a 256 MiB file, fresh process per case, for the
operator, the candidate and plain ``upload_fileobj`` (same config as the candidate, no early stop):
the stream drops after 40 MiB (server closes the socket), the body silently ends after 40 MiB,
S3 refuses part 3 (a ``ClientError`` injected on the client before the request), the task is
killed once 40 MiB are downloaded (a watcher thread sends SIGALRM to the process; the handler raises
in the main thread, as Airflow's SIGTERM handler does).
After each: HEAD on the key (404 expected) and ``ListMultipartUploads`` (empty expected).

Prints tables and writes ``benchmarks/results/transfer_memory.json``; no assertion, a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _common import table, write_results

MiB = 1024 * 1024
BUCKET = "bench"
AWS_CONN_ID = "aws_bench"
COGVIDEO_CONN_ID = "cogvideo_bench"
HTTP_CONN_ID = "http_bench"
FAIL_SIZE = 256 * MiB
FAIL_AFTER = 40 * MiB
FAIL_PART = 3

MODES = {
    "operator": "CogVideoToS3Operator (today's uploader)",
    "candidate": "upload_stream: tuned upload_fileobj + HashingReader",
    "candidate_m3": "upload_stream, one part less in memory",
    "fileobj_issue": "upload_fileobj + HashingReader, 10 chunks in memory",
    "http_to_s3": "HttpToS3Operator (Amazon provider)",
    "upload_file": "boto3 upload_file (local disk → S3)",
    "upload_fileobj": "boto3 upload_fileobj (HTTP stream, defaults)",
}
REPEATED = ("operator", "candidate", "candidate_m3")
FAILURE_IMPLS = {
    "operator": "CogVideoToS3Operator (today)",
    "candidate": "upload_stream (candidate)",
    "fileobj_plain": "plain upload_fileobj, same config",
}
FAULTS = {
    "dropped": f"connection dropped after {FAIL_AFTER // MiB} MiB",
    "short": f"body ends after {FAIL_AFTER // MiB} MiB, no error",
    "s3_error": f"S3 refuses part {FAIL_PART}",
    "killed": f"task killed after {FAIL_AFTER // MiB} MiB",
}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class MachineMeter:
    """CPU seconds over a window: the machine's busy and steal time, SeaweedFS, the parent (which serves
    the result file) and this process; ``other`` = busy time of every other process (a shared machine)."""

    def __init__(self, weed_pid: int) -> None:
        self._pids = {"seaweedfs": weed_pid, "file_server": os.getppid()}
        self._start = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
        snap = {"busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick, "self": _cpu()}
        for name, pid in self._pids.items():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            snap[name] = (int(fields[11]) + int(fields[12])) / tick
        return snap

    def stop(self) -> dict[str, float]:
        end = self._snapshot()
        delta = {k: end[k] - self._start[k] for k in end}
        other = delta["busy"] - delta["self"] - delta["seaweedfs"] - delta["file_server"]
        return {
            "seaweedfs_cpu_seconds": round(delta["seaweedfs"], 2),
            "file_server_cpu_seconds": round(delta["file_server"], 2),
            "other_processes_cpu_seconds": round(max(0.0, other), 2),
            "steal_seconds": round(delta["steal"], 2),
        }


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
def _operator(args: argparse.Namespace, key: str) -> Any:
    from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

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
        asset_alias=None,
    )
    op.s3_client.head_bucket(Bucket=BUCKET)  # warm-up: connection + credentials resolved
    op.hook.settings  # noqa: B018
    return op


def _operator_context() -> Any:
    from unittest import mock

    from airflow.sdk.execution_time.context import OutletEventAccessors

    return {"ti": mock.MagicMock(), "outlet_events": OutletEventAccessors()}


def _s3_and_hook() -> tuple[Any, Any]:
    """The S3 client (built as the operator builds it) and the download hook, warmed up."""
    import boto3.s3.transfer  # noqa: F401 - imported before the measurement, as the operator's module is
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

    client = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
    client.head_bucket(Bucket=BUCKET)
    hook = CogVideoHook(cogvideo_conn_id=COGVIDEO_CONN_ID)
    hook.settings  # noqa: B018
    return client, hook


def _hashing_upload(
    client: Any,
    hook: Any,
    url: str,
    key: str,
    config: Any,
    *,
    early_stop: bool,
    args: argparse.Namespace,
    parts_in_memory: int | None = None,
) -> tuple[int, str]:
    """``candidate`` (early_stop) or plain ``client.upload_fileobj(HashingReader)`` with ``config``."""
    from _upload_candidate import HashingReader, upload_stream

    from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import _content_length

    extra = {"ContentType": "video/mp4", "Metadata": {"cogvideo-job-id": "1"}}
    with hook.stream_download(url) as response:
        expected = _content_length(response)
        if early_stop:
            return upload_stream(
                client,
                response,
                bucket=BUCKET,
                key=key,
                expected=expected,
                extra_args=extra,
                part_size=args.part_size_mib * MiB,
                workers=args.workers,
                parts_in_memory=parts_in_memory or args.in_flight,
                label="job 1",
            )
        reader = HashingReader(response, expected=expected, label="job 1")
        client.upload_fileobj(reader, BUCKET, key, ExtraArgs=extra, Config=config)
        return reader.size, reader.sha256


def _child(args: argparse.Namespace) -> None:
    """One measured transfer; prints a JSON line with the figures."""
    import httpx
    from _upload_candidate import upload_transfer_config
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    key = f"{args.mode}/video.mp4"
    sha256 = None
    if args.mode == "operator":
        op = _operator(args, key)
        context = _operator_context()
        meter, start, cpu = MachineMeter(args.weed_pid), time.perf_counter(), _cpu()
        with PeakSampler() as sampler:
            out = op.execute(context)
        size, sha256, client = out["size"], out["sha256"], op.s3_client
    elif args.mode in ("candidate", "candidate_m3", "fileobj_issue"):
        client, hook = _s3_and_hook()
        config = upload_transfer_config(part_size=args.part_size_mib * MiB, workers=args.workers)
        config.max_in_memory_upload_chunks = 10  # s3transfer's default; only used by fileobj_issue
        meter, start, cpu = MachineMeter(args.weed_pid), time.perf_counter(), _cpu()
        with PeakSampler() as sampler:
            size, sha256 = _hashing_upload(
                client,
                hook,
                args.url,
                key,
                config,
                early_stop=args.mode != "fileobj_issue",
                args=args,
                parts_in_memory=args.in_flight - 1 if args.mode == "candidate_m3" else args.in_flight,
            )
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
        client = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
        client.head_bucket(Bucket=BUCKET)
        meter, start, cpu = MachineMeter(args.weed_pid), time.perf_counter(), _cpu()
        with PeakSampler() as sampler:
            op.execute({})
        size = client.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    else:
        client = S3Hook(aws_conn_id=AWS_CONN_ID).get_conn()
        client.head_bucket(Bucket=BUCKET)
        meter, start, cpu = MachineMeter(args.weed_pid), time.perf_counter(), _cpu()
        with PeakSampler() as sampler:
            if args.mode == "upload_file":
                client.upload_file(args.file, BUCKET, key)
                size = os.path.getsize(args.file)
            else:
                with httpx.stream("GET", args.url) as response:
                    stream = _ResponseReader(response)
                    client.upload_fileobj(stream, BUCKET, key)
                    size = stream.read_bytes
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    machine = meter.stop()
    head = client.head_object(Bucket=BUCKET, Key=key)
    etag = head["ETag"].strip('"')
    print(
        json.dumps(
            {
                "mode": args.mode,
                "size": size,
                "stored_size": head["ContentLength"],
                "parts": int(etag.rsplit("-", 1)[1]) if "-" in etag else 1,
                "sha256": sha256,
                "seconds": elapsed,
                "cpu_seconds": cpu,
                "growth": sampler.growth,
                "loadavg_1min": os.getloadavg()[0],
                **machine,
            }
        )
    )
    client.delete_object(Bucket=BUCKET, Key=key)


class _ResponseReader:
    """A file-like view of a streaming httpx response, for boto3's upload_fileobj (the naive reference)."""

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


# ------------------------------------------------------------------------------- child side: failures
class _Killed(Exception):
    """Raised in the main thread by the SIGALRM handler: what a task kill looks like to the transfer."""


class _StreamView:
    """The response as the transfer sees it: counts the bytes pulled; ``limit`` ends the body early."""

    def __init__(self, response: Any, limit: int | None) -> None:
        self.headers = response.headers
        self._response = response
        self._limit = limit
        self.pulled = 0

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        for chunk in self._response.iter_bytes(chunk_size=chunk_size):
            if self._limit is not None and self.pulled + len(chunk) >= self._limit:
                chunk = chunk[: self._limit - self.pulled]
                self.pulled += len(chunk)
                yield chunk
                return
            self.pulled += len(chunk)
            yield chunk


class _ViewHook:
    """Wraps ``CogVideoHook.stream_download`` so every transfer reads through a :class:`_StreamView`."""

    def __init__(self, hook: Any, limit: int | None) -> None:
        self._hook = hook
        self._limit = limit
        self.view: _StreamView | None = None

    @contextlib.contextmanager
    def stream_download(self, url: str, **kwargs: Any) -> Iterator[_StreamView]:
        with self._hook.stream_download(url, **kwargs) as response:
            self.view = _StreamView(response, self._limit)
            yield self.view

    @property
    def pulled(self) -> int:
        return self.view.pulled if self.view is not None else 0


def _instrument(client: Any, fault: str) -> Counter[str]:
    """Count the S3 requests sent; for ``s3_error`` make part FAIL_PART fail before it is sent."""
    from botocore.exceptions import ClientError

    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def count(event_name: str, **_: Any) -> None:
        with lock:
            sent[event_name.rsplit(".", 1)[1]] += 1

    def fail_part(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == FAIL_PART:
            error = {"Error": {"Code": "InternalError", "Message": f"injected failure of part {FAIL_PART}"}}
            raise ClientError(error, "UploadPart")

    for op in ("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload", "PutObject"):
        client.meta.events.register(f"before-call.s3.{op}", count)
    if fault == "s3_error":
        client.meta.events.register("provide-client-params.s3.UploadPart", fail_part)
    return sent


def _failure_child(args: argparse.Namespace) -> None:
    """One failing transfer; prints what was raised and what S3 holds afterwards."""
    from _upload_candidate import upload_transfer_config
    from botocore.exceptions import ClientError

    key = f"fail-{args.impl}-{args.fault}/video.mp4"
    limit = FAIL_AFTER if args.fault == "short" else None
    if args.impl == "operator":
        op = _operator(args, key)
        view_hook = _ViewHook(op.hook, limit)
        op.hook = view_hook
        client = op.s3_client
        context = _operator_context()

        def run() -> Any:
            return op.execute(context)

    else:
        client, hook = _s3_and_hook()
        view_hook = _ViewHook(hook, limit)
        config = upload_transfer_config(
            part_size=args.part_size_mib * MiB, workers=args.workers, parts_in_memory=args.in_flight
        )

        def run() -> Any:
            return _hashing_upload(
                client, view_hook, args.url, key, config, early_stop=args.impl == "candidate", args=args
            )

    sent = _instrument(client, args.fault)
    at_signal: dict[str, float] = {}

    done = threading.Event()

    def kill(signum: int, frame: Any) -> None:
        at_signal.update(time=time.perf_counter(), pulled=view_hook.pulled)
        raise _Killed(f"killed after {view_hook.pulled} bytes")

    def kill_when_due() -> None:
        while not done.wait(0.001):
            if view_hook.pulled >= FAIL_AFTER:
                os.kill(os.getpid(), signal.SIGALRM)
                return

    if args.fault == "killed":
        signal.signal(signal.SIGALRM, kill)
        threading.Thread(target=kill_when_due, daemon=True).start()
    start = time.perf_counter()
    error = None
    try:
        run()
    except BaseException as exc:
        error = exc
    end = time.perf_counter()
    done.set()
    pulled_at_raise = view_hook.pulled
    try:
        client.head_object(Bucket=BUCKET, Key=key)
        head = "200 (object exists)"
    except ClientError as exc:
        head = str(exc.response.get("Error", {}).get("Code"))
    uploads = client.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", [])
    open_later = None
    if uploads:  # maybe an abort still under way: look again
        time.sleep(2)
        open_later = len(client.list_multipart_uploads(Bucket=BUCKET, Prefix=key).get("Uploads", []))
    objects = client.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount", 0)
    print(
        json.dumps(
            {
                "impl": args.impl,
                "fault": args.fault,
                "raised": f"{type(error).__name__}: {error}"[:300] if error else None,
                "retryable": getattr(error, "retryable", None),
                "seconds_to_raise": end - start,
                "seconds_signal_to_raise": end - at_signal["time"] if at_signal else None,
                "pulled_mib": pulled_at_raise / MiB,
                "pulled_after_signal_mib": (pulled_at_raise - at_signal["pulled"]) / MiB if at_signal else None,
                "requests_sent": dict(sent),
                "head_after": head,
                "objects_at_key": objects,
                "open_multipart_uploads": len(uploads),
                "open_multipart_uploads_2s_later": open_later,
            }
        )
    )


# --------------------------------------------------------------------------------------- parent side
def _run_child(child: str, env: dict[str, str], **extra: Any) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", child]
    for name, value in extra.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{child} {extra} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _synthetic_sha256(size: int) -> str:
    from airflow_provider_cogvideo.testing.result_files import synthetic_chunks

    digest = hashlib.sha256()
    for chunk in synthetic_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


def _summary(size: int, mode: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    mibps = [size / MiB / r["seconds"] for r in runs]
    return {
        "size_mib": size // MiB,
        "mode": mode,
        "runs": len(runs),
        "peak_rss_growth_mib_median": statistics.median(r["growth"] for r in runs) / MiB,
        "peak_rss_growth_mib_max": max(r["growth"] for r in runs) / MiB,
        "throughput_mib_s_median": statistics.median(mibps),
        "throughput_mib_s_range": [min(mibps), max(mibps)],
        "seconds_median": statistics.median(r["seconds"] for r in runs),
        "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
        "seaweedfs_cpu_seconds_median": statistics.median(r["seaweedfs_cpu_seconds"] for r in runs),
        "other_processes_cpu_seconds_max": max(r["other_processes_cpu_seconds"] for r in runs),
        "parts": runs[0]["parts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, nargs="+", default=[300, 1024])
    parser.add_argument("--repeat", type=int, default=3, help="runs of operator and candidate per size")
    parser.add_argument("--part-size-mib", type=int, default=8)
    parser.add_argument("--workers", type=int, default=3, help="CogVideoToS3Operator upload_workers")
    parser.add_argument("--in-flight", type=int, default=4, help="CogVideoToS3Operator max_parts_in_flight")
    parser.add_argument("--no-references", action="store_true", help="only operator and candidate")
    parser.add_argument("--no-failures", action="store_true", help="skip the failure cases")
    parser.add_argument("--output", default="transfer_memory", help="results file name (without .json)")
    parser.add_argument("--child", choices=[*MODES, "failure"])
    parser.add_argument("--impl", choices=list(FAILURE_IMPLS))
    parser.add_argument("--fault", choices=list(FAULTS))
    parser.add_argument("--url")
    parser.add_argument("--file")
    parser.add_argument("--weed-pid", type=int)
    args = parser.parse_args()
    if args.child == "failure":
        _failure_child(args)
        return
    if args.child:
        args.mode = args.child
        _child(args)
        return

    from airflow_provider_cogvideo.testing.result_files import ResultFileServer, synthetic_chunks
    from airflow_provider_cogvideo.testing.seaweedfs import running_seaweedfs, weed_binary

    started = time.monotonic()
    knobs = {"part_size_mib": args.part_size_mib, "workers": args.workers, "in_flight": args.in_flight}
    summaries: list[dict[str, Any]] = []
    raw: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    control: dict[str, Any] = {}
    with running_seaweedfs() as s3, ResultFileServer() as files, tempfile.TemporaryDirectory() as tmp:
        s3_client = s3.boto3_client()
        s3_client.create_bucket(Bucket=BUCKET)
        cogvideo = {"conn_type": "cogvideo", "password": "bench.secretkey", "extra": {"base_url": files.api_base_url}}
        env = {
            **os.environ,
            **s3.airflow_connection_uri_env(AWS_CONN_ID),
            f"AIRFLOW_CONN_{COGVIDEO_CONN_ID.upper()}": json.dumps(cogvideo),
            f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": urlsplit(files.base_url).port, "schema": "http"}
            ),
            "AIRFLOW_HOME": tmp,
        }
        for size_mib in args.size_mib:
            size = size_mib * MiB
            url = files.add(f"video-{size_mib}.mp4", size=size)
            expected_sha = _synthetic_sha256(size)
            path = Path(tmp) / f"video-{size_mib}.mp4"
            with open(path, "wb") as f:
                for chunk in synthetic_chunks(size):
                    f.write(chunk)
            order = [m for m in MODES if m in REPEATED or not args.no_references]
            order += [m for _ in range(args.repeat - 1) for m in REPEATED]
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
            for mode in order:
                extra = {"file": path} if mode == "upload_file" else {"url": url}
                row = _run_child(mode, env, weed_pid=s3.process.pid, **extra, **knobs)
                if row["size"] != size or row["stored_size"] != size or row["sha256"] not in (None, expected_sha):
                    raise SystemExit(f"{mode} stored something else: {row} (expected {size} bytes, {expected_sha})")
                print(f"  {size_mib} MiB {mode}: {row}", flush=True)
                runs[mode].append({"size_mib": size_mib, **row})
                raw.append({"size_mib": size_mib, **row})
            path.unlink()
            summaries += [_summary(size, mode, rows) for mode, rows in runs.items() if rows]

        if not args.no_failures:
            # Control: an upload left open IS listed, so an empty listing below means something.
            upload_id = s3_client.create_multipart_upload(Bucket=BUCKET, Key="control/open.mp4")["UploadId"]
            listed = s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix="control/").get("Uploads", [])
            s3_client.abort_multipart_upload(Bucket=BUCKET, Key="control/open.mp4", UploadId=upload_id)
            gone = s3_client.list_multipart_uploads(Bucket=BUCKET, Prefix="control/").get("Uploads", [])
            control = {"open_upload_listed": len(listed), "after_abort": len(gone)}
            for fault in FAULTS:
                for impl in FAILURE_IMPLS:
                    faults = [f"truncate:{FAIL_AFTER}"] if fault == "dropped" else []
                    url = files.add(f"fail-{impl}-{fault}.mp4", size=FAIL_SIZE, faults=faults)
                    row = _run_child("failure", env, url=url, impl=impl, fault=fault, **knobs)
                    print(f"  failure {impl} {fault}: {row}", flush=True)
                    failures.append(row)
        weed_version = subprocess.run([weed_binary(), "version"], capture_output=True, text=True).stdout.strip()

    from importlib.metadata import version

    print(
        f"\npart size {args.part_size_mib} MiB, {args.workers} upload workers / threads, {args.in_flight} parts "
        f"in flight / in memory; SeaweedFS on 127.0.0.1; medians of {args.repeat} runs for the repeated rows\n"
    )
    headers = ["size", "transfer", "runs", "peak RSS growth MiB (max)", "MiB/s (range)", "wall s", "CPU s"]
    headers += ["SeaweedFS CPU s", "other processes CPU s (max)"]
    print(
        table(
            headers,
            [
                (
                    f"{s['size_mib']} MiB",
                    MODES[s["mode"]],
                    s["runs"],
                    f"{s['peak_rss_growth_mib_median']:.1f} ({s['peak_rss_growth_mib_max']:.1f})",
                    f"{s['throughput_mib_s_median']:.1f} ({s['throughput_mib_s_range'][0]:.0f}-"
                    f"{s['throughput_mib_s_range'][1]:.0f})",
                    f"{s['seconds_median']:.2f}",
                    f"{s['cpu_seconds_median']:.2f}",
                    f"{s['seaweedfs_cpu_seconds_median']:.1f}",
                    f"{s['other_processes_cpu_seconds_max']:.1f}",
                )
                for s in summaries
            ],
        )
    )
    if failures:
        print(f"\nfailures ({FAIL_SIZE // MiB} MiB file); control: {control}\n")
        headers = ["case", "transfer", "raised", "s to raise", "MiB read", "parts sent", "aborts", "HEAD", "open MPU"]
        headers += ["s signal → raise", "MiB read after signal"]
        print(
            table(
                headers,
                [
                    (
                        FAULTS[f["fault"]],
                        FAILURE_IMPLS[f["impl"]],
                        (f["raised"] or "nothing").split(" (", 1)[0].replace("job 1: ", "")[:70],
                        f"{f['seconds_to_raise']:.2f}",
                        f"{f['pulled_mib']:.0f}",
                        f["requests_sent"].get("UploadPart", 0),
                        f["requests_sent"].get("AbortMultipartUpload", 0),
                        f["head_after"],
                        f["open_multipart_uploads"],
                        "" if f["seconds_signal_to_raise"] is None else f"{f['seconds_signal_to_raise']:.2f}",
                        "" if f["pulled_after_signal_mib"] is None else f"{f['pulled_after_signal_mib']:.0f}",
                    )
                    for f in failures
                ],
            )
        )
    path = write_results(
        args.output,
        {
            "settings": {
                **knobs,
                "repeat": args.repeat,
                "sizes_mib": args.size_mib,
                "failure_size_mib": FAIL_SIZE // MiB,
            },
            "versions": {"boto3": version("boto3"), "s3transfer": version("s3transfer"), "seaweedfs": weed_version},
            "summary": summaries,
            "runs": raw,
            "failure_control": control,
            "failures": failures,
            "total_seconds": round(time.monotonic() - started, 1),
        },
    )
    print(f"\nwrote {path} ({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
