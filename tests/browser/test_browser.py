"""The provider checked in a real browser (Chromium through Playwright) against one real deployment.

* the review gallery of a real pipeline run, opened from SeaweedFS over HTTP with the presigned URL
  the manifest task logged and returned: one card per product, covers and videos loaded (the clips' real
  duration), failures with their reason, an injected ``<script>`` shown as text and never run, no
  console errors, readable on a phone;
* Airflow 3's connection form for type ``cogvideo``: the extras appear as fields with their
  descriptions, and what the form saves is what the hook reads back;
* a finished task's extra link, opened from its task instance page and followed;
* the review loop: a reviewer opens a video's required action from the gallery's link, logs in,
  approves one product and rejects another with a note; the rejected one is made again (one paid job,
  its prompt carrying the note) and approved in a second round; the published objects are exactly the
  approved videos' bytes, one asset event each.

The deployment (``conftest.deployment``) is built once for the module: setup and the pipeline run take
about a minute on an idle 2-core machine (three on a loaded one), then each test takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_cogvideo import get_provider_info
from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES
from airflow_provider_cogvideo.demo import OUTPUT_BUCKET, PIPELINE_DAG_ID, REVIEW_DAG_ID
from airflow_provider_cogvideo.emulator.media import DEFAULT_FPS
from airflow_provider_cogvideo.links import signed_url_expiry
from airflow_provider_cogvideo.testing.reviewer import Reviewer
from tests.browser.conftest import (
    CORRUPT,
    REVIEWER,
    REVIEWER_PASSWORD,
    SCRIPT_TITLE,
    Deployment,
    WatchedPage,
    login,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

MODEL = "cogvideox-3"  # the pipeline's default


def clip_seconds(model: str = MODEL) -> float:
    """How long the emulator's clip of a request without duration/fps lasts: ``frames / fps`` with
    frames = fps x the model's first duration (``emulator/media.py``, ``plan_media``)."""
    caps = MODEL_CAPABILITIES[model]
    fps = DEFAULT_FPS[caps.family]
    frames = fps * caps.durations[0]
    return frames / fps


CARDS_JS = """() => [...document.querySelectorAll('article.card')].map(card => ({
    id: card.dataset.productId,
    status: card.dataset.status,
    title: card.querySelector('h2').textContent,
    reason: card.querySelector('.reason') && card.querySelector('.reason').textContent,
    covers: [...card.querySelectorAll('img.cover')].map(img => img.naturalWidth),
    images: [...card.querySelectorAll('img')].map(img => [img.className, img.complete, img.naturalWidth]),
    videos: [...card.querySelectorAll('video')].map(v => ({ready: v.readyState, duration: v.duration,
        width: v.videoWidth, error: v.error && v.error.code})),
    left: Math.round(card.getBoundingClientRect().left),
}))"""


def test_gallery_of_a_real_run(pipeline: Deployment, watched: WatchedPage, tmp_path) -> None:
    page = watched.page
    url = pipeline.xcom("manifest")["gallery_url"]  # what the manifest task logged and returned
    bucket_and_key = pipeline.manifest["gallery"].removeprefix("s3://")  # where the manifest says it is
    assert url.startswith(f"{pipeline.s3.endpoint_url}/{bucket_and_key}?"), "presigned, on the S3 endpoint"
    rows = pipeline.manifest["products"]

    page.goto(url)
    page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)"
        " && [...document.images].every(i => i.complete)"
    )
    cards = page.evaluate(CARDS_JS)
    assert [c["id"] for c in cards] == [row["product_id"] for row in rows], "one card per product"
    by_id = {c["id"]: c for c in cards}
    uploaded = [c for c in cards if c["status"] == "uploaded"]
    assert len(uploaded) == pipeline.manifest["uploaded"] >= 1
    for card in uploaded:
        assert card["covers"] and all(width > 0 for width in card["covers"]), card
        (video,) = card["videos"]
        assert video["error"] is None and video["ready"] >= 1 and video["width"] > 0, card
        assert video["duration"] == pytest.approx(clip_seconds(), abs=0.1), card
    assert all(loaded and width > 0 for card in cards for _, loaded, width in card["images"]), cards

    failed = by_id[pipeline.failing_product]
    assert failed["status"] == "failed" and failed["videos"] == []
    assert "1301" in failed["reason"] and "sensitive content" in failed["reason"]
    rejected = by_id[CORRUPT]
    assert rejected["status"] == "refused" and rejected["reason"].startswith("not a decodable image")

    # The sidecar's <script> is text on the page, and never ran.
    assert by_id[pipeline.script_product]["title"] == SCRIPT_TITLE
    assert page.evaluate("() => window.__gallery_pwned") is None
    assert page.title() == f"Product videos: {pipeline.run_id}"
    assert page.locator("script").count() == 0
    videos_total = page.locator(".totals div").filter(has=page.locator("dt", has_text=re.compile("^Videos$")))
    assert videos_total.locator("dd").inner_text() == str(len(uploaded))
    page.screenshot(path=str(tmp_path / "gallery.png"), full_page=True)

    # A phone: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert len({c["left"] for c in page.evaluate(CARDS_JS)}) == 1
    page.screenshot(path=str(tmp_path / "gallery-phone.png"))
    assert watched.console_errors == [] and watched.page_errors == []


def _field(dialog: Any, label: str) -> Any:
    """A form field (label, control, description) of Airflow's connection form, by its label."""
    exact = re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")
    return dialog.locator('[data-part="root"][role="group"]').filter(has=dialog.page.locator("label", has_text=exact))


def _add_connection(page: Any, api_url: str, conn_id: str, standard: dict[str, str], extras: dict[str, str]) -> None:
    """Fill Airflow's "Add Connection" form for type cogvideo by the fields' labels, and save it."""
    from playwright.sync_api import expect

    page.goto(f"{api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Connection ID").fill(conn_id)
    dialog.get_by_role("combobox").first.fill("cogvideo")
    page.get_by_role("option", name="CogVideoX", exact=True).click()
    for label, value in standard.items():
        dialog.get_by_label(label, exact=True).fill(value)
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for label, value in extras.items():
        field = _field(dialog, label)
        if field.get_by_role("combobox").count():  # an enum: a select
            field.get_by_role("combobox").click()
            page.get_by_role("option", name=value, exact=True).click()
        else:  # the form's own ids do not always tie label and input: take the field's one input
            field.get_by_role("spinbutton").or_(field.get_by_role("textbox")).fill(value)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()


READ_BACK = textwrap.dedent(
    """
    import json, os, sys
    from airflow.models.connection import Connection
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

    print("READY", flush=True)  # imports done (the slow part): now wait for the form to be saved
    out = {}
    for conn_id in sys.stdin.readline().split():
        # The row the form saved (the metastore, decrypted), handed to the hook as Airflow hands it to a task.
        stored = Connection.get_connection_from_secrets(conn_id)
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = stored.as_json()
        s = CogVideoHook(conn_id).settings
        out[conn_id] = {"tier": s.tier, "auth": s.auth, "base_url": s.base_url, "request_timeout": s.request_timeout,
                        "max_retries": s.max_retries, "ignored": list(s.ignored_extras), "key": s.api_key}
    print("READ-BACK " + json.dumps(out), flush=True)
    """
)
"""Reads connections back with the hook, in a process of the deployment's Airflow; it imports while
the browser fills the form, then reads the ids it is sent."""


@contextmanager
def _hook_reader(pipeline: Deployment) -> Iterator[Callable[..., dict[str, Any]]]:
    """``read(*conn_ids)``: what the hook makes of each connection, from :data:`READ_BACK` started now."""
    process = subprocess.Popen(
        [sys.executable, "-c", READ_BACK],
        env=pipeline.env.env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def read(*conn_ids: str) -> dict[str, Any]:
        stdout, stderr = process.communicate(" ".join(conn_ids) + "\n", timeout=180)
        line = next((ln for ln in stdout.splitlines() if ln.startswith("READ-BACK ")), None)
        assert line, stdout[-3000:] + stderr[-3000:]
        return json.loads(line.removeprefix("READ-BACK "))

    try:
        yield read
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_connection_form_shows_the_extras_and_saves_what_the_hook_reads(
    pipeline: Deployment, watched: WatchedPage
) -> None:
    with _hook_reader(pipeline) as read_back:  # it imports Airflow while the browser works
        _check_the_connection_form(pipeline, watched, read_back)


def _check_the_connection_form(
    pipeline: Deployment, watched: WatchedPage, read_back: Callable[..., dict[str, Any]]
) -> None:
    from playwright.sync_api import expect

    page = watched.page
    (conn_type,) = get_provider_info()["connection-types"]
    fields: dict[str, dict[str, Any]] = conn_type["conn-fields"]
    page.goto(f"{pipeline.api_url}/connections")
    login(page)
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("combobox").first.fill("cogvideo")
    page.get_by_role("option", name="CogVideoX", exact=True).click()
    for label in conn_type["ui-field-behaviour"]["relabeling"].values():
        expect(dialog.get_by_label(label, exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    assert {"tier", "auth", "request_timeout", "connect_timeout", "base_url"} <= set(fields)
    for spec in fields.values():  # every extra of the provider info is a field, with its description
        field = _field(dialog, spec["label"])
        expect(field).to_be_visible()
        expect(field.locator('[data-part="helper-text"]')).to_have_text(spec["description"])
        if {"number", "integer"} & set(spec["schema"]["type"]):
            expect(field.get_by_role("spinbutton")).to_be_visible()
        if "enum" in spec["schema"]:
            expect(field.get_by_role("combobox")).to_be_visible()

    key = "uikeyid.uiSecretTypedIntoTheForm"
    labels = {name: spec["label"] for name, spec in fields.items()}
    relabel = conn_type["ui-field-behaviour"]["relabeling"]
    _add_connection(
        page,
        pipeline.api_url,
        "cogvideo_zai",
        {relabel["host"]: "api.z.ai", relabel["schema"]: "api/paas/v4", relabel["password"]: key},
        {labels["tier"]: "V2", labels["auth"]: "jwt", labels["request_timeout"]: "90"},
    )
    _add_connection(
        page,
        pipeline.api_url,
        "cogvideo_proxy",
        {relabel["host"]: "ignored.example", relabel["password"]: key},
        {labels["base_url"]: "https://proxy.example/api/paas/v4", labels["tier"]: "V1", labels["max_retries"]: "5"},
    )
    read = read_back("cogvideo_zai", "cogvideo_proxy")
    zai, proxy = read["cogvideo_zai"], read["cogvideo_proxy"]
    assert (zai["tier"], zai["auth"], zai["request_timeout"], zai["key"]) == ("V2", "jwt", 90.0, key)
    assert zai["base_url"] == "https://api.z.ai/api/paas/v4"  # host + path; https for a public host
    assert zai["max_retries"] == 3 and zai["ignored"] == []  # fields left empty mean the defaults
    assert (proxy["tier"], proxy["auth"], proxy["max_retries"]) == ("V1", "api_key", 5)
    assert proxy["base_url"] == "https://proxy.example/api/paas/v4"  # the base_url extra wins over host
    assert watched.page_errors == []


def _task_details(pipeline: Deployment, task_id: str, map_index: int) -> str:
    run = quote(pipeline.run_id, safe="")
    return f"{pipeline.api_url}/dags/{PIPELINE_DAG_ID}/runs/{run}/tasks/{task_id}/mapped/{map_index}/details"


def _follow(page: Any, link: Any) -> Any:
    """Click an extra link (it opens a new tab: another origin) and wait for what it opens."""
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    return tab


def test_extra_links_open_the_video(pipeline: Deployment, watched: WatchedPage) -> None:
    from playwright.sync_api import expect

    page = watched.page
    index = next(i for i, row in enumerate(pipeline.manifest["products"]) if row["status"] == "uploaded")
    signed = pipeline.xcom("product.generate", "video_url", map_index=index)
    assert signed_url_expiry(signed) > time.time(), "the emulator signs its result URLs"

    page.goto(_task_details(pipeline, "product.generate", index))
    login(page)
    link = page.get_by_role("link", name="CogVideo video", exact=True)
    expect(link).to_be_visible()
    assert link.get_attribute("href") == signed  # the video itself, never the key-protected API URL
    tab = _follow(page, link)
    assert tab.url == signed
    tab.wait_for_function("() => document.querySelector('video') && document.querySelector('video').readyState >= 1")
    assert tab.evaluate("() => document.querySelector('video').duration") == pytest.approx(clip_seconds(), abs=0.1)
    tab.close()

    # The transfer's link: the video's durable copy, opened from the upload task's page.
    page.goto(_task_details(pipeline, "product.upload", index))
    link = page.get_by_role("link", name="Video in S3", exact=True)
    expect(link).to_be_visible()
    video_key = pipeline.manifest["products"][index]["video"].removeprefix("s3://")
    assert link.get_attribute("href") == f"{pipeline.s3.endpoint_url}/{video_key}"
    tab = _follow(page, link)
    tab.wait_for_function("() => document.querySelector('video') && document.querySelector('video').readyState >= 1")
    assert tab.evaluate("() => document.querySelector('video').duration") == pytest.approx(clip_seconds(), abs=0.1)
    assert watched.page_errors == []


REVIEW_NOTE = "Show it on a marble counter at sunrise"


@contextmanager
def _review_run(pipeline: Deployment, log: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``airflow dags test product_video_review`` over the pipeline run's manifest, in the background
    (``dag.test()`` waits while reviews wait for answers from the api-server); killed if still running."""
    argv = pipeline.env.command("dags", "test", REVIEW_DAG_ID, "-c", json.dumps({"manifest": pipeline.manifest_uri}))
    process = subprocess.Popen(argv, env=pipeline.env.env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _answer_in_the_ui(page: Any, option: str, note: str | None = None) -> None:
    """Answer the required action the page shows (its form: the note, then Approve or Reject)."""
    from playwright.sync_api import expect

    button = page.get_by_role("button", name=option, exact=True)
    expect(button).to_be_visible()
    if note is not None:
        # The param "note" is the form's field "element_note" (its label is not tied to the input by id).
        page.locator("input[name='element_note']").fill(note)
    button.click()
    expect(button).to_be_disabled()  # answered: the form is closed to a second answer


def test_review_loop_from_the_gallery(pipeline: Deployment, watched: WatchedPage, tmp_path) -> None:
    page = watched.page
    s3 = pipeline.s3.boto3_client()
    uploaded = [row for row in pipeline.manifest["products"] if row["status"] == "uploaded"]
    assert len(uploaded) == 2, "the deployment's run uploads two videos (one product is blocked, one corrupt)"
    approved, rejected = uploaded
    before = pipeline.emulator.stats()
    reviewer = Reviewer(pipeline.api_url, username=REVIEWER, password=REVIEWER_PASSWORD)
    gallery_url = pipeline.xcom("manifest")["gallery_url"]  # the page the run logged: rewritten in place

    with open(tmp_path / "review.log", "wb") as log, _review_run(pipeline, log) as review:
        waiting = reviewer.wait_for(REVIEW_DAG_ID, 2, task_id="video.review_1", timeout=240)
        assert sorted(w.label for w in waiting) == sorted(f"{r['product_id']} / default" for r in uploaded)

        # The first product: from its gallery card to its required action, through the login form.
        page.goto(gallery_url)
        link = page.locator(f'article[data-product-id="{approved["product_id"]}"] a.review-link')
        assert link.get_attribute("href").startswith(f"{pipeline.api_url}/dags/{REVIEW_DAG_ID}/runs/")
        link.click()
        login(page)
        _answer_in_the_ui(page, "Approve")

        # The second: rejected with a note, from its own card (logged in now).
        page.goto(gallery_url)
        page.locator(f'article[data-product-id="{rejected["product_id"]}"] a.review-link').click()
        _answer_in_the_ui(page, "Reject", REVIEW_NOTE)

        # Its regenerated video waits in round 2: approved on the run's Required actions page.
        (second,) = reviewer.wait_for(REVIEW_DAG_ID, 1, task_id="video.review_2", timeout=240)
        assert second.label == f"{rejected['product_id']} / default"
        run = quote(second.run_id, safe="")
        page.goto(
            f"{pipeline.api_url}/dags/{REVIEW_DAG_ID}/runs/{run}/tasks/video.review_2/mapped/{second.map_index}/required_actions"
        )
        _answer_in_the_ui(page, "Approve")
        assert review.wait(timeout=240) == 0, (tmp_path / "review.log").read_text()[-4000:]

    # Exactly one new paid job, and it was asked for what the reviewer wrote.
    after = pipeline.emulator.stats()
    assert after["submits"] == before["submits"] + 1
    assert REVIEW_NOTE in after["prompts"][-1] and rejected["prompt"].split(":")[0] in after["prompts"][-1]

    # The run's manifest now records both decisions; the rejected row names the round-2 video.
    manifest = json.loads(
        s3.get_object(Bucket=OUTPUT_BUCKET, Key=pipeline.manifest_uri.split("/", 3)[3])["Body"].read()
    )
    rows = {row["product_id"]: row for row in manifest["products"]}
    first, again = rows[approved["product_id"]], rows[rejected["product_id"]]
    assert [(d["round"], d["answer"], d["by"]) for d in first["review"]["decisions"]] == [(1, "Approve", REVIEWER)]
    assert [(d["round"], d["answer"], d["note"]) for d in again["review"]["decisions"]] == [
        (1, "Reject", REVIEW_NOTE),
        (2, "Approve", None),
    ]
    assert again["video"] != rejected["video"] and again["review"]["videos"][0]["video"] == rejected["video"]
    assert (first["review"]["state"], again["review"]["state"]) == ("approved", "approved")

    # The published location holds exactly the approved videos (and covers), byte for byte.
    def body(uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    listed = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="published/").get("Contents", [])
    assert sorted(o["Key"] for o in listed if o["Key"].endswith(".mp4")) == sorted(
        f"published/{row['product_id']}/default.mp4" for row in (first, again)
    )
    assert len(listed) == 4, "two videos and their covers"
    for row in (first, again):
        published = row["review"]["published"]
        assert body(published["video"]) == body(row["video"])
        assert hashlib.sha256(body(published["video"])).hexdigest() == published["sha256"] == row["sha256"]

    # One asset event per published product, each with its own URI and sha256.
    events = pipeline.env.query(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = ?",
        "cogvideo_published_videos",
    )
    extras = sorted((json.loads(extra) for (extra,) in events), key=lambda e: e["product_id"])
    assert [(e["product_id"], e["uri"], e["sha256"]) for e in extras] == sorted(
        (row["product_id"], row["review"]["published"]["video"], row["sha256"]) for row in (first, again)
    )

    # The gallery a reviewer reloads shows the outcome.
    page.goto(gallery_url)
    states = page.evaluate(
        "() => [...document.querySelectorAll('article.card[data-review-state]')]"
        ".map(c => [c.dataset.productId, c.dataset.reviewState])"
    )
    assert sorted(map(tuple, states)) == sorted(
        [(approved["product_id"], "approved"), (rejected["product_id"], "approved")]
    )
    assert watched.page_errors == []

    # The next day: the pipeline reuses both approved videos (nothing paid), and its review asks nobody.
    pipeline.env.run("dags", "test", PIPELINE_DAG_ID, timeout=300)
    listed = s3.list_objects_v2(Bucket=OUTPUT_BUCKET, Prefix="manifests/")["Contents"]
    newest = max(listed, key=lambda o: o["LastModified"])["Key"]
    next_day = json.loads(s3.get_object(Bucket=OUTPUT_BUCKET, Key=newest)["Body"].read())
    reused = {row["product_id"]: row for row in next_day["products"] if row["status"] == "reused"}
    assert set(reused) == {approved["product_id"], rejected["product_id"]}
    assert reused[rejected["product_id"]]["video"] == again["video"], "the approved round-2 video, not round 1's"
    assert {row["review"]["state"] for row in reused.values()} == {"approved"}
    assert pipeline.emulator.stats()["submits"] == after["submits"]
    pipeline.env.run(
        "dags", "test", REVIEW_DAG_ID, "-c", json.dumps({"manifest": f"s3://{OUTPUT_BUCKET}/{newest}"}), timeout=300
    )
    assert reviewer.waiting(REVIEW_DAG_ID) == []
    asked = pipeline.env.query(
        "SELECT COUNT(*) FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id WHERE t.dag_id = ?", REVIEW_DAG_ID
    )
    assert asked == [(3,)], "the three answers of the first review run, none since"
