"""The review gallery: one self-contained HTML page per pipeline run, one card per product.

The people who decide about the videos open it in a browser (a phone will do). Each card shows the
product's cover, a ``<video controls>`` player, the product id and title, the prompt, the model and
its options, the duration, the file size, the sha256 (short), the price and the status
(:class:`~airflow_provider_cogvideo.manifest.RowStatus`), with the reason for anything that did not
become a video this run (``failed``, ``ambiguous`` or ``held`` with the request id and what to do,
``refused`` at ingestion, ``not_submitted``, ``waiting`` for a later run), when and by which run a
``reused`` video was paid, and the source image where one exists; above the cards the run's totals
(videos, reused, failures, cost, time taken).

**Formats and written prompts**: a video made for an ad format shows the format as a badge
(``9:16 · 1080x1920``); a prompt written by the prompt writer says so above the prompt sent ("written
by glm-4-plus", "from the cache", or "template's prompt: the writer fell back — <reason>"), with the
template's prompt beneath it, smaller, when the two differ. When any product has more than one video in the run
(several formats or variants), the cards are **grouped per product**: one ``<section class="product">``
per product, headed by its title and id, its cards in the manifest's order; a run of one video per
product keeps the plain grid.

**Review** (the human review loop, :mod:`~airflow_provider_cogvideo.review`): a reviewer answers in
Airflow's *Required actions* page, not here (the page has no scripts and no forms; an answer needs a
signed-in Airflow user). So a card shows its review state, round and a link to its required action
while it awaits an answer, the decisions made so far (with the reviewers' notes, escaped), what was
published and the videos of earlier rounds a reject replaced; the top of the page shows the review
mode, the counts by state and a link to the review run's Required actions. Links to Airflow are
``http(s)://`` only. Without ``[api] base_url`` Airflow cannot build those links: the page says so
instead of leaving the reviewer with nothing to click.

Self-contained: inline CSS, no fonts, no scripts (the page's Content-Security-Policy allows none),
a grid that reflows to one column on a phone.

* Input is a **run manifest** (the document the pipeline writes to ``manifests/<day>/<run_id>.json``):
  the cards show the rows as the manifest records them (statuses, prices, checksums, errors); the
  totals bar takes the counts the manifest computed (``counts``; a manifest written before they
  existed has its rows counted here), the cost and the time from the manifest, and a duration the
  request left unset is the model's default from the capability table.
* Media are named by ``s3://`` URIs in the manifest. A :data:`MediaUrl` callable turns each into what
  the page loads: a presigned URL (:class:`~.operators.gallery.S3VideoGalleryOperator`'s default), a
  key relative to the page (:func:`relative_media`, for a bucket served as a static website), a local
  file (:func:`mapped_media`, the demo's copy), or None (shown as its URI, not loaded).
* **Escaping**: every text of the run (prompts, sidecar fields, server error messages) reaches the
  page through Jinja's autoescape, in a sandboxed environment; a user's template is sandboxed and
  autoescaped too. Media URLs are accepted only as ``http(s)://`` or relative references, never
  ``javascript:`` or ``data:``.
* **The template** is :data:`DEFAULT_TEMPLATE` (Jinja, shipped in this package). Pass your own file to
  replace it: it receives the context :func:`gallery_context` builds (documented there).

Importing this module imports neither Airflow nor Jinja (they load when a page is rendered).
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES
from airflow_provider_cogvideo.manifest import PROMPT_WRITING, RowStatus, count_rows
from airflow_provider_cogvideo.redact import is_http_url, shorten
from airflow_provider_cogvideo.review import ReviewMode, ReviewState
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.sizes import human_size
from airflow_provider_cogvideo.video_index import slug

TEMPLATES_DIR = Path(__file__).resolve().with_name("templates")
DEFAULT_TEMPLATE = TEMPLATES_DIR / "gallery.html"
"""The shipped page template (package data)."""

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

_TOTALS: tuple[tuple[RowStatus, str], ...] = (
    (RowStatus.REUSED, "Reused"),
    (RowStatus.AMBIGUOUS, "Ambiguous"),
    (RowStatus.HELD, "Held"),
    (RowStatus.REJECTED_BY_REVIEW, "Rejected by review"),
    (RowStatus.WAITING, "Waiting"),
    (RowStatus.REFUSED, "Refused"),
    (RowStatus.NOT_SUBMITTED, "Not submitted"),
)
"""The totals shown only when some row has them (after Products, Videos and Failed)."""
_LEGACY_STATUSES = {"rejected": RowStatus.REFUSED.value}
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
REVIEW_MODE_LABELS: dict[ReviewMode, str] = {
    ReviewMode.REQUIRED: "required: each new video waits for a reviewer",
    ReviewMode.PUBLISH_ALL: "publish all: no review, every new video is published",
    ReviewMode.OFF: "off: no review, nothing is published",
}
BASE_URL_NOTICE = (
    "[api] base_url is not set in Airflow's configuration: the gallery cannot link to the reviews; "
    "open Required actions in the Airflow UI"
)
"""Shown in place of the links when Airflow could not build them (a reviewer still has a way in)."""

PRELOAD_METADATA_MAX_CARDS = 200
"""Up to this many cards a page asks the browser for each video's metadata (its duration shows at
once); above it, for none until played (the cover is the poster): 5,000 cards would otherwise open
5,000 requests when the page loads (benchmarks/README.md, section 8)."""

MAX_TEXT = 4000
"""Characters kept of any one text of the run (a runaway sidecar field cannot bloat the page)."""

_NOT_OPTIONS = frozenset({"model", "prompt", "image_url", "request_id", "user_id", PROMPT_WRITING})
"""Fields of the request summary shown elsewhere on the card (or not at all), not as options."""
_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
WRITING_SOURCES = ("writer", "fallback", "dry_run")
"""A prompt writing's ``source`` values (the card's ``writing_source``; any other reads as ``other``)."""


def quote_path(path: str) -> str:
    """A relative path as a URL path: each segment percent-encoded (``:`` too, so no segment reads as a
    scheme), ``/`` kept."""
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def relative_media(page_key: str, bucket: str) -> MediaUrl:
    """Objects of ``bucket`` by their key relative to the page at ``page_key`` (a bucket served as a
    static website); objects of other buckets are not linked (a public page must not point into a
    private bucket)."""
    base = posixpath.dirname(page_key) or "."

    def media_url(uri: str) -> str | None:
        parsed = parse_s3_uri(uri)
        if parsed is None or parsed[0] != bucket:
            return None
        return quote_path(posixpath.relpath(parsed[1], base))

    return media_url


def mapped_media(paths: Mapping[str, str]) -> MediaUrl:
    """URIs to relative file paths (e.g. a local copy of a run's media next to the page)."""
    return lambda uri: quote_path(paths[uri]) if uri in paths else None


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


def _money(amount: Any, currency: str | None) -> str | None:
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
    price = _money(row.get("price"), currency)
    if row.get("status") != RowStatus.REUSED:
        return price
    paid = _money(row.get("paid_price"), text(row.get("currency"), 10) or currency)
    return f"{price or _money(0.0, currency)} this run ({paid} when paid)" if paid else price


def airflow_link(url: Any) -> str | None:
    """``url`` if the page may link to it as an Airflow page: :func:`safe_url`'s rule, and ``http(s)://``
    only (an Airflow page is never relative to where the gallery is stored)."""
    checked = safe_url(url)
    return checked if checked is not None and is_http_url(checked) else None


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list field of the run (anything else in it, or a field that is no list, ignored)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, (list, tuple)) else []


def _review_label(state: str | None) -> str:
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
        "state_label": _review_label(state),
        "state_class": state if state in REVIEW_LABELS else ("none" if state is None else "other"),
        "round": _number(review.get("round")),
        # Only an awaiting review has an action to take; a stale link to an answered one would mislead.
        "link": airflow_link(review.get("link")) if awaiting else None,
        "awaiting": awaiting,
        "decisions": [
            {
                "round": _number(decision.get("round")),
                "answer": text(decision.get("answer"), 40) or "no answer",
                "state_label": _review_label(s) if (s := text(decision.get("state"), 40)) else None,
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
                "round": _number(video.get("round")),
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


def _page_review(review: Any) -> dict[str, Any] | None:
    """The document's ``review`` as the top of the page shows it (see :func:`gallery_context`)."""
    if not isinstance(review, Mapping):
        return None
    mode = text(review.get("mode"), 40)
    raw = review.get("counts") if isinstance(review.get("counts"), Mapping) else {}
    counts = {str(state): n for state, n in raw.items() if _number(n) is not None}
    known = [state.value for state in ReviewState if state.value in counts]  # the loop's order first
    ordered = known + sorted(state for state in counts if state not in known)
    # A review that asks nobody (publish_all, off) has nothing to link to: no notice about links then.
    asks = mode not in (ReviewMode.PUBLISH_ALL, ReviewMode.OFF)
    return {
        "mode": mode,
        "mode_label": REVIEW_MODE_LABELS.get(mode, mode) if mode else "not recorded",
        "run_id": text(review.get("run_id"), 250),
        "link": airflow_link(review.get("link")),
        "base_url_set": review.get("base_url_set") is True,
        "notice": BASE_URL_NOTICE if review.get("base_url_set") is False and asks else None,
        "counts": [(_review_label(text(state, 40)), str(counts[state])) for state in ordered],
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


def _card(row: Mapping[str, Any], media_url: MediaUrl, currency: str | None, index: int = 1) -> dict[str, Any]:
    """One product's card, the ``index``-th of the page (see :func:`gallery_context` for the fields)."""
    status = text(row.get("status"), 40) or "unknown"
    status = _LEGACY_STATUSES.get(status, status)
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


def gallery_context(
    document: Mapping[str, Any],
    media_url: MediaUrl,
    *,
    title: str | None = None,
    links_expire_at: datetime | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """What the template receives: ``{"page": {...}, "cards": [...], "groups": [...]}``, every value
    plain text (or None), numbers formatted, URLs checked.

    ``page``: ``title``, ``run_id``, ``plan`` (a dry run's plan), ``generated_at`` and
    ``links_expire_at`` (ISO text, UTC, or None), ``totals`` (a list of ``(label, value)`` for the
    totals bar: products, videos, reused, failed, ambiguous, held, waiting, refused, not submitted,
    planned, cost, spent, prompt writing (with a prompt writer), time taken; zero counts of the rare
    statuses left out), ``grouped`` (whether the cards are shown per product: some product has more
    than one card), ``counts`` (status -> number: the manifest's ``counts``, or its rows counted when
    it has none), ``preload`` (what
    the video players load before they are played: ``metadata``, or ``none`` past
    :data:`PRELOAD_METADATA_MAX_CARDS` cards), ``review`` (None, or the document's review: ``mode``,
    ``mode_label``, ``run_id``, ``link`` (the review run's Required actions page, ``http(s)`` only, or
    None), ``base_url_set``, ``notice`` (:data:`BASE_URL_NOTICE` when Airflow's ``[api] base_url`` was
    not set and the mode asks reviewers, else None), ``counts`` (a list of ``(label, value)`` by review
    state)).

    ``cards``, one per manifest row, in the manifest's order: ``index`` (its position, from 1: the
    card's ``id`` is ``product-<index>``), ``product_id``, ``variant``, ``format`` (the ad format's
    badge, ``9:16 · 1080x1920``, or None), ``title``, ``status`` (a
    :class:`~airflow_provider_cogvideo.manifest.RowStatus` value; an old manifest's ``rejected`` reads
    as ``refused``), ``status_label``, ``video_url``, ``cover_url``, ``image_url`` (the source image,
    shown), ``file_url`` (a refused file, linked, not shown: it may not be an image at all),
    ``video_uri``, ``image_uri``, ``prompt`` (the prompt sent), ``writing`` (how a prompt writer made
    it: ``written by <model>``, with `` (from the cache)`` when the cache held it, ``template's prompt:
    the writer fell back — <reason>``, a dry run's ``to be written by <model> ...``; None without a
    writer), ``writing_source`` (``writer``, ``fallback``, ``dry_run``, ``other`` or None: for CSS),
    ``template_prompt`` (the template's prompt, when written and not the prompt sent, else None),
    ``model``, ``options`` (list of ``(name, value)``),
    ``duration``, ``size``, ``sha256``, ``sha256_short``, ``price`` (a reused video's: nothing this
    run, and what it cost when paid), ``reason`` (an error, or why a product waits), ``reused`` (when
    and by which run a reused video was paid), ``request_id``, ``check`` (what to do about an
    ambiguous or held submit), ``job_id``, ``review`` (None, or: ``state`` (a
    :class:`~airflow_provider_cogvideo.review.ReviewState` value, or None), ``state_label``
    (:data:`REVIEW_LABELS`), ``state_class`` (the state when known, ``none`` or ``other``: for CSS),
    ``round``, ``link`` (the product's Required actions page: only while ``awaiting``, ``http(s)``
    only), ``awaiting``, ``decisions`` (each ``round``, ``answer``, ``state_label``, ``note``, ``by``,
    ``at``, ``job_id``), ``published`` (``video_uri``, ``video_url``, ``cover_uri``, ``sha256``, or
    None), ``videos`` (earlier rounds' videos: ``round``, ``video_uri``, ``video_url``, ``cover_url``,
    ``job_id``, ``prompt``)).

    ``groups``, the cards per product, each product where its first row is, its cards in the
    manifest's order: ``product_id``, ``title`` (its first card's with one), ``anchor`` (the section's
    ``id``: ``group-<slug of the product id>``; None for rows without a product id, each a group of
    its own) and ``cards``. The default template shows them when ``page.grouped``.
    """
    currency = text(document.get("currency"), 10)
    rows = document.get("products") or []
    mappings = [row for row in rows if isinstance(row, Mapping)]
    cards = [_card(row, media_url, currency, n) for n, row in enumerate(mappings, start=1)]
    groups = _groups(mappings, cards)
    counts = _counts(document, cards)
    plan = bool(document.get("plan"))
    run_id = text(document.get("dag_run"), 250)
    totals: list[tuple[str, str]] = [
        ("Products", str(sum(counts.values()))),
        ("Videos", str(counts.get(RowStatus.UPLOADED, 0))),
        ("Failed", str(counts.get(RowStatus.FAILED, 0))),
    ]
    totals.extend((label, str(counts[status])) for status, label in _TOTALS if counts.get(status))
    if plan or counts.get(RowStatus.PLANNED):
        totals.append(("Planned", str(counts.get(RowStatus.PLANNED, 0))))
    cost = _money(document.get("total_price"), currency)
    if cost:
        totals.append(("Would cost" if plan else "Cost", f"{cost} (list price)"))
    spent = _money(document.get("actual_price"), currency)
    if spent and not plan:
        totals.append(("Submits paid", spent))
    if writing := _writing_total(document, currency, plan):
        totals.append(("Prompt writing", writing))
    taken = human_seconds(document.get("elapsed_seconds"))
    totals.append(("Time taken", taken or "not recorded"))
    default_title = f"Product videos: {run_id}" if run_id else "Product videos"
    return {
        "page": {
            "title": text(title, 300) or default_title,
            "run_id": run_id,
            "plan": plan,
            "generated_at": _iso(generated_at or datetime.now(timezone.utc)),
            "links_expire_at": _iso(links_expire_at) if links_expire_at else None,
            "totals": totals,
            "counts": counts,
            "preload": "metadata" if len(cards) <= PRELOAD_METADATA_MAX_CARDS else "none",
            "review": _page_review(document.get("review")),
            "grouped": any(len(group["cards"]) > 1 for group in groups),
        },
        "cards": cards,
        "groups": groups,
    }


def _groups(rows: list[Mapping[str, Any]], cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cards per product (see :func:`gallery_context`)."""
    groups: dict[Any, dict[str, Any]] = {}
    for n, (row, card) in enumerate(zip(rows, cards, strict=True)):
        product = row.get("product_id")
        key = str(product) if product is not None else n  # no product id: a group of its own
        if key not in groups:
            anchor = f"group-{slug(str(product))}" if product is not None else None
            groups[key] = {"product_id": card["product_id"], "title": None, "anchor": anchor, "cards": []}
        group = groups[key]
        group["cards"].append(card)
        group["title"] = group["title"] or card["title"]
    return list(groups.values())


def _writing_total(document: Mapping[str, Any], currency: str | None, plan: bool) -> str | None:
    """The totals bar's prompt writing: this run's calls and their cost (a dry run: the most they could
    cost) and how many prompts came from the cache; None without a prompt writer."""
    writing = document.get("writing")
    if not isinstance(writing, Mapping):
        return None

    def cost(amount: Any) -> str | None:  # a writing costs fractions of a cent: not rounded to 2 places
        if isinstance(amount, bool) or not isinstance(amount, (int, float)):
            return None
        return f"{amount:g} {currency or ''}".strip()

    cached = f"{_number(writing.get('cached')) or 0} from the cache"
    if plan:
        planned = document.get("estimated_writing")
        ceiling = cost(planned.get("ceiling")) if isinstance(planned, Mapping) else None
        return f"at most {ceiling} · {cached}" if ceiling else cached
    calls = f"{_number(writing.get('calls')) or 0} call(s)"
    return " · ".join(part for part in (calls, cost(writing.get("price")), cached) if part)


def _counts(document: Mapping[str, Any], cards: list[dict[str, Any]]) -> dict[str, int]:
    """The manifest's own ``counts`` (computed once, when it was built); for a manifest written before
    it had them, the cards' statuses counted here."""
    counts = document.get("counts")
    if isinstance(counts, Mapping) and all(isinstance(n, int) and not isinstance(n, bool) for n in counts.values()):
        return {str(status): n for status, n in counts.items()}
    return count_rows(cards)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def find_template(template: str | Path, search_path: Iterable[str | Path] = ()) -> Path:
    """A user's template file: an absolute path, or a relative one found in ``search_path`` (e.g. the
    DAG's folder and ``template_searchpath``) or the working directory."""
    path = Path(template).expanduser()
    candidates = [path] if path.is_absolute() else [Path(base) / path for base in search_path] + [path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"gallery template {str(template)!r} not found (looked in: {looked})")


def render_gallery(
    document: Mapping[str, Any],
    media_url: MediaUrl,
    *,
    template: str | Path | None = None,
    search_path: Iterable[str | Path] = (),
    title: str | None = None,
    links_expire_at: datetime | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The gallery page of a run manifest, as HTML text (see :func:`gallery_context` for what a
    template receives). ``template``: a Jinja file replacing :data:`DEFAULT_TEMPLATE`."""
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    path = DEFAULT_TEMPLATE if template is None else find_template(template, search_path)
    # Autoescape always on, whatever the file is called: a user's template escapes the run's text too.
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(path.parent)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    context = gallery_context(
        document, media_url, title=title, links_expire_at=links_expire_at, generated_at=generated_at
    )
    return env.get_template(path.name).render(**context)


__all__ = [
    "BASE_URL_NOTICE",
    "DEFAULT_TEMPLATE",
    "NOT_REVIEWED",
    "PRELOAD_METADATA_MAX_CARDS",
    "REVIEW_LABELS",
    "REVIEW_MODE_LABELS",
    "STATUS_LABELS",
    "MediaUrl",
    "airflow_link",
    "find_template",
    "gallery_context",
    "human_seconds",
    "mapped_media",
    "quote_path",
    "relative_media",
    "render_gallery",
    "safe_url",
]
