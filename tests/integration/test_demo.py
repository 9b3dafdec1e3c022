"""``cogvideo demo`` end to end (shortened), so a change to the DAG, the operators or the manifest that
would break ``make demo`` on a fresh clone fails the suite first."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from airflow_provider_cogvideo.demo import DEMO_NOTE, run_demo
from airflow_provider_cogvideo.testing.products import SAMPLE_PRODUCTS, corrupt_image, render_product_image

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]


def test_sample_images_decode_and_the_corrupt_one_does_not() -> None:
    from PIL import Image

    for product in SAMPLE_PRODUCTS:
        with Image.open(io.BytesIO(render_product_image(product))) as image:
            image.load()
            assert (image.format, image.size) == (product.image_format, (640, 480))
    with pytest.raises(OSError), Image.open(io.BytesIO(corrupt_image())) as image:
        image.load()


def test_demo_runs_the_pipeline_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    products = 5  # the fifth sample is the WebP: re-encoding is part of the run
    assert run_demo(tmp_path, products=products, duration=0.5) == 0
    out = capsys.readouterr().out
    assert f": {products + 1} product images + sidecars (1 WebP to re-encode, 1 corrupt to reject)" in out
    assert f"{products} videos uploaded, 0 failed, 1 image(s) rejected at ingestion" in out
    assert "rejected s3://products/incoming/broken-upload.jpg: not a decodable image" in out
    assert re.search(r"echo-headphones: webp \(webp\) re-encoded to a JPEG", out)  # ingestion's log: format, why
    assert "ignores pools" in out
    videos = sorted((tmp_path / ".demo" / "videos").glob("*.mp4"))
    assert [v.stem for v in videos] == sorted(p.product_id for p in SAMPLE_PRODUCTS[:products])
    assert all(v.read_bytes()[4:8] == b"ftyp" for v in videos)
    assert "Total cost:  5.00 CNY + 1.00 for the review's regeneration" in out
    # The review, answered through the REST API: the last product rejected with a note, then approved.
    last = sorted(p.product_id for p in SAMPLE_PRODUCTS[:products])[-1]
    assert f"round 1  {last} / default: Reject — “{DEMO_NOTE}”" in out
    assert f"round 2  {last} / default: Approve (its regenerated video)" in out
    assert (
        f"holds {2 * products} object(s) (videos and covers of the approved products); {products} asset event(s)" in out
    )
    # The manifest outlives the local S3 server: a local copy, the path printed.
    manifest = json.loads((tmp_path / ".demo" / "manifest.json").read_text())
    assert f"Manifest:    {tmp_path / '.demo' / 'manifest.json'}  (a copy of s3://product-videos/manifests/" in out
    assert manifest["uploaded"] == products and manifest["refused"] == 1
    assert manifest["review"]["counts"] == {
        "awaiting": 0,
        "approved": products,
        "rejected_by_review": 0,
        "held": 0,
        "published": products,
    }
    (again,) = [row for row in manifest["products"] if row["product_id"] == last]
    assert DEMO_NOTE in again["prompt"] and [d["answer"] for d in again["review"]["decisions"]] == ["Reject", "Approve"]

    # The gallery: in S3 (the demo checks the pipeline wrote it), and a local copy that plays from
    # .demo/videos/ by relative paths (the local S3 server is gone), rendered to a screenshot.
    demo = tmp_path / ".demo"
    assert "Gallery:     s3://product-videos/gallery/" in out
    assert f"local copy {demo / 'gallery.html'}" in out and f"Screenshot:  {demo / 'gallery.png'}" in out
    page = (demo / "gallery.html").read_text()
    media = re.findall(r'(?:src|poster|href)="([^"]+)"', page)
    assert media and not [m for m in media if "://" in m and not m.startswith("data:")], "only relative paths"
    assert all((demo / unquote(m)).is_file() for m in media if m != "data:,"), media
    assert sorted(re.findall(r'<video[^>]* src="videos/([^"]+)\.mp4"', page)) == [v.stem for v in videos]
    assert page.count('<article class="card') == products + 1  # and the rejected upload
    # The re-encoded WebP's card names the image that was uploaded, not ingestion's staging JPEG.
    (echo,) = [row for row in manifest["products"] if row["product_id"] == "echo-headphones"]
    assert echo["image"] == "s3://products/incoming/echo-headphones.webp"
    assert "echo-headphones.webp" in page and "staging" not in page
    assert (demo / "gallery.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
