"""CogVideoPublishOperator: an approved video and its cover, copied server-side to where they are used.

The copy is S3's ``CopyObject`` (no byte passes through the worker), made only from the object the
reviewer approved: the source's recorded sha256 (its ``sha256`` tag, written by the transfer once the
upload completed) must be the approved video's, and the copy is conditional on the source's ETag read
just before (``CopySourceIfMatch``), so a video replaced in between is never published under an
approval it did not get. The published objects carry the sha256 as metadata and tag.

The published layout is one key per (product, variant), ``<publish_prefix><slug(product)>/<slug(variant)>.mp4``
(+ the cover's extension): what a distribution job reads is the product's current approved video. A
later approval replaces it; the index keeps every paid video under its own key.

**One asset event per published product**, on each of the task's outlet assets, its ``extra`` the
product's own: ``product_id``, ``variant``, ``uri``, ``sha256``, ``cover_uri``, ``job_id``, ``round``,
``approved_by``. The task is mapped one instance per product, so each event has its own accessor and
its own ``extra`` (Airflow shares one ``extra`` per accessor, so one task emitting N partitions could
not carry N checksums). No partition key by default: on Airflow 3.3 an event with a partition key
queues only partition-aware DAGs, so a consumer scheduled plainly on the asset would never run.
``partition_events=True`` adds the key ``<product_id>/<variant>`` on Airflow 3.3 for consumers with a
partitioned timetable.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.operators.s3_hook import S3HookMixin
from airflow_provider_cogvideo.review import ReviewState
from airflow_provider_cogvideo.s3 import checked_key, checked_key_template, parse_s3_uri, s3_uri
from airflow_provider_cogvideo.transfers.idempotency import SHA256_TAG, existing_object
from airflow_provider_cogvideo.video_index import DEFAULT_VARIANT, slug

if TYPE_CHECKING:
    from airflow.sdk import Context

PARTITION_KEY_MAX_CHARS = 250
"""Airflow's limit on a partition key."""


def published_key(prefix: str, product_id: str, variant: str, source_key: str, *, default_ext: str) -> str:
    """Where a product's approved object is published: ``<prefix><slug(product)>/<slug(variant)><ext>``."""
    ext = posixpath.splitext(source_key)[1].lower() or default_ext
    return checked_key(f"{prefix}{slug(product_id)}/{slug(variant)}{ext}", "published key")


class CogVideoPublishOperator(S3HookMixin, BaseOperator):
    """Copy an approved video and its cover to the published location and emit its asset event
    (module docstring). Returns ``{product_id, variant, video, cover, sha256, cover_sha256, job_id,
    round}``.

    :param video: the approved video: a transfer result (``s3_uri``, ``cover_s3_uri``, ``sha256``,
        ``id``, ``metadata`` with ``product_id`` and ``variant``), the one its review task was given.
    :param decision: the review task's decision (its ``.output``): its ``state`` must be ``approved``
        (any other skips the task: nothing is published) and its ``job_id`` the video's ``id`` (another
        fails the task).
    :param publish_bucket: the bucket to publish to (may be the videos' own). The copy is server-side:
        the connection reads the source (``GetObject``, ``GetObjectTagging``) and writes here
        (``PutObject``, ``PutObjectTagging``).
    :param publish_prefix: the prefix of the published keys, e.g. ``published/`` (a ``/`` is added when
        it lacks one; its fixed text is checked against :data:`~airflow_provider_cogvideo.s3.KEY_RULES`
        when the operator is built).
    :param partition_events: add the partition key ``<product_id>/<variant>`` to each event (Airflow
        3.3+; ignored before): only for consumers with a partitioned timetable, as a consumer scheduled
        plainly on the asset is not queued by a partitioned event.
    :param aws_conn_id: ``aws`` connection for ``S3Hook``.

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = ("video", "decision", "publish_bucket", "publish_prefix")
    template_fields_renderers = {"video": "json", "decision": "json"}
    ui_color = "#e0f5e9"

    def __init__(
        self,
        *,
        video: Any,
        decision: Any,
        publish_bucket: str,
        publish_prefix: str = "published/",
        partition_events: bool = False,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon")
        super().__init__(**kwargs)
        self.video = video
        self.decision = decision
        self.publish_bucket = publish_bucket
        self.publish_prefix = checked_key_template(publish_prefix, "publish_prefix", placeholders=False, prefix=True)
        self.partition_events = partition_events
        self.aws_conn_id = aws_conn_id

    @cached_property
    def s3_client(self) -> Any:
        return self.s3_hook.get_conn()

    def execute(self, context: Context) -> dict[str, Any]:
        video, decision = self.video, self.decision
        if not isinstance(decision, Mapping) or decision.get("state") != ReviewState.APPROVED.value:
            # The review's branch skips this task already; inside a mapped task group Airflow (3.3.2)
            # does not always honour a branch per map index, so the decision is checked here too.
            state = decision.get("state") if isinstance(decision, Mapping) else decision  # dict("...") would raise
            raise AirflowSkipException(f"not approved: {state if state is None else str(state)[:80]!r}")
        if not isinstance(video, Mapping) or not isinstance(video.get("metadata"), Mapping):
            raise AirflowFailException("video must be a transfer result with metadata")
        if decision.get("job_id") != video.get("id"):
            raise AirflowFailException(
                f"the decision is about job {decision.get('job_id')!r}, this video is job {video.get('id')!r}"
            )
        metadata = video["metadata"]
        product_id, variant = str(metadata.get("product_id")), str(metadata.get("variant") or DEFAULT_VARIANT)
        prefix = str(self.publish_prefix or "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        published = {
            "product_id": product_id,
            "variant": variant,
            "job_id": video.get("id"),
            "round": decision.get("round"),
            "approved_by": decision.get("by"),
        }
        source = parse_s3_uri(video.get("s3_uri"))
        if source is None:
            raise AirflowFailException(f"video.s3_uri is not an s3:// URI: {video.get('s3_uri')!r}")
        target = published_key(prefix, product_id, variant, source[1], default_ext=".mp4")
        published["sha256"] = self._copy(source, target, expected=video.get("sha256"), published=published)
        published["video"] = s3_uri(self.publish_bucket, target)
        cover = parse_s3_uri(video.get("cover_s3_uri"))
        published["cover"] = published["cover_sha256"] = None
        if cover is not None:
            cover_target = published_key(prefix, product_id, variant, cover[1], default_ext=".png")
            published["cover_sha256"] = self._copy(cover, cover_target, expected=None, published=published)
            published["cover"] = s3_uri(self.publish_bucket, cover_target)
        self._emit(context, published)
        self.log.info("Published %s (sha256 %s) from %s", published["video"], published["sha256"], video["s3_uri"])
        return published

    def _copy(self, source: tuple[str, str], target: str, *, expected: Any, published: Mapping[str, Any]) -> str:
        """Copy ``source`` to ``target`` server-side; its sha256 (the source's tag), which must be
        ``expected`` when that is given."""
        bucket, key = source
        found = existing_object(self.s3_client, bucket, key)
        if found is None:
            raise AirflowFailException(f"{s3_uri(bucket, key)} is gone: nothing to publish")
        sha256 = found.sha256
        if not sha256 or (expected and sha256 != expected):
            raise AirflowFailException(
                f"{s3_uri(bucket, key)} records sha256 {sha256!r}, the approved video's is {expected!r}: "
                "not the object that was reviewed; nothing published"
            )
        self.s3_client.copy_object(
            Bucket=self.publish_bucket,
            Key=target,
            CopySource={"Bucket": bucket, "Key": key},
            CopySourceIfMatch=found.etag,
            MetadataDirective="REPLACE",
            ContentType=found.content_type or "application/octet-stream",
            Metadata={
                "sha256": sha256,
                "product-id": str(published["product_id"])[:200],
                "variant": str(published["variant"])[:200],
                "job-id": str(published["job_id"])[:200],
            },
            TaggingDirective="REPLACE",
            Tagging=f"{SHA256_TAG}={sha256}",
        )
        return sha256

    def _emit(self, context: Context, published: Mapping[str, Any]) -> None:
        events = context.get("outlet_events")
        if events is None:
            return
        extra = {
            "product_id": published["product_id"],
            "variant": published["variant"],
            "uri": published["video"],
            "sha256": published["sha256"],
            "cover_uri": published["cover"],
            "job_id": published["job_id"],
            "round": published["round"],
            "approved_by": published["approved_by"],
        }
        partition = f"{published['product_id']}/{published['variant']}"[:PARTITION_KEY_MAX_CHARS]
        for outlet in self.outlets:
            accessor = events[outlet]
            accessor.extra = dict(extra)
            if self.partition_events and hasattr(accessor, "add_partitions"):
                accessor.add_partitions([partition])


__all__ = ["CogVideoPublishOperator", "published_key"]
