"""Prompts written for the model: what the writer sends to a chat model, what it keeps of the answer,
what makes two writings "the same", and what one may cost. I/O-free; the hook sends
(:meth:`~airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook.write_prompt`) and
:mod:`.prompt_cache` keeps the results.

Why: CogVideoX was trained on long, detailed captions, and its makers rewrite short prompts with an LLM
before rendering (zai-org/CogVideo ``inference/convert_demo.py``: a system prompt with few-shot
examples, ``glm-4-plus``, temperature 0.01, top_p 0.7, 250 tokens, three tries, then the original
prompt). The defaults of :class:`PromptWriter` are theirs. For image-to-video the photo is the first
frame, so the text describes motion *from* it in one continuous shot; the structure is the product
pages' own: subject, action, environment, atmosphere, camera, lighting.

**The key** (:func:`writer_key`) is a digest of everything that changes the writing: the template's
prompt, the product's fields, the source image's sha256, the variant and its format, the writer's
model, instructions and sampling parameters, a reviewer's note, and :data:`WRITER_VERSION` (the system
prompt and examples below; bumped only on purpose, in the CHANGELOG, since a new version writes, and so
pays for, every video again). A video's fingerprint is built from the key, not from the text, so a run
decides "already made" from the listing without reading or writing any prompt.

**Cost** (:func:`call_price_ceiling`): a call's ceiling is every character sent counted as a token
(a GLM token is at least one character), plus :data:`IMAGE_TOKENS_CEILING` per image, plus
``max_tokens``, at the model's list price (:mod:`.chat_models`); a writing's (:func:`writing_ceiling`)
is ``attempts`` calls. A model without a known price costs
the writer's stated ``max_price_per_call``; with neither, a run with a budget refuses to start.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from airflow_provider_cogvideo.capabilities import PROMPT_MAX_CHARS
from airflow_provider_cogvideo.chat_models import DEFAULT_WRITER_MODEL, ChatModel, chat_model
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.fingerprint import canonical_digest
from airflow_provider_cogvideo.products import truncate_prompt
from airflow_provider_cogvideo.validation import bounded

WRITER_VERSION = 1
"""In every writer key: the system prompt and examples below. A new version rewrites every video."""

TEMPERATURE_RANGE = (0.01, 1.0)
TOP_P_RANGE = (0.01, 1.0)
MAX_TOKENS_RANGE = (16, 1024)
"""A video prompt is at most 512 characters (about 150 to 500 tokens): 1024 is room, not a target."""
ATTEMPTS_RANGE = (1, 5)
"""Answers that cannot be used (empty, no text) before the template's prompt is used instead."""
MAX_PRICE_PER_CALL_RANGE = (0.0, 100.0)
INSTRUCTIONS_MAX_CHARS = 2000
NOTE_MAX_CHARS = 1000
FIELD_MAX_CHARS = 500
"""A product field as the writer sees it: enough for a selling point, never a whole description page."""
IMAGE_TOKENS_CEILING = 2000
"""What one image may count as input tokens in the cost ceiling (the model pages state no figure)."""

SYSTEM_PROMPT = (
    "You write prompts for CogVideoX, a model that turns a product photo into a short video. The photo "
    "is the first frame: describe what moves from it, in one continuous shot, with no cuts, scene "
    "changes or new objects, and never text or logos to render. Cover, in one paragraph of plain "
    "English: the product as the subject, its motion, the environment, the atmosphere, the camera "
    "movement and the lighting. Be concrete and visual; keep what the short prompt and the product "
    "fields say is true of the product. Follow the format's framing. Answer with the prompt alone, "
    "under {max_chars} characters, without quotes or a heading."
)
FEW_SHOT: tuple[tuple[str, str], ...] = (
    (
        "Short prompt: Ceramic coffee mug: keeps drinks hot, matte glaze. Product video in a minimal style.\n"
        "Format: 1:1 square (1024x1024)",
        "A matte sage-green ceramic mug stands on a pale oak table, a thin ribbon of steam curling from "
        "the coffee inside. The camera circles it slowly at eye level, revealing the soft glaze catching "
        "the light and the smooth handle. Morning sunlight falls from a window on the left, warm and "
        "diffuse, long gentle shadows; a calm, quiet kitchen atmosphere, shallow depth of field.",
    ),
    (
        "Short prompt: Trail running shoe: grippy sole, breathable mesh. Product video in a dynamic style.\n"
        "Format: 9:16 vertical (1080x1920)",
        "A bright orange trail running shoe rests on a mossy rock beside a forest path. The camera pushes "
        "in low and close, then tilts up along the breathable mesh upper as a light breeze stirs the "
        "ferns behind it. Dappled late-afternoon sun flickers through the trees, crisp and energetic, "
        "with fine dust drifting in the light; vertical framing keeps the shoe centred.",
    ),
)

_LABEL_LINE = re.compile(r"^\s*(?:prompt|video prompt|rewritten prompt)\s*[:\uff1a]\s*", re.IGNORECASE)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u300c\u300d"


@dataclass(frozen=True)
class PromptWriter:
    """How prompts are written: a validated, JSON-safe configuration (:meth:`from_value` reads a dict).

    ``model`` is a chat model of :mod:`.chat_models` (a vision model also sees the product image);
    ``instructions`` are the user's own, added to every request (a brand's tone, words to avoid).
    ``attempts`` and ``max_price_per_call`` change what a writing may cost, never its text, so they
    are not in the key."""

    model: str = DEFAULT_WRITER_MODEL
    instructions: str | None = None
    temperature: float = 0.01
    top_p: float = 0.7
    max_tokens: int = 250
    attempts: int = 3
    max_price_per_call: float | None = None

    @classmethod
    def from_value(cls, value: Any) -> PromptWriter | None:
        """``value`` (None, a dict, or a writer) checked: every number within bounds, the model known;
        errors name ``prompt_writer.<field>``, the value and what is allowed."""
        if value is None or isinstance(value, PromptWriter):
            return value if value is None else cls.from_value(asdict(value))
        if not isinstance(value, Mapping):
            raise CogVideoValidationError(
                "prompt_writer", f"must be a dict of writer settings, got {type(value).__name__}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(map(str, value)) - known)
        if unknown:
            raise CogVideoValidationError("prompt_writer", f"unknown setting(s) {unknown}; allowed: {sorted(known)}")
        row = chat_model(str(value.get("model") or DEFAULT_WRITER_MODEL))
        instructions = value.get("instructions")
        if instructions is not None and (
            not isinstance(instructions, str) or len(instructions) > INSTRUCTIONS_MAX_CHARS
        ):
            raise CogVideoValidationError(
                "prompt_writer.instructions", f"must be text of at most {INSTRUCTIONS_MAX_CHARS} characters"
            )
        max_tokens = bounded(
            "prompt_writer.max_tokens", value.get("max_tokens", cls.max_tokens), MAX_TOKENS_RANGE, integer=True
        )
        if max_tokens > row.max_output_tokens:
            raise CogVideoValidationError(
                "prompt_writer.max_tokens",
                f"{row.name} writes at most {row.max_output_tokens} tokens, got {max_tokens}",
            )
        ceiling = value.get("max_price_per_call")
        return cls(
            model=row.name,
            instructions=" ".join(instructions.split()) or None if instructions else None,
            temperature=bounded(
                "prompt_writer.temperature", value.get("temperature", cls.temperature), TEMPERATURE_RANGE
            ),
            top_p=bounded("prompt_writer.top_p", value.get("top_p", cls.top_p), TOP_P_RANGE),
            max_tokens=max_tokens,
            attempts=bounded(
                "prompt_writer.attempts", value.get("attempts", cls.attempts), ATTEMPTS_RANGE, integer=True
            ),
            max_price_per_call=None
            if ceiling is None
            else bounded("prompt_writer.max_price_per_call", ceiling, MAX_PRICE_PER_CALL_RANGE),
        )

    @property
    def row(self) -> ChatModel:
        return chat_model(self.model)

    def to_dict(self) -> dict[str, Any]:
        """Primitives only: what travels in XCom, the manifest and DAG settings."""
        return asdict(self)


@dataclass(frozen=True)
class WriterInputs:
    """What one writing is about. ``image_sha256`` names the *source* image by content (a re-encode's
    bytes depend on the Pillow version); ``format`` is the variant's framing as text (``9:16 vertical
    (1080x1920)``), None without formats."""

    prompt: str | None
    fields: Mapping[str, Any]
    image_sha256: str | None
    variant: str
    format: str | None = None
    note: str | None = None


WRITER = "writer"
FALLBACK = "fallback"
TEMPLATE = "template"
PROMPT_SOURCES = (WRITER, FALLBACK, TEMPLATE)
"""Where a video's prompt came from: written by the model, the template's after the writer gave up
(:data:`FALLBACK`, with its reason), or the template's with no writer configured."""


@dataclass(frozen=True)
class WrittenPrompt:
    """One writing's outcome, JSON-safe (:meth:`to_dict`): what the cache keeps, the manifest shows."""

    prompt: str | None
    source: str
    model: str
    key: str
    calls: int = 0
    tokens: int | None = None
    price: float | None = None
    currency: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> WrittenPrompt | None:
        """A cached writing, or None when ``value`` is not one (a damaged or foreign object)."""
        if not isinstance(value, Mapping) or value.get("source") not in (WRITER, FALLBACK):
            return None
        names = {f.name for f in fields(cls)}
        try:
            written = cls(**{k: v for k, v in value.items() if k in names})
        except TypeError:
            return None
        ok = isinstance(written.key, str) and (written.prompt is None or isinstance(written.prompt, str))
        return written if ok and (written.prompt is None or len(written.prompt) <= PROMPT_MAX_CHARS) else None


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value if v not in (None, ""))
    return " ".join(str(value).split())[:FIELD_MAX_CHARS]


def shown_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The product fields the writer sees (sorted, each one line of at most 500 characters)."""
    return {str(k): _text(v) for k, v in sorted(fields.items(), key=lambda kv: str(kv[0])) if v not in (None, "", [])}


def writer_key(writer: PromptWriter, inputs: WriterInputs) -> str:
    """The digest of everything that changes the writing (module docstring)."""
    return canonical_digest(
        {
            "version": WRITER_VERSION,
            "model": writer.model,
            "instructions": writer.instructions,
            "temperature": writer.temperature,
            "top_p": writer.top_p,
            "max_tokens": writer.max_tokens,
            "vision": writer.row.vision,
            "prompt": inputs.prompt,
            "fields": shown_fields(inputs.fields),
            "image": inputs.image_sha256,
            "variant": inputs.variant,
            "format": inputs.format,
            "note": inputs.note,
        }
    )


def user_message(writer: PromptWriter, inputs: WriterInputs) -> str:
    """The request about one product: labelled lines the model (and the emulator) read."""
    lines = [f"Instructions: {writer.instructions}"] if writer.instructions else []
    lines.append(f"Short prompt: {inputs.prompt or ''}")
    shown = shown_fields({k: v for k, v in inputs.fields.items() if k != "product_id"})
    if shown:
        lines.append("Product: " + "; ".join(f"{k}: {v}" for k, v in shown.items()))
    if inputs.format:
        lines.append(f"Format: {inputs.format}")
    if inputs.note:
        lines.append(f"Reviewer's note: {' '.join(inputs.note.split())[:NOTE_MAX_CHARS]}")
    return "\n".join(lines)


def chat_body(writer: PromptWriter, inputs: WriterInputs, image: str | None = None) -> dict[str, Any]:
    """The ``POST /chat/completions`` body. ``image`` (a data URI or URL) is sent to vision models only."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT.format(max_chars=PROMPT_MAX_CHARS)}]
    for asked, answered in FEW_SHOT:
        messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
    text = user_message(writer, inputs)
    if image and writer.row.vision:
        content: Any = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": text}]
    else:
        content = text
    messages.append({"role": "user", "content": content})
    return {
        "model": writer.model,
        "messages": messages,
        "temperature": writer.temperature,
        "top_p": writer.top_p,
        "max_tokens": writer.max_tokens,
        "stream": False,
    }


def cleaned_answer(text: Any, max_chars: int = PROMPT_MAX_CHARS) -> str | None:
    """The answer as a prompt: one line, without a heading, quotes or control characters, cut at a
    word boundary to ``max_chars``; None when nothing usable is left (no letter or digit)."""
    if not isinstance(text, str):
        return None
    kept = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)  # controls, separators
    kept = _LABEL_LINE.sub("", " ".join(kept.split())).strip().strip(_QUOTES).strip()
    kept = kept.replace("{", "(").replace("}", ")")  # a prompt goes through str.format templates downstream
    if not any(ch.isalnum() for ch in kept):
        return None
    return truncate_prompt(kept, max_chars)


def body_chars(body: Mapping[str, Any]) -> tuple[int, int]:
    """Characters of text and number of images a chat body sends."""
    chars = images = 0
    for message in body.get("messages", []):
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        for part in parts:
            if part.get("type") == "image_url":
                images += 1
            else:
                chars += len(str(part.get("text") or ""))
    return chars, images


def token_ceiling(writer: PromptWriter, body: Mapping[str, Any]) -> int:
    """The most tokens one call with ``body`` can be billed for (module docstring)."""
    chars, images = body_chars(body)
    return chars + images * IMAGE_TOKENS_CEILING + writer.max_tokens


def counted_tokens(usage: Any, ceiling: int) -> int:
    """The tokens a call is counted for: its answer's ``usage.total_tokens`` within 0 to ``ceiling``.
    An answer reporting none, or a number the call cannot have used, counts the ceiling: a server's
    number never makes a call cost more than it could, nor hides what it cost."""
    total = usage.get("total_tokens") if isinstance(usage, Mapping) else None
    if isinstance(total, int) and not isinstance(total, bool) and 0 <= total <= ceiling:
        return total
    return ceiling


def call_price(writer: PromptWriter, currency: str | None, tokens: int) -> float | None:
    """What a call of ``tokens`` costs: at the model's list price, else the writer's stated
    ``max_price_per_call`` (None when neither is known)."""
    per_token = writer.row.price_per_token(currency)
    return writer.max_price_per_call if per_token is None else tokens * per_token


def call_price_ceiling(writer: PromptWriter, currency: str | None, body: Mapping[str, Any]) -> float | None:
    """The most one call with ``body`` may cost (module docstring); None when it cannot be known."""
    return call_price(writer, currency, token_ceiling(writer, body))


def typical_call_chars(writer: PromptWriter) -> int:
    """The characters of a call about an average product, for a plan's ceiling before any body exists:
    the system prompt, the examples, the instructions and a full 512-character prompt and fields."""
    body = chat_body(writer, WriterInputs(prompt="x" * PROMPT_MAX_CHARS, fields={}, image_sha256=None, variant=""))
    return body_chars(body)[0] + 4 * FIELD_MAX_CHARS


def writing_ceiling(writer: PromptWriter, currency: str | None, body: Mapping[str, Any]) -> float | None:
    """The most one writing with ``body`` may cost: ``attempts`` calls at their ceiling (None: unknown)."""
    per_call = call_price_ceiling(writer, currency, body)
    return None if per_call is None else per_call * writer.attempts


def planned_writing_ceiling(writer: PromptWriter, currency: str | None) -> float | None:
    """The ceiling the run plan counts per writing, before the bodies are built: ``attempts`` calls
    about a typical product (:func:`typical_call_chars`, the image for a vision model)."""
    images = 1 if writer.row.vision else 0
    per_call = call_price(
        writer, currency, typical_call_chars(writer) + images * IMAGE_TOKENS_CEILING + writer.max_tokens
    )
    return None if per_call is None else math.fsum([per_call] * writer.attempts)


__all__ = [
    "FALLBACK",
    "FEW_SHOT",
    "PROMPT_SOURCES",
    "SYSTEM_PROMPT",
    "TEMPLATE",
    "WRITER",
    "WRITER_VERSION",
    "PromptWriter",
    "WriterInputs",
    "WrittenPrompt",
    "call_price",
    "call_price_ceiling",
    "chat_body",
    "cleaned_answer",
    "counted_tokens",
    "planned_writing_ceiling",
    "shown_fields",
    "token_ceiling",
    "typical_call_chars",
    "user_message",
    "writer_key",
    "writing_ceiling",
]
