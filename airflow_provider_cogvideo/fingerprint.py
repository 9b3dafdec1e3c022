"""What makes two things "the same" as far as paying is concerned: one canonical digest, and the
fingerprint of a video.

Two questions need a stable hash of JSON-like values, and they must never drift apart in how they
serialise: "is this retry the same job?" (:func:`~airflow_provider_cogvideo.prepare.request_fingerprint`,
compared within one task's tries) and "does a video for exactly this already exist?"
(:func:`video_fingerprint`, compared across runs, days apart, by the video index). Both go through
:func:`canonical_digest`.

A video's fingerprint covers everything that changes the video and nothing that does not: the model
(spelt as the capability table spells it), every option that is set, the rendered prompt, each
*source* image by content, ``extra_body`` and the variant. Never ``request_id``: a new id per submit
is how the API tells jobs apart, not a different video. Images are hashed as the catalog holds them,
not as they are staged for the wire: a re-encode's bytes depend on the Pillow version, and a Pillow
upgrade must not make a whole catalog look changed (and be paid for again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_cogvideo.capabilities import canonical_model
from airflow_provider_cogvideo.validation import is_unset, rendered_none

NOT_OPTIONS = frozenset({"request_id", "user_id", "model", "prompt", "image", "image_url", "extra_body"})
"""Names never read from ``options``: each is either its own argument of :func:`video_fingerprint`
(model, prompt, images, extra_body) or not part of the video at all (``request_id``, ``user_id``),
so a caller may pass a whole request body as the options without changing the fingerprint."""


def canonical_digest(value: Any) -> str:
    """The sha256 (hex) of ``value`` as canonical JSON: keys sorted, anything JSON cannot hold as
    its ``str()``. Equal mappings give equal digests whatever their insertion order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def video_fingerprint(
    *,
    model: str,
    options: Mapping[str, Any],
    prompt: str | None,
    image_digests: Sequence[str],
    variant: str,
    extra_body: Mapping[str, Any] | None = None,
    prompt_writer: str | None = None,
    image_preparation: str | None = None,
) -> str:
    """The fingerprint of the video these arguments would produce: equal fingerprints, same video.

    ``options`` are the API's options (size, fps, duration, quality, with_audio, aspect_ratio,
    style, movement_amplitude...) as the request sends them (typed: ``30``, not ``"30"``); an unset
    one (:func:`~.validation.is_unset`) counts as absent, since an absent option is what the
    request sends for it, and :data:`NOT_OPTIONS` are ignored. ``image_digests`` are the sha256 of
    each source image's bytes, in order (the first and last frame of a pair are not interchangeable).
    ``extra_body`` None and ``{}`` are the same request.

    ``prompt_writer`` is the writer key (:func:`~.prompt_writer.writer_key`) when a model writes the
    prompt: the video is then known by what the writing is made of, never by its text, so a run decides
    from the listing alone. ``image_preparation`` names how the image was framed for a format
    (``"pad 1080x1920"``): the pixels sent are the source's, cropped or padded. Each is left out when
    unset, so a video made without them keeps the fingerprint it always had."""
    kept = {name: value for name, value in options.items() if name not in NOT_OPTIONS and not is_unset(value)}
    document: dict[str, Any] = {
        "model": canonical_model(model),
        "options": kept,
        "prompt": rendered_none(prompt),
        "images": list(image_digests),
        "variant": variant,
        "extra_body": dict(extra_body or {}),
    }
    if prompt_writer is not None:
        document["prompt_writer"] = prompt_writer
    if image_preparation is not None:
        document["image_preparation"] = image_preparation
    return canonical_digest(document)


__all__ = ["NOT_OPTIONS", "canonical_digest", "video_fingerprint"]
