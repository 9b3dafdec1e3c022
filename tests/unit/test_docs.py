"""The README's own promises: the quick start's two commands and every extra. Its tables generated
from the code's tables are checked with every other generated section (tests/unit/test_docs_pages.py)."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_cogvideo.extras import EXTRAS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_quick_start_has_the_two_commands() -> None:
    quick_start = README.read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start


def test_installing_lists_every_extra_with_its_package() -> None:
    installing = README.read_text().split("## Installing", 1)[1].split("\n## ", 1)[0]
    for extra in EXTRAS.values():
        assert f"| `{extra.name}` | `{extra.distribution}`" in installing, extra
