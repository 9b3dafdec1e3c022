"""One spelling for a size in every message, log line and page."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo.sizes import KiB, MiB, human_size


@pytest.mark.parametrize(
    ("n_bytes", "shown"),
    [
        *[(0, "0 bytes"), (1023, "1023 bytes"), (KiB, "1 KB"), (405 * KiB + 100, "405 KB"), (MiB, "1.0 MB")],
        *[(5 * MiB + 1, "5.0 MB"), (5.6 * MiB, "5.6 MB"), (150 * MiB, "150.0 MB")],
    ],
)
def test_human_size(n_bytes, shown) -> None:
    assert human_size(n_bytes) == shown
