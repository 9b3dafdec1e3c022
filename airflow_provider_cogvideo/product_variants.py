"""The videos a run makes of each product, and what each one's fingerprint is made of.

A product becomes one item per *variant*: the names given (``["default"]``), or one per ad format
(``formats=["9:16", "16:9"]``: :mod:`.formats`). A format variant differs from its siblings by
what it sends (the format's ``size`` or ``aspect_ratio``: its ``options``), by the image it starts
from (the photo framed to the format: :mod:`.image_framing`, named by :meth:`ProductVariants.preparation`)
and, with a prompt writer, by the prompt written for its framing. All of that goes into the video's
fingerprint, and nothing else changes it, so a daily run over an unchanged catalog matches every
(product, format) from the listing alone.

With a prompt writer (:mod:`.prompt_writer`), the fingerprint names the writer key (what the writing
is made of), never the written text: the run decides "already made" without writing or reading any
prompt, and the generate step writes (or finds in the cache) the prompt under that same key.

Pure: ingestion (:class:`~.operators.product_images.S3ProductImagesOperator`) reads the images and
stages the framed ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_cogvideo.capabilities import DEFAULT_MODEL
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.fingerprint import video_fingerprint
from airflow_provider_cogvideo.formats import FormatChoice, checked_formats
from airflow_provider_cogvideo.image_framing import DEFAULT_FIT, checked_fit
from airflow_provider_cogvideo.products import FORMAT, FORMAT_TEXT, WRITER_KEY, checked_variants
from airflow_provider_cogvideo.prompt_writer import PromptWriter, WriterInputs, writer_key
from airflow_provider_cogvideo.video_index import DEFAULT_VARIANT

DEFAULT_VARIANTS = (DEFAULT_VARIANT,)


def format_text(choice: FormatChoice) -> str:
    """A format as the prompt writer reads it: ``9:16 vertical (1080x1920), for TikTok, Douyin``."""
    width, height = choice.format.ratio
    shape = "vertical" if width < height else "landscape" if width > height else "square"
    return f"{choice.format.aspect} {shape} ({choice.size}), for {choice.format.platforms}"


@dataclass(frozen=True)
class ProductVariants:
    """Every variant of a run (module docstring); :meth:`build` checks the settings."""

    generation: Mapping[str, Any] | None
    names: tuple[str, ...]
    formats: Mapping[str, FormatChoice] = field(default_factory=dict)
    fit: str = DEFAULT_FIT
    writer: PromptWriter | None = None

    @classmethod
    def build(
        cls,
        *,
        generation: Mapping[str, Any] | None,
        variants: Sequence[str] = DEFAULT_VARIANTS,
        formats: Any = None,
        fit: str = DEFAULT_FIT,
        writer: PromptWriter | None = None,
    ) -> ProductVariants:
        """Raises :class:`CogVideoValidationError` naming the field: formats the model cannot render
        (the sizes it can), named variants together with formats, a bad ``fit``."""
        generation = dict(generation) if generation is not None else None
        model = str((generation or {}).get("model") or DEFAULT_MODEL)
        choices = checked_formats(formats, model, (generation or {}).get("capability_overrides"))
        names = checked_variants(variants)
        if choices and names != DEFAULT_VARIANTS:
            raise CogVideoValidationError(
                "formats", f"cannot be combined with variants {list(names)!r}: each format is a variant of its own"
            )
        if choices:
            names = tuple(choice.variant for choice in choices)
        return cls(generation, names, {c.variant: c for c in choices}, checked_fit(fit), writer)

    def choice(self, variant: str) -> FormatChoice | None:
        return self.formats.get(variant)

    def options(self, variant: str) -> dict[str, Any]:
        """What the request sends for the variant's format (``{}`` without formats)."""
        choice = self.choice(variant)
        return dict(choice.options) if choice else {}

    def preparation(self, variant: str) -> str | None:
        """How the variant's image is framed (``"pad 1080x1920"``), None without a format."""
        choice = self.choice(variant)
        return f"{self.fit} {choice.size}" if choice else None

    def writer_key(self, variant: str, prompt: str | None, sha256: str, fields: Mapping[str, Any]) -> str | None:
        """The key of the variant's writing (None without a writer)."""
        if self.writer is None:
            return None
        choice = self.choice(variant)
        inputs = WriterInputs(prompt, fields, sha256, variant, format_text(choice) if choice else None)
        return writer_key(self.writer, inputs)

    def fingerprint(self, variant: str, prompt: str | None, sha256: str, fields: Mapping[str, Any]) -> str | None:
        """The video's fingerprint (None without ``generation``)."""
        if self.generation is None:
            return None
        return video_fingerprint(
            model=str(self.generation["model"]),
            options={**self.generation, **self.options(variant)},
            prompt=prompt,
            image_digests=[sha256],
            variant=variant,
            extra_body=self.generation.get("extra_body"),
            prompt_writer=self.writer_key(variant, prompt, sha256, fields),
            image_preparation=self.preparation(variant),
        )

    def metadata(self, variant: str, prompt: str | None, sha256: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """What the item's ``metadata`` carries for the variant besides the product's fields: the format
        (name and the writer's text of it) and the writer key."""
        extra: dict[str, Any] = {}
        choice = self.choice(variant)
        if choice is not None:
            extra.update({FORMAT: choice.format.name, FORMAT_TEXT: format_text(choice)})
        key = self.writer_key(variant, prompt, sha256, fields)
        if key is not None:
            extra[WRITER_KEY] = key
        return extra

    def recorded_format(self, variant: str) -> dict[str, Any] | None:
        """The format as the video's index entry records it (a regeneration sends the same options)."""
        choice = self.choice(variant)
        if choice is None:
            return None
        return {
            "name": choice.format.name,
            "options": dict(choice.options),
            "fit": self.fit,
            "text": format_text(choice),
        }


__all__ = ["DEFAULT_VARIANTS", "ProductVariants", "format_text"]
