"""The README's tables are generated from the code's tables: keep the copy in sync."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_cogvideo.docs import capability_table_markdown, error_table_markdown, metrics_table_markdown
from airflow_provider_cogvideo.extras import EXTRAS

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(name: str) -> str:
    text = README.read_text()
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


def test_models_table_matches_capability_table() -> None:
    assert _section("models-table") == capability_table_markdown()


def test_errors_table_matches_error_table() -> None:
    assert _section("errors-table") == error_table_markdown()


def test_metrics_table_matches_the_metrics_module() -> None:
    assert _section("metrics-table") == metrics_table_markdown()


def test_quick_start_has_the_two_commands() -> None:
    quick_start = README.read_text().split("## Quick start", 1)[1].split("##", 1)[0]
    assert "make demo" in quick_start and "make test" in quick_start


def test_installing_lists_every_extra_with_its_package() -> None:
    installing = README.read_text().split("## Installing", 1)[1].split("\n## ", 1)[0]
    for extra in EXTRAS.values():
        assert f"| `{extra.name}` | `{extra.distribution}`" in installing, extra
