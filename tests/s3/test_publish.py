"""CogVideoPublishOperator against a real S3 server (SeaweedFS): an approved video and its cover copied
server-side to the published layout with their exact bytes and sha256, one asset event per product
carrying its checksum, and nothing published from an object that is not the one the reviewer approved."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import Asset

from airflow_provider_cogvideo.operators.publish import CogVideoPublishOperator, published_key
from tests.s3.helpers import AWS_CONN_ID, object_keys

PUBLISHED = Asset("s3://published/videos")
OTHER = Asset("s3://published/feed")
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42 an approved mug video " * 100
COVER_BYTES = b"\x89PNG\r\n\x1a\n the mug's cover"
VIDEO_KEY = "videos/mug/default/0123456789abcdef-job-1.mp4"
COVER_KEY = "videos/mug/default/0123456789abcdef-job-1.png"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Accessor:
    """What ``outlet_events[asset]`` gives a task: an ``extra`` to set, partitions to add."""

    def __init__(self) -> None:
        self.extra: dict[str, Any] = {}
        self.partitions: list[str] = []

    def add_partitions(self, keys: list[str]) -> None:
        self.partitions.extend(keys)


class OutletEvents(dict):
    """``outlet_events``: one accessor per asset, made when first asked for."""

    def __missing__(self, asset: Any) -> Accessor:
        self[asset] = Accessor()
        return self[asset]


def stored(s3: Any, bucket: str, key: str, body: bytes, *, tag: str | None, content_type: str) -> None:
    """An object as the transfer leaves it: uploaded, then tagged with its sha256."""
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    if tag is not None:
        s3.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "sha256", "Value": tag}]})


def video(bucket: str, **more: Any) -> dict[str, Any]:
    """The approved video, as the transfer returned it."""
    return {
        "id": "job-1",
        "s3_uri": f"s3://{bucket}/{VIDEO_KEY}",
        "cover_s3_uri": f"s3://{bucket}/{COVER_KEY}",
        "sha256": sha(VIDEO_BYTES),
        "size": len(VIDEO_BYTES),
        "prompt": "A red mug turns slowly.",
        "metadata": {"product_id": "mug", "variant": "default", "title": "Red mug"},
        **more,
    }


def approval(**more: Any) -> dict[str, Any]:
    return {
        "product_id": "mug",
        "variant": "default",
        "round": 2,
        "job_id": "job-1",
        "state": "approved",
        "by": "ana",
        **more,
    }


@pytest.fixture
def source(s3: Any, bucket: str) -> str:
    stored(s3, bucket, VIDEO_KEY, VIDEO_BYTES, tag=sha(VIDEO_BYTES), content_type="video/mp4")
    stored(s3, bucket, COVER_KEY, COVER_BYTES, tag=sha(COVER_BYTES), content_type="image/png")
    return bucket


def publisher(bucket: str, the_video: Any, decision: Any, **kw: Any) -> CogVideoPublishOperator:
    args: dict[str, Any] = {
        "task_id": "publish_2",
        "video": the_video,
        "decision": decision,
        "publish_bucket": bucket,
        "publish_prefix": "published/",
        "outlets": [PUBLISHED, OTHER],
        "aws_conn_id": AWS_CONN_ID,
        **kw,
    }
    return CogVideoPublishOperator(**args)


def test_an_approved_video_and_its_cover_are_published_with_their_checksums(s3: Any, source: str) -> None:
    events = OutletEvents()
    result = publisher(source, video(source), approval()).execute({"outlet_events": events})

    published_video, published_cover = "published/mug/default.mp4", "published/mug/default.png"
    assert result == {
        "product_id": "mug",
        "variant": "default",
        "job_id": "job-1",
        "round": 2,
        "approved_by": "ana",
        "sha256": sha(VIDEO_BYTES),
        "video": f"s3://{source}/{published_video}",
        "cover": f"s3://{source}/{published_cover}",
        "cover_sha256": sha(COVER_BYTES),
    }
    for key, body, content_type in (
        (published_video, VIDEO_BYTES, "video/mp4"),
        (published_cover, COVER_BYTES, "image/png"),
    ):
        got = s3.get_object(Bucket=source, Key=key)
        assert got["Body"].read() == body, "the exact bytes"
        assert got["ContentType"] == content_type
        assert got["Metadata"]["sha256"] == sha(body)
        assert got["Metadata"]["product-id"] == "mug" and got["Metadata"]["job-id"] == "job-1"
        tags = s3.get_object_tagging(Bucket=source, Key=key)["TagSet"]
        assert tags == [{"Key": "sha256", "Value": sha(body)}]
    assert object_keys(s3, source) == sorted([VIDEO_KEY, COVER_KEY, published_video, published_cover])

    extra = {
        "product_id": "mug",
        "variant": "default",
        "uri": f"s3://{source}/{published_video}",
        "sha256": sha(VIDEO_BYTES),
        "cover_uri": f"s3://{source}/{published_cover}",
        "job_id": "job-1",
        "round": 2,
        "approved_by": "ana",
    }
    assert events[PUBLISHED].extra == extra and events[OTHER].extra == extra, "one event per outlet"
    assert events[PUBLISHED].extra is not events[OTHER].extra
    assert events[PUBLISHED].partitions == [], "no partition key unless asked: plain consumers still run"


def test_a_later_approval_replaces_the_published_video(s3: Any, source: str) -> None:
    publisher(source, video(source), approval()).execute({"outlet_events": OutletEvents()})
    newer = b"the round 3 video"
    newer_key = VIDEO_KEY.replace("job-1", "job-2")
    stored(s3, source, newer_key, newer, tag=sha(newer), content_type="video/mp4")
    the_video = video(source, id="job-2", s3_uri=f"s3://{source}/{newer_key}", sha256=sha(newer), cover_s3_uri=None)
    result = publisher(source, the_video, approval(job_id="job-2", round=3)).execute({})
    assert s3.get_object(Bucket=source, Key="published/mug/default.mp4")["Body"].read() == newer
    assert (result["cover"], result["cover_sha256"]) == (None, None)


def test_partition_events_add_the_products_key(source: str) -> None:
    events = OutletEvents()
    publisher(source, video(source), approval(), partition_events=True).execute({"outlet_events": events})
    assert events[PUBLISHED].partitions == ["mug/default"]


def test_a_tampered_source_is_not_published(s3: Any, source: str) -> None:
    """The object at the approved key was replaced after the review: its recorded sha256 is another."""
    tampered = b"not the video the reviewer watched"
    stored(s3, source, VIDEO_KEY, tampered, tag=sha(tampered), content_type="video/mp4")
    events = OutletEvents()
    with pytest.raises(AirflowFailException, match="not the object that was reviewed; nothing published"):
        publisher(source, video(source), approval()).execute({"outlet_events": events})
    assert object_keys(s3, source) == sorted([VIDEO_KEY, COVER_KEY]), "nothing published"
    assert dict(events) == {}, "no asset event"


def test_a_source_without_its_sha256_tag_is_not_published(s3: Any, source: str) -> None:
    """An upload the transfer did not finish (the tag comes last) is not the approved object."""
    stored(s3, source, VIDEO_KEY, VIDEO_BYTES, tag=None, content_type="video/mp4")
    s3.delete_object_tagging(Bucket=source, Key=VIDEO_KEY)
    with pytest.raises(AirflowFailException, match="records sha256 None"):
        publisher(source, video(source), approval()).execute({})
    assert object_keys(s3, source) == sorted([VIDEO_KEY, COVER_KEY])


def test_a_source_that_is_gone_is_not_published(s3: Any, source: str) -> None:
    s3.delete_object(Bucket=source, Key=VIDEO_KEY)
    with pytest.raises(AirflowFailException, match=f"s3://{source}/{VIDEO_KEY} is gone: nothing to publish"):
        publisher(source, video(source), approval()).execute({})
    assert object_keys(s3, source) == [COVER_KEY]


@pytest.mark.parametrize(
    ("decision", "outcome", "reason"),
    [
        # Not approved: skipped (a branch per map index is not always honoured inside a mapped group).
        (approval(state="held"), AirflowSkipException, "not approved: 'held'"),
        (approval(state="rejected_by_review"), AirflowSkipException, "not approved: 'rejected_by_review'"),
        (approval(state="regenerating"), AirflowSkipException, "not approved: 'regenerating'"),
        (None, AirflowSkipException, "not approved: None"),  # the review task was skipped
        ("approved", AirflowSkipException, "not approved: 'approved'"),  # text is no decision
        # Approved, but another video: a wiring mistake, failed.
        (
            approval(job_id="job-0"),
            AirflowFailException,
            "the decision is about job 'job-0', this video is job 'job-1'",
        ),
    ],
)
def test_only_an_approval_of_this_very_video_is_published(
    s3: Any, source: str, decision: Any, outcome: type[Exception], reason: str
) -> None:
    copies: list[Any] = []
    op = publisher(source, video(source), decision)
    op.s3_client.meta.events.register("before-call.s3.CopyObject", lambda **kw: copies.append(kw))
    events = OutletEvents()
    with pytest.raises(outcome) as raised:
        op.execute({"outlet_events": events})
    assert str(raised.value) == reason
    assert copies == [] and dict(events) == {}, "nothing copied, no asset event"
    assert object_keys(s3, source) == sorted([VIDEO_KEY, COVER_KEY])


@pytest.mark.parametrize(
    "the_video", [None, {"id": "job-1", "s3_uri": "s3://b/k.mp4"}, {"id": "job-1", "metadata": "mug"}]
)
def test_a_video_without_metadata_is_refused(source: str, the_video: Any) -> None:
    with pytest.raises(AirflowFailException, match="video must be a transfer result with metadata"):
        publisher(source, the_video, approval()).execute({})


def test_the_published_layout() -> None:
    assert (
        published_key("published/", "mug", "default", "videos/x/y.MP4", default_ext=".mp4")
        == "published/mug/default.mp4"
    )
    assert published_key("p/", "sku 1", "9:16", "videos/x/y", default_ext=".png").startswith("p/sku-1-")
    assert published_key("p/", "sku 1", "9:16", "videos/x/y", default_ext=".png").endswith(".png")
