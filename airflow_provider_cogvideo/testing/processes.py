"""Child processes for the demo and the integration tests, and waiting on them.

* :class:`ProcessGroup`: child processes, each in its own process group, stopped by group id;
* :func:`wait_until`: polling with a deadline that fails early when a component died.

Importing this module imports nothing outside the standard library.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    alive: Callable[[], None] | None = None,
) -> T:
    """Call ``probe`` until it returns something truthy; ``alive`` raises when waiting is pointless
    (a component died), so a crash fails in seconds instead of at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class ComponentDied(RuntimeError):
    """A process that should be running has exited."""


@dataclass
class ProcessGroup:
    """Child processes, each started in its own session (process group) and stopped by group id, so
    whatever a component forks (Airflow starts workers, supervisors, gunicorn/uvicorn children) goes
    with it. Never kills anything it did not start."""

    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _starts: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None) -> Path:
        """Start ``argv`` as ``name`` with output to a log file (a restart gets a new file); returns its path."""
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f"{name} is already running")
        self._starts[name] = self._starts.get(name, 0) + 1
        suffix = "" if self._starts[name] == 1 else f".{self._starts[name]}"
        log_path = self.log_dir / f"{name}{suffix}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.processes[name] = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.logs[name if suffix == "" else f"{name}{suffix}"] = log_path
        return log_path

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, grace: float = 10.0) -> None:
        """Signal ``name``'s process group; SIGKILL the group if the leader outlives ``grace``."""
        process = self.processes.get(name)
        if process is not None:
            stop_group(process, sig=sig, grace=grace)

    def stop_all(self, grace: float = 10.0) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name, grace=grace)

    def check_alive(self, *names: str) -> None:
        """Raise :class:`ComponentDied` (with the log's tail) if one of ``names`` has exited."""
        for name in names or tuple(self.processes):
            process = self.processes[name]
            if process.poll() is not None:
                tail = log_tail(self.logs[name], 40)
                raise ComponentDied(f"{name} exited with code {process.returncode}; last log lines:\n{tail}")

    def log_tails(self, lines: int = 80) -> str:
        """Every component log's last lines, for a failure report."""
        return "\n".join(f"===== {name}: {path} =====\n{log_tail(path, lines)}" for name, path in self.logs.items())

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def stop_group(process: subprocess.Popen, *, sig: signal.Signals = signal.SIGTERM, grace: float = 10.0) -> None:
    """Stop a process started in its own group: ``sig`` to the group, SIGKILL if the leader outlives
    ``grace``, then SIGKILL once more for stragglers of the group. Safe to call twice."""
    if process.poll() is None:
        signal_group(process.pid, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    signal_group(process.pid, signal.SIGKILL)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to a process group of ours; a group that is already gone is fine."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a log file, or why it could not be read (for failure reports)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


__all__ = ["ComponentDied", "ProcessGroup", "log_tail", "signal_group", "stop_group", "wait_until"]
