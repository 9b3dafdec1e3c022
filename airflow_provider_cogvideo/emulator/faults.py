"""Fault injection: make the emulator misbehave on purpose, deterministically.

A :class:`FaultConfig` says *what* can go wrong; :class:`Faults` decides *when*, from the seed and a
per-operation counter (the n-th submit, the n-th poll, ...). Changing the configuration restarts the
counters, so "set faults, then send the same requests" always gives the same answers.

Most faults refuse a request before anything happens. The *answer faults* strike after a submit has
created (and billed) its job: a 5xx, a dropped connection or a malformed id. They are the ambiguous
outcomes a client must not answer with a second paid submit, so the stats count those jobs like any.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_type_hints

from airflow_provider_cogvideo.emulator.rng import draw
from airflow_provider_cogvideo.emulator.wire import http_status_for, known_code

Operation = Literal["submit", "poll", "download", "chat"]
OPERATIONS: tuple[Operation, ...] = ("submit", "poll", "download", "chat")

# How the answer to a submit that created its job goes wrong (see Faults.answer_fault).
AnswerFault = Literal["created_error", "lost", "malformed_id"]

# The malformed ids a submit may answer with, made from the real (19-digit) one: each breaks a
# client that pastes the id into the query URL unchecked, is no id at all, or is a JSON value of the
# wrong type (a client that lets its parser's error escape retries, and pays again).
MALFORMED_IDS: dict[str, Callable[[str], Any]] = {
    "slash": lambda real: f"{real[:9]}/{real[9:]}",
    "space": lambda real: f"{real[:9]} {real[9:]}",
    "dotdot": lambda real: "..",
    "empty": lambda real: "",
    "null": lambda real: None,
    "float": lambda real: float(f"{real[:9]}.5"),
    "bool": lambda real: True,
    "object": lambda real: {"id": real},
    "list": lambda real: [real],
}


@dataclass(frozen=True)
class FaultConfig:
    """What may go wrong. Rates are fractions in ``[0, 1]``; everything off by default."""

    # Fraction of submits / polls / downloads / chat calls answered with one of ``error_codes`` (picked
    # at random).
    submit_error_rate: float = 0.0
    poll_error_rate: float = 0.0
    download_error_rate: float = 0.0
    chat_error_rate: float = 0.0
    # "500" and "503" are plain server errors; any business code of the error table works too
    # (e.g. "1305" overload and "1303" frequency → 429, "1113" arrears → 429).
    error_codes: tuple[str, ...] = ("500", "503", "1305")
    # Send "Retry-After: <seconds>" with every 429 (the real service sends none).
    retry_after: float | None = None
    # Fraction of accepted tasks that end FAIL instead of SUCCESS (1.0 = all).
    fail_rate: float = 0.0
    # With a reason, a FAIL answer also carries {"error": {"code": fail_code, "message": fail_reason}}
    # (an extension: the documented FAIL body has no reason).
    fail_reason: str | None = None
    fail_code: str = "1301"
    # Submits whose prompt (and chat calls whose message text) contains any of these substrings
    # (case-insensitive) get 400 / 1301.
    blocked_prompts: tuple[str, ...] = ()
    # Answer a fraction ``delay_rate`` of the ``delay_ops`` operations ``delay_seconds`` late.
    delay_seconds: float = 0.0
    delay_rate: float = 1.0
    delay_ops: tuple[str, ...] = OPERATIONS
    # Fraction of video downloads cut short: only ``truncate_ratio`` of the announced bytes are sent
    # before the connection is closed.
    truncate_rate: float = 0.0
    truncate_ratio: float = 0.5
    # Answer faults, as fractions of the submits that created a job (the three add up to at most 1).
    # Created, then answered with one of ``submit_created_error_codes`` (5xx codes only).
    submit_created_error_rate: float = 0.0
    submit_created_error_codes: tuple[str, ...] = ("500", "502", "504")
    # Created, then the answer is lost: status line and headers go out, the connection closes before
    # the body (httpx raises RemoteProtocolError).
    submit_lost_rate: float = 0.0
    # Submits whose prompt contains any of these substrings (case-insensitive) create their job, then
    # lose their answer as above: one chosen product left ambiguous, whatever the order of submits.
    lost_prompts: tuple[str, ...] = ()
    # Created, then answered 200 with an id of one of ``malformed_id_kinds`` (keys of MALFORMED_IDS).
    submit_malformed_id_rate: float = 0.0
    malformed_id_kinds: tuple[str, ...] = tuple(MALFORMED_IDS)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_ratio")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {value!r}")
        bad = [c for c in (*self.error_codes, self.fail_code) if not known_code(c)]
        if bad:
            raise ValueError(f"unknown error code(s) {bad}: use 500, 502, 503, 504 or a code of the error table")
        if not self.error_codes:
            raise ValueError("error_codes must not be empty")
        created_codes = self.submit_created_error_codes
        if not created_codes or any(not known_code(c) or http_status_for(c) < 500 for c in created_codes):
            raise ValueError(
                f"submit_created_error_codes must be 5xx codes (e.g. 500, 502, 504), not {list(created_codes)}"
            )
        if not self.malformed_id_kinds or set(self.malformed_id_kinds) - set(MALFORMED_IDS):
            raise ValueError(
                f"malformed_id_kinds must be one or more of {list(MALFORMED_IDS)}, not {list(self.malformed_id_kinds)}"
            )
        answer_rates = self.submit_created_error_rate + self.submit_lost_rate + self.submit_malformed_id_rate
        if answer_rates > 1.0:
            raise ValueError(
                "submit_created_error_rate + submit_lost_rate + submit_malformed_id_rate must not exceed 1, "
                f"got {answer_rates:g}"
            )
        unknown_ops = sorted(set(self.delay_ops) - set(OPERATIONS))
        if unknown_ops:
            raise ValueError(f"delay_ops: unknown operation(s) {unknown_ops}; allowed: {list(OPERATIONS)}")
        if self.delay_seconds < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("delay_seconds and retry_after must not be negative")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (admin API) or ``key=value`` strings (CLI); lists may be comma-separated."""
        hints = get_type_hints(cls)
        unknown = sorted(set(values) - set(hints))
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; allowed: {sorted(hints)}")
        try:
            return cls(**{name: _coerce(hints[name], value) for name, value in values.items()})
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _coerce(hint: Any, value: Any) -> Any:
    if hint in (float | None, str | None) and value in (None, ""):
        return None
    if hint == tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(i).strip() for i in items if str(i).strip())
    if hint in (float, float | None):
        return float(value)
    return str(value)


class Faults:
    """The live fault settings of one emulator, and the seeded decisions taken from them.

    Thread-safe: tests change faults from their own thread while the server thread reads them.
    """

    def __init__(self, seed: int, initial: FaultConfig | None = None) -> None:
        self._seed = seed
        self._initial = initial or FaultConfig()
        self._lock = threading.Lock()
        self._config = self._initial
        self._counters: dict[str, int] = {}

    @property
    def current(self) -> FaultConfig:
        return self._config

    def set(self, **settings: Any) -> FaultConfig:
        """Replace the whole configuration (unnamed settings go back to "no fault")."""
        return self._install(FaultConfig.from_mapping(settings))

    def update(self, **settings: Any) -> FaultConfig:
        """Change some settings, keep the others."""
        merged = {**self._config.to_dict(), **settings}
        return self._install(FaultConfig.from_mapping(merged))

    def clear(self) -> FaultConfig:
        """Back to no faults at all."""
        return self._install(FaultConfig())

    def reset(self) -> None:
        """Back to the faults the emulator was started with (``--fault`` flags)."""
        self._install(self._initial)

    def _install(self, config: FaultConfig) -> FaultConfig:
        with self._lock:
            self._config = config
            self._counters.clear()
        return config

    def _roll(self, label: str) -> float:
        with self._lock:
            n = self._counters.get(label, 0)
            self._counters[label] = n + 1
        return draw(self._seed, "fault", label, n)

    def delay_for(self, op: Operation) -> float:
        cfg = self._config
        if cfg.delay_seconds <= 0 or op not in cfg.delay_ops:
            return 0.0
        return cfg.delay_seconds if self._roll(f"{op}.delay") < cfg.delay_rate else 0.0

    def error_for(self, op: Operation) -> str | None:
        """The error code to answer this operation with, or None to answer normally."""
        cfg = self._config
        rate = {
            "submit": cfg.submit_error_rate,
            "poll": cfg.poll_error_rate,
            "download": cfg.download_error_rate,
            "chat": cfg.chat_error_rate,
        }[op]
        if rate <= 0 or self._roll(f"{op}.error") >= rate:
            return None
        return cfg.error_codes[int(self._roll(f"{op}.error_code") * len(cfg.error_codes))]

    def answer_fault(self, prompt: str | None = None) -> AnswerFault | None:
        """How to spoil the answer to a submit that has just created its job (None: answer normally).

        A prompt of ``lost_prompts`` loses its answer; otherwise one roll per created job, split by the
        three rates, so the faults never overlap.
        """
        cfg = self._config
        if _mentions(prompt, cfg.lost_prompts):
            return "lost"
        rates: tuple[tuple[AnswerFault, float], ...] = (
            ("created_error", cfg.submit_created_error_rate),
            ("lost", cfg.submit_lost_rate),
            ("malformed_id", cfg.submit_malformed_id_rate),
        )
        if all(rate <= 0 for _, rate in rates):
            return None
        roll = self._roll("submit.answer")
        for fault, rate in rates:
            if roll < rate:
                return fault
            roll -= rate
        return None

    def created_error_code(self) -> str:
        """The 5xx code for a submit whose job was created (after ``answer_fault`` said so)."""
        codes = self._config.submit_created_error_codes
        return codes[int(self._roll("submit.created_error_code") * len(codes))]

    def malformed_id(self, real: str) -> Any:
        """The malformed id to answer a created job with (after ``answer_fault`` said so)."""
        kinds = self._config.malformed_id_kinds
        return MALFORMED_IDS[kinds[int(self._roll("submit.malformed_id") * len(kinds))]](real)

    def should_fail(self) -> bool:
        rate = self._config.fail_rate
        return rate > 0 and self._roll("fail") < rate

    def blocked(self, prompt: str | None) -> bool:
        return _mentions(prompt, self._config.blocked_prompts)

    def truncate_at(self, length: int) -> int | None:
        """How many bytes to send of a ``length``-byte download before hanging up (None: all)."""
        cfg = self._config
        if cfg.truncate_rate <= 0 or length == 0 or self._roll("download.truncate") >= cfg.truncate_rate:
            return None
        return min(length - 1, int(length * cfg.truncate_ratio))


def _mentions(prompt: str | None, words: tuple[str, ...]) -> bool:
    """Whether ``prompt`` contains one of ``words`` (case-insensitive)."""
    text = (prompt or "").casefold()
    return any(word.casefold() in text for word in words)
