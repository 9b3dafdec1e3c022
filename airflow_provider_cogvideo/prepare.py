"""From a caller's arguments to the request that goes on the wire: images read and checked, the body
validated against the model's row, what makes it "the same job" on a retry, and its summary.

The generate operator and :meth:`CogVideoHook.generate` (TaskFlow) build requests here, so both
validate exactly alike before anything is paid for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from airflow_provider_cogvideo.capabilities import DEFAULT_MODEL, canonical_model, capabilities_for, check_option
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.images import prepare_images
from airflow_provider_cogvideo.models import VideoGenerationRequest


@dataclass(frozen=True)
class PreparedRequest:
    """A validated request, what makes it "the same job" on a retry, and its summary for logs/XCom."""

    request: VideoGenerationRequest
    fingerprint: str
    summary: dict[str, Any]


def request_fingerprint(body: dict[str, Any], image_digests: Sequence[str], generation: str | None = None) -> str:
    """What makes two submits 'the same job': the body without request_id, images by content hash,
    and the ``regenerate`` label when one is given (a new label asks for a new job)."""
    canonical: dict[str, Any] = {k: v for k, v in body.items() if k not in ("request_id", "image_url")}
    canonical["images"] = list(image_digests)
    if generation is not None:
        canonical["generation"] = generation
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


UNSET_TEXT = frozenset({"", "None"})
"""What a templated option renders to when its param is unset (``"{{ params.fps }}"`` with no fps)."""


def rendered_none(value: Any) -> Any:
    """A templated option that rendered to ``"None"`` or ``""`` (its param was unset) is unset."""
    if isinstance(value, str) and value.strip() in UNSET_TEXT:
        return None
    return value


def _literal(value: Any) -> bool:
    """Whether a DAG file states ``value`` itself: a plain value, not a template, an XComArg or unset."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value and rendered_none(value) is not None
    return isinstance(value, bool | int | float)


def check_literal_options(model: Any, capability_overrides: Any, options: dict[str, Any]) -> None:
    """Check, when the DAG file is parsed, what it states literally: the model name and each option
    of the capability table (size, fps, duration, quality, Vidu's aspect ratio, style and movement).

    Templates, XComArgs and unset values wait for the run, where the same rules apply to what they
    render to; so do the values of ``.partial().expand()``, which Airflow passes only when the
    mapped task runs. Raises :class:`CogVideoValidationError`, which fails the DAG's import.
    """
    if not _literal(model) or not isinstance(capability_overrides, dict | None):
        return
    caps = capabilities_for(canonical_model(str(model)), capability_overrides)
    for name, value in options.items():
        if not _literal(value):
            continue
        try:
            typed = TypeAdapter(VideoGenerationRequest.model_fields[name].annotation).validate_python(value)
        except ValidationError:
            raise CogVideoValidationError(name, f"{value!r} is not a valid {name}") from None
        check_option(caps, name, typed)


def prepare_request(
    *,
    image: str | Sequence[str] | None = None,
    aws_conn_id: str | None = "aws_default",
    generation: str | None = None,
    **fields: Any,
) -> PreparedRequest:
    """Validate everything and build the request; raises ``CogVideoValidationError`` naming the field.

    ``fields`` are the API's (``model``, ``prompt``, ``size``...; see
    :meth:`VideoGenerationRequest.api_fields`) plus ``request_id`` and ``capability_overrides``.
    One image given as a string goes on the wire as a string, a list as a list.
    """
    model = canonical_model(fields.pop("model", None) or DEFAULT_MODEL)
    caps = capabilities_for(model, fields.get("capability_overrides"))
    images = prepare_images(image, caps, aws_conn_id=aws_conn_id)
    wire_images: str | list[str] | None = None
    if images:
        single = isinstance(image, str) or (len(images) == 1 and caps.max_images == 1)
        wire_images = images[0].wire if single else [i.wire for i in images]
    if not fields.get("request_id"):
        fields.pop("request_id", None)  # a fresh one per submit
    request = VideoGenerationRequest.build(model=model, image_url=wire_images, **fields)
    return PreparedRequest(
        request=request,
        fingerprint=request_fingerprint(request.to_body(), [i.digest for i in images], generation),
        summary=request.describe([i.source for i in images]),
    )


__all__ = [
    "UNSET_TEXT",
    "PreparedRequest",
    "check_literal_options",
    "prepare_request",
    "rendered_none",
    "request_fingerprint",
]
