"""What the transfer accepts as a result: the generate operator's dict or a bare video URL, and
what each result URL must look like before anything is downloaded.

Only the shape is checked here (http(s), a host, no whitespace, no ``user:password@``): where a URL may
point (hosts, redirects) is the hook's rule (:mod:`~airflow_provider_cogvideo.hooks.addresses`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.redact import has_credentials, is_http_url, shown_value


def checked_url(field_name: str, value: Any) -> str:
    """``value`` if it is an http(s) URL with a host, no whitespace and no ``user:password@``, else a
    refusal naming the field (the value shown redacted: no query, no credentials, whatever the scheme).

    Only the shape is checked here: where the URL may point (hosts, redirects) is the hook's rule."""
    text = value.strip() if isinstance(value, str) else ""
    shown = shown_value(value)
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


def parse_result(result: Any) -> dict[str, Any]:
    """Accept the generation result dict or a bare http(s) video URL.

    A dict arrives as a dict when ``result`` is an XComArg (``generate.output``) or the DAG renders
    templates natively; a Jinja string such as ``"{{ ti.xcom_pull(...) }}"`` renders to text, which is
    refused with the fix rather than parsed back (a repr is not a data format).
    """
    if isinstance(result, Mapping):
        return dict(result)
    if isinstance(result, str) and is_http_url(result.strip()):
        return {"video_url": checked_url("result", result)}
    hint = (
        " A templated string is text: pass the XComArg (result=generate.output) or set "
        "render_template_as_native_obj=True on the DAG."
        if isinstance(result, str) and result.strip().startswith("{")
        else ""
    )
    raise AirflowFailException(
        f"result must be the CogVideoGenerateOperator result dict or an http(s) URL, got {type(result).__name__}: "
        f"{shown_value(result if isinstance(result, str) else str(result))}.{hint}"
    )


__all__ = ["checked_url", "parse_result"]
