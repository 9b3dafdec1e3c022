"""The video index's concurrency model against a real S3 server (SeaweedFS), with real concurrent
connections: uploads finishing together each write their own entry while compactions run, and no
entry is lost. (moto's in-process server is not safe for this many threads on one client.)"""

from __future__ import annotations

import threading
from typing import Any

from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS
from airflow_provider_cogvideo.video_index import compact, load_index, write_entry
from tests.unit.test_video_index import BUCKET, LOCATION, make_entry, put_video


def test_writers_at_once_and_a_racing_compaction_lose_no_entry(seaweedfs: SeaweedFS) -> None:
    """Every entry is found afterwards, whatever each compaction saw, and the next compaction holds
    them all. Each thread has its own client, as each upload task has its own process."""
    s3 = seaweedfs.boto3_client()
    if BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=BUCKET)
    for listed in s3.list_objects_v2(Bucket=BUCKET, Prefix=LOCATION.root).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=listed["Key"])
    entries = [put_video(s3, make_entry(n)) for n in range(24)]
    start = threading.Barrier(len(entries) + 2)
    errors: list[BaseException] = []

    def run(work: Any) -> None:
        client = seaweedfs.boto3_client()
        start.wait()
        try:
            work(client)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    jobs = [lambda c, e=e: write_entry(c, LOCATION, e) for e in entries] + [lambda c: compact(c, LOCATION)] * 2
    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    index = load_index(s3, LOCATION)
    assert sorted(index.entries.values(), key=lambda e: e.fingerprint) == sorted(entries, key=lambda e: e.fingerprint)
    assert all(index.trusted(entry) for entry in entries)
    compact(s3, LOCATION)
    assert load_index(s3, LOCATION).requests["get"] == 1
