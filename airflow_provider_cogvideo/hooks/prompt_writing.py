"""Writing one video prompt with a chat model, through the hook (:meth:`CogVideoHook.write_prompt`).

What can go wrong, and what each outcome means for the video that follows:

* an answer that cannot be used (no text, only a heading or quotes): asked again, up to the writer's
  ``attempts``; then the fallback prompt (the template's), as zai-org/CogVideo's ``convert_demo.py``
  does. A model that answers like this keeps doing so for the same request, so the fallback is an
  outcome of these inputs and is cached like a writing;
* a content-policy refusal (1301): the fallback at once, for the same reason;
* a transient error (429, 5xx, no answer): the hook's retries with the one backoff, then raised, so the
  task fails *before* any video is paid for, and its retry writes again. A run never pays for a video
  made from a fallback it took only because the chat endpoint was briefly down;
* a refused key, an empty balance or a bad request: raised, not retried.

What a call cost is its answer's ``usage`` at the model's list price, bounded by the call's ceiling
(:func:`~airflow_provider_cogvideo.prompt_writer.counted_tokens`): an answer without usage, or with a
number the call cannot have used, counts the ceiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airflow_provider_cogvideo.capabilities import endpoint_currency
from airflow_provider_cogvideo.errors import CogVideoContentPolicyError
from airflow_provider_cogvideo.prompt_writer import (
    FALLBACK,
    WRITER,
    PromptWriter,
    WriterInputs,
    WrittenPrompt,
    call_price,
    chat_body,
    cleaned_answer,
    counted_tokens,
    token_ceiling,
    writer_key,
)


class ChatHook(Protocol):
    """What writing needs of the hook: its settings (the endpoint's currency) and one chat call."""

    @property
    def settings(self) -> Any: ...

    def chat(self, body: dict[str, Any]) -> dict[str, Any]: ...


def answer_text(answer: Mapping[str, Any]) -> Any:
    """The first choice's message content (anything else: None)."""
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, Mapping) else None
    return message.get("content") if isinstance(message, Mapping) else None


def write_prompt(
    hook: ChatHook, writer: Any, inputs: WriterInputs, *, image: str | None = None, fallback: str | None = None
) -> WrittenPrompt:
    """Write the prompt for ``inputs`` (module docstring); ``fallback`` defaults to ``inputs.prompt``."""
    checked = PromptWriter.from_value(writer)
    if checked is None:
        raise ValueError("write_prompt needs a prompt writer")
    key = writer_key(checked, inputs)
    body = chat_body(checked, inputs, image)
    currency = endpoint_currency(hook.settings.base_url)
    most = token_ceiling(checked, body)
    calls, tokens, price = 0, 0, 0.0
    price_known = True
    reason = "no attempt"
    for _ in range(checked.attempts):
        calls += 1
        try:
            answer = hook.chat(body)
        except CogVideoContentPolicyError as exc:
            reason = f"refused by the content filter ({exc.code})"
            break
        counted = counted_tokens(answer.get("usage"), most)
        tokens += counted
        cost = call_price(checked, currency, counted)
        price_known = price_known and cost is not None
        price += cost or 0.0
        prompt = cleaned_answer(answer_text(answer))
        if prompt is not None:
            return WrittenPrompt(
                prompt, WRITER, checked.model, key, calls, tokens, price if price_known else None, currency
            )
        reason = "the model's answer held no usable text"
    return WrittenPrompt(
        fallback if fallback is not None else inputs.prompt,
        FALLBACK,
        checked.model,
        key,
        calls,
        tokens,
        price if price_known else None,
        currency,
        f"{reason} after {calls} call(s): the template's prompt is used",
    )


__all__ = ["ChatHook", "answer_text", "write_prompt"]
