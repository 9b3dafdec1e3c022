"""The reference pages under docs/ and the README stay honest: every generated section (the parameter
tables, from the docstrings; the tables of the code's tables) matches what the code generates now,
every constructor parameter of an operator, sensor, transfer, trigger and the hook has a row in its
page (with the right "templated" answer), every connection extra the hook reads has a row in
docs/connection.md with NUMBER_EXTRAS' own numbers, and every relative link points at a file.

A new parameter without a ``:param:`` in its docstring, or an extra without documentation, fails here;
a docstring changed without ``make docs`` too."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cogvideo import NUMBER_EXTRAS
from airflow_provider_cogvideo.docs import GENERATED, default_text, markdown, param_table_markdown, section
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
from airflow_provider_cogvideo.hooks.connection import KNOWN_EXTRAS
from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.gallery import S3VideoGalleryOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.operators.publish import CogVideoPublishOperator
from airflow_provider_cogvideo.operators.regenerate import CogVideoRegenerateOperator
from airflow_provider_cogvideo.operators.review import CogVideoReviewOperator
from airflow_provider_cogvideo.operators.review_plan import CogVideoReviewPlanOperator
from airflow_provider_cogvideo.operators.review_record import CogVideoReviewRecordOperator
from airflow_provider_cogvideo.operators.run_plan import CogVideoRunPlanOperator
from airflow_provider_cogvideo.operators.run_record import CogVideoRunRecordOperator
from airflow_provider_cogvideo.sensors.cogvideo import CogVideoTaskSensor
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.triggers.cogvideo import CogVideoSubmitBackoffTrigger, CogVideoTaskTrigger

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

OPERATOR_PAGES: dict[type, str] = {
    CogVideoGenerateOperator: "operators/generate.md",
    CogVideoTaskSensor: "sensors/task.md",
    S3ProductImagesOperator: "operators/product_images.md",
    CogVideoToS3Operator: "transfers/cogvideo_to_s3.md",
    S3VideoGalleryOperator: "operators/gallery.md",
    CogVideoRunPlanOperator: "operators/run_plan.md",
    CogVideoRunRecordOperator: "operators/run_record.md",
    CogVideoReviewPlanOperator: "operators/review_plan.md",
    CogVideoReviewOperator: "operators/review.md",
    CogVideoRegenerateOperator: "operators/regenerate.md",
    CogVideoPublishOperator: "operators/publish.md",
    CogVideoReviewRecordOperator: "operators/review_record.md",
}
"""Operators, sensors and transfers: a parameters table with a "templated" column."""

OTHER_PAGES: dict[Callable[..., Any], str] = {
    CogVideoHook: "hooks/cogvideo.md",
    CogVideoHook.generate: "hooks/cogvideo.md",
    CogVideoTaskTrigger: "triggers.md",
    CogVideoSubmitBackoffTrigger: "triggers.md",
}
"""The hook (constructor and ``generate()``) and the triggers' kwargs."""

PAGES = ["connection.md", "triggers.md", "hooks/cogvideo.md", "development.md", "review.md", *OPERATOR_PAGES.values()]


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


@pytest.mark.parametrize("page", sorted(GENERATED))
def test_generated_sections_match_the_code(page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    stale = [name for name, render in GENERATED[page].items() if section(text, name) != render()]
    assert not stale, (
        f"{page}: {stale} differ from the code: run `make docs` (python -m airflow_provider_cogvideo.docs --write)"
    )


def test_every_operator_page_has_its_generated_parameters() -> None:
    for operator, page in OPERATOR_PAGES.items():
        assert f"params:{operator.__name__}" in GENERATED[f"docs/{page}"], page


class _Documented:
    """Make a video.

    Read this first.

    :param prompt: what to show, ``|`` and all; see :class:`~airflow_provider_cogvideo.errors.CogVideoError`.
    :param size: e.g. ``"1920x1080"``.
    :type size: str | tuple
    :param wait: how long.

    Needs nothing.
    """

    template_fields = ("prompt",)

    def __init__(self, prompt: str, size: str | None = "auto", wait: timedelta = timedelta(hours=2), **kwargs: Any):
        pass


def test_a_parameter_table_comes_from_the_docstring_and_the_signature() -> None:
    assert param_table_markdown(_Documented).splitlines() == [
        "| parameter | type | default | templated | description |",
        "|---|---|---|---|---|",
        "| `prompt` | `str` | required | yes | what to show, `\\|` and all; see `CogVideoError`. |",
        '| `size` | `str \\| tuple` | `"auto"` | no | e.g. `"1920x1080"`. |',
        "| `wait` | `timedelta` | 2 hours | no | how long. |",
    ]


@pytest.mark.parametrize(
    "doc",
    [
        ":param prompt: p.\n:param size: s.\n",  # wait is missing
        ":param prompt: p.\n:param size: s.\n:param wait: w.\n:param gone: no such parameter.\n",
        ":param prompt, size: grouped.\n:param wait: w.\n",
    ],
)
def test_a_parameter_without_its_own_param_field_is_refused(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Documented, "__doc__", "Make a video.\n\n" + doc)
    with pytest.raises(ValueError, match="_Documented"):
        param_table_markdown(_Documented)


@pytest.mark.parametrize(
    ("name", "default", "shown"),
    [
        ("x", inspect.Parameter.empty, "required"),
        ("x", None, "`None`"),
        ("x", "aws_default", '`"aws_default"`'),
        ("x", 8 * 1024 * 1024, "8 MiB (`8388608`)"),
        ("x", 4 * 1024**3, "4 GiB (`4294967296`)"),
        ("x", 512, "`512`"),
        ("x", timedelta(days=7), "7 days"),
        ("x", timedelta(seconds=90), "90 seconds"),
        ("deferrable", False, "`[operators] default_deferrable` (`False` unless configured)"),
    ],
)
def test_defaults_as_the_pages_show_them(name: str, default: Any, shown: str) -> None:
    assert default_text(name, default) == shown


def test_rst_roles_become_code_spans() -> None:
    assert markdown("``a`` :func:`~x.y.f` :data:`.KEY_RULES` :class:`text <x.Y>`") == "`a` `f` `KEY_RULES` `text`"


def test_index_links_every_page_and_links_resolve() -> None:
    index = _page("index.md")
    for page in PAGES:
        assert f"]({page})" in index, f"docs/index.md does not link {page}"
    for page in ["index.md", *PAGES]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _page(page)):
            if "://" in target:
                continue
            assert (DOCS / page).parent.joinpath(target).resolve().is_file(), f"docs/{page}: broken link {target}"


def test_version_pyproject_and_changelog_agree() -> None:
    """One version: ``__version__``, which pyproject.toml reads (the wheel's metadata, checked by
    tests/integration/test_dist.py), is the CHANGELOG's newest section."""
    from airflow_provider_cogvideo import __version__

    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'dynamic = ["version"]' in pyproject
    assert '[tool.hatch.version]\npath = "airflow_provider_cogvideo/__init__.py"' in pyproject
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    newest = re.search(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    assert newest is not None and newest.group(1) == __version__, "CHANGELOG.md's newest section"
    assert f"\n[{__version__}]: https://" in changelog, "CHANGELOG.md's link for the version"
