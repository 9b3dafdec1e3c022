"""Byte sizes: the unit the tables are written in, and a size as people read it.

Sizes are 1024-based and shown as ``KB`` and ``MB``, the names the API's documentation gives its
limits (its "5 MB" image limit is 5 MiB) and the README's tables repeat: one spelling in every
message, log line and page that states a size.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def human_size(n_bytes: float) -> str:
    """``789 bytes``, ``405 KB``, ``5.6 MB``."""
    if n_bytes < KiB:
        return f"{n_bytes:.0f} bytes"
    if n_bytes < MiB:
        return f"{n_bytes / KiB:.0f} KB"
    return f"{n_bytes / MiB:.1f} MB"


__all__ = ["GiB", "KiB", "MiB", "human_size"]
