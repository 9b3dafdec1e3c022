"""The chat endpoint ``POST /chat/completions``: body validation and a deterministic answer.

The prompt writer sends short video prompts to rewrite; the emulator answers with a made-up but
plausible one-paragraph video prompt. The answer is a pure function of the request (never of the
seed), so two emulators answer the same request with the same text; only ``created`` follows the
clock.

What the answer reads from the last user message, line by line (labels case-insensitive, the first
line of each kind counts):

* ``Short prompt: <subject>``: what the video shows (without it: the message's first 160 characters);
* ``Reviewer's note: <note>``: echoed as "Adjusted as asked: <note>.";
* ``Format: <format>``: echoed as "Framed for <format>.".

Test hooks in the subject: ``LONGANSWER`` makes the answer 700+ characters whatever ``max_tokens``
(a client must cap it), ``EMPTYANSWER`` makes it empty (a client must fall back).

Validation reads :data:`~airflow_provider_cogvideo.chat_models.CHAT_MODELS` (data only), never the
client's checks. JSON ``null`` means "unset"; unknown fields are ignored.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_cogvideo.chat_models import CHAT_MODELS, ChatModel
from airflow_provider_cogvideo.emulator.validation import body_fields
from airflow_provider_cogvideo.emulator.wire import WireError, invalid, missing

MAX_MESSAGES = 50
MAX_TEXT_CHARS = 200_000
ROLES = ("system", "user", "assistant")
IMAGE_PART_TOKENS = 500
SUBJECT_FALLBACK_CHARS = 160
ANSWER_MIN_CHARS, ANSWER_MAX_CHARS = 250, 450
LONG_ANSWER_MIN_CHARS = 700
LONG_ANSWER_HOOK, EMPTY_ANSWER_HOOK = "LONGANSWER", "EMPTYANSWER"

_LABELS = {"subject": "short prompt:", "note": ("reviewer's note:", "reviewer\u2019s note:"), "format": "format:"}
_NOTE_MAX_CHARS, _FORMAT_MAX_CHARS, _SUBJECT_MAX_CHARS = 100, 40, 120

MOTIONS = (
    "The camera glides in a slow dolly toward it, then eases into a gentle half orbit.",
    "A smooth crane shot rises from table height and settles into a calm overhead view.",
    "The shot opens wide and pushes in steadily until fine textures fill the frame.",
    "The camera circles it in one unhurried arc while it turns slightly into the light.",
    "A slow lateral tracking shot slides past it, with a soft rack focus from front to back.",
    "Handheld but steady, the camera breathes closer as small details catch the eye.",
)
LIGHTS = (
    "Warm golden-hour light spills from one side and leaves long, soft shadows.",
    "Cool morning daylight fills a clean studio with a faint haze in the air.",
    "Soft diffused light and a pale backdrop give it a calm, premium feel.",
    "Dramatic rim light outlines its edges against a deep, dark background.",
    "Bright natural window light and gentle reflections make the scene feel fresh.",
    "Moody evening tones with a warm practical glow set a quiet, cinematic atmosphere.",
)
FILLERS = (
    "Every surface shows crisp, realistic detail in shallow depth of field.",
    "Colours stay natural and rich, with smooth motion and no sudden cuts.",
    "The pace is calm and continuous, like a high-end product commercial.",
    "Tiny dust motes drift through the light, adding depth to the scene.",
    "The background stays softly blurred so the eye never leaves the subject.",
    "The final moments hold still on a clean, balanced composition.",
)


@dataclass(frozen=True)
class ChatMessage:
    role: str
    text: str  # the text parts, joined by newlines
    images: int  # how many image parts


@dataclass(frozen=True)
class ChatRequest:
    """A body that passed validation."""

    model: ChatModel
    messages: tuple[ChatMessage, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    request_id: str | None = None

    @property
    def all_text(self) -> str:
        """Every message's text, for the content filter."""
        return "\n".join(m.text for m in self.messages)


def validate_chat(body: Any) -> ChatRequest:
    """Check one ``POST /chat/completions`` body; raise the error the service would answer."""
    fields = body_fields(body)

    name = fields.get("model")
    if name is None:
        raise missing("model", "the chat model name is required")
    model = CHAT_MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        close = difflib.get_close_matches(str(name).casefold(), list(CHAT_MODELS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise WireError("1211", f"模型不存在。Model {name!r} does not exist{hint}; known: {sorted(CHAT_MODELS)}")

    stream = fields.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", f"expected a JSON boolean, got {stream!r}")
    if stream:
        raise WireError("1210", "请求参数错误。stream=true is not emulated: send stream=false or leave it out")

    messages = _messages(model, fields.get("messages"))
    total = sum(len(m.text) for m in messages)
    if total > MAX_TEXT_CHARS:
        raise WireError(
            "1261", f"Prompt超长。messages are too long: {total} characters of text, the limit is {MAX_TEXT_CHARS}"
        )
    request_id = fields.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not request_id):
        raise invalid("request_id", f"expected a non-empty JSON string, got {request_id!r}")
    return ChatRequest(
        model,
        messages,
        _unit_interval(fields, "temperature"),
        _unit_interval(fields, "top_p"),
        _max_tokens(model, fields.get("max_tokens")),
        request_id,
    )


def _messages(model: ChatModel, value: Any) -> tuple[ChatMessage, ...]:
    if value is None:
        raise missing("messages", "a list of messages is required")
    if not isinstance(value, list) or not value:
        raise invalid("messages", f"expected a non-empty JSON list of messages, got {_show(value)}")
    if len(value) > MAX_MESSAGES:
        raise invalid("messages", f"{len(value)} messages, at most {MAX_MESSAGES} are allowed")
    messages = tuple(_message(model, i, m) for i, m in enumerate(value))
    if not any(m.role == "user" for m in messages):
        raise invalid("messages", "at least one message with role 'user' is required")
    return messages


def _message(model: ChatModel, index: int, value: Any) -> ChatMessage:
    label = f"messages[{index}]"
    if not isinstance(value, dict):
        raise invalid(label, f"expected a JSON object with role and content, got {_show(value)}")
    role = value.get("role")
    if role not in ROLES:
        raise invalid(f"{label}.role", f"{_show(role)} is not one of {list(ROLES)}")
    content = value.get("content")
    if isinstance(content, str):
        if not content.strip():
            raise invalid(f"{label}.content", "must not be empty")
        return ChatMessage(role, content, 0)
    if not isinstance(content, list) or not content:
        raise invalid(f"{label}.content", f"expected a string or a non-empty list of parts, got {_show(content)}")
    texts, images = [], 0
    for j, part in enumerate(content):
        texts_or_image = _part(model, f"{label}.content[{j}]", part)
        if texts_or_image is None:
            images += 1
        else:
            texts.append(texts_or_image)
    return ChatMessage(role, "\n".join(texts), images)


def _part(model: ChatModel, label: str, part: Any) -> str | None:
    """A text part's text, or None for a (valid) image part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str) or not text.strip():
            raise invalid(f"{label}.text", f"expected a non-empty string, got {_show(text)}")
        return text
    if kind != "image_url":
        raise invalid(f"{label}.type", f"{_show(kind)} is not 'text' or 'image_url'")
    if not model.vision:
        raise invalid(f"{label}.type", f"'image_url' parts need a vision model; {model.name} reads text only")
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str) or not re.match(r"(https?://\S|data:image/[\w.+-]+;base64,\S)", url.strip()):
        raise invalid(f"{label}.image_url.url", f"expected an http(s) URL or a base64 image data URI, got {_show(url)}")
    return None


def _unit_interval(fields: dict[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise invalid(name, f"must be a number greater than 0 and at most 1, got {value!r}")
    return float(value)


def _max_tokens(model: ChatModel, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= model.max_output_tokens:
        raise invalid(
            "max_tokens", f"must be an integer from 1 to {model.max_output_tokens} on {model.name}, got {value!r}"
        )
    return value


def _show(value: Any) -> str:
    """A value for an error message, cut short (a body may be large)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# The answer.


def chat_answer(req: ChatRequest, created: int) -> dict[str, Any]:
    """The 200 answer to ``req`` (OpenAI-shaped), ``created`` being the Unix time to report."""
    cap = req.max_tokens or req.model.max_output_tokens
    text, long_answer = _compose(req)
    completion = math.ceil(len(text) / 4)
    finish = "length" if completion > cap else "stop"
    if not long_answer:
        text = _clip(text, 4 * cap)
    prompt = math.ceil(sum(len(m.text) for m in req.messages) / 2) + IMAGE_PART_TOKENS * sum(
        m.images for m in req.messages
    )
    completion = min(completion, cap)
    messages = [(m.role, m.text, m.images) for m in req.messages]
    answer_id = "chat-" + _digest("id", req.model.name, messages, req.temperature, req.top_p, req.max_tokens).hex()[:16]
    return {
        "id": answer_id,
        "request_id": req.request_id or answer_id,
        "created": created,
        "model": req.model.name,
        "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def answer_text(req: ChatRequest) -> str:
    """The answer's text: at most ``max_tokens * 4`` characters, cut at a word boundary (finish_reason
    "length"), except for the LONGANSWER hook."""
    return chat_answer(req, 0)["choices"][0]["message"]["content"]


def _compose(req: ChatRequest) -> tuple[str, bool]:
    """The whole rewritten prompt (subject, motion, light, fillers up to 250 characters, format, note)
    and whether the LONGANSWER hook asked for it."""
    last_user = next(m for m in reversed(req.messages) if m.role == "user")
    found = parse_labels(last_user.text)
    subject = found.get("subject") or " ".join(last_user.text[:SUBJECT_FALLBACK_CHARS].split())
    if EMPTY_ANSWER_HOOK in subject:
        return "", False
    long_answer = LONG_ANSWER_HOOK in subject
    digest = _digest("text", req.model.name, [m.text for m in req.messages], req.temperature, req.top_p)
    tail = []
    if found.get("format"):
        tail.append(f"Framed for {_clip(found['format'], _FORMAT_MAX_CHARS).rstrip('.')}.")
    if found.get("note"):
        tail.append(f"Adjusted as asked: {_clip(found['note'], _NOTE_MAX_CHARS).rstrip('.')}.")
    body = [MOTIONS[digest[0] % len(MOTIONS)], LIGHTS[digest[1] % len(LIGHTS)]]
    room = ANSWER_MAX_CHARS - len(" ".join(body + tail)) - 2
    subject = _clip(subject or "The pictured product", min(_SUBJECT_MAX_CHARS, room)).rstrip(".!?,;: ")
    body.insert(0, subject[:1].upper() + subject[1:] + ".")
    target = LONG_ANSWER_MIN_CHARS if long_answer else ANSWER_MIN_CHARS
    start = digest[2] % len(FILLERS)
    n = 0
    while len(" ".join(body + tail)) < target:
        body.append(FILLERS[(start + n) % len(FILLERS)])
        n += 1
    return " ".join(body + tail), long_answer


def parse_labels(text: str) -> dict[str, str]:
    """The first ``Short prompt:`` / ``Reviewer's note:`` / ``Format:`` line's remainder, by key
    ("subject", "note", "format"), whitespace collapsed; empty remainders are left out."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        for key, labels in _LABELS.items():
            for label in (labels,) if isinstance(labels, str) else labels:
                if key not in found and stripped[: len(label)].casefold() == label:
                    rest = " ".join(stripped[len(label) :].split())
                    if rest:
                        found[key] = rest
    return found


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary (mid-word only if one word is longer)."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit)]
    if not text[limit].isspace():
        space = max(cut.rfind(" "), cut.rfind("\n"))
        if space > 0:
            cut = cut[:space]
    return cut.rstrip(" ,;:-\n")


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).digest()
