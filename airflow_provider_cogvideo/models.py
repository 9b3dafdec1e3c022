"""The request and result models: one ``POST /videos/generations`` body, one job's answer.

:class:`VideoGenerationRequest` validates a body against the model's row of the capability table
(:mod:`.capabilities`) before anything is sent; :class:`TaskResult` parses what a submit or a query
answered (the API calls a job a *task*; inside this provider it is a *job*, to keep it apart from
Airflow's tasks).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airflow_provider_cogvideo.capabilities import (
    DEFAULT_MODEL,
    OPTION_COLUMNS,
    PROMPT_MAX_CHARS,
    REQUEST_ID_LENGTH,
    USER_ID_LENGTH,
    ModelCapabilities,
    allowed_text,
    canonical_model,
    capabilities_for,
    check_image_count,
    check_option,
)
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.redact import has_credentials, is_http_url, scrub

TERMINAL_STATUSES = frozenset({"SUCCESS", "FAIL"})
_STATUS_RE = re.compile(r"[A-Z][A-Z_]{0,31}")


_VISIBLE_CATEGORIES = frozenset("LNPS")
"""Unicode major categories of visible text: letters, numbers, punctuation, symbols. A prompt needs one
(marks, separators, control, format, private-use and unassigned characters draw nothing on their own)."""
_LINE_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
"""Refused anywhere in a prompt: control characters (NUL, TAB, CR, LF, DEL, C1) and line/paragraph separators."""


def _char(ch: str) -> str:
    """``U+000A`` (with the character's name when it has one): how a refused character is named."""
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


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

    @field_validator("model", mode="before")
    @classmethod
    def _canonical_model(cls, v: Any) -> Any:
        """``CogVideoX-3`` is sent (and fingerprinted) as the table's ``cogvideox-3``."""
        return canonical_model(v) if isinstance(v, str) else v

    @field_validator("prompt")
    @classmethod
    def _prompt_length(cls, v: str | None) -> str | None:
        """At most :data:`PROMPT_MAX_CHARS` characters, some of them visible, none a control character.

        Refused, never stripped (what is sent is what was asked): a prompt without a letter, digit,
        punctuation mark or symbol (only whitespace, zero-width or other format characters, combining
        marks or control characters: a template that rendered to blanks buys a random video), and a
        prompt holding a control character (Unicode category Cc: NUL, TAB, CR, LF, DEL...) or a line or
        paragraph separator (U+2028, U+2029): a prompt is one line of text. Format characters inside
        visible text (a zero-width joiner in an emoji) are kept."""
        if v is None:
            return v
        if len(v) > PROMPT_MAX_CHARS:
            raise CogVideoValidationError("prompt", f"{len(v)} characters is over the limit of {PROMPT_MAX_CHARS}")
        if v and not any(unicodedata.category(ch)[0] in _VISIBLE_CATEGORIES for ch in v):
            if not v.strip():
                raise CogVideoValidationError("prompt", f"is only whitespace ({len(v)} characters); describe the video")
            position, ch = next((i, c) for i, c in enumerate(v) if not c.isspace())
            raise CogVideoValidationError(
                "prompt",
                f"has no visible text: its {len(v)} characters are whitespace or invisible (e.g. {_char(ch)} at "
                f"position {position}); describe the video in letters, digits, punctuation or symbols",
            )
        for position, ch in enumerate(v):
            category = unicodedata.category(ch)
            if category in _LINE_BREAKING_CATEGORIES:
                kind = "control character" if category == "Cc" else "line separator"
                raise CogVideoValidationError(
                    "prompt",
                    f"has {kind} {_char(ch)} at position {position}; a prompt is one line of text: "
                    "letters, digits, punctuation, symbols and spaces, without control characters (NUL, TAB, "
                    "CR, LF...) or line separators",
                )
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
    def _request_id_form(cls, v: str) -> str:
        """Bounded, and printable without whitespace: the id is logged and named in errors, where a CR
        or LF would forge log lines."""
        lo, hi = REQUEST_ID_LENGTH
        if not lo <= len(v) <= hi:
            raise CogVideoValidationError("request_id", f"must be {lo} to {hi} characters, got {len(v)}")
        if not v.isprintable() or any(ch.isspace() for ch in v):
            raise CogVideoValidationError("request_id", f"must be printable characters without whitespace, got {v!r}")
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
        for field_name, _ in OPTION_COLUMNS:
            check_option(caps, field_name, getattr(self, field_name))
        if self.with_audio and not caps.with_audio:
            raise CogVideoValidationError("with_audio", f"not supported by model {caps.name!r}")
        pair_quality_limited = len(images) == 2 and caps.frame_pair_qualities and self.quality is not None
        if pair_quality_limited and self.quality not in caps.frame_pair_qualities:
            raise CogVideoValidationError(
                "quality",
                f"{self.quality!r} is not allowed with a first/last frame pair on {caps.name!r}; "
                f"allowed: {allowed_text(caps.frame_pair_qualities)}",
            )
        if caps.base64_needs_data_uri:
            for i, img in enumerate(images):
                if not (is_http_url(img) or img.startswith("data:")):
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

    def describe(self, image_sources: Sequence[str] | None = None) -> dict[str, Any]:
        """The one summary of this request as sent, minus image bytes: safe for logs, XCom and manifests.

        ``image_sources`` (one per image) say where each image came from (``s3://`` URI, file path, URL):
        more useful to a reader than the data URI that went on the wire. Without them, URLs are kept
        and base64 is summarised.
        """
        body = self.to_body()
        if self.image_url is not None:
            shown = list(image_sources) if image_sources else [describe_image(i) for i in self.images]
            body["image_url"] = shown[0] if isinstance(self.image_url, str) else shown
        return body

    @classmethod
    def api_fields(cls) -> tuple[str, ...]:
        """The request's options that a caller sets one to one (everything but the images and the id)."""
        return tuple(name for name in cls.model_fields if name not in ("image_url", "request_id"))


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
    if is_http_url(image):
        return image
    head = image.split(",", 1)[0] if image.startswith("data:") else "base64"
    return f"<{head}, {len(image)} chars>"


class VideoResult(BaseModel):
    """One entry of ``video_result``."""

    model_config = ConfigDict(extra="allow")

    url: str | None = None
    cover_image_url: str | None = None

    @field_validator("url", "cover_image_url")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        """A URL with ``user:password@`` is no result URL: refused where the answer is read, so it
        never reaches a trigger event, XCom, a log or a manifest (the message does not echo it)."""
        if v is not None and has_credentials(v):
            raise ValueError("a result URL must not carry credentials (user:password@)")
        return v


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
        """An integer id is read as its digits; ``true`` is no id (Python would call it the integer 1)."""
        if isinstance(v, bool):
            raise ValueError("a boolean is not an id")
        return str(v) if isinstance(v, int) else v

    @field_validator("task_status", mode="before")
    @classmethod
    def _status_word(cls, v: Any) -> Any:
        """A status is a short upper-case word (PROCESSING, SUCCESS, FAIL, or one the API adds later);
        anything else is an answer this client cannot read, not text to log or store."""
        if not isinstance(v, str) or not _STATUS_RE.fullmatch(v):
            raise ValueError("task_status must be a short upper-case word")
        return v

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
        """A FAIL reason if the server sent one (not documented; some clients look for these), capped
        at :data:`~airflow_provider_cogvideo.redact.MAX_SERVER_TEXT` characters."""
        extra = self.model_extra or {}
        err = extra.get("error")
        if isinstance(err, dict):
            text = f"{err.get('code', '')} {err.get('message', '')}".strip()
        else:
            text = str(extra.get("message") or extra.get("msg") or "")
        # Server text headed for messages, XCom and events: capped, so a server cannot flood them.
        return scrub(text, ()) if text else None


__all__ = ["TERMINAL_STATUSES", "TaskResult", "VideoGenerationRequest", "describe_image", "new_request_id"]
