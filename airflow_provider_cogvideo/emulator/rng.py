"""Seeded, order-independent randomness.

Every random decision (task id, render jitter, injected fault) is a pure function of the seed, a
label and a counter. Two runs that send the same requests in the same order therefore get the same
answers, however the requests of different kinds interleave. No shared ``random.Random`` state.
"""

from __future__ import annotations

import hashlib


def draw(seed: int, *parts: object) -> float:
    """A number in ``[0, 1)`` determined by ``seed`` and ``parts``."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw_int(seed: int, *parts: object) -> int:
    """A 64-bit integer determined by ``seed`` and ``parts``."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")
