"""Extra links (registered in the provider info): each opens something a person with a browser can use.

Never an API URL: those need the key, and a browser only gets a 401.

* :class:`CogVideoVideoLink` (generate operator, sensor): the rendered video, while its signed URL is
  still valid; nothing while the job renders or once the URL has expired.
* :class:`CogVideoS3VideoLink` (transfer): the video's durable copy in S3, as the console URL of the
  configured endpoint (AWS console, or the object URL of an S3-compatible endpoint), else the
  ``s3://`` URI. The transfer computes it when it runs, so showing a link reads no connection.
"""

from __future__ import annotations

import calendar
import time
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_provider_cogvideo.redact import is_http_url
from airflow_provider_cogvideo.s3 import s3_uri
from airflow_provider_cogvideo.xcom import XCOM_S3_LINK, XCOM_VIDEO_URL


def signed_url_expiry(url: str) -> float | None:
    """Epoch seconds at which a signed URL stops working, when its query says so.

    Understands ``expires=<epoch>`` (CDN / OSS / the emulator style) and SigV4's
    ``X-Amz-Date`` + ``X-Amz-Expires``; None when the URL carries no expiry."""
    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items() if v}
    if query.get("expires", "").isdigit():
        return float(query["expires"])
    amz_date, amz_expires = query.get("x-amz-date"), query.get("x-amz-expires", "")
    if amz_date and amz_expires.isdigit():
        try:
            signed = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            return None
        return float(signed + int(amz_expires))
    return None


def s3_console_url(bucket: str, key: str, *, endpoint_url: str | None, region: str | None) -> str:
    """Where a person opens an S3 object: the AWS console, or the object's URL on another endpoint."""
    if endpoint_url:
        return f"{endpoint_url.rstrip('/')}/{quote(bucket)}/{quote(key)}"
    if region:
        return (
            f"https://{region}.console.aws.amazon.com/s3/object/{quote(bucket)}"
            f"?region={quote(region)}&prefix={quote(key, safe='')}"
        )
    return s3_uri(bucket, key)


class CogVideoVideoLink(BaseOperatorLink):
    """The generated video, while its signed URL is valid."""

    name = "CogVideo video"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        url = XCom.get_value(key=XCOM_VIDEO_URL, ti_key=ti_key)
        if not isinstance(url, str) or not is_http_url(url):
            return ""
        expiry = signed_url_expiry(url)
        return "" if expiry is not None and expiry <= time.time() else url


class CogVideoS3VideoLink(BaseOperatorLink):
    """The video's durable copy in S3."""

    name = "Video in S3"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        link = XCom.get_value(key=XCOM_S3_LINK, ti_key=ti_key)
        return link if isinstance(link, str) else ""


__all__ = ["CogVideoS3VideoLink", "CogVideoVideoLink", "s3_console_url", "signed_url_expiry"]
