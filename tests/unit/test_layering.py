"""The package's shape, checked: imports run downward only, tooling stays out of runtime, imports stay cheap.

``docs/architecture.md`` draws these layers; this test is what keeps the drawing true. Every import
counts, including the lazy ones inside functions and those under ``TYPE_CHECKING``: a layer that may
only be imported lazily is still a dependency.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_cogvideo"

LAYERS: dict[str, int] = {
    "airflow_provider_cogvideo": 0,
    "airflow_provider_cogvideo.errors": 0,
    "airflow_provider_cogvideo.sizes": 0,
    "airflow_provider_cogvideo.capabilities": 1,
    "airflow_provider_cogvideo.chat_models": 1,
    "airflow_provider_cogvideo.backoff": 1,
    "airflow_provider_cogvideo.s3": 1,
    "airflow_provider_cogvideo.redact": 1,
    "airflow_provider_cogvideo.metrics": 1,
    "airflow_provider_cogvideo.extras": 1,
    "airflow_provider_cogvideo.validation": 1,
    "airflow_provider_cogvideo.models": 2,
    "airflow_provider_cogvideo.formats": 2,
    "airflow_provider_cogvideo.events": 2,
    "airflow_provider_cogvideo.gallery_cards": 4,
    "airflow_provider_cogvideo.gallery": 5,
    "airflow_provider_cogvideo.image_sources": 2,
    "airflow_provider_cogvideo.image_pixels": 2,
    "airflow_provider_cogvideo.image_framing": 3,
    "airflow_provider_cogvideo.s3_multipart": 2,
    "airflow_provider_cogvideo.fingerprint": 2,
    "airflow_provider_cogvideo.products": 2,
    "airflow_provider_cogvideo.prompt_writer": 3,
    "airflow_provider_cogvideo.prompt_cache": 4,
    "airflow_provider_cogvideo.product_variants": 4,
    "airflow_provider_cogvideo.manifest": 3,
    "airflow_provider_cogvideo.video_index": 3,
    "airflow_provider_cogvideo.catalog_plan": 4,
    "airflow_provider_cogvideo.review": 3,
    "airflow_provider_cogvideo.review_run": 4,
    "airflow_provider_cogvideo.polling": 3,
    "airflow_provider_cogvideo.prepare": 3,
    "airflow_provider_cogvideo.hooks.submit_policy": 1,
    "airflow_provider_cogvideo.hooks.addresses": 2,
    "airflow_provider_cogvideo.hooks.bodies": 2,
    "airflow_provider_cogvideo.hooks.answers": 3,
    "airflow_provider_cogvideo.hooks.connection": 3,
    "airflow_provider_cogvideo.hooks.downloads": 3,
    "airflow_provider_cogvideo.hooks": 4,
    "airflow_provider_cogvideo.xcom": 5,
    "airflow_provider_cogvideo.mixins": 5,
    "airflow_provider_cogvideo.job_store": 5,
    "airflow_provider_cogvideo.budget": 6,
    "airflow_provider_cogvideo.failures": 6,
    "airflow_provider_cogvideo.links": 6,
    "airflow_provider_cogvideo.lineage": 6,
    "airflow_provider_cogvideo.triggers": 6,
    "airflow_provider_cogvideo.operators": 7,
    "airflow_provider_cogvideo.sensors": 7,
    "airflow_provider_cogvideo.transfers.keys": 2,
    "airflow_provider_cogvideo.transfers.results": 2,
    "airflow_provider_cogvideo.transfers.idempotency": 3,
    "airflow_provider_cogvideo.transfers": 7,
    "airflow_provider_cogvideo.worker_preload": 8,
}
"""Runtime modules by layer: a module imports only from strictly lower layers (or the package root)."""

TOOLING = ("emulator", "testing", "demo", "docs", "cli")
"""Never imported by a runtime module."""


def _layer_of(module: str) -> tuple[str, int] | None:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != "airflow_provider_cogvideo" and module.startswith(prefix + ".")):
            return prefix, LAYERS[prefix]
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, source: str, *, is_package: bool = False) -> set[str]:
    """Every module of the package that ``source`` (the text of ``module``) imports, wherever the
    import stands (inside functions, under ``TYPE_CHECKING``); relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{node.module}" if node.module else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "airflow_provider_cogvideo"}


def _violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """What ``module`` imports against the layers: tooling, or a module of its own layer or above
    (its own subpackage and the package root excepted)."""
    own = _layer_of(module)
    if own is None:
        return [f"{module} has no layer"]
    own_prefix, own_layer = own
    found = []
    for name in sorted(_imports(module, source, is_package=is_package)):
        if any(name.startswith(f"airflow_provider_cogvideo.{tool}") for tool in TOOLING):
            found.append(f"{module} imports the tooling module {name}")
            continue
        target = _layer_of(name)
        if target is None or target[0] in (own_prefix, "airflow_provider_cogvideo"):
            continue
        if target[1] >= own_layer:
            found.append(f"{module} (layer {own_layer}) imports {name} (layer {target[1]}): imports run downward only")
    return found


def _runtime_modules() -> list[Path]:
    return [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if _layer_of(_module_name(p)) is not None and _module_name(p) != "airflow_provider_cogvideo"
    ]


@pytest.mark.parametrize("path", _runtime_modules(), ids=lambda p: _module_name(p))
def test_runtime_module_imports_downward_only(path: Path) -> None:
    assert _violations(_module_name(path), path.read_text(), is_package=path.name == "__init__.py") == []


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("airflow_provider_cogvideo.errors", "from airflow_provider_cogvideo.capabilities import ANY"),
        ("airflow_provider_cogvideo.models", "def f():\n    from airflow_provider_cogvideo.hooks import cogvideo"),
        (
            "airflow_provider_cogvideo.polling",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from airflow_provider_cogvideo.xcom import X",
        ),
        ("airflow_provider_cogvideo.hooks.submit_policy", "from .cogvideo import CogVideoHook"),
        ("airflow_provider_cogvideo.hooks.bodies", "from ..prepare import prepare_request"),
        ("airflow_provider_cogvideo.transfers.cogvideo_to_s3", "import airflow_provider_cogvideo.operators.cogvideo"),
        ("airflow_provider_cogvideo.operators.cogvideo", "from airflow_provider_cogvideo.testing import products"),
        ("airflow_provider_cogvideo.links", "from airflow_provider_cogvideo import emulator"),
    ],
)
def test_the_check_refuses_an_import_against_the_layers(module: str, source: str) -> None:
    """The check itself, on sources that break the rule: an import it could not see would pass every
    real module above without a word."""
    found = _violations(module, source)
    assert found and all(line.startswith(f"{module} ") for line in found), found


def test_the_check_reads_the_imports_the_modules_really_have() -> None:
    operator = PACKAGE / "operators" / "cogvideo.py"
    imported = _imports("airflow_provider_cogvideo.operators.cogvideo", operator.read_text())
    assert {"airflow_provider_cogvideo.job_store", "airflow_provider_cogvideo.budget"} <= imported
    assert _violations("airflow_provider_cogvideo.capabilities", "from airflow_provider_cogvideo.errors import X") == []
    assert _violations("airflow_provider_cogvideo.hooks.answers", "from .bodies import read_answer") == []


def test_every_runtime_module_has_a_layer() -> None:
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py"}
    tops |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    unplaced = sorted(t for t in tops - {"__init__", *TOOLING} if f"airflow_provider_cogvideo.{t}" not in LAYERS)
    assert not unplaced, f"new modules need a layer in this test and in docs/architecture.md: {unplaced}"


ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"


def _drawn_layers() -> dict[str, int]:
    """The layer table of docs/architecture.md (``| layer | `path` | owns |``): module -> layer."""
    drawn = {}
    for layer, path in re.findall(r"^\| (\d+) \| `([^`]+)` \|", ARCHITECTURE.read_text(), re.MULTILINE):
        module = path.removesuffix(".py").removesuffix("__init__").rstrip("/").replace("/", ".")
        drawn[f"airflow_provider_cogvideo.{module}".rstrip(".")] = int(layer)
    return drawn


def test_the_architecture_page_draws_these_layers() -> None:
    """Each row of the page's table has its layer here, and each entry here has a row (its module, or one
    inside it): the drawing and the check cannot drift apart."""
    drawn = _drawn_layers()
    assert len(drawn) >= len(LAYERS) // 2, f"the layer table of docs/architecture.md was not read: {drawn}"
    wrong = {module: layer for module, layer in drawn.items() if (_layer_of(module) or ("", None))[1] != layer}
    assert not wrong, f"docs/architecture.md draws {wrong}; LAYERS says otherwise"
    undrawn = sorted(entry for entry in LAYERS if not any(m == entry or m.startswith(entry + ".") for m in drawn))
    assert not undrawn, f"LAYERS entries without a row in docs/architecture.md: {undrawn}"


PARSE_TIME_MODULES = (
    "sensors.cogvideo",
    "operators.cogvideo",
    "operators.gallery",
    "operators.product_images",
    "transfers.cogvideo_to_s3",
    "triggers.cogvideo",
    "hooks.cogvideo",
)
HEAVY = ("pytest", "starlette", "uvicorn", "PIL", "boto3", "botocore", "av")
CONTROL = "emulator"
"""Imported last, after the modules under test: tooling that loads a web server. The probe must see
both, or it is blind and its empty answers for the others mean nothing."""
_IMPORT_EACH = """
import importlib, json, sys
heavy = set(sys.argv[1].split(","))
tooling = {"airflow_provider_cogvideo." + name for name in sys.argv[2].split(",")}
loaded = {}
for module in sys.argv[3:]:
    importlib.import_module("airflow_provider_cogvideo." + module)
    libraries = {m.split(".")[0] for m in sys.modules} & heavy
    tools = {".".join(m.split(".")[:2]) for m in sys.modules} & tooling
    loaded[module] = sorted(libraries | tools)
print(json.dumps(loaded))
"""


def test_runtime_import_loads_no_tooling_or_heavy_libraries() -> None:
    """DAG files import these at parse time: no tooling, test framework, web server, Pillow or boto3.

    One fresh interpreter imports them in turn (a fresh one each would cost seconds of Airflow
    start-up apiece); what is loaded is read after each import, so the first module that pulls a
    heavy library or a tooling module in is the one named."""
    argv = [sys.executable, "-c", _IMPORT_EACH, ",".join(HEAVY), ",".join(TOOLING), *PARSE_TIME_MODULES, CONTROL]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])  # Airflow may log a line first
    control = loaded.pop(CONTROL)
    assert {"starlette", "uvicorn", "airflow_provider_cogvideo.emulator"} <= set(control), control
    assert {module: libs for module, libs in loaded.items() if libs} == {}
