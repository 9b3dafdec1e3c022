"""Stream a generated video (and its cover image) from the result URL into S3.

Why not ``HttpToS3Operator`` or boto3's managed transfer: the former reads the whole body into memory,
the latter buffers ~80 MiB by default and hides the multipart upload id, so a failed transfer cannot be
aborted deterministically. Here the multipart upload is explicit:

* the HTTP stream is read in the task's main thread, cut into ``part_size`` parts (8 MiB) and handed
  to a small pool of uploader threads (3); at most ``max_parts_in_flight`` parts (4) are queued or being
  uploaded, so the reader blocks instead of buffering and memory stays at about
  ``(max_parts_in_flight + 1) * part_size`` whatever the video size, while download and upload overlap
  (``benchmarks/transfer_memory.py``: ~50 MiB peak RSS growth for a 300 MiB video, at local-disk
  ``upload_file`` speed; boto3's ``upload_fileobj`` on the same stream grows 150-200 MiB);
* sha256 and the byte count are computed while streaming; a body shorter than ``Content-Length`` (or
  a dropped connection) aborts the multipart upload, so no partial object ever becomes visible;
* sizes are capped as the body is read, not only from ``Content-Length`` (a chunked body has none
  to trust): the video at ``max_video_bytes`` (4 GiB), the cover at 50 MiB. A ``Content-Length`` over
  the cap is refused here before anything is uploaded; a body that grows past it is cut off by the
  hook's reader (``CogVideoHook.stream_download(max_bytes=...)``, which counts every network read)
  and the multipart upload aborted. A compressed body is refused by the hook (downloads ask for
  ``identity``), and a body slower than the connection's ``min_transfer_rate`` is cut off too.
* everything known before the download (job id, model, request id, prompt hash, product metadata) is
  set as object metadata when the upload is created; the sha256, only known at the end, is recorded
  as the object **tag** ``sha256`` right after completion (S3 metadata cannot change without copying
  the object; tags can). A crash between completion and tagging leaves an object of the same job
  without a checksum: the next run recognises its own job id and transfers it again.

Idempotency, decided before any byte is downloaded:

===========================================================  =======================================
target object                                                action
===========================================================  =======================================
absent                                                       upload
same job id and a recorded sha256                            leave alone, return its recorded info
same job id, no sha256 (interrupted before tagging)          upload again (it is ours)
other content, ``replace=True``                              upload (overwrite)
other job / foreign object, ``replace=False``                fail (AirflowFailException), nothing
                                                             downloaded
a plain URL was given (no job id) and the object has a       stream and hash the download only; same
recorded sha256, ``replace=False``                           sha256 → leave alone, else fail
===========================================================  =======================================

Signed result URLs expire: a 403/404/410 on download makes the operator query the job once for fresh
URLs (``CogVideoHook.get_task``) and retry; then it fails naming the job id.

What may be shown: result URLs carry signatures (``X-Amz-Signature``, ``X-Amz-Security-Token``...).
They appear in messages only through :func:`~.redact.redact_url`, and the returned dict carries them
redacted too (``video_url``/``cover_image_url``: scheme, host and path): downstream tasks and
manifests use ``s3_uri``/``cover_s3_uri``, and a signed URL expires anyway. URLs in product metadata
are redacted in the object metadata (anyone allowed to HEAD the object reads it); the ``metadata``
dict itself is returned as given (ingestion already strips signatures from product fields).

Keys cannot leave their prefix: the ``{…}`` placeholders of ``s3_key``/``cover_s3_key`` are result
fields or indexes of one (``{id}``, ``{metadata[product_id]}``), never attributes, conversions or
format specs, and a value that is empty or holds ``/``, ``\\`` or ``..`` is refused. The whole key
then follows S3's conventions (:func:`~.s3.checked_key`): no ``.`` or ``..`` path segment, no ``\\``,
no control character, at most 1,024 UTF-8 bytes (a leading ``/`` is dropped). The text of a key
template known when the DAG is parsed (outside Jinja and ``{…}``) is checked when the operator is
built, so a literal ``../`` fails the DAG file, not a run.

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

import hashlib
import json
import posixpath
import re
import string
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.header import Header
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

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
from airflow_provider_cogvideo.redact import has_credentials, is_http_url, redact_url
from airflow_provider_cogvideo.s3 import (
    IMAGE_CONTENT_TYPES,
    checked_key,
    checked_key_template,
    content_type,
    head_or_none,
    s3_uri,
)
from airflow_provider_cogvideo.sizes import MiB
from airflow_provider_cogvideo.validation import bounded
from airflow_provider_cogvideo.xcom import DRY_RUN_STATUS, XCOM_S3_LINK

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from airflow_provider_cogvideo.hooks.downloads import Download


DEFAULT_ASSET_ALIAS = "cogvideo-videos"
AUTO_COVER_KEY = "auto"
"""``cover_s3_key`` default: the video key with the cover's extension (``videos/a.mp4`` → ``videos/a.png``)."""

SHA256_TAG = "sha256"
META_JOB_ID = "cogvideo-job-id"
META_PREFIX_PRODUCT = "product-"
# S3 caps user metadata at 2 KB (keys + values); product fields beyond that are dropped with a warning.
_METADATA_BUDGET = 2000
GiB = 1024 * MiB
_S3_MIN_PART = 5 * MiB
_S3_MAX_PART = 5 * GiB
_S3_MAX_PARTS = 10_000
_S3_MAX_OBJECT = 5 * 1024 * GiB
_COVER_MAX_BYTES = 50 * MiB
"""Covers are tens of KB; past this a "cover" is a runaway body, cut off as it streams."""
_META_KEY_RE = re.compile(r"[^a-z0-9-]+")
_SHOWN_RESULT_CHARS = 200
_URL_IN_TEXT_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_KEY_FIELD_RE = re.compile(r"[^.\[\]]+(?:\[[^\[\]]+\])*")
"""A key placeholder: a result field, optionally indexed (``metadata[product_id]``); no ``.attribute``."""
_UNSAFE_IN_KEY = ("/", "\\", "..")
_URL_FIELDS = ("video_url", "cover_image_url")
DEFAULT_PART_SIZE = 8 * MiB
DEFAULT_PARTS_IN_FLIGHT = 4
DEFAULT_UPLOAD_WORKERS = 3
DEFAULT_MAX_VIDEO_BYTES = 4 * GiB
"""The API's clips last seconds and weigh tens of MB even in 4K: 4 GiB is a hundred times that, and
still stops a runaway body long before it fills a disk, a bucket or a bill."""
PART_SIZE_RANGE = (_S3_MIN_PART, _S3_MAX_PART)
"""S3's own bounds on a multipart part."""
PARTS_IN_FLIGHT_RANGE = (1, 32)
"""Past a few parts queued, more buy no overlap, only memory (``(n + 1) * part_size``)."""
UPLOAD_WORKERS_RANGE = (1, 10)
"""botocore keeps 10 connections per client (``max_pool_connections``): more threads only wait."""
MAX_VIDEO_BYTES_RANGE = (1 * MiB, _S3_MAX_OBJECT)
"""From less than any real video to S3's largest object."""


@dataclass(frozen=True)
class _SizeCap:
    """How big one downloaded file may be; ``what`` names the file and the setting in the refusal."""

    max_bytes: int
    what: str

    def refuse(self, job_id: str | None, held: str) -> AirflowFailException:
        """Not retried: the same file will be as big next time."""
        return AirflowFailException(
            f"job {job_id}: the {self.what} is over its cap of {self.max_bytes} bytes ({held}); nothing was stored"
        )


@dataclass(frozen=True)
class _Existing:
    """What the target key holds now (from HEAD + tags)."""

    size: int
    job_id: str | None
    sha256: str | None


@dataclass(frozen=True)
class _Stored:
    """One object as written (or found) by this operator."""

    uri: str
    size: int
    sha256: str
    already_present: bool


def _redacted(text: str) -> str:
    """``text`` with every URL in it redacted (any scheme): query strings, so signatures, and
    ``user:password@`` dropped."""
    return _URL_IN_TEXT_RE.sub(lambda match: redact_url(match[0]), text)


def _shown(text: str) -> str:
    """``text`` for a message: URLs redacted, cut to a readable length."""
    return _redacted(text)[:_SHOWN_RESULT_CHARS]


def _shown_value(value: Any) -> str:
    """A refused value for a message: text that is a URL redacted whole (no credentials, even with a
    blank in the password; no query), URLs inside other text redacted one by one; cut to a readable length."""
    text = value.strip() if isinstance(value, str) else None
    if text is not None and redact_url(text) != text:
        return repr(redact_url(text))[:_SHOWN_RESULT_CHARS]
    return _shown(repr(value))


def _checked_url(field_name: str, value: Any) -> str:
    """``value`` if it is an http(s) URL with a host, no whitespace and no ``user:password@``, else a
    refusal naming the field (the value shown redacted: no query, no credentials, whatever the scheme).

    Only the shape is checked here: where the URL may point (hosts, redirects) is the hook's rule."""
    text = value.strip() if isinstance(value, str) else ""
    shown = _shown_value(value)
    if has_credentials(text):
        raise AirflowFailException(
            f"{field_name} must not carry credentials (user:password@host): no result URL does; got {shown}"
        )
    try:
        host = urlsplit(text).hostname
    except ValueError:
        host = None
    if is_http_url(text) and host and not any(c.isspace() or not c.isprintable() for c in text):
        return text
    raise AirflowFailException(f"{field_name} must be an http(s) URL, got {shown}")


def _parse_result(result: Any) -> dict[str, Any]:
    """Accept the generation result dict or a bare http(s) video URL.

    A dict arrives as a dict when ``result`` is an XComArg (``generate.output``) or the DAG renders
    templates natively; a Jinja string such as ``"{{ ti.xcom_pull(...) }}"`` renders to text, which is
    refused with the fix rather than parsed back (a repr is not a data format).
    """
    if isinstance(result, Mapping):
        return dict(result)
    if isinstance(result, str) and is_http_url(result.strip()):
        return {"video_url": _checked_url("result", result)}
    hint = (
        " A templated string is text: pass the XComArg (result=generate.output) or set "
        "render_template_as_native_obj=True on the DAG."
        if isinstance(result, str) and result.strip().startswith("{")
        else ""
    )
    raise AirflowFailException(
        f"result must be the CogVideoGenerateOperator result dict or an http(s) URL, got {type(result).__name__}: "
        f"{_shown_value(result if isinstance(result, str) else str(result))}.{hint}"
    )


def _placeholder_value(
    formatter: string.Formatter, field: str, fields: Mapping[str, Any], template: str, what: str
) -> str:
    """The text one placeholder stands for; refused when it could move the key out of its prefix."""
    try:
        value, _ = formatter.get_field(field, (), fields)
    except (KeyError, IndexError, TypeError) as exc:
        raise AirflowFailException(
            f"{what} {template!r} cannot be filled from the result ({type(exc).__name__}: {exc}); "
            f"available fields: {sorted(fields)}"
        ) from None
    text = "" if value is None else formatter.format_field(value, "")
    if not text or any(unsafe in text for unsafe in _UNSAFE_IN_KEY):
        raise AirflowFailException(
            f"{what} {template!r}: placeholder {{{field}}} is {_shown(repr(text))}; a value must be a non-empty "
            "name without '/', '\\' or '..', which would move the key out of its prefix"
        )
    return text


def _format_key(template: str, fields: Mapping[str, Any], what: str) -> str:
    """Fill ``{…}`` placeholders of an S3 key from the result (``videos/{metadata[product_id]}.mp4``).

    Placeholders are read with ``string.Formatter().parse`` rather than trusted to ``str.format``:
    attribute access (``{metadata.__class__}``), conversions (``{id!r}``) and format specs
    (``{id:>10}``) reach beyond the result's data and are refused; indexing stays, it is the
    documented form."""
    formatter = string.Formatter()
    try:
        parsed = list(formatter.parse(template))
    except ValueError as exc:
        raise AirflowFailException(f"{what} {template!r} is not a valid key template: {exc}") from None
    pieces: list[str] = []
    for literal, field, spec, conversion in parsed:
        pieces.append(literal)
        if field is None:
            continue
        if conversion is not None or spec or not _KEY_FIELD_RE.fullmatch(field):
            written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise AirflowFailException(
                f"{what} {template!r}: placeholder {written} is not allowed; use a result field or an index "
                "of one, e.g. {id} or {metadata[product_id]} (no attributes, conversions or format specs)"
            )
        pieces.append(_placeholder_value(formatter, field, fields, template, what))
    try:  # the whole key, fixed text and values together: S3's conventions in one place
        return checked_key("".join(pieces), what)
    except CogVideoValidationError as exc:
        raise AirflowFailException(f"{what} {template!r} rendered to {exc.reason}") from None


def _header_safe(value: str) -> str:
    """S3 metadata travels in HTTP headers: non-ASCII values are RFC 2047 encoded (as S3 itself does)."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    return Header(value, "utf-8").encode()


def _metadata_text(value: Any) -> str | None:
    """A product field as object metadata, URLs redacted: anyone allowed to HEAD the object reads it."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return _redacted(text)


def _s3_metadata(result: Mapping[str, Any], warn: Callable[..., None]) -> dict[str, str]:
    """Object metadata known before the download: job, model, request, prompt hash, product fields."""
    meta: dict[str, str] = {}
    for key, field_name in ((META_JOB_ID, "id"), ("cogvideo-model", "model"), ("cogvideo-request-id", "request_id")):
        if result.get(field_name):
            meta[key] = _header_safe(str(result[field_name]))
    if result.get("prompt"):
        meta["cogvideo-prompt-sha256"] = hashlib.sha256(str(result["prompt"]).encode()).hexdigest()
    used = sum(len(k) + len(v) for k, v in meta.items())
    dropped = []
    product = result.get("metadata") or {}
    for name, raw in product.items() if isinstance(product, Mapping) else ():
        text = _metadata_text(raw)
        if text is None:
            continue
        key = META_PREFIX_PRODUCT + _META_KEY_RE.sub("-", str(name).lower()).strip("-")
        value = _header_safe(text)
        if used + len(key) + len(value) > _METADATA_BUDGET:
            dropped.append(str(name))
            continue
        meta[key] = value
        used += len(key) + len(value)
    if dropped:
        warn("Product metadata fields %s not stored on the object: S3 metadata is limited to 2 KB", dropped)
    return meta


def _raise_download_failure(exc: CogVideoDownloadError) -> NoReturn:
    """A download that trying again cannot fix (a refused address or scheme, an encoding not asked
    for, a body too large or too slow) fails the task without Airflow's retries; a dropped or short
    stream stays retryable."""
    if exc.retryable:
        raise exc
    raise AirflowFailException(f"{exc} (not retried: trying again cannot change this)") from exc


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


class _PartUploader:
    """Uploads parts on a small thread pool; ``submit`` blocks while ``max_in_flight`` parts are pending.

    The blocking is the back-pressure that bounds memory: a fast download never gets more than
    ``max_in_flight`` parts ahead of the upload.
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
        """Drop queued parts and wait for running ones (abort must come after the last upload)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class CogVideoToS3Operator(CogVideoHookMixin, BaseOperator):
    """Copy a generated video and its cover image into S3, streaming, checksummed, idempotent.

    :param result: the ``CogVideoGenerateOperator`` result dict (``id``, ``video_url``,
        ``cover_image_url``, ``metadata``, ``prompt``…), e.g. ``generate.output``, or a plain video
        URL. A dict must arrive as a dict (an XComArg, or native template rendering), not as text.
    :param s3_bucket: target bucket.
    :param s3_key: target key; ``{…}`` placeholders are filled from the result with
        ``str.format_map`` (e.g. ``videos/{metadata[product_id]}.mp4``, ``videos/{id}.mp4``). The key
        follows :data:`~.s3.KEY_RULES`; its fixed text is checked here, the whole key when it is made.
    :param cover_s3_key: key for the cover image: ``"auto"`` (default) is the video key with the
        cover's extension; ``None`` or ``""`` skips the cover. Placeholders as for ``s3_key``.
    :param replace: overwrite an object that holds something else (another job, or a foreign file).
    :param cogvideo_conn_id: CogVideo connection (to refresh expired URLs; downloads send no key).
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
        object (``s3://bucket/key``), so downstream DAGs can be scheduled on it; ``None`` disables.

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = ("result", "s3_bucket", "s3_key", "cover_s3_key")
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
        s3_key: str,
        cover_s3_key: str | None = AUTO_COVER_KEY,
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
        self.s3_key = checked_key_template(s3_key, "s3_key")
        self.cover_s3_key = (
            cover_s3_key
            if cover_s3_key in (AUTO_COVER_KEY, None, "")
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
        with failure_recorded(context):
            return self._transfer(context)

    def _transfer(self, context: Context) -> dict[str, Any]:
        result = _parse_result(self.result)
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

        url_stem = posixpath.splitext(posixpath.basename(urlsplit(self._urls["video"] or "").path))[0]
        fields = {**result, "url_stem": url_stem}
        video_key = _format_key(self.s3_key, fields, "s3_key")
        cover_key = self._cover_key(fields, video_key)
        metadata = _s3_metadata(result, self.log.warning)

        # Every refusal is decided before a byte is downloaded.
        video_plan = self._plan(video_key, job_id)
        cover_plan = self._plan(cover_key, job_id) if cover_key else None

        video = self._with_fresh_url("video", lambda url: self._store_video(url, video_key, video_plan, metadata))
        cover = None
        if cover_key:
            cover_meta = {**metadata, "cogvideo-video-key": _header_safe(video_key)}
            cover = self._with_fresh_url("cover", lambda url: self._store_cover(url, cover_key, cover_plan, cover_meta))

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
        }

    @staticmethod
    def _checked_urls(video: Any, cover: Any) -> dict[str, str | None]:
        """The URLs to download, each an http(s) URL (checked before anything is downloaded)."""
        return {
            "video": _checked_url("video_url", video),
            "cover": _checked_url("cover_image_url", cover) if cover else None,
        }

    def _cover_key(self, fields: Mapping[str, Any], video_key: str) -> str | None:
        if not self.cover_s3_key:
            return None
        if not self._urls["cover"]:
            self.log.warning("job %s: the result has no cover_image_url; no cover stored", self._job_id)
            return None
        if self.cover_s3_key == AUTO_COVER_KEY:
            ext = posixpath.splitext(urlsplit(self._urls["cover"]).path)[1].lower()
            return posixpath.splitext(video_key)[0] + (ext if ext in IMAGE_CONTENT_TYPES else ".png")
        return _format_key(self.cover_s3_key, fields, "cover_s3_key")

    # ------------------------------------------------------------------ idempotency
    def _uri(self, key: str) -> str:
        return s3_uri(self.s3_bucket, key)

    def _existing(self, key: str) -> _Existing | None:
        head = head_or_none(self.s3_client, self.s3_bucket, key)
        if head is None:
            return None
        tags = self.s3_client.get_object_tagging(Bucket=self.s3_bucket, Key=key).get("TagSet", [])
        return _Existing(
            size=int(head["ContentLength"]),
            job_id=(head.get("Metadata") or {}).get(META_JOB_ID),
            sha256={t["Key"]: t["Value"] for t in tags}.get(SHA256_TAG),
        )

    def _plan(self, key: str, job_id: str | None) -> tuple[str, _Existing | None]:
        """``("upload"|"skip"|"verify", existing)``; raises when replace=False forbids the write."""
        existing = self._existing(key)
        if existing is None:
            return "upload", None
        if job_id and existing.job_id == job_id and existing.sha256:
            return "skip", existing
        if self.replace:
            self.log.info("%s exists and will be replaced (replace=True)", self._uri(key))
            return "upload", existing
        if job_id and existing.job_id == job_id:
            self.log.info("%s holds job %s without a recorded sha256: transferring again", self._uri(key), job_id)
            return "upload", existing
        if not job_id and existing.sha256:
            return "verify", existing
        raise AirflowFailException(
            f"{self._uri(key)} already exists ({existing.size} bytes, job {existing.job_id or 'unknown'}, "
            f"sha256 {existing.sha256 or 'not recorded'}) and is not the output of "
            f"{'job ' + job_id if job_id else 'this URL'}; refusing to overwrite it (replace=False). "
            "Set replace=True or choose another s3_key."
        )

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
                _raise_download_failure(exc)
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
                _raise_download_failure(exc)
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

    # ------------------------------------------------------------------ video
    def _store_video(self, url: str, key: str, plan: tuple[str, _Existing | None], metadata: dict[str, str]) -> _Stored:
        action, existing = plan
        if action == "skip":
            assert existing is not None and existing.sha256 is not None
            self.log.info("%s already holds job %s; not downloaded again", self._uri(key), self._job_id)
            return _Stored(self._uri(key), existing.size, existing.sha256, already_present=True)
        if action == "verify":
            assert existing is not None
            size, digest = self._hash_only(url)
            if digest != existing.sha256:
                raise AirflowFailException(
                    f"{self._uri(key)} already exists with sha256 {existing.sha256}, the download has {digest}; "
                    "refusing to overwrite it (replace=False)"
                )
            return _Stored(self._uri(key), size, digest, already_present=True)
        size, digest = self._stream_to_s3(url, key, metadata)
        return _Stored(self._uri(key), size, digest, already_present=False)

    @cached_property
    def _video_cap(self) -> _SizeCap:
        return _SizeCap(self.max_video_bytes, "video (max_video_bytes)")

    def _chunks(self, download: Download, expected: int | None, cap: _SizeCap) -> Iterator[bytes]:
        """The body's chunks, as the hook's reader lets them through (``download`` was opened with
        ``max_bytes=cap.max_bytes``: it stops the body as soon as a network read passes the cap).

        Called eagerly, so a ``Content-Length`` over ``cap`` is refused before the caller starts an
        upload (a chunked body announces nothing, or lies: the reader's count decides)."""
        if expected is not None and expected > cap.max_bytes:
            raise cap.refuse(self._job_id, f"Content-Length {expected}")
        return self._counted(download, expected, cap)

    def _counted(self, download: Download, expected: int | None, cap: _SizeCap) -> Iterator[bytes]:
        """Body chunks; the reader's refusal past ``cap`` becomes ``cap``'s (not retried), a dropped
        connection a retryable CogVideoDownloadError with the count, a short body (against
        ``Content-Length``) or an empty one too."""
        import httpx

        received = 0
        try:
            for chunk in download.iter_bytes():
                received += len(chunk)
                yield chunk
        except CogVideoDownloadTooLargeError as exc:
            raise cap.refuse(self._job_id, f"{exc.received} bytes received when the download was stopped") from exc
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

    def _hash_only(self, url: str) -> tuple[int, str]:
        digest = hashlib.sha256()
        size = 0
        with self.hook.stream_download(url, max_bytes=self._video_cap.max_bytes) as download:
            for chunk in self._chunks(download, _content_length(download), self._video_cap):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _part_size_for(self, largest: int) -> int:
        """``part_size``, grown (in whole MiB) so ``largest`` bytes fit in S3's 10,000 parts."""
        needed = -(-largest // _S3_MAX_PARTS)
        return max(self.part_size, -(-needed // MiB) * MiB)

    def _stream_to_s3(self, url: str, key: str, metadata: dict[str, str]) -> tuple[int, str]:
        """Download → multipart upload, overlapped and bounded; abort on any failure."""
        client = self.s3_client
        with self.hook.stream_download(url, max_bytes=self._video_cap.max_bytes) as download:
            expected = _content_length(download)
            chunks = self._chunks(download, expected, self._video_cap)  # refuses before an upload exists
            part_size = self._part_size_for(self.max_video_bytes if expected is None else expected)
            upload_id = client.create_multipart_upload(
                Bucket=self.s3_bucket,
                Key=key,
                ContentType=content_type(download.headers.get("content-type"), kind="video"),
                Metadata=metadata,
            )["UploadId"]
            uploader = _PartUploader(
                client,
                self.s3_bucket,
                key,
                upload_id,
                workers=self.upload_workers,
                max_in_flight=self.max_parts_in_flight,
            )
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
                client.complete_multipart_upload(
                    Bucket=self.s3_bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except BaseException:
                uploader.close()
                self._abort(key, upload_id)
                raise
        sha256 = digest.hexdigest()
        client.put_object_tagging(
            Bucket=self.s3_bucket, Key=key, Tagging={"TagSet": [{"Key": SHA256_TAG, "Value": sha256}]}
        )
        return size, sha256

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.s3_client.abort_multipart_upload(Bucket=self.s3_bucket, Key=key, UploadId=upload_id)
        except Exception:
            # The original error matters more; a leftover upload is invisible and a lifecycle rule
            # (AbortIncompleteMultipartUpload) reclaims it.
            self.log.exception("Could not abort multipart upload %s of %s", upload_id, self._uri(key))
        else:
            self.log.warning("Aborted the multipart upload of %s: no partial object was written", self._uri(key))

    # ------------------------------------------------------------------ cover
    def _store_cover(
        self, url: str, key: str, plan: tuple[str, _Existing | None] | None, metadata: dict[str, str]
    ) -> _Stored:
        """Covers are small (tens of KB): one download into memory (capped as it streams) and one PUT
        with the tag attached."""
        assert plan is not None
        action, existing = plan
        if action == "skip":
            assert existing is not None and existing.sha256 is not None
            return _Stored(self._uri(key), existing.size, existing.sha256, already_present=True)
        cap = _SizeCap(_COVER_MAX_BYTES, "cover image")
        with self.hook.stream_download(url, max_bytes=cap.max_bytes) as download:
            body = b"".join(self._chunks(download, _content_length(download), cap))
            cover_type = content_type(download.headers.get("content-type"), kind="image", key=key)
        sha256 = hashlib.sha256(body).hexdigest()
        if action == "verify":
            assert existing is not None
            if sha256 != existing.sha256:
                raise AirflowFailException(
                    f"{self._uri(key)} already exists with sha256 {existing.sha256}, the download has {sha256}; "
                    "refusing to overwrite it (replace=False)"
                )
            return _Stored(self._uri(key), len(body), sha256, already_present=True)
        self.s3_client.put_object(
            Bucket=self.s3_bucket,
            Key=key,
            Body=body,
            ContentType=cover_type,
            Metadata=metadata,
            Tagging=f"{SHA256_TAG}={sha256}",
        )
        return _Stored(self._uri(key), len(body), sha256, already_present=False)

    # ------------------------------------------------------------------ OpenLineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the result files downloaded (no signature); outputs: the video and cover in S3
        (also when already present: they are this task's output)."""
        from airflow_provider_cogvideo.lineage import transfer_lineage

        return transfer_lineage(self._downloaded, self._stored)


__all__ = ["AUTO_COVER_KEY", "DEFAULT_ASSET_ALIAS", "SHA256_TAG", "CogVideoToS3Operator"]
