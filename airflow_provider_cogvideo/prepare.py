"""From a caller's arguments to the request that goes on the wire: images read and checked, the body
validated against the model's row, what makes it "the same job" on a retry, and its summary.

The generate operator and :meth:`CogVideoHook.generate` (TaskFlow) build requests here, so both
validate exactly alike before anything is paid for.

Images (:func:`prepare_images`): a URL is passed through (the service fetches it); anything else is
read (:mod:`.image_sources`), inspected with Pillow (:mod:`.image_pixels`: decodable? which format?
how many bytes and pixels?) and sent as a data URI, the one base64 form every model accepts. One
whose EXIF says it is rotated would arrive sideways (the service ignores EXIF), and no model takes
HEIF: both are sent as an upright JPEG. Pillow and the Amazon provider are optional extras, checked
before an image is read, naming the field, the value and the extra
(:class:`~.errors.CogVideoMissingExtraError`); a URL needs neither.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from airflow_provider_cogvideo.capabilities import (
    DEFAULT_MODEL,
    OPTION_COLUMNS,
    ModelCapabilities,
    canonical_model,
    capabilities_for,
    check_frame_pair,
    check_image_properties,
    check_option,
)
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.fingerprint import canonical_digest
from airflow_provider_cogvideo.image_pixels import ImageInfo, inspect_image, normalized_jpeg
from airflow_provider_cogvideo.image_sources import ByteLimit, read_image_bytes, require_extras_for
from airflow_provider_cogvideo.models import VideoGenerationRequest
from airflow_provider_cogvideo.redact import is_http_url, redact_url
from airflow_provider_cogvideo.validation import is_unset, rendered_none


@dataclass(frozen=True)
class WireImage:
    """One image as it will be sent, plus what we know about it (``info`` is None for URLs).

    ``source`` says where it came from (the URL without its query string, which may carry a
    signature; the ``s3://`` URI or path; base64 summarised): the request summary, which goes to
    logs and XCom, shows it instead of the wire form."""

    wire: str
    digest: str
    source: str
    info: ImageInfo | None = None


def prepare_images(
    image: str | Sequence[str] | None, caps: ModelCapabilities, *, aws_conn_id: str | None
) -> list[WireImage]:
    """Turn an operator's ``image`` argument into wire images, validated against the model's row.

    URLs need no extra; anything read here needs ``images`` (and ``s3://`` also ``amazon``):
    ``CogVideoMissingExtraError`` naming the field, the value and the extra when it is missing."""
    if image is None or image == "" or image == []:
        return []
    refs = [image] if isinstance(image, str) else list(image)
    limit = ByteLimit.for_model(caps)
    prepared: list[WireImage] = []
    for index, ref in enumerate(refs):
        label = f"image[{index}]" if len(refs) > 1 or not isinstance(image, str) else "image"
        if not isinstance(ref, str) or not ref.strip():
            raise CogVideoValidationError(label, f"must be a non-empty string, got {ref!r}")
        ref = ref.strip()
        if is_http_url(ref):
            digest = hashlib.sha256(ref.encode()).hexdigest()
            prepared.append(WireImage(wire=ref, digest=digest, source=redact_url(ref)))
            continue
        require_extras_for(ref, label)
        data, source = read_image_bytes(ref, aws_conn_id=aws_conn_id, label=label, limit=limit)
        info = inspect_image(data, label=label)
        sent = data
        if info.orientation != 1 or info.format == "heif":
            # The service ignores EXIF: a rotated photo sent as it is would arrive sideways. No model
            # takes HEIF. Both go as an upright JPEG (see normalized_rgb for colour and alpha).
            sent, info = normalized_jpeg(data, limit.max_bytes, label=label)
        check_image_properties(caps, index, info.format, info.n_bytes, info.width, info.height)
        wire = f"data:{info.mime};base64,{base64.b64encode(sent).decode('ascii')}"
        # The digest (request fingerprint) is of the bytes read, not of a re-encode that another
        # Pillow version could produce differently: a retry must recognise its own job.
        prepared.append(WireImage(wire=wire, digest=hashlib.sha256(data).hexdigest(), source=source, info=info))
    known = [(p.info.width, p.info.height) for p in prepared if p.info is not None]
    if len(known) == 2:
        check_frame_pair(caps, known)
    return prepared


@dataclass(frozen=True)
class PreparedRequest:
    """A validated request, what makes it "the same job" on a retry, and its summary for logs/XCom;
    ``images`` and ``generation`` are what the fingerprint was made of."""

    request: VideoGenerationRequest
    fingerprint: str
    summary: dict[str, Any]
    images: tuple[WireImage, ...] = ()
    generation: str | None = None

    def with_prompt(self, prompt: str | None, **summary: Any) -> PreparedRequest:
        """The same request with another prompt (a written one), validated and fingerprinted anew, its
        images not read again; ``summary`` adds entries to the summary (how the prompt was written)."""
        fields = {**self.request.model_dump(), "prompt": prompt}
        if not fields.get("request_id"):
            fields.pop("request_id", None)
        request = VideoGenerationRequest.build(**fields)
        return PreparedRequest(
            request=request,
            fingerprint=request_fingerprint(request.to_body(), [i.digest for i in self.images], self.generation),
            summary={**request.describe([i.source for i in self.images]), **summary},
            images=self.images,
            generation=self.generation,
        )


def request_fingerprint(body: dict[str, Any], image_digests: Sequence[str], generation: str | None = None) -> str:
    """What makes two submits 'the same job': the body without request_id, images by content hash,
    and the ``regenerate`` label when one is given (a new label asks for a new job)."""
    canonical: dict[str, Any] = {k: v for k, v in body.items() if k not in ("request_id", "image_url")}
    canonical["images"] = list(image_digests)
    if generation is not None:
        canonical["generation"] = generation
    return canonical_digest(canonical)


def _literal(value: Any) -> bool:
    """Whether a DAG file states ``value`` itself: a plain value, not a template, an XComArg or unset."""
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value and not is_unset(value)
    return isinstance(value, bool | int | float)


def checked_options(options: Any) -> dict[str, Any]:
    """``options`` as the request's options over the named arguments: a dict of the capability table's
    option names only (``size``, ``fps``...); an unset value is left out."""
    allowed = [name for name, _ in OPTION_COLUMNS]
    if not isinstance(options, dict) or any(name not in allowed for name in options):
        raise CogVideoValidationError("options", f"must be a dict of {allowed}, got {options!r}")
    return {name: value for name, value in options.items() if rendered_none(value) is not None}


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
        images=tuple(images),
        generation=generation,
    )


__all__ = [
    "PreparedRequest",
    "WireImage",
    "check_literal_options",
    "checked_options",
    "prepare_images",
    "prepare_request",
    "request_fingerprint",
]
