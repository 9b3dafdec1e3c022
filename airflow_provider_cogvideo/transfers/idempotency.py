"""What the transfer does with a target object, decided before any byte is downloaded: so a retry
after a completed upload is a no-op, a retry after a crash mid-upload starts over (the aborted upload
left nothing), and a foreign object is never overwritten unless ``replace=True`` says so.

What the target holds is read from S3 (:func:`existing_object`: HEAD for the size and the job id in
the object metadata, the tags for the sha256 recorded after the upload completed) and decided by
:func:`plan_for`:

===========================================================  =======================================
target object                                                :class:`Plan`
===========================================================  =======================================
absent                                                       ``UPLOAD``
same job id and a recorded sha256                            ``SKIP``: leave alone, return its
                                                             recorded size and sha256
same job id, no sha256 (interrupted before tagging)          ``UPLOAD`` again (it is ours)
other content, ``replace=True``                              ``UPLOAD`` (overwrite)
other job / foreign object, ``replace=False``                refused (AirflowFailException), nothing
                                                             downloaded
a plain URL was given (no job id) and the object has a       ``VERIFY``: stream and hash the download
recorded sha256, ``replace=False``                           only; same sha256 → leave alone, else
                                                             refused (:func:`verified`)
===========================================================  =======================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.s3 import head_or_none
from airflow_provider_cogvideo.transfers.keys import META_JOB_ID

SHA256_TAG = "sha256"
"""The object tag that holds the sha256 of what was stored, recorded once the upload has completed
(S3 metadata cannot change without copying the object; tags can)."""


class Plan(enum.Enum):
    """What the transfer does with one target object."""

    UPLOAD = "upload"
    """Download and write."""
    SKIP = "skip"
    """Already holds this job's file, checksummed: nothing downloaded."""
    VERIFY = "verify"
    """No job id to compare and a checksummed object: download and hash only, then compare."""


@dataclass(frozen=True)
class Existing:
    """What a key holds now: its size, the job id in its metadata, its recorded sha256, its ETag and
    content type."""

    size: int
    job_id: str | None
    sha256: str | None
    etag: str = ""
    """What a copy conditional on this very object names (``CopySourceIfMatch``: publishing)."""
    content_type: str | None = None


def existing_object(client: Any, bucket: str, key: str) -> Existing | None:
    """What ``s3://bucket/key`` holds (HEAD, then its tags), or None when there is no such object."""
    head = head_or_none(client, bucket, key)
    if head is None:
        return None
    tags = client.get_object_tagging(Bucket=bucket, Key=key).get("TagSet", [])
    return Existing(
        size=int(head["ContentLength"]),
        job_id=(head.get("Metadata") or {}).get(META_JOB_ID),
        sha256={t["Key"]: t["Value"] for t in tags}.get(SHA256_TAG),
        etag=str(head.get("ETag", "")),
        content_type=head.get("ContentType"),
    )


def plan_for(existing: Existing | None, *, job_id: str | None, replace: bool, uri: str, log: Any) -> Plan:
    """The plan for the object at ``uri`` (the module's table); refused when ``replace=False`` forbids
    the write. ``log`` is told when an object is replaced or transferred again."""
    if existing is None:
        return Plan.UPLOAD
    if job_id and existing.job_id == job_id and existing.sha256:
        return Plan.SKIP
    if replace:
        log.info("%s exists and will be replaced (replace=True)", uri)
        return Plan.UPLOAD
    if job_id and existing.job_id == job_id:
        log.info("%s holds job %s without a recorded sha256: transferring again", uri, job_id)
        return Plan.UPLOAD
    if not job_id and existing.sha256:
        return Plan.VERIFY
    raise AirflowFailException(
        f"{uri} already exists ({existing.size} bytes, job {existing.job_id or 'unknown'}, "
        f"sha256 {existing.sha256 or 'not recorded'}) and is not the output of "
        f"{'job ' + job_id if job_id else 'this URL'}; refusing to overwrite it (replace=False). "
        "Set replace=True or choose another s3_key."
    )


def verified(existing: Existing, sha256: str, uri: str) -> None:
    """A :attr:`Plan.VERIFY` download's ``sha256`` must be the one recorded on the object, else refused."""
    if sha256 != existing.sha256:
        raise AirflowFailException(
            f"{uri} already exists with sha256 {existing.sha256}, the download has {sha256}; "
            "refusing to overwrite it (replace=False)"
        )


__all__ = ["SHA256_TAG", "Existing", "Plan", "existing_object", "plan_for", "verified"]
