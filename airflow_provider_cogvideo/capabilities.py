"""The per-model capability table, the account tiers and the list prices: data, not ``if`` chains.

The table :data:`MODEL_CAPABILITIES` is the single source of truth for what each model served by
``POST /videos/generations`` accepts. The hook validates requests against it before anything is
sent, the emulator validates incoming bodies against it, and the README's model table is generated
from it (:mod:`.docs`). Prices are two of the table's columns, read by :func:`estimate_price`.

Where Zhipu's public documentation disagrees with itself (API reference, OpenAPI, model pages) the
table encodes the most likely reading and says so in ``notes``:

* ``cogvideox-flash`` takes the same options as ``cogvideox-2`` (the current OpenAPI groups them; an
  older page said flash had no quality/size/fps).
* ``duration`` 5/10 is accepted on ``cogvideox-2`` and ``cogvideox-flash`` (older page: yes; current
  OpenAPI: silent). Refusing would block a request the server may well accept.
* ``vidu2-start-end`` also accepts ``480x360`` (BigModel lists it, Z.AI does not).
* ``*-start-end`` models take exactly two images (the schema says 1..2, the text says first + last).

Two escape hatches keep a too-strict table from blocking a valid request: ``extra_body`` (merged
last into the JSON body, unvalidated) and ``capability_overrides`` (replace any column of a model's
row for one request, ``"*"`` meaning "any value"; also lets an unknown, newer model through).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.sizes import MiB, human_size

ANY = "*"
"""In ``capability_overrides``: accept any value for that column."""

PROMPT_MAX_CHARS = 512
USER_ID_LENGTH = (6, 128)
REQUEST_ID_LENGTH = (6, 64)

TIER_CONCURRENCY: dict[str, int] = {"V0": 5, "V1": 10, "V2": 15, "V3": 20}
"""Tasks in flight per (account, model), by account tier (the API documentation's rate limits). The
connection's ``tier`` extra selects a row; pools, the emulator and the docs all read this."""

COGVIDEOX_IMAGE_FORMATS = ("png", "jpeg")
VIDU_IMAGE_FORMATS = ("png", "jpeg", "webp")


@dataclass(frozen=True)
class ModelCapabilities:
    """One model's row: every allowed value per request field.

    ``None`` in an option column means "the model does not take this field"; a tuple lists the
    allowed values; :data:`ANY` accepts anything.
    """

    name: str
    family: Literal["cogvideox", "vidu"]
    sizes: tuple[str, ...] | str | None
    fps: tuple[int, ...] | str | None
    durations: tuple[int, ...] | str | None
    qualities: tuple[str, ...] | str | None
    aspect_ratios: tuple[str, ...] | str | None
    styles: tuple[str, ...] | str | None
    movement_amplitudes: tuple[str, ...] | str | None
    with_audio: bool
    min_images: int
    max_images: int
    prompt_required: bool
    image_formats: tuple[str, ...]
    image_max_bytes: int
    # Vidu wants base64 as a full data URI; CogVideoX takes bare base64 too (the API reference).
    base64_needs_data_uri: bool
    # Vidu: images must have an aspect ratio within 1:4..4:1 (None: no rule documented).
    image_max_aspect: float | None = None
    image_min_side: int | None = None
    # First/last frame pair: resolution ratio bound (Vidu start-end: 0.8..1.25).
    frame_pair_resolution_ratio: tuple[float, float] | None = None
    # cogvideox-3 with a first/last frame pair only supports quality="speed" (Z.AI docs).
    frame_pair_qualities: tuple[str, ...] | None = None
    price_cny: float = 0.0
    price_usd: float | None = None
    # Typical render time in seconds (no SLA is published): drives the adaptive poll schedule.
    typical_render_seconds: tuple[float, float] = (30.0, 300.0)
    notes: str = ""

    def with_overrides(self, overrides: Mapping[str, Any]) -> ModelCapabilities:
        """A copy with some columns replaced (the per-request escape hatch).

        Each value is checked against its column's type first: a wrong one (``{"sizes": 5}``) would
        otherwise surface later as a confusing error, or pass a check it should fail (a string is
        "in" another string)."""
        columns = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(columns))
        if unknown:
            raise CogVideoValidationError(
                "capability_overrides", f"unknown column(s) {unknown}; allowed: {sorted(set(columns) - {'name'})}"
            )
        checked = {name: _checked_column(name, str(columns[name].type), v) for name, v in overrides.items()}
        return dataclasses.replace(self, **checked)


@functools.cache
def _column_adapter(column: str) -> TypeAdapter[Any]:
    """A validator for one column's type (the dataclass's annotation), built once, when first needed."""
    return TypeAdapter(typing.get_type_hints(ModelCapabilities)[column])


def _checked_column(column: str, expected: str, value: Any) -> Any:
    """``value`` as ``column`` holds it (lists become tuples), if it fits the column's type; a
    string in an option column must be :data:`ANY`."""
    held = tuple(value) if isinstance(value, list) else value
    option = column in dict(OPTION_COLUMNS).values()
    try:
        _column_adapter(column).validate_python(held, strict=True)
        fits = not (option and isinstance(held, str) and held != ANY)
    except ValidationError:
        fits = False
    if not fits:
        if option:
            expected = f"a list of allowed values, {ANY!r} (any value) or None (not supported)"
        raise CogVideoValidationError(
            "capability_overrides", f"column {column!r} must be {expected}, got {value!r} ({type(value).__name__})"
        )
    return held


OPTION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("size", "sizes"),
    ("fps", "fps"),
    ("duration", "durations"),
    ("quality", "qualities"),
    ("aspect_ratio", "aspect_ratios"),
    ("style", "styles"),
    ("movement_amplitude", "movement_amplitudes"),
)

_COGVIDEOX2_SIZES = ("720x480", "1024x1024", "1280x960", "960x1280", "1920x1080", "1080x1920", "2048x1080", "3840x2160")
_VIDU_AMPLITUDES = ("auto", "small", "medium", "large")
_VIDU_ASPECTS = ("16:9", "9:16", "1:1")


def _cogvideox(name: str, **kw: Any) -> ModelCapabilities:
    base: dict[str, Any] = dict(
        family="cogvideox",
        sizes=_COGVIDEOX2_SIZES,
        fps=(30, 60),
        durations=(5, 10),
        qualities=("speed", "quality"),
        aspect_ratios=None,
        styles=None,
        movement_amplitudes=None,
        with_audio=True,
        min_images=0,
        max_images=1,
        prompt_required=False,
        image_formats=COGVIDEOX_IMAGE_FORMATS,
        image_max_bytes=5 * MiB,
        base64_needs_data_uri=False,
    )
    base.update(kw)
    return ModelCapabilities(name=name, **base)


def _vidu(name: str, **kw: Any) -> ModelCapabilities:
    base: dict[str, Any] = dict(
        family="vidu",
        fps=None,
        qualities=None,
        aspect_ratios=None,
        styles=None,
        movement_amplitudes=_VIDU_AMPLITUDES,
        with_audio=True,
        prompt_required=False,
        image_formats=VIDU_IMAGE_FORMATS,
        image_max_bytes=50 * MiB,
        base64_needs_data_uri=True,
        image_max_aspect=4.0,
    )
    base.update(kw)
    return ModelCapabilities(name=name, **base)


MODEL_CAPABILITIES: dict[str, ModelCapabilities] = {
    m.name: m
    for m in (
        _cogvideox(
            "cogvideox-3",
            sizes=("1280x720", "720x1280", "1024x1024", "1920x1080", "1080x1920", "2048x1080", "3840x2160"),
            max_images=2,
            frame_pair_qualities=("speed",),
            price_cny=1.0,
            price_usd=0.2,
            typical_render_seconds=(60.0, 300.0),
            notes="Image list of two = first and last frame (quality 'speed' only).",
        ),
        _cogvideox(
            "cogvideox-2",
            price_cny=0.5,
            typical_render_seconds=(30.0, 240.0),
            notes="duration 5/10 from the older docs page; the current OpenAPI omits it.",
        ),
        _cogvideox(
            "cogvideox-flash",
            price_cny=0.0,
            typical_render_seconds=(30.0, 240.0),
            notes="Free. Options as cogvideox-2 (current OpenAPI); an older page listed fewer.",
        ),
        _vidu(
            "viduq1-text",
            sizes=("1920x1080",),
            durations=(5,),
            aspect_ratios=_VIDU_ASPECTS,
            styles=("general", "anime"),
            min_images=0,
            max_images=0,
            prompt_required=True,
            price_cny=2.5,
            price_usd=0.4,
            typical_render_seconds=(60.0, 300.0),
        ),
        _vidu(
            "viduq1-image",
            sizes=("1920x1080",),
            durations=(5,),
            min_images=1,
            max_images=1,
            price_cny=2.5,
            price_usd=0.4,
            typical_render_seconds=(60.0, 300.0),
        ),
        _vidu(
            "viduq1-start-end",
            sizes=("1920x1080",),
            durations=(5,),
            min_images=2,
            max_images=2,
            frame_pair_resolution_ratio=(0.8, 1.25),
            price_cny=2.5,
            price_usd=0.4,
            typical_render_seconds=(60.0, 300.0),
        ),
        _vidu(
            "vidu2-image",
            sizes=("1280x720",),
            durations=(4,),
            min_images=1,
            max_images=1,
            price_cny=1.25,
            price_usd=0.2,
            typical_render_seconds=(30.0, 180.0),
        ),
        _vidu(
            "vidu2-start-end",
            sizes=("1280x720", "480x360"),
            durations=(4,),
            min_images=2,
            max_images=2,
            frame_pair_resolution_ratio=(0.8, 1.25),
            price_cny=1.25,
            price_usd=0.2,
            typical_render_seconds=(30.0, 180.0),
            notes="480x360 is listed by BigModel only.",
        ),
        _vidu(
            "vidu2-reference",
            sizes=("1280x720",),
            durations=(4,),
            aspect_ratios=_VIDU_ASPECTS,
            min_images=1,
            max_images=3,
            image_min_side=128,
            price_cny=2.5,
            price_usd=0.4,
            typical_render_seconds=(30.0, 180.0),
        ),
    )
}

DEFAULT_MODEL = "cogvideox-3"

# A permissive row for a model the table does not know yet (only with capability_overrides).
_PERMISSIVE = ModelCapabilities(
    name="*",
    family="cogvideox",
    sizes=ANY,
    fps=ANY,
    durations=ANY,
    qualities=ANY,
    aspect_ratios=ANY,
    styles=ANY,
    movement_amplitudes=ANY,
    with_audio=True,
    min_images=0,
    max_images=3,
    prompt_required=False,
    image_formats=VIDU_IMAGE_FORMATS,
    image_max_bytes=50 * MiB,
    base64_needs_data_uri=False,
)


def canonical_model(model: str) -> str:
    """The table's spelling of ``model``: Zhipu's documents write ``CogVideoX-3`` where the API takes
    ``cogvideox-3``. A name that matches one row ignoring case (and surrounding blanks) becomes that
    row's name, once, before anything hashes or sends it; any other name is returned unchanged."""
    if model in MODEL_CAPABILITIES or not isinstance(model, str):
        return model
    folded = model.strip().casefold()
    matches = [name for name in MODEL_CAPABILITIES if name.casefold() == folded]
    return matches[0] if len(matches) == 1 else model


def _did_you_mean(model: str) -> str:
    close = difflib.get_close_matches(model.strip().casefold(), list(MODEL_CAPABILITIES), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def capabilities_for(model: str, overrides: Mapping[str, Any] | None = None) -> ModelCapabilities:
    """The row for ``model`` (spelt any case), with per-request overrides applied."""
    model = canonical_model(model)
    row = MODEL_CAPABILITIES.get(model)
    if row is None:
        if not overrides:
            raise CogVideoValidationError(
                "model",
                f"{model!r} is not a known video model{_did_you_mean(model)}; allowed: {sorted(MODEL_CAPABILITIES)} "
                "(pass capability_overrides to use a model this provider does not know yet)",
            )
        row = dataclasses.replace(_PERMISSIVE, name=model)
    return row.with_overrides(overrides) if overrides else row


def allowed_text(allowed: Sequence[Any]) -> str:
    return ", ".join(repr(a) for a in allowed)


def check_option(caps: ModelCapabilities, field_name: str, value: Any) -> None:
    """Raise unless ``value`` is allowed for ``field_name`` on this model (None = unset = allowed)."""
    if value is None:
        return
    column = dict(OPTION_COLUMNS)[field_name]
    allowed = getattr(caps, column)
    if allowed == ANY:
        return
    if allowed is None:
        raise CogVideoValidationError(field_name, f"not supported by model {caps.name!r}")
    if value not in allowed:
        raise CogVideoValidationError(
            field_name, f"{value!r} is not allowed for model {caps.name!r}; allowed: {allowed_text(allowed)}"
        )


def check_image_count(caps: ModelCapabilities, count: int) -> None:
    if caps.min_images <= count <= caps.max_images:
        return
    if caps.max_images == 0:
        raise CogVideoValidationError("image_url", f"model {caps.name!r} is text-to-video and takes no image")
    span = str(caps.min_images) if caps.min_images == caps.max_images else f"{caps.min_images} to {caps.max_images}"
    raise CogVideoValidationError("image_url", f"model {caps.name!r} takes {span} image(s), got {count}")


def check_image_properties(
    caps: ModelCapabilities, index: int, fmt: str, n_bytes: int, width: int, height: int
) -> None:
    """Rules on one decoded image (format, byte size, pixel geometry)."""
    label = f"image_url[{index}]"
    if fmt not in caps.image_formats:
        raise CogVideoValidationError(
            label,
            f"format {fmt!r} is not accepted by {caps.name!r}; allowed: {allowed_text(caps.image_formats)}",
        )
    if n_bytes > caps.image_max_bytes:
        raise CogVideoValidationError(
            label,
            f"{human_size(n_bytes)} is over the {human_size(caps.image_max_bytes)} limit of {caps.name!r}",
        )
    if caps.image_max_aspect is not None:
        ratio = max(width, height) / max(1, min(width, height))
        if ratio >= caps.image_max_aspect:
            raise CogVideoValidationError(
                label, f"aspect ratio {width}x{height} must be less than 1:4 / 4:1 for {caps.name!r}"
            )
    if caps.image_min_side is not None and min(width, height) < caps.image_min_side:
        raise CogVideoValidationError(
            label,
            f"{width}x{height} is smaller than {caps.image_min_side}x{caps.image_min_side} for {caps.name!r}",
        )


def check_frame_pair(caps: ModelCapabilities, sizes: Sequence[tuple[int, int]]) -> None:
    """First/last frame must have similar resolution (Vidu start-end)."""
    if caps.frame_pair_resolution_ratio is None or len(sizes) != 2:
        return
    lo, hi = caps.frame_pair_resolution_ratio
    (w1, h1), (w2, h2) = sizes
    ratio = (w1 * h1) / max(1, w2 * h2)
    if not lo <= ratio <= hi:
        raise CogVideoValidationError(
            "image_url",
            f"first/last frame resolution ratio {ratio:.2f} must be within {lo}..{hi} for {caps.name!r}",
        )


@dataclass(frozen=True)
class PriceEstimate:
    amount: float
    currency: Literal["CNY", "USD"]


def estimate_price(model: str | None, base_url: str = "") -> PriceEstimate | None:
    """Per-call list price (the published price lists): USD on api.z.ai, CNY on BigModel. None for unknown models."""
    caps = MODEL_CAPABILITIES.get(canonical_model(model or ""))
    if caps is None:
        return None
    if endpoint_currency(base_url) == "USD" and caps.price_usd is not None:
        return PriceEstimate(caps.price_usd, "USD")
    return PriceEstimate(caps.price_cny, "CNY")


def endpoint_currency(base_url: str) -> str:
    """The currency an endpoint bills in: USD on api.z.ai, CNY on BigModel (and anything else)."""
    return "USD" if "z.ai" in base_url else "CNY"


__all__ = [
    "ANY",
    "DEFAULT_MODEL",
    "MODEL_CAPABILITIES",
    "TIER_CONCURRENCY",
    "ModelCapabilities",
    "PriceEstimate",
    "canonical_model",
    "capabilities_for",
    "endpoint_currency",
    "estimate_price",
]
