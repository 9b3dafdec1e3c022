"""Running the emulator: in a background thread for tests (:func:`running_emulator`) or in the
foreground for the CLI (:func:`serve`). uvicorn's access log stays off: request lines are not
worth the risk of ever printing a credential.

Both refuse to be quietly reachable from other machines: bound off loopback, they warn (log and
stderr: the emulator serves fake videos and accepts public test keys) and lock the admin API with a
token, generated and printed once when the config has none."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette

from airflow_provider_cogvideo.emulator.app import ADMIN_PREFIX, ADMIN_TOKEN_HEADER, Emulator, create_app
from airflow_provider_cogvideo.emulator.config import EmulatorConfig
from airflow_provider_cogvideo.emulator.faults import Faults

STARTUP_TIMEOUT = 30.0

# uvicorn closes idle keep-alive connections after 5 s by default. A poller whose pooled connection
# sat idle that long can race the close and get "Server disconnected without sending a response",
# which a real API gateway (keep-alive of a minute or more) would not cause. Match the gateways.
KEEP_ALIVE_SECONDS = 75

_log = logging.getLogger(__name__)


class _InjectedTruncationFilter(logging.Filter):
    """uvicorn reports a response that ended short of its Content-Length as an error; here that only
    happens when the truncation or lost-answer fault asked for it, so the line is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def _quiet_injected_truncation() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _InjectedTruncationFilter) for f in logger.filters):
        logger.addFilter(_InjectedTruncationFilter())


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine. Host names other than localhost
    count as reachable from elsewhere (what they resolve to is not checked)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard_exposure(config: EmulatorConfig, host: str) -> EmulatorConfig:
    """The config to serve on ``host``: off loopback, warn loudly and make sure it has an admin token."""
    if is_loopback(host):
        return config
    warning = (
        f"the CogVideoX emulator is bound to {host}, reachable from other machines: it serves fake videos and "
        f"accepts test keys; its admin API ({ADMIN_PREFIX}/...) requires the {ADMIN_TOKEN_HEADER} header"
    )
    _log.warning(warning)
    lines = [f"WARNING: {warning}"]
    if config.admin_token is None:
        config = replace(config, admin_token=secrets.token_urlsafe(24))
        lines.append(f"  admin token (generated, shown only now): {config.admin_token}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    return config


@dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator, as tests see it."""

    app: Starlette
    url_root: str  # "http://127.0.0.1:PORT"

    @property
    def emulator(self) -> Emulator:
        return self.app.state.emulator

    @property
    def base_url(self) -> str:
        """The API base a client is configured with, e.g. "http://127.0.0.1:PORT/api/paas/v4"."""
        return self.url_root + self.emulator.config.api_prefix

    @property
    def api_key(self) -> str:
        """The first configured key as ``id.secret``."""
        return self.emulator.config.keys[0].value

    @property
    def admin_headers(self) -> dict[str, str]:
        """What an admin request must send: the token when the admin API has one, else nothing."""
        token = self.emulator.config.admin_token
        return {ADMIN_TOKEN_HEADER: token} if token is not None else {}

    @property
    def faults(self) -> Faults:
        return self.emulator.faults

    def stats(self) -> dict[str, Any]:
        return self.emulator.stats()

    def reset(self) -> None:
        self.emulator.reset()


@contextmanager
def running_emulator(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[EmulatorHandle]:
    """Serve a new emulator from a background thread (port 0: a free port) until the block exits."""
    app = create_app(_guard_exposure(config or EmulatorConfig(), host))
    _quiet_injected_truncation()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            access_log=False,
            log_config=None,
            lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
    )
    thread = threading.Thread(target=server.run, name="cogvideo-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the CogVideoX emulator did not start on {host}:{port}")
            time.sleep(0.01)
        bound_port = server.servers[0].sockets[0].getsockname()[1]
        yield EmulatorHandle(app, f"http://{host}:{bound_port}")
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT)
        app.state.emulator.close()


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve in the foreground until interrupted (the ``cogvideo emulator`` command)."""
    app = create_app(_guard_exposure(config, host))
    _quiet_injected_truncation()
    try:
        uvicorn.run(app, host=host, port=port, access_log=False, lifespan="off", timeout_keep_alive=KEEP_ALIVE_SECONDS)
    finally:
        app.state.emulator.close()
