"""Stream a generated video (and its cover image) from the result URL into S3.

Why not ``HttpToS3Operator``: it reads the whole body into memory. Here the video streams from the
hook's download into :func:`~airflow_provider_cogvideo.s3_multipart.upload_stream`, an explicit
multipart upload with bounded memory, hashed as it goes and aborted on any failure (why not boto3's
managed upload: that module's docstring). The operator puts the pieces together:

* **what may be read**: the video up to ``max_video_bytes`` (4 GiB), the cover up to 50 MiB, enforced
  as the body streams by the hook's reader (``stream_download(max_bytes=...)``, which also refuses a
  compressed or too slow body); :meth:`~CogVideoToS3Operator._opened` adds what only a whole result
  file tells: a ``Content-Length`` over the cap is refused before an upload is created, a body short
  of its ``Content-Length`` or empty is retryable, one over its cap fails without retries;
* **where and with what** (:mod:`.keys`): the keys made from the templates, and the object metadata
  known before the download, set when the upload is created; the sha256, known only at the end, is
  recorded as the object tag ``sha256`` right after completion. A crash between completion and
  tagging leaves an object of the same job without a checksum, which the next run transfers again;
* **whether to write at all** (:mod:`.idempotency`): for each target object, upload, leave alone, or
  download and compare only, decided (and a foreign object refused) before any byte is downloaded.

Signed result URLs expire: a 403/404/410 on download makes the operator query the job once for fresh
URLs (``CogVideoHook.get_task``) and retry; then it fails naming the job id.

What may be shown: result URLs carry signatures (``X-Amz-Signature``, ``X-Amz-Security-Token``...).
They appear in messages only through :func:`~.redact.redact_url`, and the returned dict carries them
redacted too (``video_url``/``cover_image_url``: scheme, host and path): downstream tasks and
manifests use ``s3_uri``/``cover_s3_uri``, and a signed URL expires anyway. URLs in product metadata
are redacted in the object metadata; the ``metadata`` dict itself is returned as given (ingestion
already strips signatures from product fields).

What Airflow sees of it:

* an asset event per video through the ``AssetAlias`` outlet (``asset_alias``), declared where Airflow
  reads outlets when the DAG is parsed: in ``__init__`` for a plain task, and in :meth:`partial` for
  ``CogVideoToS3Operator.partial(...).expand(...)``, whose outlets come from the partial kwargs (the
  operator is only built when each mapped instance runs);
* the extra link "Video in S3" (:class:`~.links.CogVideoS3VideoLink`): the console URL of the stored
  video, computed from the aws connection (``endpoint_url``, region) when the transfer ends and kept
  in XCom ``video_s3_link``, so showing it reads no connection;
* OpenLineage (with ``apache-airflow-providers-openlineage``): the result files downloaded as inputs
  (scheme, host and path: no signature), the video and cover written as outputs (``s3://bucket`` / key).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException
from airflow.sdk import Asset, AssetAlias, BaseOperator

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.errors import (
    CogVideoDownloadError,
    CogVideoDownloadTooLargeError,
    CogVideoValidationError,
)
from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.failures import failure_recorded
from airflow_provider_cogvideo.links import CogVideoS3VideoLink, s3_console_url
from airflow_provider_cogvideo.mixins import CogVideoHookMixin
from airflow_provider_cogvideo.redact import redact_url
from airflow_provider_cogvideo.s3 import checked_key_template, content_type, s3_uri
from airflow_provider_cogvideo.s3_multipart import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    UploadedObject,
    upload_stream,
)
from airflow_provider_cogvideo.sizes import GiB, MiB
from airflow_provider_cogvideo.transfers.idempotency import (
    SHA256_TAG,
    Existing,
    Plan,
    existing_object,
    plan_for,
    verified,
)
from airflow_provider_cogvideo.transfers.keys import (
    AUTO_COVER_KEY,
    cover_key,
    format_key,
    header_safe,
    s3_metadata,
    url_stem,
)
from airflow_provider_cogvideo.transfers.results import checked_url, parse_result
from airflow_provider_cogvideo.validation import bounded, is_unset
from airflow_provider_cogvideo.video_index import (
    INDEX_INPUTS,
    REVIEW_MARKER,
    IndexLocation,
    entry_from_upload,
    indexed_key,
    stored_object,
    write_entry,
)
from airflow_provider_cogvideo.xcom import DRY_RUN_STATUS, XCOM_S3_LINK

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from airflow_provider_cogvideo.hooks.downloads import Download


DEFAULT_ASSET_ALIAS = "cogvideo-videos"
_COVER_MAX_BYTES = 50 * MiB
"""Covers are tens of KB; past this a "cover" is a runaway body, cut off as it streams."""
_VIDEO = "video (max_video_bytes)"
_COVER = "cover image"
"""How a refusal names the file and the setting that capped it."""
_URL_FIELDS = ("video_url", "cover_image_url")
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_PARTS_IN_FLIGHT = 4
DEFAULT_UPLOAD_WORKERS = 3
DEFAULT_MAX_VIDEO_BYTES = 4 * GiB
"""The API's clips last seconds and weigh tens of MB even in 4K: 4 GiB is a hundred times that, and
still stops a runaway body long before it fills a disk, a bucket or a bill."""
PART_SIZE_RANGE = (MIN_PART_SIZE, MAX_PART_SIZE)
"""S3's own bounds on a multipart part."""
PARTS_IN_FLIGHT_RANGE = (1, 32)
"""Past a few parts queued, more buy no overlap, only memory (``(n + 1) * part_size``)."""
UPLOAD_WORKERS_RANGE = (1, 10)
"""botocore keeps 10 connections per client (``max_pool_connections``): more threads only wait."""
MAX_VIDEO_BYTES_RANGE = (1 * MiB, MAX_OBJECT_SIZE)
"""From less than any real video to S3's largest object."""


@dataclass(frozen=True)
class _Target:
    """One object to write: its key, the plan for it, and what it holds now."""

    key: str
    plan: Plan
    existing: Existing | None


@dataclass(frozen=True)
class _Stored:
    """One object as written (or found) by this operator."""

    uri: str
    size: int
    sha256: str
    already_present: bool


def _with_alias(outlets: Any, alias: str | None) -> list[Any]:
    """``outlets`` (None, one or a list) plus ``AssetAlias(alias)`` once."""
    listed = [] if outlets is None else list(outlets) if isinstance(outlets, (list, tuple)) else [outlets]
    if alias and AssetAlias(name=alias) not in listed:
        listed.append(AssetAlias(name=alias))
    return listed


def _content_length(download: Download) -> int | None:
    """The announced byte count, or None (the hook refuses a compressed body, so it counts the bytes
    that arrive)."""
    raw = download.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


class CogVideoToS3Operator(CogVideoHookMixin, BaseOperator):
    """Copy a generated video and its cover image into S3, streaming, checksummed, idempotent.

    :param result: the ``CogVideoGenerateOperator`` (or sensor) result dict (``id``, ``video_url``,
        ``cover_image_url``, ``metadata``, ``prompt``…), e.g. ``generate.output``, or a plain http(s)
        video URL (no job id then: an expired URL cannot be refreshed). A dict must arrive as a dict
        (an XComArg, or native template rendering), not as text: a ``"{{ ti.xcom_pull(...) }}"``
        string is refused with that advice.
    :type result: dict | str
    :param s3_bucket: target bucket.
    :param video_index: ``s3://bucket/prefix/`` of a video index (:mod:`~airflow_provider_cogvideo.video_index`;
        its bucket must be ``s3_bucket``), instead of ``s3_key``: the video goes to the index's key for
        its product, variant, fingerprint and job (all from the result's ``metadata``, as ingestion with
        the same ``video_index`` sets them), and once it and its cover are stored the index entry is
        written (never before: a crash in between leaves a video without an entry, which a retry or the
        next run writes, never an entry without a video). The returned dict carries it
        (``index_entry``) for the run's compaction.
    :param s3_key: target key (unless ``video_index`` is given); ``{…}`` placeholders are filled from
        the result: a field or an index of one (``{id}``, ``{model}``, ``{request_id}``,
        ``{metadata[product_id]}``), or ``{url_stem}``, the video URL's file name without its
        extension. Attributes, conversions and format specs are refused, and so is a value that is
        empty or holds ``/``, ``\\`` or ``..`` (:func:`~airflow_provider_cogvideo.transfers.keys.format_key`).
        The key follows :data:`~airflow_provider_cogvideo.s3.KEY_RULES`; its fixed text is checked
        here, the whole key when it is made.
    :param cover_s3_key: key for the cover image: ``"auto"`` (default) is the video key with the cover
        URL's extension (``.png`` unless it is ``.jpg``, ``.jpeg`` or ``.webp``); unset (``None``,
        ``""``, or ``"none"``/``"null"`` in any case, as a rendered template gives it:
        :func:`~airflow_provider_cogvideo.validation.is_unset`) skips the cover. Placeholders as for
        ``s3_key``.
    :param replace: overwrite an object that holds something else (another job, or a foreign file).
    :param cogvideo_conn_id: CogVideo connection: to refresh expired URLs, and the downloads' limits
        (``request_timeout``, ``min_transfer_rate``); downloads never send the key.
    :param aws_conn_id: ``aws`` connection for ``S3Hook`` (an ``endpoint_url`` extra selects any
        S3-compatible store).
    :param part_size: multipart part size, 5 MiB to 5 GiB (S3's bounds); grown automatically so the
        largest allowed video (its ``Content-Length``, or ``max_video_bytes`` when unknown) fits in
        S3's 10,000 parts.
    :param max_parts_in_flight: parts queued or uploading at once, 1 to 32; with the part being filled
        this bounds memory to about ``(max_parts_in_flight + 1) * part_size``.
    :param upload_workers: threads uploading parts, 1 to 10 (botocore's connection pool).
    :param max_video_bytes: the largest video accepted, 1 MiB to 5 TiB (default 4 GiB), enforced as
        it streams: over it, the transfer fails without retry and nothing is stored.
    :param asset_alias: name of the ``AssetAlias`` outlet that receives an asset event for the video
        object (``s3://bucket/key``, extra ``sha256``, ``size``, ``job_id``), so downstream DAGs can be
        scheduled on it; ``None`` disables. For a mapped transfer, give it to ``partial()``.

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = ("result", "s3_bucket", "s3_key", "cover_s3_key", "video_index")
    template_fields_renderers = {"result": "json"}
    operator_extra_links = (CogVideoS3VideoLink(),)
    ui_color = "#d6e4ff"

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:  # type: ignore[override]
        """``BaseOperator.partial`` with the ``AssetAlias`` outlet declared: a mapped operator's outlets
        are read from the partial kwargs when the DAG is parsed (``__init__`` only runs per mapped
        instance, too late for the serialized DAG that the scheduler registers aliases from).
        ``asset_alias`` must then be given here, not in ``expand``. Without the ``amazon`` extra the
        DAG fails here, when it is parsed (a mapped instance's ``__init__`` runs only at run time)."""
        require_extra_for_operator(cls, kwargs.get("task_id"), "amazon")
        alias = kwargs.get("asset_alias", DEFAULT_ASSET_ALIAS)
        if alias:
            kwargs["outlets"] = _with_alias(kwargs.get("outlets"), alias)
        return super().partial(**kwargs)

    def __init__(
        self,
        *,
        result: Any,
        s3_bucket: str,
        s3_key: str | None = None,
        cover_s3_key: str | None = AUTO_COVER_KEY,
        video_index: str | None = None,
        replace: bool = False,
        cogvideo_conn_id: str = DEFAULT_CONN_ID,
        aws_conn_id: str | None = "aws_default",
        part_size: int = DEFAULT_PART_SIZE,
        max_parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
        upload_workers: int = DEFAULT_UPLOAD_WORKERS,
        max_video_bytes: int = DEFAULT_MAX_VIDEO_BYTES,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon")
        if asset_alias:  # a mapped instance already has it, from partial()
            kwargs["outlets"] = _with_alias(kwargs.get("outlets"), asset_alias)
        super().__init__(**kwargs)
        self.part_size = bounded("part_size", part_size, PART_SIZE_RANGE, integer=True)
        self.max_parts_in_flight = bounded(
            "max_parts_in_flight", max_parts_in_flight, PARTS_IN_FLIGHT_RANGE, integer=True
        )
        self.upload_workers = bounded("upload_workers", upload_workers, UPLOAD_WORKERS_RANGE, integer=True)
        self.max_video_bytes = bounded("max_video_bytes", max_video_bytes, MAX_VIDEO_BYTES_RANGE, integer=True)
        self.result = result
        self.s3_bucket = s3_bucket
        if is_unset(s3_key) == is_unset(video_index):
            raise CogVideoValidationError(
                "s3_key", f"give either s3_key or video_index (the index decides the key), got s3_key={s3_key!r}"
            )
        self.s3_key = None if is_unset(s3_key) else checked_key_template(s3_key, "s3_key")
        self.video_index = video_index
        self.cover_s3_key = (
            cover_s3_key
            if cover_s3_key == AUTO_COVER_KEY or is_unset(cover_s3_key)
            else checked_key_template(cover_s3_key, "cover_s3_key")
        )
        self.replace = replace
        self.cogvideo_conn_id = cogvideo_conn_id
        self.aws_conn_id = aws_conn_id
        self.asset_alias = asset_alias
        # Per-run state of execute(): current URLs (replaced once if they expire) and the job id.
        self._urls: dict[str, str | None] = {}
        self._job_id: str | None = None
        self._refreshed = False
        # What OpenLineage reports: the URLs downloaded from and the s3:// URIs written.
        self._downloaded: list[str] = []
        self._stored: list[str] = []

    @cached_property
    def s3_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    @cached_property
    def s3_client(self) -> Any:
        return self.s3_hook.get_conn()

    def _console_link(self, key: str) -> str:
        """Where a person opens ``key``: the configured endpoint's object URL (an S3-compatible store),
        else the AWS console in the connection's region, else the ``s3://`` URI. Never fails the
        transfer: the object is stored by now, and a link is a convenience."""
        try:
            endpoint_url = self.s3_hook.conn_config.endpoint_url
            region = None if endpoint_url else (self.s3_hook.conn_config.region_name or self.s3_client.meta.region_name)
            return s3_console_url(self.s3_bucket, key, endpoint_url=endpoint_url, region=region)
        except Exception as exc:
            self.log.warning("No console link for %s (%s): showing the s3:// URI", self._uri(key), exc)
            return self._uri(key)

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        # the error record names the product (a manifest reads every mapped upload's record in one call)
        about = self.result.get("metadata") if isinstance(self.result, Mapping) else None
        with failure_recorded(context, about=about):
            return self._transfer(context)

    def _transfer(self, context: Context) -> dict[str, Any]:
        result = parse_result(self.result)
        job_id = str(result["id"]) if result.get("id") else None
        status = result.get("task_status")
        if status == DRY_RUN_STATUS:
            raise AirflowSkipException(f"dry run of job request {result.get('request_id')}: no video to transfer")
        if status and status != "SUCCESS":
            raise AirflowFailException(f"job {job_id}: task_status is {status}, there is no video to transfer")
        if not result.get("video_url"):
            raise AirflowFailException(f"job {job_id}: the result has no video_url")
        self._urls = self._checked_urls(result["video_url"], result.get("cover_image_url"))
        self._job_id = job_id
        self._refreshed = False
        self._downloaded, self._stored = [], []

        fields = {**result, "url_stem": url_stem(self._urls["video"] or "")}
        location = self._index_location()
        video_key = format_key(self.s3_key, fields, "s3_key") if self.s3_key else indexed_key(location, result)
        image_key = self._cover_key(fields, video_key)
        metadata = s3_metadata(result, self.log.warning, leave_out=(INDEX_INPUTS, REVIEW_MARKER))

        # Every refusal is decided before a byte is downloaded.
        video_target = self._target(video_key, job_id)
        cover_target = self._target(image_key, job_id) if image_key else None

        video = self._with_fresh_url("video", lambda url: self._store_video(url, video_target, metadata))
        cover = None
        if cover_target:
            cover_meta = {**metadata, "cogvideo-video-key": header_safe(video_key)}
            cover = self._with_fresh_url("cover", lambda url: self._store_cover(url, cover_target, cover_meta))

        index_entry = None
        if location is not None:  # the video and cover are stored: only now may the index name them
            index_entry = self._write_entry(context, location, result, video_key, video, image_key, cover)
        if self.asset_alias:
            extra = {"sha256": video.sha256, "size": video.size, "job_id": job_id}
            context["outlet_events"][AssetAlias(name=self.asset_alias)].add(Asset(uri=video.uri), extra=extra)
        context["ti"].xcom_push(key=XCOM_S3_LINK, value=self._console_link(video_key))
        self.log.info(
            "%s %s (%d bytes, sha256 %s)",
            "Already present:" if video.already_present else "Stored",
            video.uri,
            video.size,
            video.sha256,
        )
        return {
            **result,
            **{name: redact_url(result[name]) for name in _URL_FIELDS if name in result},
            "s3_uri": video.uri,
            "cover_s3_uri": cover.uri if cover else None,
            "size": video.size,
            "sha256": video.sha256,
            "already_present": video.already_present,
            **({"index_entry": index_entry} if index_entry else {}),
        }

    def _index_location(self) -> IndexLocation | None:
        """The video index (its bucket must be the transfer's), or None without one."""
        if is_unset(self.video_index):
            if self.s3_key is None:
                raise AirflowFailException(
                    f"video_index rendered as {self.video_index!r} and no s3_key is given: nowhere to store the video"
                )
            return None
        try:
            location = IndexLocation.parse(str(self.video_index), "video_index")
        except CogVideoValidationError as exc:
            raise AirflowFailException(str(exc)) from None
        if location.bucket != self.s3_bucket:
            raise AirflowFailException(
                f"video_index {location.uri} is in bucket {location.bucket!r}, not s3_bucket {self.s3_bucket!r}: "
                "the index lives with its videos"
            )
        return location

    def _write_entry(
        self,
        context: Context,
        location: IndexLocation,
        result: Mapping[str, Any],
        video_key: str,
        video: _Stored,
        cover_key_: str | None,
        cover: _Stored | None,
    ) -> dict[str, Any]:
        """Record the stored video (and cover) in the index, with the size and ETag S3 holds now."""
        entry = entry_from_upload(
            location=location,
            result=result,
            video=stored_object(self.s3_client, self.s3_bucket, video_key, video.sha256),
            cover=stored_object(self.s3_client, self.s3_bucket, cover_key_, cover.sha256)
            if cover and cover_key_
            else None,
            run_id=context["run_id"],
            paid_at=datetime.now(timezone.utc),
        )
        key, etag = write_entry(self.s3_client, location, entry)
        self.log.info("Indexed %s as %s", video.uri, location.uri_of(key))
        return {"key": key, "etag": etag, "body": entry.to_json()}

    @staticmethod
    def _checked_urls(video: Any, cover: Any) -> dict[str, str | None]:
        """The URLs to download, each an http(s) URL (checked before anything is downloaded)."""
        return {
            "video": checked_url("video_url", video),
            "cover": checked_url("cover_image_url", cover) if cover else None,
        }

    def _cover_key(self, fields: Mapping[str, Any], video_key: str) -> str | None:
        """The cover's key, or None: ``cover_s3_key`` unset (:func:`~.validation.is_unset`), or no cover URL."""
        if is_unset(self.cover_s3_key):
            return None
        if not self._urls["cover"]:
            self.log.warning("job %s: the result has no cover_image_url; no cover stored", self._job_id)
            return None
        return cover_key(self.cover_s3_key, fields, video_key=video_key, cover_url=self._urls["cover"])

    # ------------------------------------------------------------------ idempotency
    def _uri(self, key: str) -> str:
        return s3_uri(self.s3_bucket, key)

    def _target(self, key: str, job_id: str | None) -> _Target:
        """``key`` with its :class:`~.idempotency.Plan`; raises when ``replace=False`` forbids the write."""
        existing = existing_object(self.s3_client, self.s3_bucket, key)
        plan = plan_for(existing, job_id=job_id, replace=self.replace, uri=self._uri(key), log=self.log)
        return _Target(key, plan, existing)

    def _present(self, target: _Target, size: int | None = None, sha256: str | None = None) -> _Stored:
        """``target`` left as it is: its recorded size and sha256 (``Plan.SKIP``), or those of a
        download that matched it (``Plan.VERIFY``: another sha256 is refused)."""
        existing = target.existing
        assert existing is not None and existing.sha256 is not None
        if sha256 is not None:
            verified(existing, sha256, self._uri(target.key))
        size = existing.size if size is None else size
        return _Stored(self._uri(target.key), size, existing.sha256, already_present=True)

    # ------------------------------------------------------------------ URL refresh
    def _with_fresh_url(self, kind: str, store: Callable[[str], _Stored]) -> _Stored:
        """Run ``store(url)``; on an expired URL query the job once for fresh URLs and run it again."""
        stored = self._stored_with_fresh_url(kind, store)
        if not stored.already_present:  # what OpenLineage reports
            self._downloaded.append(self._urls[kind] or "")
        self._stored.append(stored.uri)
        return stored

    def _stored_with_fresh_url(self, kind: str, store: Callable[[str], _Stored]) -> _Stored:
        try:
            return store(self._urls[kind])
        except CogVideoDownloadError as exc:
            if not exc.url_expired:
                raise
            if not self._job_id:
                raise AirflowFailException(
                    f"the {kind} URL answered HTTP {exc.http_status} (expired?) and no job id was given to "
                    "fetch a fresh one"
                ) from exc
            first = exc
        self._refresh_urls(kind, first)
        try:
            return store(self._urls[kind])
        except CogVideoDownloadError as exc:
            if not exc.url_expired:
                raise
            raise AirflowFailException(
                f"job {self._job_id}: the {kind} URL is refused (HTTP {exc.http_status}) even after querying the "
                "job for a fresh one; the result has probably been deleted by the service"
            ) from exc

    def _refresh_urls(self, kind: str, cause: CogVideoDownloadError) -> None:
        if self._refreshed:
            return
        self.log.warning(
            "job %s: %s URL answered HTTP %s; querying the job for fresh URLs", self._job_id, kind, cause.http_status
        )
        job = self.hook.get_task(self._job_id)
        self._refreshed = True
        if job.task_status != "SUCCESS" or not job.video_url:
            raise AirflowFailException(
                f"job {self._job_id}: the {kind} URL expired and the job now reports status {job.task_status} "
                "without a video URL"
            ) from cause
        self._urls = self._checked_urls(job.video_url, job.cover_image_url or self._urls["cover"])

    # ------------------------------------------------------------------ reading a result file
    @contextlib.contextmanager
    def _opened(self, url: str, what: str, max_bytes: int) -> Iterator[tuple[Download, Iterator[bytes]]]:
        """``url`` opened with the hook's reader capped at ``max_bytes``, and the body's chunks.

        A ``Content-Length`` over the cap is refused here, before the caller creates anything (a
        chunked body announces nothing, or lies: the reader's count decides as it streams)."""
        with self.hook.stream_download(url, max_bytes=max_bytes) as download:
            expected = _content_length(download)
            if expected is not None and expected > max_bytes:
                raise self._too_large(what, max_bytes, f"Content-Length {expected}")
            yield download, self._chunks(download, expected, what)

    def _chunks(self, download: Download, expected: int | None, what: str) -> Iterator[bytes]:
        """The body's chunks as the hook's reader lets them through. Its refusal past the cap becomes
        the task's (not retried); a dropped connection, a body short of ``Content-Length`` or an empty
        one a retryable :class:`~.errors.CogVideoDownloadError` naming the job and the count."""
        import httpx

        received = 0
        try:
            for chunk in download.iter_bytes():
                received += len(chunk)
                yield chunk
        except CogVideoDownloadTooLargeError as exc:
            raise self._too_large(
                what, exc.max_bytes, f"{exc.received} bytes received when the download was stopped"
            ) from exc
        except httpx.TransportError as exc:
            raise CogVideoDownloadError(
                f"job {self._job_id}: download dropped after {received} of {expected or '?'} bytes "
                f"({type(exc).__name__})",
                retryable=True,
            ) from exc
        if expected is not None and received != expected:
            raise CogVideoDownloadError(
                f"job {self._job_id}: download truncated: received {received} of {expected} bytes (Content-Length)",
                retryable=True,
            )
        if received == 0:
            raise CogVideoDownloadError(f"job {self._job_id}: the result file is empty", retryable=True)

    def _too_large(self, what: str, max_bytes: int, held: str) -> AirflowFailException:
        """Not retried: the same file will be as big next time."""
        return AirflowFailException(
            f"job {self._job_id}: the {what} is over its cap of {max_bytes} bytes ({held}); nothing was stored"
        )

    # ------------------------------------------------------------------ video
    def _store_video(self, url: str, target: _Target, metadata: dict[str, str]) -> _Stored:
        if target.plan is Plan.SKIP:
            self.log.info("%s already holds job %s; not downloaded again", self._uri(target.key), self._job_id)
            return self._present(target)
        if target.plan is Plan.VERIFY:
            size, digest = self._hash_only(url)
            return self._present(target, size, digest)
        uploaded = self._stream_to_s3(url, target.key, metadata)
        return _Stored(self._uri(target.key), uploaded.size, uploaded.sha256, already_present=False)

    def _hash_only(self, url: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with self._opened(url, _VIDEO, self.max_video_bytes) as (_, chunks):
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _stream_to_s3(self, url: str, key: str, metadata: dict[str, str]) -> UploadedObject:
        """Download → multipart upload (:func:`~.s3_multipart.upload_stream`), then the sha256 tag."""
        with self._opened(url, _VIDEO, self.max_video_bytes) as (download, chunks):
            expected = _content_length(download)
            uploaded = upload_stream(
                self.s3_client,
                self.s3_bucket,
                key,
                chunks,
                part_size=self.part_size,
                size_hint=self.max_video_bytes if expected is None else expected,
                workers=self.upload_workers,
                max_in_flight=self.max_parts_in_flight,
                extra_args={
                    "ContentType": content_type(download.headers.get("content-type"), kind="video"),
                    "Metadata": metadata,
                },
                log=self.log,
            )
        self.s3_client.put_object_tagging(
            Bucket=self.s3_bucket, Key=key, Tagging={"TagSet": [{"Key": SHA256_TAG, "Value": uploaded.sha256}]}
        )
        return uploaded

    # ------------------------------------------------------------------ cover
    def _store_cover(self, url: str, target: _Target, metadata: dict[str, str]) -> _Stored:
        """Covers are small (tens of KB): one download into memory (capped as it streams) and one PUT
        with the tag attached."""
        if target.plan is Plan.SKIP:
            return self._present(target)
        with self._opened(url, _COVER, _COVER_MAX_BYTES) as (download, chunks):
            body = b"".join(chunks)
            cover_type = content_type(download.headers.get("content-type"), kind="image", key=target.key)
        sha256 = hashlib.sha256(body).hexdigest()
        if target.plan is Plan.VERIFY:
            return self._present(target, len(body), sha256)
        self.s3_client.put_object(
            Bucket=self.s3_bucket,
            Key=target.key,
            Body=body,
            ContentType=cover_type,
            Metadata=metadata,
            Tagging=f"{SHA256_TAG}={sha256}",
        )
        return _Stored(self._uri(target.key), len(body), sha256, already_present=False)

    # ------------------------------------------------------------------ OpenLineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the result files downloaded (no signature); outputs: the video and cover in S3
        (also when already present: they are this task's output)."""
        from airflow_provider_cogvideo.lineage import transfer_lineage

        return transfer_lineage(self._downloaded, self._stored)


__all__ = ["AUTO_COVER_KEY", "DEFAULT_ASSET_ALIAS", "SHA256_TAG", "CogVideoToS3Operator", "Plan"]
