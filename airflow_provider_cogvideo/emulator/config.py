"""Emulator settings (one frozen object shared by the app factory, the CLI and the test fixtures)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY
from airflow_provider_cogvideo.emulator.faults import FaultConfig

DEFAULT_PREFIX = "/api/paas/v4"

DEFAULT_TEST_KEY = "c0ffee00c0ffee00c0ffee00c0ffee00.EmulatorTestSecretNotForProduction"
"""The key every emulator accepts unless told otherwise. Public on purpose: it only opens the
emulator. The secret is 32+ bytes so HS256 signing raises no short-key warning."""


@dataclass(frozen=True)
class ApiKey:
    """One accepted ``id.secret`` key and its account tier (which sets the concurrency limit)."""

    key_id: str
    secret: str
    tier: str = "V0"

    def __post_init__(self) -> None:
        if not self.key_id or not self.secret or "." in self.key_id or "." in self.secret:
            raise ValueError("an API key must look like <id>.<secret> (exactly one dot)")
        if self.tier not in TIER_CONCURRENCY:
            raise ValueError(f"unknown tier {self.tier!r}; allowed: {sorted(TIER_CONCURRENCY)}")

    @classmethod
    def parse(cls, text: str) -> ApiKey:
        """``id.secret`` or ``id.secret:TIER``."""
        key, _, tier = text.strip().partition(":")
        key_id, _, secret = key.partition(".")
        return cls(key_id, secret, tier or "V0")

    # The secret must never reach a log line, an admin answer or a traceback.
    def __repr__(self) -> str:
        return f"ApiKey(key_id={self.key_id!r}, tier={self.tier!r})"

    @property
    def value(self) -> str:
        return f"{self.key_id}.{self.secret}"


def parse_keys(text: str) -> tuple[ApiKey, ...]:
    """``id.secret:V0,id2.secret2:V1`` (the CLI's ``--keys``)."""
    return tuple(ApiKey.parse(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes an emulator's behaviour. Defaults suit tests and the demo."""

    keys: tuple[ApiKey, ...] = field(default_factory=lambda: (ApiKey.parse(DEFAULT_TEST_KEY),))
    # Seconds a task stays PROCESSING, spread by +-jitter (a fraction of duration).
    duration: float = 5.0
    jitter: float = 0.2
    # Seeds task ids, render times and faults. None: a random seed (reported in the stats).
    seed: int | None = None
    # Where rendered videos and covers are cached. None: a temporary directory removed on shutdown.
    data_dir: Path | None = None
    # Benchmarks: no per-(key, model) concurrency limit.
    unlimited: bool = False
    prefix: str = DEFAULT_PREFIX
    # Synthetic-payload mode: the "video" is this many deterministic pseudo-random bytes (not an MP4).
    payload_bytes: int | None = None
    # Result URLs are signed and expire after this many seconds (None: they never expire).
    url_ttl: float | None = None
    # The query of an unknown (or another key's) task id: 400 or 404, always with code 1214.
    unknown_task_http_status: int = 400
    # Rendered videos are scaled down so their longest side is at most this (even sizes, same aspect).
    media_max_side: int = 480
    # Encode a job's video and cover halfway through its render time instead of at the first download.
    # A benchmark on one machine needs it: jobs that end together would otherwise be encoded together,
    # on the CPU the client's next tasks are starting on, which a real service never takes from you.
    render_ahead: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)
    # With a token, every admin request (/_emulator/...) must send it in the X-Emulator-Admin-Token
    # header. None: the admin API is open, unless the server binds off loopback (then it makes one).
    # Out of repr, like the key secrets: it must not reach a log line.
    admin_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("at least one API key is needed")
        if self.duration < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("duration must be >= 0 and jitter within 0..1")
        if self.unknown_task_http_status not in (400, 404):
            raise ValueError("unknown_task_http_status must be 400 or 404")
        if self.payload_bytes is not None and self.payload_bytes < 0:
            raise ValueError("payload_bytes must not be negative")
        if self.media_max_side < 16:
            raise ValueError("media_max_side must be at least 16")
        if self.admin_token is not None and not re.fullmatch(r"[!-~]+", self.admin_token):
            raise ValueError("admin_token must be visible ASCII without spaces (it travels in a header)")

    @property
    def api_prefix(self) -> str:
        """The prefix with exactly one leading and no trailing slash."""
        return "/" + self.prefix.strip("/") if self.prefix.strip("/") else ""
