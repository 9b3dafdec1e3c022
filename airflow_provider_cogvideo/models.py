"""Request/result models and the per-model capability table.

The table :data:`MODEL_CAPABILITIES` is the single source of truth for what each model served by
``POST /videos/generations`` accepts. The hook validates requests against it before anything is
sent, the emulator validates incoming bodies against it, and the README's model table is generated
from it (``python -m airflow_provider_cogvideo.models``). Rules are data here, not ``if`` chains.

Where the public sources disagree (``shared/spec/cogvideox-api.md`` §9) the table encodes the most
likely reading and says so in ``notes``:

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
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_provider_cogvideo.errors import CogVideoValidationError

ANY = "*"
"""In ``capability_overrides``: accept any value for that column."""

PROMPT_MAX_CHARS = 512
USER_ID_LENGTH = (6, 128)
REQUEST_ID_LENGTH = (6, 64)
MiB = 1024 * 1024

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAIL"})

TIER_CONCURRENCY: dict[str, int] = {"V0": 5, "V1": 10, "V2": 15, "V3": 20}
"""Tasks in flight per (account, model), by account tier (spec §5.4). The connection's ``tier``
extra selects a row; pools, the emulator and the docs all read this."""

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
    # Vidu wants base64 as a full data URI; CogVideoX takes bare base64 too (spec §3.3, §9).
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
        """A copy with some columns replaced (the per-request escape hatch)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"capability_overrides: unknown column(s) {unknown}; allowed: {sorted(known - {'name'})}")
        normalised = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return dataclasses.replace(self, **normalised)


_OPTION_COLUMNS: tuple[tuple[str, str], ...] = (
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


def capabilities_for(model: str, overrides: Mapping[str, Any] | None = None) -> ModelCapabilities:
    """The row for ``model``, with per-request overrides applied."""
    row = MODEL_CAPABILITIES.get(model)
    if row is None:
        if not overrides:
            raise CogVideoValidationError(
                "model",
                f"{model!r} is not a known video model; allowed: {sorted(MODEL_CAPABILITIES)} "
                "(pass capability_overrides to use a model this provider does not know yet)",
            )
        row = dataclasses.replace(_PERMISSIVE, name=model)
    if overrides:
        try:
            row = row.with_overrides(overrides)
        except (ValueError, TypeError) as exc:
            raise CogVideoValidationError("capability_overrides", str(exc)) from None
    return row


def _allowed_text(allowed: Sequence[Any]) -> str:
    return ", ".join(repr(a) for a in allowed)


def check_option(caps: ModelCapabilities, field_name: str, value: Any) -> None:
    """Raise unless ``value`` is allowed for ``field_name`` on this model (None = unset = allowed)."""
    if value is None:
        return
    column = dict(_OPTION_COLUMNS)[field_name]
    allowed = getattr(caps, column)
    if allowed == ANY:
        return
    if allowed is None:
        raise CogVideoValidationError(field_name, f"not supported by model {caps.name!r}")
    if value not in allowed:
        raise CogVideoValidationError(
            field_name, f"{value!r} is not allowed for model {caps.name!r}; allowed: {_allowed_text(allowed)}"
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
            f"format {fmt!r} is not accepted by {caps.name!r}; allowed: {_allowed_text(caps.image_formats)}",
        )
    if n_bytes > caps.image_max_bytes:
        raise CogVideoValidationError(
            label,
            f"{n_bytes / MiB:.1f} MiB is over the {caps.image_max_bytes // MiB} MB limit of {caps.name!r}",
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


def new_request_id() -> str:
    """A unique client request id, sent with every submit so an ambiguous submit can be traced."""
    return f"af-{uuid.uuid4().hex}"


class VideoGenerationRequest(BaseModel):
    """One ``POST /videos/generations`` body, validated against the model's capability row.

    ``image_url`` holds what goes on the wire: an http(s) URL or base64 (data URI or bare) per
    image. Turning S3 URIs, local paths and raw bytes into that is the operator's job.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    prompt: str | None = None
    image_url: str | list[str] | None = None
    quality: str | None = None
    with_audio: bool | None = None
    watermark_enabled: bool | None = None
    size: str | None = None
    fps: int | None = None
    duration: int | None = None
    aspect_ratio: str | None = None
    style: str | None = None
    movement_amplitude: str | None = None
    request_id: str = Field(default_factory=new_request_id)
    user_id: str | None = None
    extra_body: dict[str, Any] | None = None
    capability_overrides: dict[str, Any] | None = None

    @classmethod
    def build(cls, **fields: Any) -> VideoGenerationRequest:
        """Construct and validate, raising :class:`CogVideoValidationError` (never pydantic's error).

        The error names the field, the value and what is allowed, so a DAG author can fix it.
        """
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise _first_validation_error(exc) from None

    @field_validator("prompt")
    @classmethod
    def _prompt_length(cls, v: str | None) -> str | None:
        if v is not None and len(v) > PROMPT_MAX_CHARS:
            raise CogVideoValidationError("prompt", f"{len(v)} characters is over the limit of {PROMPT_MAX_CHARS}")
        return v

    @field_validator("user_id")
    @classmethod
    def _user_id_length(cls, v: str | None) -> str | None:
        lo, hi = USER_ID_LENGTH
        if v is not None and not lo <= len(v) <= hi:
            raise CogVideoValidationError("user_id", f"must be {lo} to {hi} characters, got {len(v)}")
        return v

    @field_validator("request_id")
    @classmethod
    def _request_id_length(cls, v: str) -> str:
        lo, hi = REQUEST_ID_LENGTH
        if not lo <= len(v) <= hi:
            raise CogVideoValidationError("request_id", f"must be {lo} to {hi} characters, got {len(v)}")
        return v

    @model_validator(mode="after")
    def _check_against_table(self) -> VideoGenerationRequest:
        caps = self.capabilities
        images = self.images
        if caps.prompt_required and not self.prompt:
            raise CogVideoValidationError("prompt", f"is required for model {caps.name!r}")
        if not self.prompt and not images:
            raise CogVideoValidationError("prompt", "prompt and image_url cannot both be empty")
        check_image_count(caps, len(images))
        if isinstance(self.image_url, list) and caps.max_images == 1:
            raise CogVideoValidationError("image_url", f"model {caps.name!r} takes a single image, not a list")
        for field_name, _ in _OPTION_COLUMNS:
            check_option(caps, field_name, getattr(self, field_name))
        if self.with_audio and not caps.with_audio:
            raise CogVideoValidationError("with_audio", f"not supported by model {caps.name!r}")
        pair_quality_limited = len(images) == 2 and caps.frame_pair_qualities and self.quality is not None
        if pair_quality_limited and self.quality not in caps.frame_pair_qualities:
            raise CogVideoValidationError(
                "quality",
                f"{self.quality!r} is not allowed with a first/last frame pair on {caps.name!r}; "
                f"allowed: {_allowed_text(caps.frame_pair_qualities)}",
            )
        if caps.base64_needs_data_uri:
            for i, img in enumerate(images):
                if not img.startswith(("http://", "https://", "data:")):
                    raise CogVideoValidationError(
                        f"image_url[{i}]", f"model {caps.name!r} needs base64 as a data URI (data:image/...)"
                    )
        return self

    @property
    def capabilities(self) -> ModelCapabilities:
        return capabilities_for(self.model, self.capability_overrides)

    @property
    def images(self) -> list[str]:
        if self.image_url is None:
            return []
        return [self.image_url] if isinstance(self.image_url, str) else list(self.image_url)

    def to_body(self) -> dict[str, Any]:
        """The JSON body: unset fields omitted, ``extra_body`` merged last (unvalidated, on purpose)."""
        body = self.model_dump(exclude_none=True, exclude={"extra_body", "capability_overrides"})
        if self.extra_body:
            body.update(self.extra_body)
        return body

    def describe(self) -> dict[str, Any]:
        """The request as sent, minus image bytes: safe for logs and XCom."""
        body = self.to_body()
        if self.image_url is not None:
            body["image_url"] = [describe_image(i) for i in self.images]
            if isinstance(self.image_url, str):
                body["image_url"] = body["image_url"][0]
        return body


def _first_validation_error(exc: ValidationError) -> CogVideoValidationError:
    err = exc.errors(include_url=False)[0]
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, CogVideoValidationError):
        return original
    loc = ".".join(str(p) for p in err["loc"]) or "request"
    if err["type"] == "extra_forbidden":
        allowed = sorted(VideoGenerationRequest.model_fields)
        return CogVideoValidationError(loc, f"unknown field; allowed fields: {allowed}")
    return CogVideoValidationError(loc, f"{err['msg']} (got {err.get('input')!r})")


def describe_image(image: str) -> str:
    """A short, log-safe description of one wire image (URLs kept, base64 summarised)."""
    if image.startswith(("http://", "https://")):
        return image
    head = image.split(",", 1)[0] if image.startswith("data:") else "base64"
    return f"<{head}, {len(image)} chars>"


class VideoResult(BaseModel):
    """One entry of ``video_result``."""

    model_config = ConfigDict(extra="allow")

    url: str | None = None
    cover_image_url: str | None = None


class TaskResult(BaseModel):
    """The parsed answer of a submit or a query (lenient, as the official SDKs are)."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    model: str | None = None
    request_id: str | None = None
    task_status: str = "PROCESSING"
    video_result: list[VideoResult] = Field(default_factory=list)

    @field_validator("id", "request_id", mode="before")
    @classmethod
    def _as_string(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v

    @field_validator("video_result", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return [] if v is None else v

    @property
    def is_terminal(self) -> bool:
        return self.task_status in TERMINAL_STATUSES

    @property
    def video_url(self) -> str | None:
        return self.video_result[0].url if self.video_result else None

    @property
    def cover_image_url(self) -> str | None:
        return self.video_result[0].cover_image_url if self.video_result else None

    @property
    def error_text(self) -> str | None:
        """A FAIL reason if the server sent one (not documented; some clients look for these)."""
        extra = self.model_extra or {}
        err = extra.get("error")
        if isinstance(err, dict):
            return f"{err.get('code', '')} {err.get('message', '')}".strip() or None
        msg = extra.get("message") or extra.get("msg")
        return str(msg) if msg else None


@dataclass(frozen=True)
class PriceEstimate:
    amount: float
    currency: Literal["CNY", "USD"]


def estimate_price(model: str | None, base_url: str = "") -> PriceEstimate | None:
    """Per-call list price (spec §7): USD on api.z.ai, CNY on BigModel. None for unknown models."""
    caps = MODEL_CAPABILITIES.get(model or "")
    if caps is None:
        return None
    if "z.ai" in base_url and caps.price_usd is not None:
        return PriceEstimate(caps.price_usd, "USD")
    return PriceEstimate(caps.price_cny, "CNY")


@dataclass(frozen=True)
class PollSchedule:
    """When to poll a job: adaptive (default) or fixed.

    Render times are bounded (no SLA is published; :data:`MODEL_CAPABILITIES` carries a typical
    range per model), so a job becomes *more* likely to finish the longer it runs: polling early is
    wasted, polling late costs detection delay. Adaptive: the first poll comes at ``first`` seconds
    (three quarters of the model's typical shortest render), then every ``fraction`` of the
    elapsed time, bounded by ``floor`` and ``ceiling`` (8 to 10 s). Measured by
    ``benchmarks/polling_efficiency.py`` over uniform and lognormal render times for every model:
    2-17 % fewer polls than a fixed 10 s, with no worse mean or p95 detection delay.
    ``fixed`` overrides everything: that interval from the first poll on (tests, short jobs).
    """

    first: float = 22.5
    floor: float = 8.0
    ceiling: float = 10.0
    fraction: float = 0.15
    fixed: float | None = None

    @classmethod
    def for_model(cls, model: str | None, fixed: float | None = None) -> PollSchedule:
        caps = MODEL_CAPABILITIES.get(model or "")
        shortest = caps.typical_render_seconds[0] if caps else 30.0
        return cls(first=max(5.0, 0.75 * shortest), fixed=fixed)

    def delay(self, elapsed: float, polls_done: int) -> float:
        """Seconds to wait before the next poll, given how long the job has been waited on."""
        if self.fixed is not None:
            return self.fixed
        if polls_done == 0:
            return max(0.0, self.first - elapsed)
        return min(self.ceiling, max(self.floor, self.fraction * elapsed))


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


__all__ = [
    "ANY",
    "MODEL_CAPABILITIES",
    "TIER_CONCURRENCY",
    "CogVideoValidationError",
    "ModelCapabilities",
    "PollSchedule",
    "TaskResult",
    "VideoGenerationRequest",
    "capabilities_for",
    "estimate_price",
]

if __name__ == "__main__":  # pragma: no cover - documentation helper
    print(capability_table_markdown())
