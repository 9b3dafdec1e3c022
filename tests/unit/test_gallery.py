"""The review gallery page: valid HTML5, every text of the run escaped, URLs checked, totals right,
a user's template sandboxed and autoescaped; the operator writes it to S3 (moto) with its media.

HTML validity is checked with Python's ``html.parser`` plus :class:`StrictHtml5Check` below, the HTML5
parse errors a page like this can have: no doctype, a tag closed out of order or never, an end tag for
a void element, a self-closed non-void element, a block element opened inside ``<p>`` (HTML5 closes the
``<p>``, and the explicit ``</p>`` becomes an error), ``<a>`` in ``<a>``, wrong children of
``<dl>``/``<ul>``, duplicate attributes or ids, an ``<img>`` without ``alt``. (html5lib is not in the
locks; a real browser parses the page in ``tests/browser/``.)
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.gallery import (
    BASE_URL_NOTICE,
    DEFAULT_TEMPLATE,
    gallery_context,
    mapped_media,
    relative_media,
    render_gallery,
)
from airflow_provider_cogvideo.gallery_cards import human_seconds, safe_url
from airflow_provider_cogvideo.links import signed_url_expiry

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})
BLOCKS = frozenset(
    {"address", "article", "aside", "blockquote", "div", "dl", "fieldset", "figure", "footer", "form", "h1", "h2",
     "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section", "table", "ul"}
)  # fmt: skip
"""Start tags that close an open ``<p>`` in HTML5's tree construction."""
CHILDREN = {"dl": {"dt", "dd", "div"}, "ul": {"li"}, "ol": {"li"}}

SCRIPT_TITLE = '<script>window.__pwned = 1</script>Mug "Deluxe" & co'
RUN = "manual__2026-12-01T10:00:00+00:00"
IMG_ATTACK = "<img src=x onerror=alert(1)>"


class StrictHtml5Check(HTMLParser):
    """Collects HTML5 parse errors (see the module docstring) while ``html.parser`` tokenizes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.doctypes = 0
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def error_at(self, message: str) -> None:
        self.errors.append(f"line {self.getpos()[0]}: {message}")

    def handle_decl(self, decl: str) -> None:
        if decl.lower() != "doctype html" or self.tags:
            self.error_at(f"unexpected declaration <!{decl}>")
        self.doctypes += 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        names = [name for name, _ in attrs]
        if len(names) != len(set(names)):
            self.error_at(f"<{tag}> has duplicate attributes {names}")
        for name, value in attrs:
            if name == "id":
                if value in self.ids:
                    self.error_at(f"duplicate id {value!r}")
                self.ids.add(value or "")
        if tag == "img" and "alt" not in names:
            self.error_at("<img> without alt")
        if tag in BLOCKS and "p" in self.stack:
            self.error_at(f"<{tag}> inside <p>")
        if tag == "a" and "a" in self.stack:
            self.error_at("<a> inside <a>")
        parent = self.stack[-1] if self.stack else None
        if parent in CHILDREN and tag not in CHILDREN[parent]:
            self.error_at(f"<{tag}> is not allowed as a child of <{parent}>")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.error_at(f"<{tag}/> self-closes a non-void element")
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.error_at(f"</{tag}> closes a void element")
        elif not self.stack or self.stack[-1] != tag:
            self.error_at(f"</{tag}> does not close the open <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if data.strip() and self.stack and self.stack[-1] in CHILDREN:
            self.error_at(f"text {data.strip()[:20]!r} directly in <{self.stack[-1]}>")


def html5_errors(page: str) -> list[str]:
    checker = StrictHtml5Check()
    checker.feed(page)
    checker.close()
    errors = list(checker.errors)
    if checker.doctypes != 1:
        errors.append(f"{checker.doctypes} doctypes")
    if checker.stack:
        errors.append(f"elements never closed: {checker.stack}")
    if checker.tags[:1] != ["html"]:
        errors.append("the page does not start with <html>")
    return errors


def _row(product_id: str, status: str, **fields: Any) -> dict[str, Any]:
    return {"product_id": product_id, "status": status, "image": f"s3://products/incoming/{product_id}.png", **fields}


def manifest(**overrides: Any) -> dict[str, Any]:
    """A manifest with one product of every status, as the pipeline's manifest task writes it."""
    uploaded = _row(
        "mug-01",
        "uploaded",
        title=SCRIPT_TITLE,
        video="s3://out/videos/2026-12-01/mug-01.mp4",
        cover="s3://out/videos/2026-12-01/mug-01.png",
        sha256="c7ee77b49ef8" + "0" * 52,
        size=415_000,
        job_id="8123456789012345678",
        model="cogvideox-3",
        prompt='A mug <b>bold</b> & "quoted" </blockquote>',
        request={"model": "cogvideox-3", "prompt": "…", "image_url": "s3://x", "quality": "speed", "fps": 30},
        price=1.0,
    )
    rows = [
        uploaded,
        _row("lamp-02", "failed", error={"error": f"job 81: FAIL {IMG_ATTACK}", "type": "X"}, title="Lamp"),
        _row(
            "cup-03",
            "ambiguous",
            request_id="req-3",
            error={"error": "submit answer lost", "status": "ambiguous", "request_id": "req-3"},
            check="Look up request_id req-3 in the BigModel console",
        ),
        _row("tea-04", "not_submitted", error="the run's estimate 4 is over max_total_price=3: nothing was submitted"),
        _row("pot-05", "planned", model="vidu2-image", request={"model": "vidu2-image", "duration": 4}, price=0.5),
        _row(
            "vase-06",
            "reused",
            video="s3://out/videos/vase-06/default/0123456789abcdef-81.mp4",
            cover="s3://out/videos/vase-06/default/0123456789abcdef-81.png",
            sha256="d00d" + "1" * 60,
            size=2048,
            job_id="81",
            model="cogvideox-3",
            price=0.0,
            paid_price=1.0,
            currency="CNY",
            paid_by_run="scheduled__2026-11-30T00:00:00+00:00",
            paid_at="2026-11-30T00:05:12+00:00",
        ),
        _row(
            "bowl-07",
            "held",
            request_id="req-7",
            held_by_run="scheduled__2026-11-29T00:00:00+00:00",
            check=f"Run scheduled__2026-11-29 left this submit ambiguous {IMG_ATTACK}",
        ),
        _row("jar-08", "waiting", reason="over this run's cap of 2 paid item(s): taken by the next run"),
        {"product_id": "broken", "status": "refused", "image": "s3://products/incoming/broken.jpg", "error": "x"},
    ]
    rows[-1]["error"] = "not a decodable image"
    counts = {"uploaded": 1, "reused": 1, "waiting": 1, "held": 1, "failed": 1, "ambiguous": 1}
    document = {
        "dag_run": RUN,
        "plan": False,
        "products": rows,
        "counts": {**counts, "not_submitted": 1, "refused": 1, "planned": 1},
        "total_price": 1.0,
        "actual_price": 2.0,
        "estimated_price": 5.0,
        "currency": "CNY",
        "elapsed_seconds": 125.4,
    }
    return {**document, **overrides}


def presigned(uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return f"http://s3.test/{bucket}/{key}?X-Amz-Signature=abc&X-Amz-Expires=604800"


def test_the_page_is_valid_html5_and_self_contained() -> None:
    page = render_gallery(manifest(), presigned)
    assert html5_errors(page) == []
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert '<meta charset="utf-8">' in page[:200]
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
    assert "minmax(min(100%, 340px), 1fr)" in page  # the grid reflows to one column on a phone
    # No scripts, no external stylesheets or fonts (the one <link> is an empty icon: no favicon request);
    # the CSP allows no script at all.
    assert re.findall(r"<link[^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert not re.search(r"<script|@import|@font-face|url\(", page, re.IGNORECASE)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)[1]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert html5_errors(render_gallery(manifest(products=[]), presigned)) == []


def test_every_text_of_the_run_is_escaped() -> None:
    page = render_gallery(manifest(), presigned)
    assert "<script" not in page and "onerror=" not in page.replace("onerror=alert", "")  # only as escaped text
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;Mug &#34;Deluxe&#34; &amp; co" in page
    assert "A mug &lt;b&gt;bold&lt;/b&gt; &amp; &#34;quoted&#34; &lt;/blockquote&gt;" in page
    assert "FAIL &lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>" not in page and "<img src=x" not in page


def test_hostile_ids_cannot_leave_their_attribute() -> None:
    row = _row('x" onmouseover="alert(1)', "failed", error="boom")
    page = render_gallery(manifest(products=[row]), presigned)
    assert 'data-product-id="x&#34; onmouseover=&#34;alert(1)"' in page
    assert html5_errors(page) == []


def test_cards_carry_what_a_reviewer_needs() -> None:
    context = gallery_context(manifest(), presigned)
    cards = {card["product_id"]: card for card in context["cards"]}
    assert list(cards) == ["mug-01", "lamp-02", "cup-03", "tea-04", "pot-05", "vase-06", "bowl-07", "jar-08", "broken"]
    mug = cards["mug-01"]
    assert mug["video_url"] == presigned("s3://out/videos/2026-12-01/mug-01.mp4")
    assert mug["cover_url"] == presigned("s3://out/videos/2026-12-01/mug-01.png")
    assert mug["image_url"] == presigned("s3://products/incoming/mug-01.png")
    assert (mug["sha256_short"], mug["size"], mug["price"], mug["model"]) == (
        "c7ee77b49ef8",
        "405 KB",
        "1.00 CNY",
        "cogvideox-3",
    )
    assert mug["options"] == [("quality", "speed"), ("fps", "30")]  # model, prompt, image_url shown elsewhere
    assert mug["duration"] == "5 s (model default)"
    assert cards["pot-05"]["duration"] == "4 s"
    assert cards["lamp-02"]["reason"] == "job 81: FAIL <img src=x onerror=alert(1)>"  # escaped by the template
    assert (cards["cup-03"]["request_id"], cards["cup-03"]["check"]) == (
        "req-3",
        "Look up request_id req-3 in the BigModel console",
    )
    assert cards["tea-04"]["reason"].startswith("the run's estimate 4 is over")
    # A refused file may not be an image at all: linked, not shown.
    assert cards["broken"]["image_url"] is None and cards["broken"]["file_url"].startswith("http://s3.test/products/")
    assert (cards["broken"]["reason"], cards["broken"]["status_label"]) == (
        "not a decodable image",
        "Refused at ingestion",
    )
    assert cards["lamp-02"]["image_url"]  # a failed product shows the image it was made from
    assert gallery_context(manifest(products=[_row("a", "failed")]), presigned)["cards"][0]["reason"].startswith(
        "No error was recorded"
    )  # fmt: skip


def test_reused_held_and_waiting_cards() -> None:
    cards = {card["product_id"]: card for card in gallery_context(manifest(), presigned)["cards"]}
    vase, bowl, jar = cards["vase-06"], cards["bowl-07"], cards["jar-08"]
    # A reused video plays as an uploaded one does, and says when and by which run it was paid.
    assert vase["video_url"] == presigned("s3://out/videos/vase-06/default/0123456789abcdef-81.mp4")
    assert vase["cover_url"] == presigned("s3://out/videos/vase-06/default/0123456789abcdef-81.png")
    assert vase["reused"] == "Reused: paid 2026-11-30T00:05:12+00:00 by run scheduled__2026-11-30T00:00:00+00:00"
    assert (vase["status_label"], vase["price"], vase["reason"]) == (
        "Reused",
        "0.00 CNY this run (1.00 CNY when paid)",
        None,
    )
    # A held product: the request id to look up and what a person does; its source image, no video.
    assert (bowl["request_id"], bowl["status_label"]) == ("req-7", "Held: check before paying again")
    assert bowl["check"].startswith("Run scheduled__2026-11-29 left") and bowl["video_url"] is None
    assert bowl["image_url"] == presigned("s3://products/incoming/bowl-07.png") and bowl["reused"] is None
    assert (jar["reason"], jar["status_label"]) == (
        "over this run's cap of 2 paid item(s): taken by the next run",
        "Waiting for a later run",
    )
    page = render_gallery(manifest(), presigned)
    assert html5_errors(page) == []
    assert (
        '<p class="reused">Reused: paid 2026-11-30T00:05:12+00:00 by run scheduled__2026-11-30T00:00:00+00:00</p>'
        in page
    )
    assert "left this submit ambiguous &lt;img src=x onerror=alert(1)&gt;</p>" in page  # the check is escaped too
    assert len(re.findall(r"<video ", page)) == 2  # the uploaded and the reused video


def test_an_old_manifests_rejected_rows_read_as_refused() -> None:
    old = {"products": [{"product_id": "b", "status": "rejected", "image": "s3://in/b.txt", "error": "x"}]}
    context = gallery_context(old, presigned)
    card = context["cards"][0]
    assert (card["status"], card["status_label"], card["image_url"]) == ("refused", "Refused at ingestion", None)
    assert dict(context["page"]["totals"])["Refused"] == "1"


def test_totals() -> None:
    totals = dict(gallery_context(manifest(), presigned)["page"]["totals"])
    assert totals == {
        "Products": "9",
        "Videos": "1",
        "Failed": "1",
        "Reused": "1",
        "Ambiguous": "1",
        "Held": "1",
        "Waiting": "1",
        "Refused": "1",
        "Not submitted": "1",
        "Planned": "1",
        "Cost": "1.00 CNY (list price)",
        "Submits paid": "2.00 CNY",
        "Time taken": "2 min 05 s",
    }
    plan = dict(gallery_context(manifest(plan=True, products=[], counts=None), presigned)["page"]["totals"])
    assert plan["Would cost"] == "1.00 CNY (list price)" and "Submits paid" not in plan
    assert (plan["Products"], plan["Planned"]) == ("0", "0")


def test_totals_are_the_manifests_counts() -> None:
    """The manifest counted its rows once; the page shows those counts, not a recount of its own. A
    manifest without counts (written before they existed) has its rows counted."""
    counts = {"uploaded": 40, "reused": 500, "failed": 2, "waiting": 0}
    page = gallery_context(manifest(counts=counts), presigned)["page"]
    assert page["counts"] == counts
    totals = dict(page["totals"])
    assert (totals["Products"], totals["Videos"], totals["Reused"], totals["Failed"]) == ("542", "40", "500", "2")
    assert "Waiting" not in totals and "Held" not in totals  # zero counts of the rare statuses are left out
    rows = [_row("a", "uploaded"), _row("b", "uploaded"), _row("c", "waiting", reason="later")]
    counted = gallery_context({"products": rows}, presigned)["page"]
    assert (counted["counts"]["uploaded"], counted["counts"]["waiting"], counted["counts"]["failed"]) == (2, 1, 0)
    assert dict(counted["totals"])["Products"] == "3"
    assert [human_seconds(s) for s in (4.4, 65, 7300, None)] == ["4 s", "1 min 05 s", "2 h 01 min", None]


def test_media_urls_are_http_or_relative_only() -> None:
    assert safe_url("https://cdn.test/a.mp4?sig=1") == "https://cdn.test/a.mp4?sig=1"
    assert safe_url("../../videos/a.mp4") == "../../videos/a.mp4"
    for bad in (
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,x",
        "//evil.test/a",
        "vbscript:x",
        "a b",
        "",
    ):
        assert safe_url(bad) is None, bad
    page = render_gallery(manifest(), lambda uri: "javascript:alert(1)")
    assert "javascript:" not in page and "<video" not in page


def test_relative_media_for_a_static_website_bucket() -> None:
    media = relative_media("gallery/2026-12-01/run.html", "out")
    assert media("s3://out/videos/2026-12-01/mug-01.mp4") == "../../videos/2026-12-01/mug-01.mp4"
    assert media("s3://out/gallery/2026-12-01/javascript:x.png") == "javascript%3Ax.png"  # never a scheme
    assert media("s3://products/incoming/mug-01.png") is None  # other buckets are not linked from a public page
    assert mapped_media({"s3://out/a b.mp4": "videos/a b.mp4"})("s3://out/a b.mp4") == "videos/a%20b.mp4"


def test_a_user_template_replaces_the_default_sandboxed_and_autoescaped(tmp_path: Path) -> None:
    from jinja2.exceptions import SecurityError, UndefinedError

    (tmp_path / "mine.txt").write_text(
        "{% for c in cards %}[{{ c.title }}|{{ c.status }}]{% endfor %} {{ page.title }}"
    )
    out = render_gallery(manifest(), presigned, template="mine.txt", search_path=[tmp_path])
    assert out.startswith("[&lt;script&gt;window.__pwned = 1&lt;/script&gt;Mug &#34;Deluxe&#34; &amp; co|uploaded]")
    assert out.endswith(f" Product videos: {RUN}")
    (tmp_path / "escape.html").write_text("{{ cards.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        render_gallery(manifest(), presigned, template=tmp_path / "escape.html")
    (tmp_path / "typo.html").write_text("{{ page.titel }}")
    with pytest.raises(UndefinedError):
        render_gallery(manifest(), presigned, template=tmp_path / "typo.html")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.html"):
        render_gallery(manifest(), presigned, template="nowhere.html", search_path=[tmp_path])


def test_the_template_ships_in_the_package() -> None:
    from importlib.resources import files

    shipped = files("airflow_provider_cogvideo") / "templates" / "gallery.html"
    assert shipped.is_file() and DEFAULT_TEMPLATE.read_text() == shipped.read_text()


def test_a_catalog_sized_page_loads_no_video_until_played() -> None:
    """Up to 200 cards the browser reads each video's metadata; past it, none until one is played."""
    rows = [_row(f"p{n}", "uploaded", video=f"s3://out/videos/p{n}.mp4") for n in range(201)]
    assert render_gallery(manifest(products=rows[:200]), presigned).count('preload="metadata"') == 200
    big = render_gallery(manifest(products=rows), presigned)
    assert big.count('preload="none"') == 201 and 'preload="metadata"' not in big


def test_long_texts_are_capped() -> None:
    card = gallery_context(manifest(products=[_row("a", "failed", error="x" * 10_000)]), presigned)["cards"][0]
    assert len(card["reason"]) < 4100 and card["reason"].endswith("(6000 more characters)")


# ------------------------------------------------------------------ the review loop on the page

AIRFLOW = "https://airflow.test/required_actions"
NOTE_ATTACK = '<script>window.__gallery_pwned = 1</script>too dark & "blurry"'
SHA = "ab12" * 16


def _review(state: str | None, **fields: Any) -> dict[str, Any]:
    return {"state": state, "round": 1, "link": f"{AIRFLOW}?dag_run_id=r&task_id={state}", **fields}


def reviewed(**overrides: Any) -> dict[str, Any]:
    """A required-review run: a product in each review state, as the manifest task records them."""
    note = {"round": 0, "answer": "Reject", "state": "regenerating", "note": NOTE_ATTACK, "by": "alice"}
    rejected = {**note, "at": "2026-12-01T10:05:00+00:00", "job_id": "81", "video": "s3://out/v/b-0.mp4"}
    approved = {"round": 1, "answer": "Approve", "state": "approved", "note": None, "by": "bob", "job_id": "82"}
    timeout = {"round": 0, "answer": "timeout", "state": "held", "note": None, "by": None, "at": None}
    round_0 = {
        "round": 0,
        "video": "s3://out/v/b-0.mp4",
        "cover": "s3://out/v/b-0.png",
        "job_id": "81",
        "prompt": "A cup",
    }
    published = {"video": "s3://out/published/b.mp4", "cover": None, "sha256": SHA}
    b_review = _review("approved", decisions=[rejected, approved], published=published, videos=[round_0])
    # Reused from an earlier run: only its state, decisions and published object.
    f_review = {"state": "approved", "published": {"video": "s3://out/published/f.mp4", "sha256": "f" * 64}}
    rows = [
        _row("a-awaiting", "uploaded", video="s3://out/v/a.mp4", review=_review("awaiting", round=2)),
        _row("b-approved", "uploaded", video="s3://out/v/b-1.mp4", prompt="A cup, brighter", review=b_review),
        _row("c-rejected", "rejected_by_review", review=_review("rejected_by_review")),
        _row("d-held", "uploaded", video="s3://out/v/d.mp4", review=_review("held", decisions=[timeout])),
        _row("e-regenerating", "uploaded", review=_review("regenerating")),
        _row("f-reused", "reused", video="s3://out/v/f.mp4", review=f_review),
        _row("g-none", "uploaded", review=None),
    ]
    review = {
        "mode": "required",
        "run_id": "review__2026-12-01",
        "link": f"{AIRFLOW}?dag_run_id=review__2026-12-01",
        "base_url_set": True,
        "counts": {"approved": 2, "awaiting": 1, "held": 1, "rejected_by_review": 1, "regenerating": 1},
    }
    return manifest(products=rows, counts=None, review={**review, **overrides})


def _cards(document: dict[str, Any], media: Any = presigned) -> dict[str, Any]:
    return {card["product_id"]: card for card in gallery_context(document, media)["cards"]}


def _card_html(page: str, product_id: str) -> str:
    return re.search(rf'<article [^>]*data-product-id="{product_id}"[^>]*>.*?</article>', page, re.DOTALL)[0]


def test_each_card_shows_its_review_state_and_round() -> None:
    page = render_gallery(reviewed(), presigned)
    assert html5_errors(page) == []
    badges = {
        pid: re.search(r'<span class="review-badge">([^<]*)</span>', _card_html(page, pid))[1]
        for pid in ("a-awaiting", "b-approved", "c-rejected", "d-held", "e-regenerating", "f-reused")
    }
    assert badges == {
        "a-awaiting": "awaiting review",
        "b-approved": "approved",
        "c-rejected": "rejected by review",
        "d-held": "held (no answer)",
        "e-regenerating": "regenerating",
        "f-reused": "approved",
    }
    assert '<span class="review-round">round 2</span>' in _card_html(page, "a-awaiting")
    assert 'data-review-state="awaiting"' in _card_html(page, "a-awaiting")
    assert 'class="review review-state-rejected_by_review"' in _card_html(page, "c-rejected")
    unreviewed = _card_html(page, "g-none")
    assert 'class="review-badge"' not in unreviewed and "data-review-state" not in unreviewed
    assert 'class="review-round"' not in _card_html(page, "f-reused")  # a reused row's review has no round
    assert 'class="review-badge"' not in render_gallery(manifest(), presigned)  # a manifest without reviews


def test_a_card_links_to_its_required_action_only_while_awaiting_and_only_over_http() -> None:
    page = render_gallery(reviewed(), presigned)
    links = re.findall(r'<a class="review-link" href="([^"]+)">Review in Airflow</a>', page)
    assert links == [f"{AIRFLOW}?dag_run_id=r&amp;task_id=awaiting"]  # the other states carry a link too: not shown
    assert _cards(reviewed())["b-approved"]["review"]["link"] is None
    for bad in ("javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "/required_actions", "//evil.test"):
        row = _row("x", "uploaded", review=_review("awaiting", link=bad))
        document = manifest(products=[row], review={"mode": "required", "link": bad, "base_url_set": True})
        page = render_gallery(document, presigned)
        assert 'class="review-link"' not in page and 'class="review-run-link"' not in page, bad
        assert bad.lower() not in page.lower(), bad
        assert "answer it in Airflow's Required actions" in page  # still told where to answer
        assert html5_errors(page) == []


def test_a_reviewers_note_is_escaped_and_capped() -> None:
    page = render_gallery(reviewed(), presigned)
    assert "<script" not in page and "__gallery_pwned = 1</script>" not in page
    escaped = "&lt;script&gt;window.__gallery_pwned = 1&lt;/script&gt;too dark &amp; &#34;blurry&#34;"
    assert f'<p class="review-note">{escaped}</p>' in _card_html(page, "b-approved")
    decision = re.findall(r'<li class="review-decision">(.*?)</li>', _card_html(page, "b-approved"), re.DOTALL)
    assert decision[0].startswith('Round 0: <strong class="review-answer">Reject</strong> by alice at 2026-12-01T10:05')
    assert decision[1] == 'Round 1: <strong class="review-answer">Approve</strong> by bob → approved'
    assert '<strong class="review-answer">timeout</strong> → held (no answer)</li>' in _card_html(page, "d-held")
    long = _row("x", "uploaded", review={"state": "held", "decisions": [{"answer": "Reject", "note": "n" * 9000}]})
    [note] = [d["note"] for d in _cards(manifest(products=[long]))["x"]["review"]["decisions"]]
    assert len(note) < 4100 and note.endswith("(5000 more characters)")


def test_the_published_object_and_earlier_rounds_are_shown() -> None:
    page = render_gallery(reviewed(), presigned)
    card = _card_html(page, "b-approved")
    assert f'sha256 <code class="review-published-sha256">{SHA}</code>' in card
    assert '<code class="review-published-video">s3://out/published/b.mp4</code>' in card
    assert f'<code class="review-published-sha256">{"f" * 64}</code>' in _card_html(page, "f-reused")
    # The rejected round-0 video plays next to the latest one (loaded only when played), with its prompt.
    earlier = re.search(r'<figure class="review-round-video">.*?</figure>', card, re.DOTALL)[0]
    src, poster = (html.escape(presigned(f"s3://out/v/b-0.{ext}")) for ext in ("mp4", "png"))
    assert f'<video controls preload="none" playsinline src="{src}" poster="{poster}">' in earlier
    assert "Round 0 · job <code>81</code>" in earlier and '<span class="review-round-prompt">A cup</span>' in earlier
    assert card.count("<video ") == 2  # the latest round's video and the earlier one
    # An earlier video the page cannot load is named, not played.
    unlinked = render_gallery(reviewed(), lambda uri: "javascript:alert(1)")
    assert "<video" not in unlinked and "· <code>s3://out/v/b-0.mp4</code>" in unlinked


def test_the_top_of_the_page_shows_the_review_mode_counts_and_run_link() -> None:
    page = render_gallery(reviewed(), presigned)
    top = re.search(r'<section class="review-run".*?</section>', page, re.DOTALL)[0]
    assert "Review: <strong>required: each new video waits for a reviewer</strong>" in top
    assert "review run <code>review__2026-12-01</code>" in top
    assert f'<a class="review-run-link" href="{AIRFLOW}?dag_run_id=review__2026-12-01">' in top
    counts = gallery_context(reviewed(), presigned)["page"]["review"]["counts"]
    assert counts == [
        ("awaiting review", "1"),
        ("approved", "2"),
        ("rejected by review", "1"),
        ("held (no answer)", "1"),
        ("regenerating", "1"),
    ]  # in the loop's order
    assert "<div><dt>held (no answer)</dt><dd>1</dd></div>" in top
    assert 'class="review-notice"' not in page
    assert 'class="review-run"' not in render_gallery(manifest(), presigned)  # no review: nothing shown


def test_without_airflows_base_url_the_page_says_where_to_review() -> None:
    document = reviewed(link=None, base_url_set=False)
    for row in document["products"]:
        if row["review"]:
            row["review"]["link"] = None
    page = render_gallery(document, presigned)
    assert html5_errors(page) == []
    notice = BASE_URL_NOTICE.replace("'", "&#39;")  # autoescaped
    assert f'<p class="review-notice">{notice}</p>' in page
    assert BASE_URL_NOTICE.startswith("[api] base_url is not set in Airflow's configuration")
    assert 'class="review-link"' not in page and 'class="review-run-link"' not in page
    assert "answer it in Airflow's Required actions" in _card_html(page, "a-awaiting")
    # A mode that asks nobody has no reviews to link to: no notice.
    for mode in ("publish_all", "off"):
        assert 'class="review-notice"' not in render_gallery(reviewed(mode=mode, base_url_set=False), presigned)


# ------------------------------------------------------------------ the operator, on moto's S3


@pytest.fixture
def s3(moto_s3: Any) -> Any:
    moto_s3.create_bucket(Bucket="out")
    return moto_s3


def gallery_operator(**kwargs: Any):
    from airflow_provider_cogvideo.operators.gallery import S3VideoGalleryOperator

    defaults = {"task_id": "gallery", "manifest": manifest(), "s3_bucket": "out", "aws_conn_id": "aws_test"}
    return S3VideoGalleryOperator(**{**defaults, "s3_key": "gallery/2026-12-01/run.html", **kwargs})


def test_operator_writes_the_page_with_presigned_media(s3, capsys: pytest.CaptureFixture[str]) -> None:
    # Whole seconds: a signed URL's expiry is an integer epoch, truncated from the signing moment.
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = gallery_operator(url_expires=timedelta(days=2)).execute({})
    answer = s3.get_object(Bucket="out", Key="gallery/2026-12-01/run.html")
    assert answer["ContentType"] == "text/html; charset=utf-8"
    page = answer["Body"].read().decode()
    assert html5_errors(page) == []
    videos = re.findall(r'<video[^>]* src="([^"]+)"', page)
    assert len(videos) == 2 and videos[0].startswith("https://out.s3.amazonaws.com/videos/2026-12-01/mug-01.mp4?")
    valid_for = signed_url_expiry(html.unescape(videos[0])) - before.timestamp()
    assert timedelta(days=2) <= timedelta(seconds=valid_for) < timedelta(days=2, minutes=1)
    assert result["gallery"] == "s3://out/gallery/2026-12-01/run.html" and result["products"] == 9
    assert result["url"].startswith("https://out.s3.amazonaws.com/gallery/2026-12-01/run.html?")
    expires = datetime.fromisoformat(result["expires_at"])
    assert timedelta(days=2) <= expires - before < timedelta(days=2, minutes=1)
    logged = "".join(capsys.readouterr())  # the task's log: Airflow's structlog writes to the console
    assert result["url"] in logged and "Review gallery of 9 product(s)" in logged


def test_operator_relative_media_and_a_manifest_from_s3(s3) -> None:
    s3.put_object(Bucket="out", Key="manifests/m.json", Body=json.dumps(manifest()).encode())
    op = gallery_operator(manifest="s3://out/manifests/m.json", media="relative", website_url="http://site.test/")
    result = op.execute({})
    page = s3.get_object(Bucket="out", Key="gallery/2026-12-01/run.html")["Body"].read().decode()
    assert '<video controls preload="metadata" playsinline src="../../videos/2026-12-01/mug-01.mp4"' in page
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page))  # nothing presigned
    assert (result["url"], result["expires_at"]) == ("http://site.test/gallery/2026-12-01/run.html", None)


def test_operator_refuses_bad_settings_and_input(s3) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(CogVideoValidationError, match="url_expires"):
        gallery_operator(url_expires=timedelta(days=8))
    with pytest.raises(CogVideoValidationError, match="media"):
        gallery_operator(media="public")
    with pytest.raises(AirflowFailException, match="pass the XComArg"):
        gallery_operator(manifest="{'products': []}").execute({})
    assert gallery_operator(manifest=manifest()["products"]).execute({})["products"] == 9  # bare rows


def test_the_pipeline_writes_its_gallery_next_to_its_manifest() -> None:
    from airflow_provider_cogvideo.demo import pipeline_dag_file
    from airflow_provider_cogvideo.operators.run_record import CogVideoRunRecordOperator
    from tests.unit.test_example_dags import _dagbag

    dag = _dagbag(pipeline_dag_file()).dags["product_video_pipeline"]
    [record] = dag.leaves  # a run refused by its budget still ends failed
    assert isinstance(record, CogVideoRunRecordOperator)  # one task writes both, from one set of rows
    gallery_key, manifest_key = record.gallery_key, record.manifest_key
    assert gallery_key.startswith("gallery/") and gallery_key.endswith(".html")
    assert manifest_key == "manifests/" + gallery_key.removeprefix("gallery/").removesuffix(".html") + ".json"


def test_a_reencoded_products_card_names_the_image_it_arrived_as() -> None:
    """Ingestion sends a WebP as a staged JPEG; the card's source is the WebP that was uploaded, as the
    pipeline's manifest names it (``source_image_of``), not the staging copy."""
    from airflow_provider_cogvideo.products import source_image_of

    reencoded = {
        "image": "s3://products/staging/2026-12-01/echo.jpg",
        "prompt": "Echo headphones",
        "metadata": {"product_id": "echo", "source_image": "s3://products/incoming/echo.webp", "reencoded": True},
    }
    as_is = {"image": "s3://products/incoming/mug.png", "metadata": {"product_id": "mug"}}
    assert source_image_of(reencoded) == "s3://products/incoming/echo.webp"
    assert source_image_of(as_is) == "s3://products/incoming/mug.png"  # ingestion used it as it was
    rows = [_row(p["metadata"]["product_id"], "uploaded", image=source_image_of(p)) for p in (reencoded, as_is)]
    cards = gallery_context({"products": rows}, lambda uri: uri.rsplit("/", 1)[-1])["cards"]
    assert [(c["image_uri"], c["image_url"]) for c in cards] == [
        ("s3://products/incoming/echo.webp", "echo.webp"),
        ("s3://products/incoming/mug.png", "mug.png"),
    ]
    page = render_gallery({"products": rows}, lambda uri: uri.rsplit("/", 1)[-1])
    assert "staging" not in page


# ------------------------------------------------------------------ ad formats and written prompts

WRITTEN_ATTACK = 'A mug <script>window.__written_pwned = 1</script> & "steam"'


def _writing(source: str, **more: Any) -> dict[str, Any]:
    """A manifest row's ``prompt_writing``."""
    return {"source": source, "model": "glm-4-plus", "cached": False, "calls": 1, "price": 0.004, **more}


def formats_run(**overrides: Any) -> dict[str, Any]:
    """A run of two formats with a prompt writer, as the manifest task records it: the mug's two videos
    are not next to each other in the rows (a reused one comes after the paid ones)."""
    vertical = _row(
        "mug",
        "uploaded",
        variant="9x16",
        title="Mug",
        format="9:16",
        options={"size": "1080x1920"},
        video="s3://out/v/mug/9x16.mp4",
        prompt=WRITTEN_ATTACK,
        template_prompt="mug turning",
        prompt_writing=_writing("writer"),
        request={"model": "cogvideox-3", "size": "1080x1920", "prompt": WRITTEN_ATTACK},
    )
    cup = _row(
        "cup",
        "failed",
        variant="9x16",
        title="Cup",
        format="9:16",
        options={"size": "1080x1920"},
        error="generate failed",
    )
    lamp = _row(
        "lamp",
        "uploaded",
        variant="16x9",
        format="16:9",
        options={"size": "1920x1080"},
        prompt="lamp turning",
        template_prompt="lamp turning",
        prompt_writing=_writing("fallback", reason="the chat model timed out <b>twice</b>"),
        # A full request summary (an earlier manifest's) shows no prompt_writing among the options.
        request={"model": "cogvideox-3", "size": "1920x1080", "prompt_writing": {"source": "fallback"}},
    )
    landscape = _row(
        "mug",
        "reused",
        variant="16x9",
        title="Mug",
        format="16:9",
        video="s3://out/v/mug/16x9.mp4",
        prompt="A mug on marble, landscape",
        template_prompt="mug turning",
        prompt_writing={"source": "writer", "model": "glm-4-plus"},
    )
    cached = _row(
        "cup",
        "uploaded",
        variant="16x9",
        title="Cup",
        format="16:9",
        options={"size": "1920x1080"},
        prompt="A cup, landscape",
        template_prompt="cup turning",
        prompt_writing=_writing("writer", cached=True),
    )
    document = {
        "dag_run": RUN,
        "plan": False,
        "products": [vertical, cup, lamp, cached, landscape],
        "currency": "CNY",
        "total_price": 3.0,
        "writing": {"calls": 2, "tokens": 900, "price": 0.008, "cached": 1},
    }
    return {**document, **overrides}


def test_a_written_prompt_says_who_wrote_it_above_the_templates_prompt() -> None:
    cards = gallery_context(formats_run(), presigned)["cards"]
    vertical, cup, lamp, cached, landscape = cards
    assert {k: vertical[k] for k in ("prompt", "writing", "writing_source", "template_prompt", "format")} == {
        "prompt": WRITTEN_ATTACK,
        "writing": "written by glm-4-plus",
        "writing_source": "writer",
        "template_prompt": "mug turning",
        "format": "9:16 · 1080x1920",
    }
    assert (cached["writing"], cached["template_prompt"]) == ("written by glm-4-plus (from the cache)", "cup turning")
    # The writer fell back: the template's prompt was sent, so it is not shown twice.
    assert (lamp["writing"], lamp["writing_source"], lamp["template_prompt"]) == (
        "template's prompt: the writer fell back — the chat model timed out <b>twice</b>",
        "fallback",
        None,
    )
    assert lamp["options"] == [("size", "1920x1080")]
    assert (landscape["writing"], landscape["template_prompt"], landscape["format"]) == (
        "written by glm-4-plus",
        "mug turning",
        "16:9",  # a reused row names its format, not the size it was sent at
    )
    assert (cup["writing"], cup["template_prompt"], cup["format"]) == (None, None, "9:16 · 1080x1920")
    assert [c["index"] for c in cards] == [1, 2, 3, 4, 5]
    plain = gallery_context(manifest(), presigned)["cards"][0]
    assert (plain["writing"], plain["writing_source"], plain["template_prompt"], plain["format"]) == (
        None,
        None,
        None,
        None,
    )
    dry_run = _row("pot", "planned", prompt="pot", template_prompt="pot", prompt_writing={"source": "dry_run"})
    assert gallery_context({"products": [dry_run]}, presigned)["cards"][0]["writing"] == (
        "to be written by the prompt writer (dry run: not written)"
    )

    page = render_gallery(formats_run(), presigned)
    assert html5_errors(page) == []
    mug = _card_html(page, "mug")
    assert (
        '<p class="writing writing-writer">written by glm-4-plus</p>\n'
        '<blockquote class="prompt">A mug &lt;script&gt;window.__written_pwned = 1&lt;/script&gt; &amp; '
        "&#34;steam&#34;</blockquote>\n"
        '<p class="template-prompt"><span class="label">template</span> mug turning</p>'
    ) in mug
    assert '<span class="format-badge">9:16 · 1080x1920</span>' in mug
    assert "<script" not in page and "<b>" not in page
    assert (
        '<p class="writing writing-fallback">template&#39;s prompt: the writer fell back — the chat model timed '
        "out &lt;b&gt;twice&lt;/b&gt;</p>"
    ) in page


def test_the_cards_of_a_product_with_several_videos_are_grouped() -> None:
    context = gallery_context(formats_run(), presigned)
    assert context["page"]["grouped"] is True
    groups = [(g["product_id"], g["title"], g["anchor"], [c["index"] for c in g["cards"]]) for g in context["groups"]]
    assert groups == [
        ("mug", "Mug", "group-mug", [1, 5]),
        ("cup", "Cup", "group-cup", [2, 4]),
        ("lamp", None, "group-lamp", [3]),
    ]
    page = render_gallery(formats_run(), presigned)
    assert html5_errors(page) == []
    sections = re.findall(r'<section class="product" id="([^"]+)" data-product-id="([^"]+)">\n<h2>(.*?)</h2>', page)
    assert sections == [
        ("group-mug", "mug", "Mug <code>mug</code>"),
        ("group-cup", "cup", "Cup <code>cup</code>"),
        ("group-lamp", "lamp", "lamp"),
    ]
    mug = re.search(r'<section class="product" id="group-mug".*?</section>', page, re.DOTALL)[0]
    cards = re.findall(r'<article class="card status-(\w+)" id="(product-\d)" data-product-id="mug"', mug)
    assert cards == [("uploaded", "product-1"), ("reused", "product-5")], "both of the mug's videos, in row order"
    assert re.findall(r"<h3>([^<]*)</h3>", mug) == ["9x16", "16x9"]
    assert '<main class="grouped">' in page and page.count("<article ") == 5


def test_a_run_of_one_video_per_product_keeps_the_plain_grid() -> None:
    rows = [_row("mug", "uploaded", variant="9x16", format="9:16"), _row("cup", "uploaded", variant="9x16")]
    context = gallery_context({"products": rows}, presigned)
    assert context["page"]["grouped"] is False
    assert [len(g["cards"]) for g in context["groups"]] == [1, 1]
    page = render_gallery({"products": rows}, presigned)
    assert "<main>\n<article " in page and "<section" not in page and "<h3>" not in page
    assert 'Product <code>mug</code> · variant <code>9x16</code> <span class="format-badge">9:16</span>' in page
    assert html5_errors(page) == []
    # Rows without a product id are never one product.
    nameless = [{"status": "refused", "error": "x"}, {"status": "refused", "error": "y"}]
    assert gallery_context({"products": nameless}, presigned)["page"]["grouped"] is False


def test_the_totals_show_what_the_prompt_writing_cost() -> None:
    assert dict(gallery_context(formats_run(), presigned)["page"]["totals"])["Prompt writing"] == (
        "2 call(s) · 0.008 CNY · 1 from the cache"
    )
    planned = {"model": "glm-4-plus", "calls_at_most": 2, "ceiling": 0.05, "currency": "CNY"}
    plan = formats_run(plan=True, estimated_writing=planned, writing={"calls": 0, "price": 0.0, "cached": 1})
    assert dict(gallery_context(plan, presigned)["page"]["totals"])["Prompt writing"] == (
        "at most 0.05 CNY · 1 from the cache"
    )
    assert "Prompt writing" not in dict(gallery_context(manifest(), presigned)["page"]["totals"])
