"""PromptWritingMixin: the generate operator's optional prompt writer (``prompt_writer``).

Where the writer runs, and why there: inside each mapped generate task, right before its submit. A
catalog of 5,000 products is then 5,000 writings spread over the mapped instances, as many at once as
the ``cogvideo`` pool lets generate tasks run (the account's tier, 5 to 20: also well within the chat
models' rate limits), never a loop of calls in one task; it adds no task instance to the run, and only
items that will really be paid for are ever written (a reused video never reaches a generate task).

Per try, in order:

1. the writer key: the one ingestion computed for the video's fingerprint (``metadata["prompt_writer"]``),
   else that of this task's own inputs (a task used alone, or a regeneration with a note);
2. the cache beside the video index (:mod:`~airflow_provider_cogvideo.prompt_cache`): a hit is used as
   it is, so every try, resumed try and later run with the same inputs sends the very same request
   (the crash-safe job store finds its job by the request's fingerprint, which covers the prompt);
3. on a miss: the writing's cost ceiling (``attempts`` calls) is reserved in the run's budget (fails
   without calling over it),
   the hook writes (:meth:`~airflow_provider_cogvideo.hooks.cogvideo.CogVideoHook.write_prompt`), what
   it cost is counted as paid, and the writing is stored *before* the video is submitted.

Dry runs write nothing and call nothing: they report the cached writing if there is one, else what a
writing would cost at most.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_cogvideo import metrics
from airflow_provider_cogvideo.capabilities import endpoint_currency
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.products import FORMAT_TEXT, WRITER_KEY, product_fields
from airflow_provider_cogvideo.prompt_cache import PromptCache
from airflow_provider_cogvideo.prompt_writer import (
    PromptWriter,
    WriterInputs,
    WrittenPrompt,
    chat_body,
    writer_key,
    writing_ceiling,
)
from airflow_provider_cogvideo.validation import rendered_none
from airflow_provider_cogvideo.video_index import DEFAULT_VARIANT, IndexLocation

if TYPE_CHECKING:
    from airflow_provider_cogvideo.budget import SpendLedger
    from airflow_provider_cogvideo.prepare import PreparedRequest

WRITING = "prompt_writing"
"""In the request summary (XCom, results, manifest rows): how the prompt sent was written."""


def checked_writer(value: Any) -> PromptWriter | None:
    """``prompt_writer`` as given or rendered (unset: no writer); a bad one fails naming the field."""
    try:
        return PromptWriter.from_value(rendered_none(value))
    except CogVideoValidationError as exc:
        raise AirflowFailException(f"Invalid CogVideo request: {exc}") from None


class PromptWritingMixin:
    """For :class:`~airflow_provider_cogvideo.operators.cogvideo.CogVideoGenerateOperator` (module docstring)."""

    prompt: Any
    prompt_writer: Any
    video_index: Any
    metadata: Any
    aws_conn_id: str | None
    hook: Any
    log: Any

    def writer_note(self) -> str | None:
        """A reviewer's note for the writer (a regeneration's); none for a first video."""
        return None

    def writer_prompt(self) -> str | None:
        """The prompt the writer expands (the template's)."""
        return rendered_none(self.prompt)

    def fallback_prompt(self) -> str | None:
        """What is sent when the writer gives up (the template's, or a regeneration's revision of it)."""
        return rendered_none(self.prompt)

    def _writer_inputs(self, prepared: PreparedRequest) -> WriterInputs:
        metadata = rendered_none(self.metadata) or {}
        return WriterInputs(
            prompt=self.writer_prompt(),
            fields=product_fields(metadata),
            image_sha256=prepared.images[0].digest if prepared.images else None,
            variant=str(metadata.get("variant") or DEFAULT_VARIANT),
            format=metadata.get(FORMAT_TEXT),
            note=self.writer_note(),
        )

    def _writer_key(self, writer: PromptWriter, inputs: WriterInputs) -> str:
        metadata = rendered_none(self.metadata) or {}
        planned = metadata.get(WRITER_KEY) if isinstance(metadata, Mapping) else None
        if isinstance(planned, str) and planned.isalnum() and inputs.note is None:
            return planned
        return writer_key(writer, inputs)

    def _prompt_cache(self) -> PromptCache:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        index = rendered_none(self.video_index)
        try:
            location = IndexLocation.parse(index, "video_index")
        except CogVideoValidationError as exc:
            raise AirflowFailException(f"Invalid CogVideo request: {exc} (written prompts are kept there)") from None
        return PromptCache(S3Hook(aws_conn_id=self.aws_conn_id).get_conn(), location)

    def with_written_prompt(
        self, prepared: PreparedRequest, ledger: SpendLedger | None, *, dry_run: bool = False
    ) -> PreparedRequest:
        """``prepared`` with the written prompt and the summary's ``prompt_writing`` (module docstring)."""
        writer = checked_writer(self.prompt_writer)
        if writer is None:
            metadata = rendered_none(self.metadata) or {}
            if isinstance(metadata, Mapping) and metadata.get(WRITER_KEY):
                # Its fingerprint promises a written prompt: a template's video filed under it would be
                # reused by every later run as if it were the written one.
                raise AirflowFailException(
                    "Invalid CogVideo request: the item was fingerprinted with a prompt writer (metadata "
                    f"{WRITER_KEY!r}: ingestion's prompt_writer) but this task has no prompt_writer; give it the same"
                )
            return prepared
        inputs = self._writer_inputs(prepared)
        key = self._writer_key(writer, inputs)
        cache = self._prompt_cache()
        written = cache.get(key)
        cached = written is not None
        if written is not None:
            metrics.incr("cogvideo.prompt_cache_hits", model=written.model)
        else:
            currency = endpoint_currency(self.hook.settings.base_url)
            image = prepared.images[0].wire if prepared.images else None
            ceiling = writing_ceiling(writer, currency, chat_body(writer, inputs, image))
            if dry_run:
                self.log.info(
                    "Dry run: the prompt would be written by %s (at most %s %s)", writer.model, ceiling, currency
                )
                return prepared.with_prompt(
                    prepared.request.prompt,
                    **{WRITING: {"source": "dry_run", "model": writer.model, "key": key, "ceiling": ceiling,
                                 "currency": currency, "template_prompt": inputs.prompt}},
                )  # fmt: skip
            written = self._write(writer, inputs, key, ledger, ceiling, currency, image)
            cache.put(written)
            metrics.incr("cogvideo.prompt_writes", model=written.model, source=written.source)
        self.log.info(
            "Prompt %s (%s, %s): %s",
            "from the cache" if cached else "written",
            written.source,
            written.model,
            written.prompt,
        )
        writing = {**written.to_dict(), "cached": cached, "template_prompt": inputs.prompt, "cache": cache.uri_of(key)}
        try:
            return prepared.with_prompt(written.prompt, **{WRITING: writing})
        except CogVideoValidationError as exc:  # e.g. a model that needs a prompt, and the fallback has none
            raise AirflowFailException(f"Invalid CogVideo request after writing the prompt: {exc}") from None

    def _write(
        self,
        writer: PromptWriter,
        inputs: WriterInputs,
        key: str,
        ledger: SpendLedger | None,
        ceiling: float | None,
        currency: str,
        image: str | None,
    ) -> WrittenPrompt:
        if ledger is not None and ledger.budget is not None:
            if ceiling is None:
                raise AirflowFailException(
                    f"max_total_price is set but the prompt writer's model {writer.model!r} has no known price: "
                    "set prompt_writer.max_price_per_call (the most one writing may cost) or unset the budget; "
                    "nothing was sent"
                )
            reason = ledger.reserve(ceiling)
            if reason is not None:
                raise AirflowFailException(f"Prompt not written, video not submitted: {reason} {currency}.")
        written = self.hook.write_prompt(writer, inputs, image=image, fallback=self.fallback_prompt())
        if written.key != key:  # the planned key names the writing, whatever this task's digest of it
            written = WrittenPrompt(**{**written.to_dict(), "key": key})
        if ledger is not None:
            ledger.confirm(written.price if written.price is not None else (ceiling or 0.0))
        if written.source != "writer":
            self.log.warning("Prompt writer fell back to the template's prompt: %s", written.reason)
        return written


__all__ = ["WRITING", "PromptWritingMixin", "checked_writer"]
