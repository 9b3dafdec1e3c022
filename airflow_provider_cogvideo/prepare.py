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

from airflow_provider_cogvideo.capabilities import DEFAULT_MODEL, capabilities_for
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
    model = fields.pop("model", None) or DEFAULT_MODEL
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


__all__ = ["PreparedRequest", "prepare_request", "request_fingerprint"]
