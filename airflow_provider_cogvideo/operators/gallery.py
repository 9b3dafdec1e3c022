"""Write a run's review gallery to S3: one self-contained HTML page, one card per product.

:func:`write_gallery` renders a run manifest with :func:`~airflow_provider_cogvideo.gallery.render_gallery`
(the page, the escaping and the template are described there) and stores the page with
``Content-Type: text/html; charset=utf-8``, next to the manifest. Call it from the task that builds
the manifest (the pipeline's ``manifest`` task does: one task, one set of rows, and a run refused by
its budget still fails after both are written), or use ``S3VideoGalleryOperator`` as a task of its
own, with the manifest dict (an XComArg) or its ``s3://`` URI::

    S3VideoGalleryOperator(
        task_id="gallery",
        manifest="s3://product-videos/manifests/2026-01-01/run.json",  # or the manifest dict (XComArg)
        s3_bucket="product-videos",
        s3_key="gallery/{{ ds }}/{{ run_id }}.html",
    )

How the page reaches its media, presigned URLs or keys relative to the page, is the operator's
``media`` parameter. What :func:`write_gallery` returns (the operator's XCom): ``gallery``
(``s3://`` URI), ``url`` (the address logged, or None), ``expires_at`` (ISO, presigned only) and
``products`` (cards on the page).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra, require_extra_for_operator
from airflow_provider_cogvideo.gallery import relative_media, render_gallery
from airflow_provider_cogvideo.gallery_cards import MediaUrl
from airflow_provider_cogvideo.operators.s3_hook import S3HookMixin
from airflow_provider_cogvideo.s3 import checked_key, checked_key_template, parse_s3_uri, read_capped, s3_uri
from airflow_provider_cogvideo.validation import bounded, seconds

if TYPE_CHECKING:
    from airflow.sdk import Context

MEDIA_MODES = ("presigned", "relative")
DEFAULT_URL_EXPIRES = timedelta(days=7)
URL_EXPIRES_RANGE = (1.0, 7 * 24 * 3600.0)
"""Seconds a presigned URL may be valid: SigV4 refuses more than 7 days."""
PAGE_CONTENT_TYPE = "text/html; charset=utf-8"
MANIFEST_CONTENT_TYPE = "application/json"
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024
"""A manifest read from S3: tens of thousands of products' rows."""


def checked_media(media: Any) -> str:
    """``media`` if it is one of :data:`MEDIA_MODES`."""
    if media not in MEDIA_MODES:
        raise CogVideoValidationError("media", f"must be one of {list(MEDIA_MODES)}, got {media!r}")
    return media


def checked_url_expires(url_expires: float | timedelta) -> int:
    """Seconds a presigned URL is valid: 1 s to 7 days."""
    return int(bounded("url_expires", seconds(url_expires), URL_EXPIRES_RANGE))


def read_manifest(client: Any, uri: str) -> Any:
    """The JSON document at ``uri`` (``s3://bucket/key``, at most 64 MiB), or ``AirflowFailException``."""
    parsed = parse_s3_uri(uri)
    if parsed is None:
        raise AirflowFailException(f"manifest {uri!r} is not an s3://bucket/key URI")
    raw = read_capped(client, parsed[0], parsed[1], _MAX_MANIFEST_BYTES)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise AirflowFailException(f"manifest {uri} is not JSON: {exc}") from None


def write_manifest(client: Any, bucket: str, key: str, document: Mapping[str, Any]) -> str:
    """Store a run manifest as JSON; its ``s3://`` URI."""
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(document, indent=2, default=str).encode("utf-8"),
        ContentType=MANIFEST_CONTENT_TYPE,
    )
    return s3_uri(bucket, key)


def write_gallery(
    document: Mapping[str, Any],
    *,
    s3_bucket: str,
    s3_key: str,
    aws_conn_id: str | None = "aws_default",
    media: str = "presigned",
    url_expires: float | timedelta = DEFAULT_URL_EXPIRES,
    template_file: str | None = None,
    search_path: Iterable[str] = (),
    title: str | None = None,
    website_url: str | None = None,
    log: logging.Logger | Any | None = None,
    s3_hook: Any = None,
) -> dict[str, Any]:
    """Render ``document`` (a run manifest) as the gallery page, store it at ``s3_bucket``/``s3_key`` and
    log its address; the parameters are :class:`S3VideoGalleryOperator`'s. Returns ``gallery``,
    ``url``, ``expires_at`` and ``products`` (see the module docstring). Without ``s3_hook`` it makes an
    ``S3Hook``, which needs the ``amazon`` extra (``CogVideoMissingExtraError`` otherwise)."""
    if s3_hook is None:
        require_extra("amazon", needed_for="write_gallery (the review gallery page in S3)")
    media = checked_media(media)
    expires_in = checked_url_expires(url_expires)
    log = log or logging.getLogger(__name__)
    if s3_hook is None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3_hook = S3Hook(aws_conn_id=aws_conn_id)
    try:
        key = checked_key(s3_key, "s3_key")
    except CogVideoValidationError as exc:
        raise AirflowFailException(str(exc)) from None

    def presigned(uri: str) -> str | None:
        parsed = parse_s3_uri(uri)
        if parsed is None:
            return None
        return s3_hook.generate_presigned_url(
            client_method="get_object", params={"Bucket": parsed[0], "Key": parsed[1]}, expires_in=expires_in
        )

    expires_at = None
    if media == "presigned":
        expires_at = datetime.now(timezone.utc) + timedelta(seconds=expires_in)
        media_url: MediaUrl = presigned
    else:
        media_url = relative_media(key, s3_bucket)
    page = render_gallery(
        document,
        media_url,
        template=template_file or None,
        search_path=search_path,
        title=title or None,
        links_expire_at=expires_at,
    )
    s3_hook.get_conn().put_object(
        Bucket=s3_bucket, Key=key, Body=page.encode("utf-8"), ContentType=PAGE_CONTENT_TYPE, CacheControl="no-cache"
    )
    uri = s3_uri(s3_bucket, key)
    products = len(document.get("products") or [])
    if expires_at is not None:
        url = presigned(uri)
        shown_expiry = expires_at.strftime("%Y-%m-%d %H:%M UTC")
        log.info(
            "Review gallery of %d product(s) at %s; open it (valid until %s): %s", products, uri, shown_expiry, url
        )
    else:
        url = f"{website_url.rstrip('/')}/{key}" if website_url else None
        log.info(
            "Review gallery of %d product(s) at %s (media by relative keys: serve the bucket as a static website)%s",
            products,
            uri,
            f"; open it: {url}" if url else "",
        )
    return {
        "gallery": uri,
        "url": url,
        "expires_at": expires_at.isoformat() if expires_at else None,
        "products": products,
    }


class S3VideoGalleryOperator(S3HookMixin, BaseOperator):
    """Render a run manifest as a review gallery page and write it to S3 (:func:`write_gallery` as a task).

    :param manifest: the run manifest: a dict with ``products`` (the rows) and the run's totals (an
        XComArg of the task that built it), or the ``s3://`` URI of a manifest JSON (read with a 64 MiB
        cap). A bare list is taken as the rows.
    :type manifest: dict | list | str
    :param s3_bucket: bucket of the page.
    :param s3_key: key of the page, e.g. ``gallery/{{ ds }}/{{ run_id }}.html``; no ``.`` or ``..``
        segment, ``\\`` or control character, at most 1,024 UTF-8 bytes
        (:data:`~airflow_provider_cogvideo.s3.KEY_RULES`; the text outside Jinja is checked when the
        operator is built).
    :param media: how the page reaches its media: ``"presigned"`` (every video, cover and source image
        by a presigned GET URL valid ``url_expires``; the task logs a presigned URL of the page, valid
        as long: whoever holds it can watch the run's media until it expires) or ``"relative"``
        (objects of the page's bucket by their key relative to the page, for a bucket served as a
        static website; objects of other buckets are listed, not shown: a public page must not point
        into a private bucket). Anything else fails when the DAG is parsed.
    :param url_expires: validity of the presigned URLs (seconds or a ``timedelta``), 1 s to 7 days
        (SigV4's maximum; credentials of a temporary session end sooner).
    :param template_file: a Jinja file replacing the shipped template (``templates/gallery.html``); a
        relative path is looked up in the DAG's folder, its ``template_searchpath``, then the working
        directory. Rendered autoescaped and sandboxed with the context
        :func:`~airflow_provider_cogvideo.gallery.gallery_context` documents (``page``, ``cards``).
    :param title: the page's title (default ``Product videos: <run id>``).
    :param website_url: with ``media="relative"``, the base URL the bucket is served at: the page's
        logged address is this plus the key.
    :param aws_conn_id: ``aws`` connection for ``S3Hook`` (an ``endpoint_url`` extra selects any
        S3-compatible store; presigned URLs point there).

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = ("manifest", "s3_bucket", "s3_key", "title", "template_file", "website_url")
    template_fields_renderers = {"manifest": "json"}
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        manifest: Any,
        s3_bucket: str,
        s3_key: str,
        media: str = "presigned",
        url_expires: float | timedelta = DEFAULT_URL_EXPIRES,
        template_file: str | None = None,
        title: str | None = None,
        website_url: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon")
        super().__init__(**kwargs)
        self.media = checked_media(media)
        self.url_expires = checked_url_expires(url_expires)
        self.manifest = manifest
        self.s3_bucket = s3_bucket
        self.s3_key = checked_key_template(s3_key, "s3_key", placeholders=False)  # Jinja only, no {…}
        self.template_file = template_file
        self.title = title
        self.website_url = website_url
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        return write_gallery(
            self._document(),
            s3_bucket=self.s3_bucket,
            s3_key=self.s3_key,
            media=self.media,
            url_expires=self.url_expires,
            template_file=self.template_file,
            search_path=self._search_path(),
            title=self.title,
            website_url=self.website_url,
            log=self.log,
            s3_hook=self.s3_hook,
        )

    def _document(self) -> Mapping[str, Any]:
        manifest = self.manifest
        if isinstance(manifest, str) and manifest.startswith("s3://"):
            manifest = read_manifest(self.s3_hook.get_conn(), manifest)
        if isinstance(manifest, list):
            manifest = {"products": manifest}
        if not isinstance(manifest, Mapping) or not isinstance(manifest.get("products", []), list):
            raise AirflowFailException(
                "manifest must be a run manifest (a dict with a 'products' list), its s3:// URI or a list of "
                f"rows; got {type(manifest).__name__}. A templated string is text: pass the XComArg."
            )
        return manifest

    def _search_path(self) -> list[str]:
        """Where a relative ``template_file`` is looked for: the DAG's folder, then its template_searchpath."""
        dag = self.dag if self.has_dag() else None
        if dag is None:
            return []
        paths = [str(dag.folder)] if getattr(dag, "folder", None) else []
        searchpath = getattr(dag, "template_searchpath", None) or []
        return paths + ([searchpath] if isinstance(searchpath, str) else list(searchpath))


__all__ = [
    "DEFAULT_URL_EXPIRES",
    "MEDIA_MODES",
    "PAGE_CONTENT_TYPE",
    "S3VideoGalleryOperator",
    "checked_media",
    "checked_url_expires",
    "write_gallery",
]
