"""Written prompts kept beside the video index: ``<video_index>.prompts/<writer key>.json``.

Why a cache and not just the index: the index records *videos*; a prompt is written before its video
exists and must be the very same text on every try of the task that pays for it (a resumed try finds
its job by the request's fingerprint, which covers the prompt). So a writing is stored before the
video is submitted, under the key of its inputs (:func:`~.prompt_writer.writer_key`), and read back by
every later try, run and regeneration with the same inputs: the LLM is asked once per inputs, ever.

Objects are immutable in practice: the same key names the same inputs, and a second writer racing the
first writes an equivalent object (the later one wins; both are writings of the same inputs). A damaged
or foreign object reads as a miss and is written over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow_provider_cogvideo.prompt_writer import WrittenPrompt
from airflow_provider_cogvideo.s3 import ObjectTooLargeError, get_or_none
from airflow_provider_cogvideo.sizes import KiB
from airflow_provider_cogvideo.video_index import IndexLocation

PROMPTS_DIR = ".prompts/"
MAX_CACHED_BYTES = 64 * KiB
"""A cached writing is a 512-character prompt and a few fields: far below this."""


@dataclass(frozen=True)
class PromptCache:
    """The written prompts of one video index (``client`` is a boto3 S3 client)."""

    client: Any
    location: IndexLocation

    def key_of(self, writer_key: str) -> str:
        if not writer_key.isalnum():
            raise ValueError(f"not a writer key: {writer_key!r}")
        return f"{self.location.root}{PROMPTS_DIR}{writer_key}.json"

    def uri_of(self, writer_key: str) -> str:
        return self.location.uri_of(self.key_of(writer_key))

    def get(self, writer_key: str) -> WrittenPrompt | None:
        """The writing stored for ``writer_key``, or None (none yet, or unreadable)."""
        try:
            raw = get_or_none(self.client, self.location.bucket, self.key_of(writer_key), max_bytes=MAX_CACHED_BYTES)
            written = WrittenPrompt.from_dict(json.loads(raw)) if raw is not None else None
        except (ObjectTooLargeError, ValueError, UnicodeDecodeError):
            return None
        return written if written is not None and written.key == writer_key else None

    def put(self, written: WrittenPrompt) -> None:
        """Store ``written`` under its key (before the video that uses it is paid for)."""
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=self.key_of(written.key),
            Body=json.dumps(written.to_dict(), ensure_ascii=False, sort_keys=True).encode(),
            ContentType="application/json",
        )


__all__ = ["MAX_CACHED_BYTES", "PROMPTS_DIR", "PromptCache"]
