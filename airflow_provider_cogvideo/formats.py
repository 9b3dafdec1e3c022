"""Ad formats: which video each platform wants, and how a model is asked for it. Data, not ``if`` chains.

A catalog run with ``formats=["9:16", "amazon"]`` makes one video per product per format: each is its
own variant (its own paid job, fingerprint and key ``videos/<day>/<product>/<variant>.mp4``). The
table :data:`AD_FORMATS` holds the three aspect ratios every model family can be asked for (9:16,
16:9, 1:1) and platform presets that name one of them; the README's "Ad formats" table is generated
from it (:mod:`.docs`).

Presets map to sizes the model renders natively, never to a size it would have to be stretched or
letterboxed into by the service: a 3:4 Taobao video would be a 9:16 or 1:1 render cropped or padded
after the fact (paid for at full price, and cropping a product video after rendering can cut the
product out), so the Taobao preset is 1:1, which Taobao takes as it is. The platform limits
(duration, file size) are shown as text for the reader; none of them is enforced here, because the
models render 4 to 10 seconds, far inside every platform's limits.

:func:`choose_format` reads the capability table (:mod:`.capabilities`), so a model that cannot
render a format is refused before anything is paid for, naming what it can do; a request for a
format becomes the option the model takes (``size`` on CogVideoX, ``aspect_ratio`` on the Vidu
models that have one) and the frame its input image is prepared to (:mod:`.image_framing`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cogvideo.capabilities import ANY, ModelCapabilities, capabilities_for
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.validation import bounded, is_unset

FORMATS_RANGE = (1, 8)
"""Formats per run: each is one more paid video per product, so a long list is more likely a mistake."""
MAX_PREFERRED_LONG_SIDE = 1920
"""When none of a format's preferred sizes is offered, the largest other size of its exact aspect up
to this long side is chosen: 1080p is what every platform asks for; 4K costs the same per video but
renders slower and is scaled down by every platform anyway."""


@dataclass(frozen=True)
class AdFormat:
    """One row of :data:`AD_FORMATS`: a video shape, and the platform limits it is meant for."""

    name: str
    """As the user writes it (any case): ``"9:16"``, ``"tiktok"``."""
    variant: str
    """The pipeline's variant and the last part of the video's S3 key: no ``:`` (``"9x16"``)."""
    aspect: str
    """``"9:16"``, ``"16:9"`` or ``"1:1"``: the aspect ratio the model renders."""
    preferred_sizes: tuple[str, ...]
    """Best first: the first one the model offers is asked for."""
    platforms: str
    duration: str
    """The platform's duration limit, as text (not enforced: every model renders 4 to 10 seconds)."""
    max_file: str
    notes: str = ""

    @property
    def ratio(self) -> tuple[int, int]:
        """The aspect as integers: ``(9, 16)``."""
        width, _, height = self.aspect.partition(":")
        return int(width), int(height)


@dataclass(frozen=True)
class FormatChoice:
    """A format as one model renders it: what the request sends, and the frame of its input image."""

    format: AdFormat
    width: int
    """Width of the frame the input image is prepared to (the video's, or its aspect at the model's size)."""
    height: int
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    """What the request sends for it: ``{"size": "1080x1920"}`` or ``{"aspect_ratio": "9:16"}``."""

    @property
    def variant(self) -> str:
        return self.format.variant

    @property
    def size(self) -> str:
        """The frame as ``"1080x1920"``."""
        return f"{self.width}x{self.height}"


_VERTICAL = ("1080x1920", "720x1280")
_LANDSCAPE = ("1920x1080", "1280x720")
_SQUARE = ("1024x1024",)
_NO_LIMIT = "-"

AD_FORMATS: dict[str, AdFormat] = {
    f.name: f
    for f in (
        AdFormat("9:16", "9x16", "9:16", _VERTICAL, "TikTok, Douyin, Reels, Shorts", _NO_LIMIT, _NO_LIMIT,
                 "Vertical, full screen on phones; alias: vertical."),
        AdFormat("16:9", "16x9", "16:9", _LANDSCAPE, "Amazon, YouTube, Taobao, TikTok (landscape)", _NO_LIMIT,
                 _NO_LIMIT, "Landscape; alias: landscape."),
        AdFormat("1:1", "1x1", "1:1", _SQUARE, "Taobao, TikTok, Douyin, Shorts, feeds", _NO_LIMIT, _NO_LIMIT,
                 "Square; alias: square."),
        AdFormat("tiktok", "tiktok", "9:16", _VERTICAL, "TikTok in-feed ads", "5-60 s", "500 MB",
                 "At least 720x1280."),
        AdFormat("douyin", "douyin", "9:16", _VERTICAL, "Douyin in-feed ads", "5-60 s", "500 MB",
                 "Limits as TikTok's."),
        AdFormat("reels", "reels", "9:16", _VERTICAL, "Instagram / Facebook Reels", "≤ 15 min", "4 GB",
                 "1080x1920 recommended."),
        AdFormat("shorts", "shorts", "9:16", _VERTICAL, "YouTube Shorts", "≤ 3 min", _NO_LIMIT,
                 "Shorts also takes 1:1."),
        AdFormat("amazon", "amazon", "16:9", _LANDSCAPE, "Amazon product video", "≤ 60 s advised", "500 MB",
                 "1920x1080 preferred, at least 1280x720."),
        AdFormat("taobao", "taobao", "1:1", _SQUARE, "Taobao main-image video", "≤ 60 s", "300 MB",
                 "Taobao takes 1:1, 3:4 and 16:9; 3:4 is not native on CogVideoX, so 1:1."),
    )
}  # fmt: skip
"""Every format by name: the three aspects, then the platform presets (each its own variant)."""

_ALIASES = {"vertical": "9:16", "landscape": "16:9", "square": "1:1"}


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def _sizes(sizes: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """The sizes of a row that read as ``<width>x<height>`` (an override may hold anything)."""
    return {s: _size(s) for s in sizes if re.fullmatch(r"[1-9]\d*x[1-9]\d*", s)}


def _aspect_of(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _frame_of_aspect(fmt: AdFormat, caps: ModelCapabilities) -> tuple[int, int]:
    """The frame of a model that takes an aspect ratio: the aspect at the short side of its largest
    size (Vidu's ``1920x1080`` gives ``1080x1920`` for 9:16 and ``1080x1080`` for 1:1), or the
    format's first preferred size when the row lists no sizes."""
    sizes = _sizes(caps.sizes) if isinstance(caps.sizes, tuple) else {}
    if not sizes:
        return _size(fmt.preferred_sizes[0])
    short = max(min(size) for size in sizes.values())
    aw, ah = fmt.ratio
    return (short * aw // ah, short) if aw >= ah else (short, short * ah // aw)


def _native_size(fmt: AdFormat, sizes: tuple[str, ...]) -> str | None:
    """The first preferred size the model offers; else its largest size of exactly the format's
    aspect up to :data:`MAX_PREFERRED_LONG_SIDE` on the long side, else its smallest larger one."""
    for size in fmt.preferred_sizes:
        if size in sizes:
            return size
    aw, ah = fmt.ratio
    exact = {s: (w, h) for s, (w, h) in _sizes(sizes).items() if w * ah == h * aw}
    within = sorted(
        (s for s, wh in exact.items() if max(wh) <= MAX_PREFERRED_LONG_SIDE), key=lambda s: -math.prod(exact[s])
    )
    beyond = sorted(
        (s for s, wh in exact.items() if max(wh) > MAX_PREFERRED_LONG_SIDE), key=lambda s: math.prod(exact[s])
    )
    return (within or beyond or [None])[0]


def _rendered(fmt: AdFormat, caps: ModelCapabilities) -> FormatChoice | None:
    """How ``caps`` renders ``fmt``, or None when it cannot.

    A model whose row lists the aspect among its ``aspect_ratios`` (Vidu) is sent ``aspect_ratio``
    only: its ``sizes`` column names its resolution, not a choice of shape. Otherwise ``size`` is sent."""
    if isinstance(caps.aspect_ratios, tuple) and fmt.aspect in caps.aspect_ratios:
        width, height = _frame_of_aspect(fmt, caps)
        return FormatChoice(fmt, width, height, {"aspect_ratio": fmt.aspect})
    if caps.sizes == ANY:
        size: str | None = fmt.preferred_sizes[0]
    else:
        size = _native_size(fmt, caps.sizes) if isinstance(caps.sizes, tuple) else None
    if size is not None:
        width, height = _size(size)
        return FormatChoice(fmt, width, height, {"size": size})
    if caps.aspect_ratios == ANY:
        width, height = _frame_of_aspect(fmt, caps)
        return FormatChoice(fmt, width, height, {"aspect_ratio": fmt.aspect})
    return None


def ad_format(name: str) -> AdFormat:
    """The row for ``name`` (any case, blanks around it ignored, aliases read); refused naming the
    allowed names when there is none."""
    folded = name.strip().casefold() if isinstance(name, str) else None
    key = _ALIASES.get(folded or "", folded)
    if key in AD_FORMATS:
        return AD_FORMATS[key]
    close = difflib.get_close_matches(folded or "", [*AD_FORMATS, *_ALIASES], n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CogVideoValidationError(
        "formats", f"{name!r} is not an ad format{hint}; allowed: {', '.join([*AD_FORMATS, *_ALIASES])}"
    )


def _what_it_renders(caps: ModelCapabilities) -> str:
    parts = []
    if isinstance(caps.sizes, tuple):
        parts.append("its sizes are " + ", ".join(f"{s} ({_aspect_of(*wh)})" for s, wh in _sizes(caps.sizes).items()))
    elif caps.sizes is None:
        parts.append("it takes no size")
    if isinstance(caps.aspect_ratios, tuple):
        parts.append("its aspect ratios are " + ", ".join(caps.aspect_ratios))
    return "; ".join(parts)


def choose_format(name: str, model: str, capability_overrides: Mapping[str, Any] | None = None) -> FormatChoice:
    """The format ``name`` as ``model`` renders it (its row with ``capability_overrides`` applied).

    Refused (field ``formats``) when the name is unknown, or when the model cannot render its aspect
    natively, naming the model's sizes and aspect ratios and the formats it can render."""
    fmt = ad_format(name)
    caps = capabilities_for(model, capability_overrides)
    choice = _rendered(fmt, caps)
    if choice is None:
        can = [f.name for f in AD_FORMATS.values() if _rendered(f, caps) is not None]
        raise CogVideoValidationError(
            "formats",
            f'"{name}" cannot be rendered by {caps.name!r}: {_what_it_renders(caps)}; '
            f"allowed formats for it: {', '.join(can) or 'none'}",
        )
    return choice


def checked_formats(
    formats: str | Sequence[str] | None, model: str, capability_overrides: Mapping[str, Any] | None = None
) -> tuple[FormatChoice, ...]:
    """Each format of a run as ``model`` renders it, in the order given: 1 to 8 names (a list, or one
    text of comma-separated names as a rendered template gives), distinct by variant.

    Unset (None, empty, ``"None"``) is the empty tuple: no formats, so the caller keeps making one
    video per variant as it did. ``"tiktok"`` and ``"douyin"`` are both 9:16 but two videos (two
    variants, two platforms' keys); the same format twice (``"9:16"`` and ``"vertical"``) is refused:
    it would pay twice for one video."""
    if is_unset(formats) or (not isinstance(formats, str) and not formats):
        return ()
    if isinstance(formats, str):
        names = [part.strip() for part in formats.split(",") if part.strip()]
    elif isinstance(formats, Sequence):
        names = list(formats)
    else:
        raise CogVideoValidationError("formats", f"must be a list of format names, got {formats!r}")
    try:
        bounded("formats", len(names), FORMATS_RANGE, integer=True)
    except CogVideoValidationError:
        lo, hi = FORMATS_RANGE
        raise CogVideoValidationError(
            "formats", f"must name {lo} to {hi} formats (each one paid video per product), got {len(names)}: {names!r}"
        ) from None
    choices: dict[str, tuple[str, FormatChoice]] = {}
    for name in names:
        choice = choose_format(name, model, capability_overrides)
        if choice.variant in choices:
            first = choices[choice.variant][0]
            raise CogVideoValidationError(
                "formats",
                f"{first!r} and {name!r} are the same format ({choice.format.name!r}, variant {choice.variant!r}): "
                "each format is one paid video, name it once",
            )
        choices[choice.variant] = (name, choice)
    return tuple(choice for _name, choice in choices.values())


__all__ = [
    "AD_FORMATS",
    "FORMATS_RANGE",
    "AdFormat",
    "FormatChoice",
    "ad_format",
    "checked_formats",
    "choose_format",
]
