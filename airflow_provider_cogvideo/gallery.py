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

import posixpath
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_provider_cogvideo.gallery_cards import (
    MediaUrl,
    airflow_link,
    card_of,
    human_seconds,
    money,
    number,
    review_label,
    text,
)
from airflow_provider_cogvideo.manifest import RowStatus, count_rows
from airflow_provider_cogvideo.review import ReviewMode, ReviewState
from airflow_provider_cogvideo.s3 import parse_s3_uri
from airflow_provider_cogvideo.video_index import slug

TEMPLATES_DIR = Path(__file__).resolve().with_name("templates")
DEFAULT_TEMPLATE = TEMPLATES_DIR / "gallery.html"
"""The shipped page template (package data)."""


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


def _page_review(review: Any) -> dict[str, Any] | None:
    """The document's ``review`` as the top of the page shows it (see :func:`gallery_context`)."""
    if not isinstance(review, Mapping):
        return None
    mode = text(review.get("mode"), 40)
    raw = review.get("counts") if isinstance(review.get("counts"), Mapping) else {}
    counts = {str(state): n for state, n in raw.items() if number(n) is not None}
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
        "counts": [(review_label(text(state, 40)), str(counts[state])) for state in ordered],
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
    cards = [card_of(row, media_url, currency, n) for n, row in enumerate(mappings, start=1)]
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
    cost = money(document.get("total_price"), currency)
    if cost:
        totals.append(("Would cost" if plan else "Cost", f"{cost} (list price)"))
    spent = money(document.get("actual_price"), currency)
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

    cached = f"{number(writing.get('cached')) or 0} from the cache"
    if plan:
        planned = document.get("estimated_writing")
        ceiling = cost(planned.get("ceiling")) if isinstance(planned, Mapping) else None
        return f"at most {ceiling} · {cached}" if ceiling else cached
    calls = f"{number(writing.get('calls')) or 0} call(s)"
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
    "PRELOAD_METADATA_MAX_CARDS",
    "REVIEW_MODE_LABELS",
    "find_template",
    "gallery_context",
    "mapped_media",
    "quote_path",
    "relative_media",
    "render_gallery",
]
