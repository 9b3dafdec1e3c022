"""The Amazon provider, Pillow and pillow-heif are optional extras (``amazon``, ``images``, ``heif``).

Each case without them runs in a fresh interpreter that first makes them uninstalled: a
``sys.meta_path`` finder raises ``ModuleNotFoundError`` for ``PIL``, ``pillow_heif`` and
``airflow.providers.amazon`` (and their submodules), as Python does for a package that is not there,
and their distributions' metadata is hidden too, because Airflow discovers providers from installed
distributions' entry points (an uninstalled provider has none) and imports what they name.

Text-to-video needs none of them; an image read by the provider needs ``images`` (and ``s3://`` also
``amazon``), refused before anything is read or sent, naming the field, the value and the extra; the
S3 operators refuse when they are constructed, i.e. when the DAG is parsed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo.errors import CogVideoMissingExtraError
from airflow_provider_cogvideo.extras import EXTRAS, install_line, require_extra

from .conftest import API_KEY, BASE_URL

ROOT = Path(__file__).resolve().parents[2]

WITHOUT_EXTRAS = """
import sys

_MODULES = ("PIL", "pillow_heif", "airflow.providers.amazon")
_DISTRIBUTIONS = {"pillow", "pillow_heif", "apache_airflow_providers_amazon"}


def _blocked(name):
    return any(name == module or name.startswith(module + ".") for module in _MODULES)


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if _blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


class _WithoutMetadata:
    # Wraps a finder that lists installed distributions, leaving the blocked ones out.
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find is not None else None

    def find_distributions(self, *args, **kwargs):
        for dist in self.inner.find_distributions(*args, **kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("-", "_").replace(".", "_")
            if name not in _DISTRIBUTIONS:
                yield dist

    def invalidate_caches(self):
        if hasattr(self.inner, "invalidate_caches"):
            self.inner.invalidate_caches()


try:
    import importlib_metadata  # noqa: F401  (its own finder joins sys.meta_path on import)
except ImportError:
    pass
sys.meta_path[:] = [
    _WithoutMetadata(f) if hasattr(f, "find_distributions") else f for f in sys.meta_path
]
sys.meta_path.insert(0, _NotInstalled())

import json
import os

os.environ["AIRFLOW_CONN_COGVIDEO_DEFAULT"] = json.dumps(
    {"conn_type": "cogvideo", "password": API_KEY, "extra": {"base_url": BASE_URL}}
)


def loaded():
    return sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("PIL", "pillow_heif", "boto3", "botocore") or m.startswith("airflow.providers.amazon")
    )


def answer(value):
    print(json.dumps(value))
"""


def run_without_extras(body: str, *args: str) -> Any:
    """Run ``body`` after :data:`WITHOUT_EXTRAS` in a fresh interpreter; its last stdout line, as JSON."""
    prelude = f"API_KEY = {API_KEY!r}\nBASE_URL = {BASE_URL!r}\n" + WITHOUT_EXTRAS
    code = prelude + textwrap.dedent(body)
    run = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


CASES = """
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo.errors import CogVideoMissingExtraError
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.gallery import S3VideoGalleryOperator, write_gallery
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from tests.unit.conftest import FakeStateStore, FakeTI


def generate(image):
    operator = CogVideoGenerateOperator(task_id="generate", prompt="a red bicycle", image=image, dry_run=True)
    try:
        result = operator.execute({"ti": FakeTI(), "task_state_store": FakeStateStore()})
    except AirflowFailException as exc:
        return {"failed": str(exc), "loaded": loaded()}
    return {"status": result["task_status"], "image": result["request"].get("image_url"), "loaded": loaded()}


makers = {
    "CogVideoToS3Operator": lambda: CogVideoToS3Operator(task_id="to_s3", result={}, s3_bucket="b", s3_key="k.mp4"),
    "CogVideoToS3Operator.partial": lambda: CogVideoToS3Operator.partial(task_id="to_s3", s3_bucket="b", s3_key="k"),
    "S3ProductImagesOperator": lambda: S3ProductImagesOperator(
        task_id="ingest", s3_bucket="b", prefix="in/", prompt_template="{title}", staging_prefix="staged/"
    ),
    "S3VideoGalleryOperator": lambda: S3VideoGalleryOperator(
        task_id="gallery", manifest={}, s3_bucket="b", s3_key="g.html"
    ),
    "write_gallery": lambda: write_gallery({"products": []}, s3_bucket="b", s3_key="g.html"),
}


def construct():
    refused = {}
    for name, make in makers.items():
        try:
            make()
        except CogVideoMissingExtraError as exc:
            is_import_error = isinstance(exc, ImportError)
            refused[name] = {"message": str(exc), "extras": list(exc.extras), "import_error": is_import_error}
        else:
            refused[name] = None
    return {"refused": refused, "loaded": loaded()}


# In turn, text-to-video first: "loaded" after each case names the first one that pulled a package in.
images = json.loads(sys.argv[1])
answers = {case: generate(image) for case, image in images.items()}
answers["construct"] = construct()
answer(answers)
"""

IMAGE_CASES = {
    "prompt-only": None,
    "https-url": "https://cdn.example/p.png?X-Amz-Signature=abc",
    "data-uri": "data:image/png;base64,iVBORw0KGgo=",
    "s3": "s3://bucket/key.png",
}
"""The generate operator's image, per case (``file``, a local path, is added by the fixture)."""


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every case in one fresh interpreter without the extras (each would cost seconds of Airflow
    start-up in its own)."""
    path = tmp_path_factory.mktemp("extras") / "photo.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    images = {**IMAGE_CASES, "file": str(path)}
    return {"images": images, **run_without_extras(CASES, json.dumps(images))}


@pytest.mark.parametrize(
    ("case", "shown"),
    [("prompt-only", None), ("https-url", "https://cdn.example/p.png?<redacted>")],
)
def test_text_to_video_needs_no_extra(without_extras: dict[str, Any], case: str, shown: str | None) -> None:
    """A dry run does everything a submit does before the POST: validation, images, price."""
    answer = without_extras[case]
    assert answer == {"status": "DRY_RUN", "image": shown, "loaded": []}, answer


@pytest.mark.parametrize("kind", ["file", "data-uri"])
def test_an_image_read_here_needs_the_images_extra(without_extras: dict[str, Any], kind: str) -> None:
    value, answer = without_extras["images"][kind], without_extras[kind]
    message = answer.get("failed", "")
    assert message.startswith("CogVideo request not sent: image "), answer
    assert repr(value) in message, "the value, as given"
    assert "'images' extra (Pillow), which is not installed" in message
    assert install_line("images") in message
    assert answer["loaded"] == [], "nothing was read with what is not there"


def test_an_s3_image_needs_the_amazon_extra(without_extras: dict[str, Any]) -> None:
    answer = without_extras["s3"]
    message = answer.get("failed", "")
    assert "image 's3://bucket/key.png' (an S3 object" in message, answer
    assert "'amazon' and 'images' extras (apache-airflow-providers-amazon, Pillow)" in message
    assert install_line("amazon", "images") in message
    assert answer["loaded"] == [], "no S3 client was made"


def test_the_s3_operators_refuse_when_the_dag_is_parsed(without_extras: dict[str, Any]) -> None:
    answer = without_extras["construct"]
    refused = answer["refused"]
    expected = {
        "CogVideoToS3Operator": ("CogVideoToS3Operator (task 'to_s3')", ["amazon"]),
        "CogVideoToS3Operator.partial": ("CogVideoToS3Operator (task 'to_s3')", ["amazon"]),
        "S3ProductImagesOperator": ("S3ProductImagesOperator (task 'ingest')", ["amazon", "images"]),
        "S3VideoGalleryOperator": ("S3VideoGalleryOperator (task 'gallery')", ["amazon"]),
        "write_gallery": ("write_gallery (the review gallery page in S3)", ["amazon"]),
    }
    for name, (needed_for, extras) in expected.items():
        got = refused[name]
        assert got is not None, f"{name} was built without {extras}"
        assert got["extras"] == extras and got["import_error"], (name, got)
        assert got["message"].startswith(f"{needed_for} needs the optional "), (name, got)
        assert install_line(*extras) in got["message"], (name, got)
    both = "'amazon' and 'images' extras (apache-airflow-providers-amazon, Pillow), which are not installed"
    assert both in refused["S3ProductImagesOperator"]["message"]
    assert answer["loaded"] == []


# ---------------------------------------------------------------------------------- with everything
@pytest.mark.parametrize("extras", [(name,) for name in EXTRAS] + [tuple(EXTRAS)], ids=lambda e: ",".join(e))
def test_installed_extras_pass(extras: tuple[str, ...]) -> None:
    assert require_extra(*extras, needed_for="a test") is None


def test_a_broken_install_is_told_apart_from_a_missing_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed package that fails to import (a missing shared library) is named with its error,
    not called "not installed"."""
    (tmp_path / "broken_ext").mkdir()
    broken = "raise ImportError('libheif.so.1: cannot open shared object')\n"
    (tmp_path / "broken_ext" / "__init__.py").write_text(broken)
    monkeypatch.syspath_prepend(str(tmp_path))
    from airflow_provider_cogvideo import extras as extras_module

    monkeypatch.setitem(EXTRAS, "heif", extras_module.Extra("heif", "broken_ext", "pillow-heif"))
    monkeypatch.setitem(EXTRAS, "images", extras_module.Extra("images", "no_such_module_here", "Pillow"))
    with pytest.raises(CogVideoMissingExtraError) as caught:
        require_extra("images", "heif", "amazon", needed_for="a HEIC photo")
    message = str(caught.value)
    assert caught.value.extras == ("images", "heif")
    assert message.startswith("a HEIC photo needs the optional 'images' and 'heif' extras (Pillow, pillow-heif), ")
    assert "cannot be imported (broken_ext: ImportError: libheif.so.1: cannot open shared object)" in message
    assert message.endswith(install_line("images", "heif"))
    assert not caught.value.retryable
