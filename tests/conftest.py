"""Shared test configuration: an isolated AIRFLOW_HOME so no test touches a real deployment, and the
fixtures and helpers several folders use: one SeaweedFS for the session, an encoded test image, a
decompression bomb, a decode spy."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="cogvideo-test-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# dag.test() (Airflow 3.3) runs DAGs from a bundle: the test DAG files live here.
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "dags", "dag_files"))

import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_cogvideo.testing.seaweedfs import SeaweedFS

# The provider's own fixtures (cogvideo_emulator, cogvideo_conn...) come from its pytest11 entry point.


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (what dag.test() needs)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the session (the S3 tests and the lineage DAG each use their own buckets)."""
    from airflow_provider_cogvideo.testing.seaweedfs import running_seaweedfs

    with running_seaweedfs() as server:
        yield server


def image_bytes(width: int = 64, height: int = 48, fmt: str = "PNG") -> bytes:
    """A small solid image, encoded (Pillow imported only when asked: it is the ``images`` extra)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, format=fmt)
    return out.getvalue()


BOMB_SIDE = 6400
"""6400x6400 = 40.96 MP, just over the pixel budget; as a 1-bit PNG of one colour it is about 5 KB."""


@pytest.fixture(scope="session")
def png_bomb() -> bytes:
    """A few KB of PNG whose header announces :data:`BOMB_SIDE` squared pixels."""
    import io

    from PIL import Image

    from airflow_provider_cogvideo.image_pixels import MAX_IMAGE_PIXELS

    out = io.BytesIO()
    Image.new("1", (BOMB_SIDE, BOMB_SIDE)).save(out, format="PNG")
    assert len(out.getvalue()) < 64 * 1024 and BOMB_SIDE * BOMB_SIDE > MAX_IMAGE_PIXELS
    return out.getvalue()


@pytest.fixture
def pixel_loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size each image had when Pillow decoded its pixels (``ImageFile.load``), in order."""
    from PIL import ImageFile

    seen: list[tuple[int, int]] = []
    real = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile) -> object:
        seen.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen
