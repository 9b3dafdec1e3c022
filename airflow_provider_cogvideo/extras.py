"""Optional dependencies: which extra brings what, imported where used, refused naming the extra.

Text-to-video (a prompt, or an http(s) image URL, which the service fetches) needs none of them.
Reading an image here (a local file, base64, a data URI, an ``s3://`` object) needs Pillow; anything
in S3 needs the Amazon provider; HEIC/HEIF photos need ``pillow-heif``:

* ``amazon``: ``airflow.providers.amazon`` (``apache-airflow-providers-amazon``): ``s3://`` images,
  ingestion (``S3ProductImagesOperator``), the transfer (``CogVideoToS3Operator``), the gallery;
* ``images``: ``PIL`` (``Pillow``): images read and checked here (file, base64, data URI, ``s3://``);
* ``heif``: ``pillow_heif`` (``pillow-heif``, with Pillow): HEIC/HEIF photos (iPhones).

:func:`require_extra` is the one check: it imports the modules (an import that fails is what
"missing" means, so a broken install is found too, not only an absent one) and raises
:class:`~airflow_provider_cogvideo.errors.CogVideoMissingExtraError` with the ``pip install`` line.
Operators whose whole purpose needs an extra call it in ``__init__``, so a DAG fails when it is
parsed; the others where the extra is first needed. Importing this module imports none of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from airflow_provider_cogvideo.errors import CogVideoMissingExtraError

DISTRIBUTION = "airflow-provider-cogvideo"


@dataclass(frozen=True)
class Extra:
    """One optional extra: its name, the module that proves it is installed, the package it brings."""

    name: str
    module: str
    distribution: str


EXTRAS: dict[str, Extra] = {
    extra.name: extra
    for extra in (
        Extra("amazon", "airflow.providers.amazon", "apache-airflow-providers-amazon"),
        Extra("images", "PIL", "Pillow"),
        Extra("heif", "pillow_heif", "pillow-heif"),
    )
}
"""The optional extras of ``pyproject.toml`` that runtime code imports (the tooling ones, ``emulator``
and ``local-s3``, are for the demo and the tests)."""


def install_line(*extras: str) -> str:
    """``pip install 'airflow-provider-cogvideo[a,b]'``."""
    return f"pip install '{DISTRIBUTION}[{','.join(extras)}]'"


def _not_installed(exc: ImportError, module: str) -> bool:
    """The import failed because ``module`` (or a package above it) does not exist, as opposed to
    an installed package that fails to import (a missing shared library, a missing dependency)."""
    name = getattr(exc, "name", None)
    return isinstance(exc, ModuleNotFoundError) and bool(name) and (module == name or module.startswith(f"{name}."))


def require_extra(*extras: str, needed_for: str) -> None:
    """Import what each of ``extras`` brings; raise one ``CogVideoMissingExtraError`` naming every one
    that fails, ``needed_for`` (what asked, e.g. an operator or an image) and the ``pip install`` line.

    Never retryable: the environment, not the moment, is wrong."""
    missing: list[Extra] = []
    broken: list[str] = []
    first: ImportError | None = None
    for name in extras:
        extra = EXTRAS[name]
        try:
            importlib.import_module(extra.module)
        except ImportError as exc:
            missing.append(extra)
            first = first or exc
            if not _not_installed(exc, extra.module):
                broken.append(f"{extra.module}: {type(exc).__name__}: {exc}")
    if not missing:
        return
    names = [f"'{extra.name}'" for extra in missing]
    plural = len(missing) > 1
    which = f"{', '.join(names[:-1])} and {names[-1]}" if plural else names[0]
    packages = ", ".join(extra.distribution for extra in missing)
    if broken:
        state = f"which cannot be imported ({'; '.join(broken)})"
    else:
        state = f"which {'are' if plural else 'is'} not installed"
    raise CogVideoMissingExtraError(
        f"{needed_for} needs the optional {which} extra{'s' if plural else ''} ({packages}), {state}: "
        f"{install_line(*(extra.name for extra in missing))}",
        extras=tuple(extra.name for extra in missing),
        needed_for=needed_for,
    ) from first


def require_extra_for_operator(operator: type, task_id: object, *extras: str) -> None:
    """:func:`require_extra` for an operator whose whole purpose needs ``extras``, called where the DAG
    is parsed (its constructor, or ``partial``), naming the operator and the task."""
    require_extra(*extras, needed_for=f"{operator.__name__} (task {task_id!r})")


__all__ = ["EXTRAS", "Extra", "install_line", "require_extra", "require_extra_for_operator"]
