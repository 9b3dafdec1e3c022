"""The chat models a prompt writer may use on the same account, and what is known of their prices.

Data, like :mod:`.capabilities`: the prompt writer (:mod:`.prompt_writer`), the hook's chat call, the
run plan's cost ceiling, the emulator's ``/chat/completions`` and the README all read this table.

Prices are list prices per million tokens (input and output billed alike on these models), taken from
the official model pages where they state one (checked 2026-12): ``glm-4-plus`` 5 CNY per million
tokens (docs.bigmodel.cn, "GLM-4" page), the Flash models free. Where no official figure was found the
price is ``None``: a run with a budget then needs the writer's stated ceiling ``max_price_per_call``,
or it refuses to start (:func:`~.prompt_writer.writing_price_ceiling`). No Z.AI (USD) price was
found for any of them.

``max_output_tokens`` is the most one answer may hold (the model pages' "max output"); the writer's
``max_tokens`` is checked against it before anything is sent.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from airflow_provider_cogvideo.errors import CogVideoValidationError


@dataclass(frozen=True)
class ChatModel:
    """One chat model's row: whether it reads images, its answer cap and its list prices."""

    name: str
    vision: bool
    max_output_tokens: int
    price_cny_per_million: float | None
    price_usd_per_million: float | None = None
    notes: str = ""

    def price_per_token(self, currency: str | None) -> float | None:
        """The list price of one token in ``currency`` (``CNY`` or ``USD``), None when unknown."""
        per_million = {"CNY": self.price_cny_per_million, "USD": self.price_usd_per_million}.get(currency or "")
        return None if per_million is None else per_million / 1_000_000


CHAT_MODELS: dict[str, ChatModel] = {
    m.name: m
    for m in (
        ChatModel("glm-4-plus", vision=False, max_output_tokens=4095, price_cny_per_million=5.0,
                  notes="The model zai-org/CogVideo's convert_demo.py rewrites prompts with."),
        ChatModel("glm-4-air-250414", vision=False, max_output_tokens=16_000, price_cny_per_million=None,
                  notes="No official price found."),
        ChatModel("glm-4-flash-250414", vision=False, max_output_tokens=16_000, price_cny_per_million=0.0,
                  notes="Free."),
        ChatModel("glm-4-flash", vision=False, max_output_tokens=4095, price_cny_per_million=0.0, notes="Free."),
        ChatModel("glm-4v-plus-0111", vision=True, max_output_tokens=1024, price_cny_per_million=None,
                  notes="Reads the product image. No official price found."),
        ChatModel("glm-4v-flash", vision=True, max_output_tokens=1024, price_cny_per_million=0.0,
                  notes="Reads the product image. Free."),
    )
}  # fmt: skip

DEFAULT_WRITER_MODEL = "glm-4-plus"


def chat_model(name: str) -> ChatModel:
    """The row of ``name`` (any case); an unknown name is refused naming the known ones."""
    folded = name.strip().casefold() if isinstance(name, str) else name
    for row in CHAT_MODELS.values():
        if row.name.casefold() == folded:
            return row
    close = difflib.get_close_matches(str(folded), list(CHAT_MODELS), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CogVideoValidationError(
        "prompt_writer.model", f"{name!r} is not a known chat model{hint}; allowed: {sorted(CHAT_MODELS)}"
    )


__all__ = ["CHAT_MODELS", "DEFAULT_WRITER_MODEL", "ChatModel", "chat_model"]
