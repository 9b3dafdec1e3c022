"""``s3_multipart.upload_stream`` against a recording fake client: parts, checksum, the in-flight bound
that bounds memory, and the abort on every kind of failure (the real S3 server runs the same code
through the transfer: ``tests/s3/test_cogvideo_to_s3.py``)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cogvideo.s3_multipart import MAX_PARTS, MIN_PART_SIZE, part_size_for, upload_stream
from airflow_provider_cogvideo.sizes import GiB, MiB

PART = MIN_PART_SIZE


class FakeClient:
    """Records the multipart calls; ``upload_part`` may wait on ``gate`` or fail on one part number."""

    def __init__(self, *, fail_part: int | None = None, abort_fails: bool = False) -> None:
        self.calls: list[str] = []
        self.parts: dict[int, int] = {}
        self.completed: list[dict[str, Any]] | None = None
        self.fail_part = fail_part
        self.abort_fails = abort_fails
        self.gate: threading.Event | None = None
        self.pending = 0
        self.most_pending = 0
        self._lock = threading.Lock()

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("create")
        self.created = kwargs
        return {"UploadId": "u1"}

    def upload_part(self, *, PartNumber: int, Body: bytearray, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self.pending += 1
            self.most_pending = max(self.most_pending, self.pending)
        try:
            if self.gate is not None:
                self.gate.wait(5)
            if PartNumber == self.fail_part:
                raise OSError(f"part {PartNumber} refused")
            self.parts[PartNumber] = len(Body)
            return {"ETag": f"e{PartNumber}"}
        finally:
            with self._lock:
                self.pending -= 1

    def complete_multipart_upload(self, *, MultipartUpload: dict[str, Any], **kwargs: Any) -> None:
        self.calls.append("complete")
        self.completed = MultipartUpload["Parts"]

    def abort_multipart_upload(self, **kwargs: Any) -> None:
        self.calls.append("abort")
        if self.abort_fails:
            raise OSError("abort refused")


def chunks(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield bytes([sent % 251]) * piece
        sent += piece


class Source:
    """``chunks(total)`` that counts what has been read of it."""

    def __init__(self, total: int) -> None:
        self.read = 0
        self._chunks = chunks(total)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.read += len(chunk)
            yield chunk


def upload(client: FakeClient, source: Any, **kwargs: Any) -> Any:
    args = {"part_size": PART, "size_hint": 0, "workers": 2, "max_in_flight": 2, **kwargs}
    return upload_stream(client, "bucket", "key", source, **args)


def test_parts_are_cut_numbered_completed_and_hashed() -> None:
    total = 2 * PART + 12345
    client = FakeClient()
    uploaded = upload(client, chunks(total), extra_args={"ContentType": "video/mp4", "Metadata": {"a": "b"}})
    assert uploaded.size == total
    assert uploaded.sha256 == hashlib.sha256(b"".join(chunks(total))).hexdigest()
    assert client.created == {"Bucket": "bucket", "Key": "key", "ContentType": "video/mp4", "Metadata": {"a": "b"}}
    assert client.parts == {1: PART, 2: PART, 3: 12345}
    assert client.completed == [{"PartNumber": n, "ETag": f"e{n}"} for n in (1, 2, 3)]
    assert client.calls == ["create", "complete"]


def test_the_reader_waits_while_max_in_flight_parts_are_pending() -> None:
    """The back-pressure that bounds memory: with uploads held, reading stops after max_in_flight parts
    (plus the one being filled) instead of buffering the stream."""
    client = FakeClient()
    client.gate = threading.Event()
    source = Source(10 * PART)
    worker = threading.Thread(target=upload, args=(client, source), kwargs={"workers": 3, "max_in_flight": 2})
    worker.start()
    try:
        time.sleep(1)  # the reader runs as far as it can
        assert client.pending == 2
        assert source.read <= 3 * PART, "at most 2 parts pending and one being filled"
    finally:
        client.gate.set()
        worker.join(10)
    assert client.most_pending <= 2
    assert len(client.parts) == 10


def test_a_failing_source_aborts_and_raises() -> None:
    def source() -> Iterator[bytes]:
        yield from chunks(PART + 1)
        raise ConnectionError("dropped")

    client = FakeClient()
    with pytest.raises(ConnectionError, match="dropped"):
        upload(client, source())
    assert client.calls == ["create", "abort"]


def test_a_failed_part_stops_reading_early_and_aborts() -> None:
    """s3transfer would read the rest of the stream after a failed part; here the next part raises."""
    client = FakeClient(fail_part=1)
    source = Source(40 * PART)
    with pytest.raises(OSError, match="part 1 refused"):
        upload(client, source, workers=1, max_in_flight=1)
    assert source.read < 40 * PART, "the download stopped at the next part"
    assert client.calls == ["create", "abort"]


def test_a_failed_abort_is_logged_and_the_original_error_raised(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeClient(abort_fails=True)

    def source() -> Iterator[bytes]:
        yield b"x"
        raise ValueError("the original")

    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="the original"):
        upload(client, source(), log=logging.getLogger("test_s3_multipart"))
    assert "Could not abort multipart upload u1 of s3://bucket/key" in caplog.text


def test_parts_grow_so_the_largest_stream_fits_in_s3s_part_count() -> None:
    assert part_size_for(12 * MiB, 8 * MiB) == 8 * MiB
    grown = part_size_for(200 * GiB, 8 * MiB)
    assert grown % MiB == 0
    assert grown * MAX_PARTS >= 200 * GiB > (grown - MiB) * MAX_PARTS, "the smallest whole MiB that fits"
