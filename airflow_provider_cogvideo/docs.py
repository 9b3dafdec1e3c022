"""The documentation's generated sections: written once in the code, copied into the pages.

* Tables of the code's tables: models (:data:`~airflow_provider_cogvideo.capabilities.MODEL_CAPABILITIES`),
  ad formats (:data:`~airflow_provider_cogvideo.formats.AD_FORMATS`), errors, the submit policy, metrics.
* Parameter tables of the operators, the sensor, the transfer and the hook, from their docstrings
  (``:param name:``, and ``:type name:`` where the annotation says less), ``inspect.signature``
  defaults and ``template_fields``. A class docstring's other paragraphs (not its summary) come
  with its table: a parameter's one home is its docstring.

Each section sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in the page that
:data:`GENERATED` names; ``tests/unit/test_docs_pages.py`` fails when one differs from what the code
generates now. ``python -m airflow_provider_cogvideo.docs --write`` (``make docs``) rewrites them in
place; without ``--write`` it lists the stale ones.

Documentation tooling: no runtime module imports this.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES
from airflow_provider_cogvideo.errors import API_ERROR_CODES
from airflow_provider_cogvideo.formats import AD_FORMATS, choose_format
from airflow_provider_cogvideo.hooks.submit_policy import SUBMIT_POLICY
from airflow_provider_cogvideo.metrics import METRICS
from airflow_provider_cogvideo.sizes import MiB


def capability_table_markdown() -> str:
    """The README's model table, generated from :data:`MODEL_CAPABILITIES`."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, tuple):
            return ", ".join(str(x) for x in v)
        return str(v)

    rows = [
        "| model | images | sizes | fps | duration | quality | Vidu options | image formats, max | price |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in MODEL_CAPABILITIES.values():
        images = "0" if c.max_images == 0 else f"{c.min_images}-{c.max_images}"
        vidu = "; ".join(
            f"{label}: {cell(getattr(c, col))}"
            for label, col in (("aspect_ratio", "aspect_ratios"), ("style", "styles"),
                               ("movement_amplitude", "movement_amplitudes"))
            if getattr(c, col) is not None
        ) or "-"  # fmt: skip
        price = f"{c.price_cny:g} CNY" + (f" / ${c.price_usd:g}" if c.price_usd is not None else "")
        rows.append(
            f"| `{c.name}` | {images} | {cell(c.sizes)} | {cell(c.fps)} | {cell(c.durations)} | "
            f"{cell(c.qualities)} | {vidu} | {cell(c.image_formats)}, {c.image_max_bytes // MiB} MB | {price} |"
        )
    return "\n".join(rows)


def formats_table_markdown() -> str:
    """The README's ad formats table, generated from :data:`~airflow_provider_cogvideo.formats.AD_FORMATS`
    (the size column is what :func:`~airflow_provider_cogvideo.formats.choose_format` picks on ``cogvideox-3``)."""
    header = ("format", "variant (key)", "aspect", "size on `cogvideox-3`", "platforms", "platform duration",
              "max file", "notes")  # fmt: skip
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for f in AD_FORMATS.values():
        size = choose_format(f.name, "cogvideox-3").size
        cells = (f"`{f.name}`", f"`{f.variant}`", f.aspect, size, f.platforms, f.duration, f.max_file, f.notes)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def error_table_markdown() -> str:
    """The README's error table, generated from :data:`~airflow_provider_cogvideo.errors.API_ERROR_CODES`."""
    rows = ["| code | HTTP | exception | retried | meaning |", "|---|---|---|---|---|"]
    rows += [
        f"| {r.code} | {r.http_status} | `{r.exception.__name__}` | {'yes' if r.retryable else 'no'} | {r.message} |"
        for r in API_ERROR_CODES.values()
    ]
    return "\n".join(rows)


def submit_policy_markdown() -> str:
    """The README's submit policy, generated from
    :data:`~airflow_provider_cogvideo.hooks.submit_policy.SUBMIT_POLICY`."""
    rows = ["| a submit answered | the hook | why | when the resends run out |", "|---|---|---|---|"]
    rows += [
        f"| {rule.answer} | {rule.decision} | {rule.why} | "
        f"{'the operator waits (deferred) and submits again within its deadline' if rule.capacity else '-'} |"
        for rule in SUBMIT_POLICY.values()
    ]
    return "\n".join(rows)


def metrics_table_markdown() -> str:
    """The README's metrics table, generated from :data:`~airflow_provider_cogvideo.metrics.METRICS`."""
    rows = ["| metric | kind | meaning |", "|---|---|---|"]
    rows += [f"| `{name}` | {kind} | {meaning} |" for name, (kind, meaning) in METRICS.items()]
    return "\n".join(rows)


# ---------------------------------------------------------------------------------- parameter tables
_PARAM_RE = re.compile(r"^:(param|type)\s+([^:]+):\s*(.*)$")
_ROLE_RE = re.compile(r":[a-z]+(?::[a-z]+)?:`([^`]+)`")
DEFAULT_TEXT: dict[str, str] = {
    "deferrable": "`[operators] default_deferrable` (`False` unless configured)",
}
"""Defaults that the signature cannot show: read from Airflow's configuration when the module is imported."""


class Docstring:
    """A docstring read as the pages use it: its summary (the first paragraph, which the pages do not
    repeat), its ``:param``/``:type`` fields (one per parameter: a field naming several is refused),
    and its other paragraphs before and after them."""

    def __init__(self, doc: str | None, owner: str) -> None:
        lines = inspect.cleandoc(doc or "").splitlines()
        first = lines.index("") if "" in lines else len(lines)
        self.summary = " ".join(lines[:first])
        self.params: dict[str, str] = {}
        self.types: dict[str, str] = {}
        self.before: list[str] = []
        self.after: list[str] = []
        field: tuple[str, str] | None = None
        for line in lines[first:]:
            match = _PARAM_RE.match(line)
            if match:
                kind, name, text = match.groups()
                name = name.strip().lstrip("*")
                if "," in name or " " in name:
                    raise ValueError(f"{owner}: one :{kind}: per parameter, got {name!r}")
                field = (kind, name)
                target = self.params if kind == "param" else self.types
                if name in target:
                    raise ValueError(f"{owner}: :{kind} {name}: twice")
                target[name] = text.strip()
            elif line.startswith((":param", ":type")):
                raise ValueError(f"{owner}: unreadable field {line!r} (one parameter, then a colon)")
            elif field is not None and line.startswith((" ", "\t")) and line.strip():
                target = self.params if field[0] == "param" else self.types
                target[field[1]] += " " + line.strip()
            else:
                field = None
                (self.after if self.params else self.before).append(line)

    @staticmethod
    def paragraphs(lines: list[str]) -> str:
        """Lines of prose as one block, without the blank lines around it."""
        return "\n".join(lines).strip("\n")


def markdown(text: str) -> str:
    """reStructuredText inline markup as Markdown: ````x```` -> `` `x` ``, ``:role:`~a.b.C``` -> `` `C` ``
    (``:role:`text <target>``` -> `` `text` ``), ``**bold**`` kept."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        if "<" in target and target.endswith(">"):
            return f"`{target.split('<', 1)[0].strip()}`"
        if target.startswith("~"):
            return f"`{target.rsplit('.', 1)[-1]}`"
        return f"`{target.lstrip('.')}`"

    return _ROLE_RE.sub(role, text).replace("``", "`")


def _cell(text: str) -> str:
    """One table cell: Markdown, pipes escaped (inside code spans too: a table splits on them first)."""
    return markdown(text).replace("|", "\\|")


def default_text(name: str, default: Any) -> str:
    """A signature default as the pages show it: ``required``, `` `None` ``, ``8 MiB (`8388608`)``, ``2 hours``."""
    if name in DEFAULT_TEXT:
        return DEFAULT_TEXT[name]
    if default is inspect.Parameter.empty:
        return "required"
    if isinstance(default, timedelta):
        seconds = int(default.total_seconds())
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
            if seconds % size == 0:
                count = seconds // size
                return f"{count} {unit}{'s' if count != 1 else ''}"
    if isinstance(default, int) and not isinstance(default, bool) and default >= MiB:
        for unit, size in (("GiB", 1024 * MiB), ("MiB", MiB)):
            if default % size == 0:
                return f"{default // size} {unit} (`{default}`)"
    if isinstance(default, str):
        return f'`"{default}"`'
    return f"`{default!r}`"


def param_table_markdown(target: Callable[..., Any], *, templated: bool | None = None) -> str:
    """The parameters of a class or a function, from its docstring and signature; ``templated`` adds a
    column saying which are in ``template_fields`` (by default, for a class that has them).

    Raises ``ValueError`` when a parameter has no ``:param:`` or a ``:param:`` names no parameter."""
    owner = getattr(target, "__qualname__", repr(target))
    doc = Docstring(target.__doc__, owner)
    parameters = [
        p
        for name, p in inspect.signature(target).parameters.items()
        if name != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL
        and not (p.kind is inspect.Parameter.VAR_KEYWORD and name == "kwargs")
    ]  # fmt: skip
    names = [p.name for p in parameters]
    undocumented = [name for name in names if name not in doc.params]
    unknown = [name for name in [*doc.params, *doc.types] if name not in names]
    if undocumented or unknown:
        raise ValueError(f"{owner}: no :param: for {undocumented}; :param:/:type: of no parameter {unknown}")
    if templated is None:
        templated = isinstance(target, type) and hasattr(target, "template_fields")
    fields = set(getattr(target, "template_fields", ()))
    header = ["parameter", "type", "default", *(["templated"] if templated else []), "description"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in parameters:
        keyword = p.kind is inspect.Parameter.VAR_KEYWORD
        annotation = doc.types.get(p.name) or (p.annotation if isinstance(p.annotation, str) else "")
        cells = [
            f"`**{p.name}`" if keyword else f"`{p.name}`",
            f"`{_cell(annotation)}`" if annotation else "-",
            "-" if keyword else default_text(p.name, p.default),
            *((["yes" if p.name in fields else "no"]) if templated else []),
            _cell(doc.params[p.name]),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def param_section_markdown(target: Callable[..., Any], *, templated: bool | None = None, prose: bool = True) -> str:
    """:func:`param_table_markdown` with (``prose``) the docstring's other paragraphs: those before the
    fields above the table, those after below it."""
    doc = Docstring(target.__doc__, getattr(target, "__qualname__", repr(target)))
    table = param_table_markdown(target, templated=templated)
    if not prose:
        return table
    parts = [markdown(Docstring.paragraphs(doc.before)), table, markdown(Docstring.paragraphs(doc.after))]
    return "\n\n".join(part for part in parts if part)


# ---------------------------------------------------------------------------------- where they go
def _params(import_path: str, *, templated: bool | None = None, prose: bool = True) -> Callable[[], str]:
    def render() -> str:
        module, _, name = import_path.partition(":")
        target: Any = importlib.import_module(module)
        for attribute in name.split("."):
            target = getattr(target, attribute)
        return param_section_markdown(target, templated=templated, prose=prose)

    return render


GENERATED: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {
        "models-table": capability_table_markdown,
        "ad-formats": formats_table_markdown,
        "errors-table": error_table_markdown,
        "submit-policy": submit_policy_markdown,
        "metrics-table": metrics_table_markdown,
    },
    "docs/index.md": {"metrics-table": metrics_table_markdown},
    "docs/operators/generate.md": {
        "params:CogVideoGenerateOperator": _params(
            "airflow_provider_cogvideo.operators.cogvideo:CogVideoGenerateOperator"
        ),
    },
    "docs/sensors/task.md": {
        "params:CogVideoTaskSensor": _params("airflow_provider_cogvideo.sensors.cogvideo:CogVideoTaskSensor"),
    },
    "docs/operators/product_images.md": {
        "params:S3ProductImagesOperator": _params(
            "airflow_provider_cogvideo.operators.product_images:S3ProductImagesOperator"
        ),
    },
    "docs/operators/run_plan.md": {
        "params:CogVideoRunPlanOperator": _params(
            "airflow_provider_cogvideo.operators.run_plan:CogVideoRunPlanOperator"
        ),
    },
    "docs/operators/run_record.md": {
        "params:CogVideoRunRecordOperator": _params(
            "airflow_provider_cogvideo.operators.run_record:CogVideoRunRecordOperator"
        ),
    },
    "docs/operators/review_plan.md": {
        "params:CogVideoReviewPlanOperator": _params(
            "airflow_provider_cogvideo.operators.review_plan:CogVideoReviewPlanOperator"
        ),
    },
    "docs/operators/review.md": {
        "params:CogVideoReviewOperator": _params("airflow_provider_cogvideo.operators.review:CogVideoReviewOperator"),
    },
    "docs/operators/regenerate.md": {
        "params:CogVideoRegenerateOperator": _params(
            "airflow_provider_cogvideo.operators.regenerate:CogVideoRegenerateOperator"
        ),
    },
    "docs/operators/publish.md": {
        "params:CogVideoPublishOperator": _params(
            "airflow_provider_cogvideo.operators.publish:CogVideoPublishOperator"
        ),
    },
    "docs/operators/review_record.md": {
        "params:CogVideoReviewRecordOperator": _params(
            "airflow_provider_cogvideo.operators.review_record:CogVideoReviewRecordOperator"
        ),
    },
    "docs/operators/gallery.md": {
        "params:S3VideoGalleryOperator": _params("airflow_provider_cogvideo.operators.gallery:S3VideoGalleryOperator"),
    },
    "docs/transfers/cogvideo_to_s3.md": {
        "params:CogVideoToS3Operator": _params(
            "airflow_provider_cogvideo.transfers.cogvideo_to_s3:CogVideoToS3Operator"
        ),
    },
    "docs/hooks/cogvideo.md": {
        # Its returns and raises are the page's own tables.
        "params:CogVideoHook.generate": _params(
            "airflow_provider_cogvideo.hooks.cogvideo:CogVideoHook.generate", prose=False
        ),
        "params:CogVideoHook": _params("airflow_provider_cogvideo.hooks.cogvideo:CogVideoHook"),
        "submit-policy": submit_policy_markdown,
    },
}
"""Page (relative to the repository root) -> section name -> what generates it."""


def _bounds(text: str, name: str) -> tuple[int, int]:
    """Where the section ``name`` starts and ends in ``text`` (its markers each on a line of its own)."""
    start, end = f"<!-- {name}:start -->\n", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(end) < text.index(start):
        raise ValueError(f"expected one <!-- {name}:start --> line, then one <!-- {name}:end --> line")
    return text.index(start) + len(start), text.index(end)


def section(text: str, name: str) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    begin, end = _bounds(text, name)
    return text[begin:end].removesuffix("\n")


def with_section(text: str, name: str, content: str) -> str:
    """``text`` with the section ``name`` replaced by ``content``."""
    begin, end = _bounds(text, name)
    return text[:begin] + content + "\n" + text[end:]


def stale_sections(root: Path) -> list[tuple[str, str]]:
    """``(page, section)`` of every generated section under ``root`` that differs from the code."""
    stale = []
    for page, sections in GENERATED.items():
        text = (root / page).read_text(encoding="utf-8")
        stale += [(page, name) for name, render in sections.items() if section(text, name) != render()]
    return stale


def write_sections(root: Path) -> list[str]:
    """Rewrite every generated section under ``root``; the pages that changed."""
    changed = []
    for page, sections in GENERATED.items():
        path = root / page
        text = original = path.read_text(encoding="utf-8")
        for name, render in sections.items():
            text = with_section(text, name, render())
        if text != original:
            path.write_text(text, encoding="utf-8")
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - documentation helper
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_cogvideo.docs", description="Generated docs")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository (default: here)")
    parser.add_argument("--write", action="store_true", help="rewrite the stale sections in place")
    args = parser.parse_args(argv)
    if args.write:
        for page in write_sections(args.root):
            print(f"rewrote {page}")
        return 0
    stale = stale_sections(args.root)
    for page, name in stale:
        print(f"stale: {page} <!-- {name} -->")
    return 1 if stale else 0


if __name__ == "__main__":  # pragma: no cover - documentation helper
    sys.exit(main())
