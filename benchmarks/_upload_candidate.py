"""Candidate replacement for ``s3_multipart.upload_stream`` and its ``_PartUploader`` (not a benchmark).

boto3's managed upload (s3transfer) fed by a file-like view of the HTTP stream that hashes and counts
as it goes. Written (before the uploader moved to ``airflow_provider_cogvideo/s3_multipart.py``) to be
pasted into the transfer module as is: it only needs ``CogVideoDownloadError`` and ``MiB`` from the
package, imports boto3 / s3transfer lazily (nothing at parse time) and raises the same messages as
the operator's ``_chunks``.
``benchmarks/transfer_memory.py`` measures it against today's uploader.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_cogvideo.errors import CogVideoDownloadError
from airflow_provider_cogvideo.sizes import MiB

if TYPE_CHECKING:
    import httpx
    from boto3.s3.transfer import TransferConfig

_READ_CHUNK = 256 * 1024


class HashingReader:
    """A read-only, non-seekable file object over a streaming httpx response, for boto3's upload.

    Every chunk is added to the sha256 and the byte count as it arrives. ``read(n)`` returns exactly
    ``n`` bytes until the body ends (what a multipart part needs), then ``b""``. At the end the count
    must equal ``expected`` (the Content-Length): a short body, an empty one or a dropped connection
    raise a retryable :class:`CogVideoDownloadError` from ``read()``, which fails the upload reading
    it instead of letting it complete a short object.

    ``abandon_when``: polled before each chunk; once it answers True (the upload has failed or been
    cancelled) the reader stops downloading and raises.
    """

    def __init__(self, response: httpx.Response, *, expected: int | None, label: str = "download") -> None:
        self._chunks = response.iter_bytes(chunk_size=_READ_CHUNK)
        self._expected = expected
        self._label = label
        self._digest = hashlib.sha256()
        self._leftover = b""
        self._eof = False
        self.size = 0
        self.abandon_when: Callable[[], bool] | None = None

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        want = size if size is not None and size >= 0 else None
        # BytesIO grows in place and getvalue() hands over its buffer without a copy: a part costs
        # its own size (b"".join would hold the chunks and the joined part at once).
        buffer = io.BytesIO()
        have = 0
        while want is None or have < want:
            chunk = self._leftover or self._next_chunk()
            self._leftover = b""
            if not chunk:
                break
            if want is not None and have + len(chunk) > want:
                chunk, self._leftover = chunk[: want - have], chunk[want - have :]
            buffer.write(chunk)
            have += len(chunk)
        return buffer.getvalue()

    def _next_chunk(self) -> bytes:
        import httpx

        if self._eof:
            return b""
        if self.abandon_when is not None and self.abandon_when():
            raise CogVideoDownloadError(
                f"{self._label}: download abandoned after {self.size} bytes: the upload failed or was cancelled"
            )
        try:
            chunk = next(self._chunks, b"")
        except httpx.TransportError as exc:
            raise CogVideoDownloadError(
                f"{self._label}: download dropped after {self.size} of {self._expected or '?'} bytes "
                f"({type(exc).__name__})",
                retryable=True,
            ) from exc
        if chunk:
            self._digest.update(chunk)
            self.size += len(chunk)
            return chunk
        self._eof = True
        if self._expected is not None and self.size != self._expected:
            raise CogVideoDownloadError(
                f"{self._label}: download truncated: received {self.size} of {self._expected} bytes (Content-Length)",
                retryable=True,
            )
        if self.size == 0:
            raise CogVideoDownloadError(f"{self._label}: the result file is empty", retryable=True)
        return b""


def upload_transfer_config(*, part_size: int = 8 * MiB, workers: int = 3, parts_in_memory: int = 4) -> TransferConfig:
    """The TransferConfig of :func:`upload_stream`.

    For a non-seekable source s3transfer holds at most ``max_in_memory_upload_chunks`` parts queued or
    uploading (default 10, not a constructor argument of boto3's TransferConfig) plus the part being
    read: that is what bounds memory, like ``max_parts_in_flight`` does today. ``max_io_queue`` and
    ``io_chunksize`` only govern downloads; they are set small for completeness. ``classic`` pins
    s3transfer: with awscrt installed, ``auto`` may pick the CRT manager, for which boto3 warns
    "Config settings may be ignored" (``max_in_memory_upload_chunks`` is s3transfer's).
    """
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=part_size,
        multipart_chunksize=part_size,
        max_concurrency=workers,
        max_io_queue=2,
        io_chunksize=_READ_CHUNK,
        preferred_transfer_client="classic",
    )
    config.max_in_memory_upload_chunks = parts_in_memory
    return config


def upload_stream(
    client: Any,
    response: httpx.Response,
    *,
    bucket: str,
    key: str,
    expected: int | None,
    extra_args: Mapping[str, Any] | None = None,
    part_size: int = 8 * MiB,
    workers: int = 3,
    parts_in_memory: int = 4,
    label: str = "download",
) -> tuple[int, str]:
    """Stream ``response`` into ``s3://bucket/key`` with boto3's managed upload; returns ``(size, sha256)``.

    Bodies of at least ``part_size`` go up as a multipart upload on ``workers`` threads while the
    download continues; at most ``parts_in_memory`` parts are queued or uploading plus the one being
    read (measured peak RSS growth at 8 MiB parts: ~66 MiB with 4, 51-59 MiB with 3 (one run 73), as glibc keeps
    part of what the upload threads free; ``benchmarks/README.md`` section 5). Any failure (dropped
    or short download, S3 error, an exception such as a task kill in the calling thread) makes
    s3transfer abort the multipart upload before this raises, so no object appears; the reader
    stops downloading as soon as the transfer has failed. ``extra_args``: ``ContentType``,
    ``Metadata``, … (boto3's ``ALLOWED_UPLOAD_ARGS``).
    """
    from boto3.s3.transfer import create_transfer_manager

    reader = HashingReader(response, expected=expected, label=label)
    config = upload_transfer_config(part_size=part_size, workers=workers, parts_in_memory=parts_in_memory)
    with create_transfer_manager(client, config) as manager:
        future = manager.upload(reader, bucket, key, extra_args=dict(extra_args or {}))
        # Without this, s3transfer keeps reading (and discarding) the rest of the body after a failure.
        reader.abandon_when = future.done
        future.result()
    return reader.size, reader.sha256


__all__ = ["HashingReader", "upload_stream", "upload_transfer_config"]
