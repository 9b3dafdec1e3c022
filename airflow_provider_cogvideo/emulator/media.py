"""Result media: a real, playable H.264 MP4 and a PNG cover, rendered on first download.

The video shows the input image (first frame; with two images it cross-fades to the last one)
under a gentle zoom and pan, or, for text-to-video, a card with the prompt text. It has the
requested duration and frame rate and the requested aspect ratio, but is **scaled down** so its
longest side is at most ``media_max_side`` pixels (480 by default; even sizes for H.264), so a
render stays cheap on the machine that runs the tests (what it costs: ``benchmarks/README.md``).
Files are cached on disk, keyed by task id and a digest of what they show, so a persistent
``--data-dir`` never serves a stale file for a reused task id.

PyAV and Pillow are imported inside the render functions: importing the emulator stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_cogvideo.emulator.validation import InputImage, SubmitRequest

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

# Defaults when the request leaves them unset (the API reference): CogVideoX 30 fps; Vidu renders 24 fps.
DEFAULT_FPS = {"cogvideox": 30, "vidu": 24}
DEFAULT_DURATION = 5
ZOOM = 0.12  # the last frame shows 1/(1 + ZOOM) of the first frame's field of view
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class MediaSpec:
    """What one task's video shows, fixed at submit time."""

    model: str
    width: int
    height: int
    fps: int
    frames: int
    prompt: str | None
    images: tuple[InputImage, ...]

    def digest(self) -> str:
        h = hashlib.sha256(repr((self.model, self.width, self.height, self.fps, self.frames, self.prompt)).encode())
        for image in self.images:
            h.update(image.data or (image.url or "").encode())
        return h.hexdigest()[:16]


def plan_media(request: SubmitRequest, max_side: int) -> MediaSpec:
    """Output geometry and timing for a validated request (see the module docstring for scaling)."""
    caps, options = request.caps, request.options
    width, height = _requested_size(request)
    scale = min(1.0, max_side / max(width, height))
    fps = options.get("fps") or DEFAULT_FPS[caps.family]
    duration = options.get("duration") or (caps.durations[0] if isinstance(caps.durations, tuple) else DEFAULT_DURATION)
    return MediaSpec(
        model=caps.name,
        width=_even(width * scale),
        height=_even(height * scale),
        fps=int(fps),
        frames=int(fps) * int(duration),
        prompt=request.prompt,
        images=request.images,
    )


def _requested_size(request: SubmitRequest) -> tuple[int, int]:
    caps, options = request.caps, request.options
    size = options.get("size")
    if size is None and caps.family == "vidu" and isinstance(caps.sizes, tuple):
        size = caps.sizes[0]
    if size is not None:
        w, _, h = str(size).partition("x")
        width, height = int(w), int(h)
    else:
        # CogVideoX default: short side 1080, the long side follows the input image's aspect.
        iw, ih = next((i.size for i in request.images if i.size), (16, 9))
        width, height = (round(1080 * iw / ih), 1080) if iw >= ih else (1080, round(1080 * ih / iw))
    ratio = options.get("aspect_ratio")
    if ratio:
        a, _, b = str(ratio).partition(":")
        long_side = max(width, height)
        width, height = (long_side, round(long_side * int(b) / int(a)))
        if int(a) < int(b):
            width, height = round(long_side * int(a) / int(b)), long_side
    return width, height


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def render_video(spec: MediaSpec, path: Path) -> None:
    """Encode ``spec.frames`` frames of H.264 (libx264, preset ultrafast) into an MP4 at ``path``."""
    import av

    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=spec.fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        for image in _frames(spec):
            container.mux(stream.encode(av.VideoFrame.from_image(image)))
        container.mux(stream.encode(None))


def render_cover(spec: MediaSpec, path: Path) -> None:
    """The first frame as a PNG."""
    next(_frames(spec)).save(path, format="PNG")


def _frames(spec: MediaSpec) -> Iterator[Image]:
    from PIL import Image

    size = (spec.width, spec.height)
    stills = [_fit(s, size) for s in _sources(spec)]
    for i in range(spec.frames):
        t = i / max(1, spec.frames - 1)
        frame = _pan_zoom(stills[0], t, size)
        if len(stills) > 1:
            frame = Image.blend(frame, _pan_zoom(stills[-1], t, size), t)
        yield frame


def _sources(spec: MediaSpec) -> list[Image]:
    """The first and last input images, or the prompt card when there is none (or none loads)."""
    from PIL import Image

    loaded = []
    for image in (spec.images[0], spec.images[-1]) if len(spec.images) > 1 else spec.images:
        data = image.data if image.data is not None else _fetch(image.url or "")
        try:
            loaded.append(Image.open(io.BytesIO(data or b"")).convert("RGB"))
        except OSError:
            log.info("input image not usable for the render; using the prompt card instead")
    return loaded or [_prompt_card(spec)]


def _fetch(url: str) -> bytes | None:
    """An http(s) input image; offline or failing fetches fall back to the prompt card."""
    import httpx

    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError:
        log.info("could not fetch an input image URL; using the prompt card instead")
        return None
    return response.content


def _fit(image: Image, size: tuple[int, int]) -> Image:
    """Scale and centre-crop to cover the output size with room (ZOOM) for the camera move."""
    from PIL import ImageOps

    w, h = size
    return ImageOps.fit(image, (_even(w * (1 + ZOOM)), _even(h * (1 + ZOOM))))


def _pan_zoom(still: Image, t: float, size: tuple[int, int]) -> Image:
    from PIL import Image

    sw, sh = still.size
    zoom = 1 + ZOOM * t
    bw, bh = sw / zoom, sh / zoom
    x0 = (sw - bw) * (0.5 + 0.4 * (t - 0.5))  # drift left to right while zooming in
    y0 = (sh - bh) / 2
    return still.resize(size, Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw, y0 + bh))


def _prompt_card(spec: MediaSpec) -> Image:
    """A gradient (colour from the prompt's hash) with the model name and the prompt text."""
    from PIL import Image, ImageDraw, ImageFont

    w, h = _even(spec.width * (1 + ZOOM)), _even(spec.height * (1 + ZOOM))
    seed = hashlib.sha256((spec.prompt or "").encode()).digest()
    top, bottom = (seed[0], seed[1], seed[2]), (seed[3] // 3, seed[4] // 3, seed[5] // 3)
    card = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(card)
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    font_size = max(10, h // 16)
    font = ImageFont.load_default(size=font_size)
    chars_per_line = max(10, int(w / (font_size * 0.55)))
    text = "\n".join(textwrap.wrap(spec.prompt or "", chars_per_line)[: max(1, h // (font_size * 2))])
    margin = w // 7  # stays in view through the zoom and drift
    draw.text((margin, margin), f"CogVideoX emulator - {spec.model}", font=font, fill=(255, 255, 255))
    draw.multiline_text((margin, margin + font_size * 2), text, font=font, fill=(255, 255, 255), spacing=4)
    return card


class MediaStore:
    """Renders each task's files once (the first download) and serves them from disk afterwards.

    Thread-safe: renders run in worker threads; two first downloads of one file render it once.
    """

    def __init__(self, data_dir: Path | None) -> None:
        self._tmp = None if data_dir else tempfile.TemporaryDirectory(prefix="cogvideo-emulator-")
        self.root = Path(data_dir or self._tmp.name)  # type: ignore[union-attr]
        self.root.mkdir(parents=True, exist_ok=True)
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}
        self._timers: set[threading.Timer] = set()

    def video(self, task_id: str, spec: MediaSpec) -> Path:
        return self._ensure(self.root / f"{task_id}-{spec.digest()}.mp4", spec, render_video)

    def cover(self, task_id: str, spec: MediaSpec) -> Path:
        return self._ensure(self.root / f"{task_id}-{spec.digest()}_cover.png", spec, render_cover)

    def render_later(self, task_id: str, spec: MediaSpec, delay: float, *, video: bool = True) -> None:
        """Render the cover (and the video) on a timer thread in ``delay`` seconds (``render_ahead``)."""

        def render() -> None:
            with self._guard:
                self._timers.discard(timer)
            if video:
                self.video(task_id, spec)
            self.cover(task_id, spec)

        timer = threading.Timer(delay, render)
        timer.daemon = True
        with self._guard:
            self._timers.add(timer)
        timer.start()

    def _ensure(self, path: Path, spec: MediaSpec, render: Callable[[MediaSpec, Path], None]) -> Path:
        if path.exists():
            return path
        with self._guard:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            if not path.exists():
                partial = path.with_name(f".{path.name}.{threading.get_ident()}.part")
                try:
                    render(spec, partial)
                    os.replace(partial, path)
                finally:
                    partial.unlink(missing_ok=True)
        with self._guard:
            self._locks.pop(path, None)
        return path

    def close(self) -> None:
        with self._guard:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        if self._tmp is not None:
            self._tmp.cleanup()
