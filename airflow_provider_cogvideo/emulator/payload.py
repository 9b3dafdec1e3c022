"""Synthetic payloads: deterministic pseudo-random bytes of any size, streamed in chunks.

For transfer tests and benchmarks the "video" can be, say, 1 GiB that never exists in memory or on
disk. Byte ``o`` of a task's payload is ``block[(o + shift) % len(block)]``: one 1 MiB block per
emulator (from the seed) and a per-task shift, so any range can be produced directly and different
tasks get different bytes. A client can recompute the expected bytes with the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from airflow_provider_cogvideo.emulator.rng import draw_int

BLOCK_SIZE = (1 << 20) + 7  # odd, so chunk boundaries never line up with the period
CHUNK_SIZE = 256 * 1024


class SyntheticPayload:
    """The payload of every task of one emulator (``size`` bytes each)."""

    def __init__(self, seed: int, size: int) -> None:
        self.seed = seed
        self.size = size
        self._block = random.Random(seed).randbytes(BLOCK_SIZE)

    def chunks(self, task_id: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive, default: the end) of a task's payload."""
        stop = self.size if end is None else end
        shift = draw_int(self.seed, "payload", task_id) % BLOCK_SIZE
        pos = start
        while pos < stop:
            offset = (pos + shift) % BLOCK_SIZE
            n = min(CHUNK_SIZE, stop - pos, BLOCK_SIZE - offset)
            yield self._block[offset : offset + n]
            pos += n
