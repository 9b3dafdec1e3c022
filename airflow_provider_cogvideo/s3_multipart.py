"""A stream of bytes written as one S3 object: an explicit multipart upload, hashed as it goes, aborted
on any failure.

:func:`upload_stream` takes a boto3 S3 client, a bucket and key, and an iterable of chunks (a download
as it arrives). It cuts the chunks into parts of ``part_size`` and hands them to ``workers`` uploader
threads; at most ``max_in_flight`` parts are queued or uploading, and the caller's thread blocks
instead of reading further, so memory stays at about ``(max_in_flight + 1) * part_size`` whatever the
object's size, while reading and uploading overlap. The sha256 and the byte count are taken from the
same pass. Any failure, in the chunks (a dropped or short download), in S3 (a refused part) or in the
caller's thread (Airflow's SIGTERM handler raising when a task is killed), aborts the multipart
upload before the exception goes on: the object is complete or it does not exist. Nothing here knows
about CogVideo or Airflow; what the stream is and where its chunks are checked is the caller's.

Why not boto3's managed upload (``upload_fileobj``, s3transfer)? Not for aborting: s3transfer aborts a
failed multipart upload as well. The reasons:

* **memory**: from a non-seekable stream s3transfer holds up to ``max_in_memory_upload_chunks`` parts
  (default 10), a setting of s3transfer's that boto3's ``TransferConfig`` does not take as an argument
  (it has to be set as an attribute); even tuned to the same number of parts, it held more in the
  measured comparison;
* **stopping early**: after a failed part, or an exception in the calling thread, s3transfer reads the
  source to its end and discards it, so a killed task would go on downloading the rest of a video;
  here the next part's :meth:`_PartUploader.submit` raises and reading stops;
* **which transfer client**: with ``awscrt`` installed boto3 may hand the upload to the CRT client,
  which ignores these settings unless ``preferred_transfer_client="classic"`` is pinned;
* **hashing**: ``upload_fileobj`` needs a file-like wrapper over the stream to hash it in the same pass.

The comparison (memory, CPU, speed and failure behaviour of both, with the s3transfer candidate that
would replace this module, ``benchmarks/_upload_candidate.py``) is ``benchmarks/README.md``, section 5.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from airflow_provider_cogvideo.s3 import s3_uri
from airflow_provider_cogvideo.sizes import GiB, MiB

MIN_PART_SIZE = 5 * MiB
"""S3's smallest part (all but the last)."""
MAX_PART_SIZE = 5 * GiB
"""S3's largest part."""
MAX_PARTS = 10_000
"""S3's most parts in one upload."""
MAX_OBJECT_SIZE = 5 * 1024 * GiB
"""S3's largest object."""

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadedObject:
    """What was written: the byte count and the sha256 (hex) of the whole stream."""

    size: int
    sha256: str


def part_size_for(size_hint: int, part_size: int) -> int:
    """``part_size``, grown in whole MiB so that ``size_hint`` bytes fit in :data:`MAX_PARTS` parts."""
    needed = -(-size_hint // MAX_PARTS)
    return max(part_size, -(-needed // MiB) * MiB)


class _PartUploader:
    """Uploads parts on a small thread pool; ``submit`` blocks while ``max_in_flight`` parts are pending.

    The blocking is the back-pressure that bounds memory: a fast source never gets more than
    ``max_in_flight`` parts ahead of the upload. A part that failed makes the next ``submit`` raise.
    """

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str, *, workers: int, max_in_flight: int) -> None:
        self._client = client
        self._target = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cogvideo-s3-part")
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._futures: list[Future[dict[str, Any]]] = []

    def _upload(self, number: int, body: bytearray) -> dict[str, Any]:
        answer = self._client.upload_part(PartNumber=number, Body=body, **self._target)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _raise_if_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def submit(self, body: bytearray) -> None:
        self._raise_if_failed()
        self._slots.acquire()
        try:
            future = self._pool.submit(self._upload, len(self._futures) + 1, body)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _f: self._slots.release())
        self._futures.append(future)

    def finish(self) -> list[dict[str, Any]]:
        """Wait for every part; the list ``complete_multipart_upload`` needs."""
        return [f.result() for f in self._futures]

    def close(self) -> None:
        """Drop queued parts and wait for running ones (an abort must come after the last upload)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def upload_stream(
    client: Any,
    bucket: str,
    key: str,
    chunks: Iterable[bytes],
    *,
    part_size: int,
    size_hint: int,
    workers: int,
    max_in_flight: int,
    extra_args: Mapping[str, Any] | None = None,
    log: Any = None,
) -> UploadedObject:
    """Write ``chunks`` as the object ``s3://bucket/key``; returns its size and sha256.

    ``size_hint``: the most bytes the stream may hold (its announced length, or the caller's cap), so
    that ``part_size`` can be grown to fit it in S3's 10,000 parts (:func:`part_size_for`).
    ``extra_args`` go to ``create_multipart_upload`` (``ContentType``, ``Metadata``...). The upload is
    created before the first chunk is read: a stream the caller can refuse from its headers should be
    refused before this is called. On any exception the multipart upload is aborted (a failed abort is
    logged to ``log``, a ``logging.Logger`` or a task's logger: the original error matters more) and
    the exception raised again."""
    log = log or _log
    part_size = part_size_for(size_hint, part_size)
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key, **dict(extra_args or {}))["UploadId"]
    uploader = _PartUploader(client, bucket, key, upload_id, workers=workers, max_in_flight=max_in_flight)
    digest = hashlib.sha256()
    size = 0
    try:
        buffer = bytearray()
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            buffer += chunk
            if len(buffer) >= part_size:
                uploader.submit(buffer)
                buffer = bytearray()
        if buffer:
            uploader.submit(buffer)
        del buffer
        parts = uploader.finish()
        uploader.close()
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        uploader.close()
        _abort(client, bucket, key, upload_id, log)
        raise
    return UploadedObject(size, digest.hexdigest())


def _abort(client: Any, bucket: str, key: str, upload_id: str, log: Any) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception:
        # A leftover upload is invisible, and a lifecycle rule (AbortIncompleteMultipartUpload) reclaims it.
        log.exception("Could not abort multipart upload %s of %s", upload_id, s3_uri(bucket, key))
    else:
        log.warning("Aborted the multipart upload of %s: no partial object was written", s3_uri(bucket, key))


__all__ = [
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "UploadedObject",
    "part_size_for",
    "upload_stream",
]
