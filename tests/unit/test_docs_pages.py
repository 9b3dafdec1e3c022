"""The reference pages under docs/ stay honest: every constructor parameter of an operator, sensor,
transfer, trigger and the hook has a row in its page (with the right "templated" answer), every
connection extra the hook reads has a row in docs/connection.md with NUMBER_EXTRAS' own numbers, the
tables copied from code match the code, and every relative link points at a file.

A new parameter or extra without documentation fails here."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo import NUMBER_EXTRAS
from airflow_provider_cogvideo.docs import metrics_table_markdown, submit_policy_markdown
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
from airflow_provider_cogvideo.hooks.connection import KNOWN_EXTRAS
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.gallery import S3VideoGalleryOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.sensors.cogvideo import CogVideoTaskSensor
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.triggers.cogvideo import CogVideoSubmitBackoffTrigger, CogVideoTaskTrigger

DOCS = Path(__file__).resolve().parents[2] / "docs"

OPERATOR_PAGES: dict[type, str] = {
    CogVideoGenerateOperator: "operators/generate.md",
    CogVideoTaskSensor: "sensors/task.md",
    S3ProductImagesOperator: "operators/product_images.md",
    CogVideoToS3Operator: "transfers/cogvideo_to_s3.md",
    S3VideoGalleryOperator: "operators/gallery.md",
}
"""Operators, sensors and transfers: a parameters table with a "templated" column."""

OTHER_PAGES: dict[Callable[..., Any], str] = {
    CogVideoHook: "hooks/cogvideo.md",
    CogVideoHook.generate: "hooks/cogvideo.md",
    CogVideoTaskTrigger: "triggers.md",
    CogVideoSubmitBackoffTrigger: "triggers.md",
}
"""The hook (constructor and ``generate()``) and the triggers' kwargs."""

PAGES = ["connection.md", "triggers.md", "hooks/cogvideo.md", *OPERATOR_PAGES.values()]


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _parameters(target: Callable[..., Any]) -> list[str]:
    """Named parameters of a constructor or method (no ``self``, ``*args`` or ``**kwargs``)."""
    skipped = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    return [
        name
        for name, param in inspect.signature(target).parameters.items()
        if name != "self" and param.kind not in skipped
    ]


def _cells(inner: str) -> list[str]:
    """A Markdown row's cells; an escaped pipe (``str \\| None``) stays inside its cell."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", inner)]


def _rows(text: str, name: str) -> list[list[str]]:
    """The cells of every table row whose first cell is `name` (in backticks)."""
    pattern = re.compile(rf"^\|\s*`{re.escape(name)}`\s*\|(.*)\|\s*$", re.MULTILINE)
    return [_cells(match.group(1)) for match in pattern.finditer(text)]


def _header(text: str, first: str, *, having: str | None = None) -> list[str]:
    """The columns (after the first) of the first table whose header row starts with `first` (and,
    with `having`, has that column too)."""
    for match in re.finditer(rf"^\|\s*{re.escape(first)}\s*\|(.*)\|\s*$", text, re.MULTILINE):
        columns = _cells(match.group(1))
        if having is None or having in columns:
            return columns
    raise AssertionError(f"no table headed {first!r}" + (f" with a {having!r} column" if having else ""))


@pytest.mark.parametrize(
    ("target", "page"), [*OPERATOR_PAGES.items(), *OTHER_PAGES.items()], ids=lambda v: getattr(v, "__qualname__", v)
)
def test_every_parameter_has_a_row(target: Callable[..., Any], page: str) -> None:
    text = _page(page)
    missing = [name for name in _parameters(target) if not _rows(text, name)]
    assert not missing, f"docs/{page} has no table row for {target.__qualname__} parameters {missing}"


@pytest.mark.parametrize(("operator", "page"), OPERATOR_PAGES.items(), ids=lambda v: getattr(v, "__name__", v))
def test_templated_column_matches_template_fields(operator: type, page: str) -> None:
    text = _page(page)
    column = _header(text, "parameter").index("templated")
    for name in _parameters(operator):
        rows = _rows(text, name)
        assert rows, f"docs/{page}: no row for {name}"
        row = rows[0]
        expected = "yes" if name in operator.template_fields else "no"
        assert row[column] == expected, f"docs/{page}: {name} is templated? {expected}, the page says {row[column]}"


def test_every_connection_extra_has_a_row() -> None:
    text = _page("connection.md")
    missing = sorted(name for name in KNOWN_EXTRAS if not _rows(text, name))
    assert not missing, f"docs/connection.md has no table row for the extras {missing}"


def test_numeric_extras_are_copied_from_number_extras() -> None:
    text = _page("connection.md")
    columns = _header(text, "extra", having="minimum")
    for name, extra in NUMBER_EXTRAS.items():
        rows = [row for row in _rows(text, name) if len(row) == len(columns)]
        assert rows, f"docs/connection.md: no row for {name} in the numeric extras table"
        cells = dict(zip(columns, rows[0], strict=True))
        expected = {
            "type": "integer" if extra.integer else "number",
            "default": extra.text(extra.default),
            "minimum": extra.text(extra.minimum),
            "maximum": extra.text(extra.maximum),
            "form label": extra.label,
        }
        shown = {key: cells[key] for key in expected}
        assert shown == expected, f"docs/connection.md: {name} says {shown}, NUMBER_EXTRAS says {expected}"


def _section(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"\n<!-- {name}:end -->", 1)[0]


def test_copied_tables_match_the_code() -> None:
    assert _section(_page("hooks/cogvideo.md"), "submit-policy") == submit_policy_markdown()
    assert _section(_page("index.md"), "metrics-table") == metrics_table_markdown()


def test_index_links_every_page_and_links_resolve() -> None:
    index = _page("index.md")
    for page in PAGES:
        assert f"]({page})" in index, f"docs/index.md does not link {page}"
    for page in ["index.md", *PAGES]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _page(page)):
            if "://" in target:
                continue
            assert (DOCS / page).parent.joinpath(target).resolve().is_file(), f"docs/{page}: broken link {target}"
