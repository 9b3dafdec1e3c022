"""One gallery card: a manifest row as the review page shows it (status, media, prompts, format,
price, review), every text capped and every link checked; :mod:`.gallery` lays the cards out on a page.

Escaping is the template's (Jinja autoescape): here values are only capped (:func:`text`), and URLs kept
only when they are ``http(s)://`` or relative (:func:`safe_url`), never ``javascript:`` or ``data:``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES
from airflow_provider_cogvideo.manifest import PROMPT_WRITING, RowStatus
from airflow_provider_cogvideo.redact import is_http_url, shorten
from airflow_provider_cogvideo.review import ReviewState
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.sizes import human_size

MediaUrl = Callable[[str], "str | None"]
"""``s3://bucket/key`` -> the URL the page loads it from, or None to show the URI only."""
STATUS_LABELS: dict[RowStatus, str] = {
    RowStatus.UPLOADED: "Uploaded",
    RowStatus.REUSED: "Reused",
    RowStatus.WAITING: "Waiting for a later run",
    RowStatus.HELD: "Held: check before paying again",
    RowStatus.REJECTED_BY_REVIEW: "Rejected by review",
    RowStatus.FAILED: "Failed",
    RowStatus.AMBIGUOUS: "Ambiguous: check before re-running",
    RowStatus.NOT_SUBMITTED: "Not submitted",
    RowStatus.REFUSED: "Refused at ingestion",
    RowStatus.PLANNED: "Planned (dry run)",
}
"""The manifest's statuses, as the page names them (a row's plain ``"uploaded"`` finds its label:
``RowStatus`` is a ``str`` enum)."""
LEGACY_STATUSES = {"rejected": RowStatus.REFUSED.value}
"""Statuses of manifests written before they were renamed, read as today's (the gallery of an old run)."""
REVIEW_LABELS: dict[ReviewState, str] = {
    ReviewState.AWAITING: "awaiting review",
    ReviewState.APPROVED: "approved",
    ReviewState.REJECTED: "rejected by review",
    ReviewState.HELD: "held (no answer)",
    ReviewState.REGENERATING: "regenerating",
}
"""Review states as the page names them (a row's plain ``"approved"`` finds its label)."""
NOT_REVIEWED = "not reviewed"
"""A review with no state: the review run ended before it asked (or the mode asked nobody)."""
MAX_TEXT = 4000
"""Characters kept of any one text of the run (a runaway sidecar field cannot bloat the page)."""
_NOT_OPTIONS = frozenset({"model", "prompt", "image_url", "request_id", "user_id", PROMPT_WRITING})
"""Fields of the request summary shown elsewhere on the card (or not at all), not as options."""
_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
WRITING_SOURCES = ("writer", "fallback", "dry_run")
"""A prompt writing's ``source`` values (the card's ``writing_source``; any other reads as ``other``)."""


def safe_url(url: Any) -> str | None:
    """``url`` if the page may load it: ``http(s)://`` or a relative reference; otherwise None."""
    if not isinstance(url, str) or not url.strip() or any(c.isspace() or not c.isprintable() for c in url):
        return None
    if is_http_url(url):
        return url
    first_segment = url.split("/", 1)[0]
    return None if _SCHEME_RE.match(first_segment) or url.startswith("//") else url


def text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """A value of the run as display text (lists joined, mappings as JSON), capped at ``limit``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        shown = value
    elif isinstance(value, (list, tuple)):
        shown = ", ".join(t for t in (text(v, limit) for v in value) if t)
    elif isinstance(value, Mapping):
        shown = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    else:
        shown = str(value)
    return shorten(shown, limit)


def _size(size: Any) -> str | None:
    """A manifest row's byte count as people read it (:func:`~airflow_provider_cogvideo.sizes.human_size`)."""
    if isinstance(size, bool) or not isinstance(size, (int, float)) or size < 0:
        return None
    return human_size(size)


def human_seconds(seconds: Any) -> str | None:
    """``45 s``, ``3 min 05 s``, ``2 h 04 min``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def money(amount: Any, currency: str | None) -> str | None:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return None
    return f"{amount:.2f} {currency or ''}".strip()


def _duration(request: Mapping[str, Any], model: Any) -> str | None:
    """The clip's length as requested, or the model's default (its first allowed duration)."""
    requested = request.get("duration")
    if isinstance(requested, (int, float)) and not isinstance(requested, bool):
        return f"{requested:g} s"
    caps = MODEL_CAPABILITIES.get(model) if isinstance(model, str) else None
    if caps is not None and isinstance(caps.durations, tuple) and caps.durations:
        return f"{caps.durations[0]:g} s (model default)"
    return None


def _reason(row: Mapping[str, Any]) -> str | None:
    """Why a product has no video: the recorded error's message (or the whole record), or a pointer
    to the log when a failure left none."""
    error = row.get("error")
    if isinstance(error, Mapping):
        return text(error.get("error")) or text(error)
    if error:
        return text(error)
    if row.get("reason"):
        return text(row.get("reason"))  # a waiting row: why it is left for a later run
    if row.get("status") in (RowStatus.FAILED, RowStatus.AMBIGUOUS):
        return "No error was recorded for this product: see its task's log."
    return None


def _reused(row: Mapping[str, Any]) -> str | None:
    """When and by which run a reused video was paid (this run paid nothing for it)."""
    if row.get("status") != RowStatus.REUSED:
        return None
    paid_at, paid_by = text(row.get("paid_at"), 100) or "(date not recorded)", text(row.get("paid_by_run"), 250)
    return f"Reused: paid {paid_at} by run {paid_by or '(not recorded)'}"


def _price(row: Mapping[str, Any], currency: str | None) -> str | None:
    """The card's price: this run's; for a reused video, nothing this run and what it cost when paid."""
    price = money(row.get("price"), currency)
    if row.get("status") != RowStatus.REUSED:
        return price
    paid = money(row.get("paid_price"), text(row.get("currency"), 10) or currency)
    return f"{price or money(0.0, currency)} this run ({paid} when paid)" if paid else price


def airflow_link(url: Any) -> str | None:
    """``url`` if the page may link to it as an Airflow page: :func:`safe_url`'s rule, and ``http(s)://``
    only (an Airflow page is never relative to where the gallery is stored)."""
    checked = safe_url(url)
    return checked if checked is not None and is_http_url(checked) else None


def number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list field of the run (anything else in it, or a field that is no list, ignored)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, (list, tuple)) else []


def review_label(state: str | None) -> str:
    return NOT_REVIEWED if state is None else REVIEW_LABELS.get(state, state)


def _card_review(review: Any, media: Callable[[Any], str | None]) -> dict[str, Any] | None:
    """A row's ``review`` as the card shows it (see :func:`gallery_context`); a row reused from an
    earlier run may carry only its state, decisions and published object."""
    if not isinstance(review, Mapping):
        return None
    state = text(review.get("state"), 40)
    awaiting = state == ReviewState.AWAITING
    published = review.get("published")
    return {
        "state": state,
        "state_label": review_label(state),
        "state_class": state if state in REVIEW_LABELS else ("none" if state is None else "other"),
        "round": number(review.get("round")),
        # Only an awaiting review has an action to take; a stale link to an answered one would mislead.
        "link": airflow_link(review.get("link")) if awaiting else None,
        "awaiting": awaiting,
        "decisions": [
            {
                "round": number(decision.get("round")),
                "answer": text(decision.get("answer"), 40) or "no answer",
                "state_label": review_label(s) if (s := text(decision.get("state"), 40)) else None,
                "note": text(decision.get("note")),
                "by": text(decision.get("by"), 200),
                "at": text(decision.get("at"), 100),
                "job_id": text(decision.get("job_id"), 200),
            }
            for decision in _mappings(review.get("decisions"))
        ],
        "published": {
            "video_uri": text(published.get("video")),
            "video_url": media(published.get("video")),
            "cover_uri": text(published.get("cover")),
            "sha256": text(published.get("sha256"), 128),
        }
        if isinstance(published, Mapping)
        else None,
        "videos": [
            {
                "round": number(video.get("round")),
                "video_uri": text(video.get("video")),
                "video_url": media(video.get("video")),
                "cover_url": media(video.get("cover")),
                "job_id": text(video.get("job_id"), 200),
                "prompt": text(video.get("prompt")),
            }
            for video in _mappings(review.get("videos"))
            if video.get("video")
        ],
    }


def _format_badge(row: Mapping[str, Any], request: Mapping[str, Any]) -> str | None:
    """A row's ad format as its badge (``9:16 · 1080x1920``: the name, then the size or aspect ratio sent,
    from the row's ``options``, else its request), or None when the video was made for no format."""
    name = text(row.get("format"), 40)
    if name is None:
        return None
    options = row.get("options") if isinstance(row.get("options"), Mapping) else {}
    sent = next((v for source in (options, request) for k in ("size", "aspect_ratio") if (v := source.get(k))), None)
    shown = text(sent, 40)
    return f"{name} · {shown}" if shown and shown != name else name


def _writing(row: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """How a row's prompt was written, as the card says it, and the source as a CSS class (None, None
    without a writing)."""
    writing = row.get(PROMPT_WRITING)
    if not isinstance(writing, Mapping):
        return None, None
    source, model = text(writing.get("source"), 40), text(writing.get("model"), 200) or "the prompt writer"
    cached = " (from the cache)" if writing.get("cached") is True else ""
    if source == "writer":
        label = f"written by {model}{cached}"
    elif source == "fallback":
        reason = text(writing.get("reason"), 1000)
        label = f"template's prompt: the writer fell back{cached}" + (f" — {reason}" if reason else "")
    elif source == "dry_run":
        label = f"to be written by {model} (dry run: not written)"
    else:
        label = f"prompt writing: {source or 'unknown'}"
    return label, source if source in WRITING_SOURCES else "other"


def card_of(row: Mapping[str, Any], media_url: MediaUrl, currency: str | None, index: int = 1) -> dict[str, Any]:
    """One product's card, the ``index``-th of the page (see :func:`gallery_context` for the fields)."""
    status = text(row.get("status"), 40) or "unknown"
    status = LEGACY_STATUSES.get(status, status)
    refused = status == RowStatus.REFUSED
    request = row.get("request") if isinstance(row.get("request"), Mapping) else {}
    model = row.get("model") or request.get("model")

    def media(uri: Any) -> str | None:
        return safe_url(media_url(uri)) if parse_s3_uri(uri) else None

    sha256 = text(row.get("sha256"), 128)
    image, error = row.get("image"), row.get("error")
    prompt = text(row.get("prompt") or request.get("prompt"))
    writing, source = _writing(row)
    template = text(row.get("template_prompt")) if writing else None
    return {
        "index": index,
        "product_id": text(row.get("product_id"), 200) or "(no product id)",
        "variant": text(row.get("variant"), 200),
        "format": _format_badge(row, request),
        "title": text(row.get("title"), 500),
        "status": status,
        "status_label": STATUS_LABELS.get(status, status),
        "video_url": media(row.get("video")),
        "video_uri": text(row.get("video")),
        "cover_url": media(row.get("cover")),
        "image_url": None if refused else media(image),
        "file_url": media(image) if refused else None,
        "image_uri": text(image),
        "prompt": prompt,
        "writing": writing,
        "writing_source": source,
        "template_prompt": template if template != prompt else None,
        "model": text(model, 200),
        "options": [
            (str(name), shown)
            for name, value in request.items()
            if name not in _NOT_OPTIONS and (shown := text(value, 500)) is not None
        ],
        "duration": _duration(request, model),
        "size": _size(row.get("size")),
        "sha256": sha256,
        "sha256_short": sha256[:12] if sha256 else None,
        "price": _price(row, currency),
        "reason": _reason(row),
        "reused": _reused(row),
        "request_id": text(row.get("request_id") or (error.get("request_id") if isinstance(error, Mapping) else None)),
        "check": text(row.get("check")),
        "job_id": text(row.get("job_id"), 200),
        "review": _card_review(row.get("review"), media),
    }


__all__ = [
    "LEGACY_STATUSES",
    "MAX_TEXT",
    "NOT_REVIEWED",
    "REVIEW_LABELS",
    "STATUS_LABELS",
    "WRITING_SOURCES",
    "MediaUrl",
    "airflow_link",
    "card_of",
    "human_seconds",
    "money",
    "number",
    "review_label",
    "safe_url",
    "text",
]
