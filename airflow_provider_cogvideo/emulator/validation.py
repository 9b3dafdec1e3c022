"""Submit-body validation against the shared capability table, implemented independently.

It reads :data:`~airflow_provider_cogvideo.models.MODEL_CAPABILITIES` (data only) and never the
hook's request model or its checks: a bug in the client's validation must not be mirrored here,
or the emulator would wave the same wrong request through.

JSON ``null`` means "unset" (the official SDKs send every unset field as null). Unknown fields
are ignored (the SDKs also send off_peak, sensitive_word_check, ...).
"""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cogvideo.capabilities import (
    ANY,
    MODEL_CAPABILITIES,
    PROMPT_MAX_CHARS,
    USER_ID_LENGTH,
    ModelCapabilities,
)
from airflow_provider_cogvideo.emulator.wire import WireError, invalid, missing

# Request field -> (capability column, JSON type the field must have).
OPTION_FIELDS: dict[str, tuple[str, type]] = {
    "size": ("sizes", str),
    "fps": ("fps", int),
    "duration": ("durations", int),
    "quality": ("qualities", str),
    "aspect_ratio": ("aspect_ratios", str),
    "style": ("styles", str),
    "movement_amplitude": ("movement_amplitudes", str),
}

_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


@dataclass(frozen=True)
class InputImage:
    """One input image: decoded bytes (base64 input) or a URL the emulator may try to fetch."""

    data: bytes | None = None
    url: str | None = None
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class SubmitRequest:
    """A body that passed validation: what the task and its media need."""

    caps: ModelCapabilities
    prompt: str | None
    images: tuple[InputImage, ...]
    options: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


def body_fields(body: Any) -> dict[str, Any]:
    """A request body's fields: a JSON object is required (1210), and JSON ``null`` means unset."""
    if not isinstance(body, dict):
        raise WireError("1210", "Request body must be a JSON object (请求参数错误)")
    return {k: v for k, v in body.items() if v is not None}


def validate_submit(body: Any) -> SubmitRequest:
    """Check one ``POST /videos/generations`` body; raise the error the service would answer."""
    fields = body_fields(body)

    model = fields.get("model")
    if model is None:
        raise missing("model", "the model name is required")
    caps = MODEL_CAPABILITIES.get(model) if isinstance(model, str) else None
    if caps is None:
        raise WireError("1211", f"模型不存在。Model {model!r} does not exist; known: {sorted(MODEL_CAPABILITIES)}")

    prompt = _typed(fields, "prompt", str) or None
    raw_images = _image_list(caps, fields.get("image_url"))
    if caps.prompt_required and prompt is None:
        raise missing("prompt", f"model {caps.name} is text-to-video and needs a prompt")
    if prompt is None and not raw_images:
        raise missing("prompt", "prompt and image_url cannot both be empty")
    if prompt is not None and len(prompt) > PROMPT_MAX_CHARS:
        raise WireError(
            "1261", f"Prompt超长。prompt is too long: {len(prompt)} characters, the limit is {PROMPT_MAX_CHARS}"
        )

    options = {name: _check_option(caps, name, fields) for name in OPTION_FIELDS if name in fields}
    for flag in ("with_audio", "watermark_enabled"):
        if flag in fields:
            options[flag] = _typed(fields, flag, bool)
    if options.get("with_audio") and not caps.with_audio:
        raise invalid("with_audio", f"not supported by {caps.name}")
    pair_quality = options.get("quality") if len(raw_images) == 2 and caps.frame_pair_qualities else None
    if pair_quality is not None and pair_quality not in (caps.frame_pair_qualities or ()):
        raise invalid(
            "quality",
            f"{pair_quality!r} is not allowed with a first/last frame pair on {caps.name}; "
            f"allowed: {list(caps.frame_pair_qualities or ())}",
        )

    user_id = _typed(fields, "user_id", str)
    lo, hi = USER_ID_LENGTH
    if user_id is not None and not lo <= len(user_id) <= hi:
        raise invalid("user_id", f"must be {lo} to {hi} characters long, got {len(user_id)}")

    images = tuple(_decode_image(caps, i, img) for i, img in enumerate(raw_images))
    _check_frame_pair(caps, images)
    return SubmitRequest(caps, prompt, images, options, _typed(fields, "request_id", str))


def _typed(fields: dict[str, Any], name: str, kind: type) -> Any:
    value = fields.get(name)
    if value is None:
        return None
    # bool is an int in Python, never in JSON.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise invalid(name, f"expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _check_option(caps: ModelCapabilities, name: str, fields: dict[str, Any]) -> Any:
    column, kind = OPTION_FIELDS[name]
    allowed = getattr(caps, column)
    if allowed == ANY:
        return fields[name]
    if allowed is None:
        raise invalid(name, f"{caps.name} does not take {name}")
    value = _typed(fields, name, kind)
    if value not in allowed:
        raise invalid(name, f"{value!r} not allowed for {caps.name}; allowed: {list(allowed)}")
    return value


def _image_list(caps: ModelCapabilities, value: Any) -> list[str]:
    if value is None:
        images: list[Any] = []
    elif isinstance(value, str):
        images = [value]
    elif isinstance(value, list):
        if caps.max_images <= 1:
            raise invalid("image_url", f"{caps.name} takes a single image string, not a list")
        images = value
    else:
        raise invalid("image_url", f"expected a string or a list of strings, got {type(value).__name__}")
    if not all(isinstance(i, str) and i.strip() for i in images):
        raise invalid("image_url", "every image must be a non-empty string (URL or base64)")
    if not images and caps.min_images > 0:
        raise missing("image_url", f"{caps.name} needs {caps.min_images} image(s)")
    if not caps.min_images <= len(images) <= caps.max_images:
        raise invalid(
            "image_url", f"{caps.name} takes {caps.min_images} to {caps.max_images} image(s), got {len(images)}"
        )
    return images


def _decode_image(caps: ModelCapabilities, index: int, image: str) -> InputImage:
    label = f"image_url[{index}]"
    image = image.strip()
    if image.startswith(("http://", "https://")):
        return InputImage(url=image)
    if image.startswith("data:"):
        header, comma, payload = image.partition(",")
        if not comma or not header.endswith(";base64"):
            raise invalid(label, "a data URI must look like data:image/png;base64,<data>")
    elif caps.base64_needs_data_uri:
        raise invalid(label, f"{caps.name} needs base64 as a data URI (data:image/png;base64,...)")
    else:
        payload = image
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(label, "not a URL and not valid base64") from None
    if len(data) > caps.image_max_bytes:
        raise invalid(label, f"{len(data)} bytes is over the {caps.image_max_bytes} byte limit of {caps.name}")
    fmt, width, height = _sniff(label, data)
    if fmt not in caps.image_formats:
        raise invalid(label, f"format {fmt!r} not accepted by {caps.name}; allowed: {list(caps.image_formats)}")
    if caps.image_max_aspect is not None and max(width, height) / max(1, min(width, height)) >= caps.image_max_aspect:
        raise invalid(label, f"aspect ratio of {width}x{height} must be within 1:4..4:1 for {caps.name}")
    if caps.image_min_side is not None and min(width, height) < caps.image_min_side:
        raise invalid(label, f"{width}x{height} is below the {caps.image_min_side}px minimum side of {caps.name}")
    return InputImage(data=data, size=(width, height))


def _sniff(label: str, data: bytes) -> tuple[str, int, int]:
    from PIL import Image, UnidentifiedImageError  # lazy: only bodies with base64 images need Pillow

    try:
        with Image.open(io.BytesIO(data)) as img:
            return _PIL_FORMATS.get(img.format or "", (img.format or "unknown").lower()), img.width, img.height
    except (UnidentifiedImageError, OSError):
        raise invalid(label, "the decoded bytes are not an image") from None


def _check_frame_pair(caps: ModelCapabilities, images: tuple[InputImage, ...]) -> None:
    sizes = [i.size for i in images if i.size]
    if caps.frame_pair_resolution_ratio is None or len(sizes) != 2:
        return
    (w1, h1), (w2, h2) = sizes
    lo, hi = caps.frame_pair_resolution_ratio
    ratio = (w1 * h1) / max(1, w2 * h2)
    if not lo <= ratio <= hi:
        raise invalid("image_url", f"first/last frame resolution ratio {ratio:.2f} must be within {lo}..{hi}")
