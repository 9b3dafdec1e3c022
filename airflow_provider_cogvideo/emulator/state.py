"""Tasks and statistics, all in memory.

A task's whole life is fixed when it is submitted: the time it finishes and whether it ends SUCCESS
or FAIL. Its status is then a pure function of the clock, so thousands of tasks cost no timers,
no background work and no locking on reads. In-flight counts (per (key, model), what the tier
limit applies to, and overall) are kept as heaps of finish times, pruned on each submit.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from airflow_provider_cogvideo.emulator.media import MediaSpec
from airflow_provider_cogvideo.emulator.rng import draw, draw_int
from airflow_provider_cogvideo.emulator.wire import WireError

TASK_ID_DIGITS = 19


@dataclass(frozen=True)
class Task:
    id: str
    key_id: str
    model: str
    request_id: str
    finish_at: float  # time.monotonic()
    fails: bool
    # (code, message) reported with FAIL: an extension, only when a fault asks for it.
    failure: tuple[str, str] | None
    media: MediaSpec

    def status(self, now: float | None = None) -> str:
        if (time.monotonic() if now is None else now) < self.finish_at:
            return "PROCESSING"
        return "FAIL" if self.fails else "SUCCESS"


class TaskStore:
    """Every task of one emulator plus the counters tests assert on. Thread-safe."""

    def __init__(self, seed: int, duration: float, jitter: float) -> None:
        self._seed = seed
        self._duration = duration
        self._jitter = jitter
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._in_flight: dict[tuple[str, str], list[float]] = {}
        self._all_in_flight: list[float] = []
        self._max_in_flight: Counter[tuple[str, str]] = Counter()
        self._max_total = 0
        self._counts: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._answer_faults: Counter[str] = Counter()
        self._request_ids: list[str] = []

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def submit(
        self,
        key_id: str,
        model: str,
        limit: int | None,
        request_id: str | None,
        fails: bool,
        failure: tuple[str, str] | None,
        media: MediaSpec,
    ) -> Task:
        """Create a task, or raise 1302 when ``limit`` tasks of this key and model are in flight."""
        now = time.monotonic()
        slot = (key_id, model)
        with self._lock:
            heap = self._in_flight.setdefault(slot, [])
            for h in (heap, self._all_in_flight):
                while h and h[0] <= now:
                    heapq.heappop(h)
            if limit is not None and len(heap) >= limit:
                raise WireError(
                    "1302",
                    f"当前API请求过多,请稍后重试。Concurrency limit reached: {len(heap)} {model} tasks in flight "
                    f"for this key (limit {limit})",
                )
            n = len(self._tasks)
            task_id = self._new_id(n)
            spread = self._jitter * (2 * draw(self._seed, "duration", n) - 1)
            finish_at = now + max(0.0, self._duration * (1 + spread))
            task = Task(task_id, key_id, model, request_id or task_id, finish_at, fails, failure, media)
            self._tasks[task_id] = task
            heapq.heappush(heap, finish_at)
            heapq.heappush(self._all_in_flight, finish_at)
            self._counts["submits"] += 1
            self._request_ids.append(task.request_id)
            self._max_in_flight[slot] = max(self._max_in_flight[slot], len(heap))
            self._max_total = max(self._max_total, len(self._all_in_flight))
        return task

    def _new_id(self, n: int) -> str:
        """A 19-digit numeric id (like the service's), seeded and unique."""
        attempt = 0
        while True:
            value = 10 ** (TASK_ID_DIGITS - 1) + draw_int(self._seed, "task", n, attempt) % (
                9 * 10 ** (TASK_ID_DIGITS - 1)
            )
            if str(value) not in self._tasks:
                return str(value)
            attempt += 1

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def count(self, what: str) -> None:
        """Count a served request: "polls", "downloads", ..."""
        with self._lock:
            self._counts[what] += 1

    def count_chat(self, total_tokens: int) -> None:
        """Count a chat answer sent with 200 and the tokens its usage reported."""
        with self._lock:
            self._counts["chat_calls"] += 1
            self._counts["chat_tokens"] += total_tokens

    def reject(self, code: str) -> None:
        with self._lock:
            self._rejections[code] += 1

    def spoil_answer(self, fault: str) -> None:
        """Count a created job whose answer an answer fault spoiled ("created_error", "lost", ...)."""
        with self._lock:
            self._answer_faults[fault] += 1

    def stats(self) -> dict[str, Any]:
        """What the server saw. Key ids only (never a secret); per-(key, model) as "key_id/model".

        Every created job is paid for: ``submits`` counts them and ``request_ids`` lists each one's
        request id (one entry per paid job, in order), however its answer went; ``prompts`` each one's
        prompt. ``answer_faults``
        says how many of them got a spoiled answer, by fault; ``rejections`` counts refused requests.
        ``chat_calls`` counts chat answers sent with 200, ``chat_tokens`` the sum of their total tokens.
        """
        now = time.monotonic()
        with self._lock:
            current = {slot: sum(1 for t in heap if t > now) for slot, heap in self._in_flight.items()}
            return {
                "submits": self._counts["submits"],
                "polls": self._counts["polls"],
                "downloads": self._counts["downloads"],
                "chat_calls": self._counts["chat_calls"],
                "chat_tokens": self._counts["chat_tokens"],
                "rejections": dict(self._rejections),
                "answer_faults": dict(self._answer_faults),
                "tasks": len(self._tasks),
                "in_flight": sum(current.values()),
                "in_flight_by_key_model": {f"{k}/{m}": n for (k, m), n in current.items() if n},
                "max_in_flight": self._max_total,
                "max_in_flight_by_key_model": {f"{k}/{m}": n for (k, m), n in self._max_in_flight.items()},
                "request_ids": list(self._request_ids),
                # What each paid job was asked to show, in submit order (a product's text, no secret).
                "prompts": [task.media.prompt for task in self._tasks.values()],
            }
