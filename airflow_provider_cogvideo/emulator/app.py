"""The ASGI app: API routes, result downloads and the ``/_emulator/`` admin API.

Handler order mirrors a gateway in front of a service: injected delay, authentication, injected
error, then the request itself (and, for a submit that created its job, an injected answer fault).
Every API answer is JSON; every API error has the nested ``{"error": {"code", "message"}}`` form and
the status of the shared error table. Besides the video API, ``POST /chat/completions`` answers the
prompt writer's chat calls (:mod:`.chat`), through the same gate.

The admin API is open unless the config has an ``admin_token`` (the server helpers give it one when
they bind off loopback); then every admin request must carry it in :data:`ADMIN_TOKEN_HEADER`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial, wraps
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY
from airflow_provider_cogvideo.emulator.auth import authenticate
from airflow_provider_cogvideo.emulator.chat import chat_answer, validate_chat
from airflow_provider_cogvideo.emulator.config import ApiKey, EmulatorConfig
from airflow_provider_cogvideo.emulator.faults import Faults, Operation
from airflow_provider_cogvideo.emulator.files import UrlSigner, cdn_error, file_chunks, ranged_response
from airflow_provider_cogvideo.emulator.media import MediaStore, plan_media
from airflow_provider_cogvideo.emulator.payload import SyntheticPayload
from airflow_provider_cogvideo.emulator.state import TaskStore
from airflow_provider_cogvideo.emulator.validation import validate_submit
from airflow_provider_cogvideo.emulator.wire import (
    WireError,
    default_message,
    error_response,
    http_status_for,
    known_code,
)

VIDEO_PATH = "/files/video/{task_id}_0.mp4"
COVER_PATH = "/files/video_cover/{task_id}_cover_0.png"
ADMIN_PREFIX = "/_emulator"
ADMIN_TOKEN_HEADER = "X-Emulator-Admin-Token"

_CDN_CODES = {403: "AccessDenied", 404: "NoSuchKey", 429: "SlowDown", 500: "InternalError", 503: "ServiceUnavailable"}


@dataclass
class Emulator:
    """Everything one emulator holds: what the handlers, the admin API and the test handle share."""

    config: EmulatorConfig
    seed: int
    keys: dict[str, ApiKey]
    tasks: TaskStore
    faults: Faults
    media: MediaStore
    payload: SyntheticPayload | None
    signer: UrlSigner

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Emulator:
        seed = config.seed if config.seed is not None else secrets.randbits(32)
        return cls(
            config=config,
            seed=seed,
            keys={k.key_id: k for k in config.keys},
            tasks=TaskStore(seed, config.duration, config.jitter),
            faults=Faults(seed, config.faults),
            media=MediaStore(config.data_dir),
            payload=SyntheticPayload(seed, config.payload_bytes) if config.payload_bytes is not None else None,
            signer=UrlSigner(config.url_ttl),
        )

    def stats(self) -> dict[str, Any]:
        return {**self.tasks.stats(), "seed": self.seed, "faults": self.faults.current.to_dict()}

    def reset(self) -> None:
        """Forget every task and count; faults back to the start-up ones."""
        self.tasks.reset()
        self.faults.reset()

    def close(self) -> None:
        self.media.close()


def _emulator(request: Request) -> Emulator:
    return request.app.state.emulator


async def _gate(request: Request, op: Operation) -> ApiKey:
    """What every API request goes through: injected delay, auth, injected error."""
    emu = _emulator(request)
    delay = emu.faults.delay_for(op)
    if delay:
        await asyncio.sleep(delay)
    key = authenticate(request.headers.get("authorization"), emu.keys)
    code = emu.faults.error_for(op)
    if code is not None:
        raise WireError(code, f"{default_message(code)} (injected {op} fault)")
    return key


async def _json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise WireError("1210", "请求参数错误。The request body is not valid JSON") from None


def _refuse_blocked(emu: Emulator, text: str | None) -> None:
    """The content filter: a request holding a blocked word is refused (1301), as the service does."""
    if emu.faults.blocked(text):
        raise WireError("1301", "系统检测到输入或生成内容可能包含不安全或敏感内容。Unsafe or sensitive content")


async def submit(request: Request) -> Response:
    emu = _emulator(request)
    key = await _gate(request, "submit")
    req = validate_submit(await _json_body(request))
    _refuse_blocked(emu, req.prompt)
    limit = None if emu.config.unlimited else TIER_CONCURRENCY[key.tier]
    fault = emu.faults.current
    failure = (fault.fail_code, fault.fail_reason) if fault.fail_reason else None
    task = emu.tasks.submit(
        key.key_id,
        req.caps.name,
        limit,
        req.request_id,
        emu.faults.should_fail(),
        failure,
        plan_media(req, emu.config.media_max_side),
    )
    if emu.config.render_ahead and not task.fails:
        halfway = max(0.0, task.finish_at - time.monotonic()) / 2
        emu.media.render_later(task.id, task.media, halfway, video=emu.payload is None)
    answer: dict[str, Any] = {
        "model": task.model,
        "id": task.id,
        "request_id": task.request_id,
        "task_status": "PROCESSING",
    }
    spoil = emu.faults.answer_fault(req.prompt)
    if spoil is None:
        return JSONResponse(answer)
    emu.tasks.spoil_answer(spoil)
    if spoil == "created_error":  # worded like the refusing submit fault: a client cannot tell them apart
        code = emu.faults.created_error_code()
        return error_response(WireError(code, f"{default_message(code)} (injected submit fault)"))
    if spoil == "lost":
        return _LostAnswer(answer)
    answer["id"] = emu.faults.malformed_id(task.id)
    return JSONResponse(answer)


async def chat(request: Request) -> Response:
    """``POST /chat/completions``: same account and gate as the video API; the answer is made up from
    the request alone (see :mod:`.chat`), the same in every emulator whatever its seed."""
    emu = _emulator(request)
    await _gate(request, "chat")
    req = validate_chat(await _json_body(request))
    _refuse_blocked(emu, req.all_text)
    answer = chat_answer(req, int(time.time()))
    emu.tasks.count_chat(answer["usage"]["total_tokens"])
    return JSONResponse(answer)


class _LostAnswer(JSONResponse):
    """Sends the status line and headers (Content-Length included) but no body, then returns without
    completing the response, so the server closes the connection: the answer of a created job lost
    on the way. httpx raises RemoteProtocolError; the client never learns the id."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})


async def query(request: Request) -> Response:
    emu = _emulator(request)
    key = await _gate(request, "poll")
    task = emu.tasks.get(request.path_params["task_id"])
    if task is None or task.key_id != key.key_id:  # another account's task is as unknown as a made-up id
        raise WireError("1214", "id 参数非法。Task id not found", status=emu.config.unknown_task_http_status)
    status = task.status()
    answer: dict[str, Any] = {"model": task.model, "id": task.id, "request_id": task.request_id, "task_status": status}
    if status == "SUCCESS":
        root = str(request.base_url).rstrip("/")
        video, cover = VIDEO_PATH.format(task_id=task.id), COVER_PATH.format(task_id=task.id)
        answer["video_result"] = [
            {"url": root + video + emu.signer.query(video), "cover_image_url": root + cover + emu.signer.query(cover)}
        ]
    elif status == "FAIL" and task.failure:
        answer["error"] = {"code": task.failure[0], "message": task.failure[1]}
    emu.tasks.count("polls")
    return JSONResponse(answer)


async def download_video(request: Request) -> Response:
    return await _download(request, "video")


async def download_cover(request: Request) -> Response:
    return await _download(request, "cover")


async def _download(request: Request, kind: str) -> Response:
    emu = _emulator(request)
    delay = emu.faults.delay_for("download")
    if delay:
        await asyncio.sleep(delay)
    code = emu.faults.error_for("download")
    if code is not None:
        return _cdn_reject(emu, http_status_for(code), code, f"{default_message(code)} (injected download fault)")
    task = emu.tasks.get(request.path_params["task_id"])
    if task is None or task.status() != "SUCCESS":
        return _cdn_reject(emu, 404, "404", "The specified key does not exist.")
    problem = emu.signer.problem(request.url.path, request.query_params)
    if problem:
        return _cdn_reject(emu, 403, "403", problem)
    if kind == "video" and emu.payload is not None:
        size, chunks = emu.payload.size, partial(emu.payload.chunks, task.id)
    else:
        render = emu.media.video if kind == "video" else emu.media.cover
        path = await anyio.to_thread.run_sync(render, task.id, task.media)
        size, chunks = path.stat().st_size, file_chunks(path)
    if request.method == "GET":
        emu.tasks.count("downloads")
    truncate = emu.faults.truncate_at if kind == "video" else _never
    media_type = "video/mp4" if kind == "video" else "image/png"
    return ranged_response(request, size, media_type, chunks, truncate)


def _never(_length: int) -> None:
    return None


def _cdn_reject(emu: Emulator, status: int, code: str, message: str) -> Response:
    emu.tasks.reject(code)
    response = cdn_error(status, _CDN_CODES.get(status, "Error"), message)
    retry_after = emu.faults.current.retry_after
    if status == 429 and retry_after is not None:
        response.headers["Retry-After"] = f"{retry_after:g}"
    return response


Handler = Callable[[Request], Awaitable[Response]]


def _admin(handler: Handler) -> Handler:
    """Guard an admin route with the config's ``admin_token``, when it has one."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        token = _emulator(request).config.admin_token
        sent = request.headers.get(ADMIN_TOKEN_HEADER, "")
        if token is not None and not hmac.compare_digest(sent.encode(), token.encode()):
            # Answered directly: an admin mistake is not an API rejection.
            return error_response(WireError("1000", f"Admin API: missing or wrong {ADMIN_TOKEN_HEADER} header"))
        return await handler(request)

    return guarded


async def admin_stats(request: Request) -> Response:
    return JSONResponse(_emulator(request).stats())


async def admin_reset(request: Request) -> Response:
    emu = _emulator(request)
    emu.reset()
    return JSONResponse(emu.stats())


async def admin_faults(request: Request) -> Response:
    """GET: the current faults. PUT: replace them. PATCH: change some of them."""
    emu = _emulator(request)
    if request.method in ("PUT", "PATCH"):
        try:
            settings = json.loads(await request.body() or b"{}")
            if not isinstance(settings, dict):
                raise ValueError("a JSON object of fault settings is expected")
            apply = emu.faults.set if request.method == "PUT" else emu.faults.update
            apply(**settings)
        except ValueError as exc:  # answered directly: admin mistakes are not API rejections
            return error_response(WireError("1210", f"Bad fault settings: {exc}"))
    return JSONResponse(emu.faults.current.to_dict())


async def _on_wire_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WireError)
    emu = _emulator(request)
    emu.tasks.reject(exc.code)
    retry_after = emu.faults.current.retry_after
    if exc.status == 429 and retry_after is not None:
        exc.headers.setdefault("Retry-After", f"{retry_after:g}")
    return error_response(exc)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404) and wrong methods (405), in the API's error form."""
    assert isinstance(exc, HTTPException)
    code = str(exc.status_code) if known_code(str(exc.status_code)) else "500"
    return await _on_wire_error(request, WireError(code, f"{exc.detail}: {request.method} {request.url.path}"))


async def _on_crash(request: Request, exc: Exception) -> Response:
    return error_response(WireError("500", "Internal server error (emulator bug)"))


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """A new emulator (its own tasks, faults and media cache) as a Starlette app.

    The emulator object is ``app.state.emulator``; call its ``close()`` when done (the server
    helpers do) to remove the temporary media directory.
    """
    config = config or EmulatorConfig()
    p = config.api_prefix
    routes = [
        *(Route(p + path, submit, methods=["POST"]) for path in ("/videos/generations", "/videos/generations/")),
        *(Route(p + path, query, methods=["GET"]) for path in ("/async-result/{task_id}", "/async-result/{task_id}/")),
        *(Route(p + path, chat, methods=["POST"]) for path in ("/chat/completions", "/chat/completions/")),
        Route(VIDEO_PATH, download_video, methods=["GET"]),
        Route(COVER_PATH, download_cover, methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/stats", _admin(admin_stats), methods=["GET"]),
        Route(f"{ADMIN_PREFIX}/reset", _admin(admin_reset), methods=["POST"]),
        Route(f"{ADMIN_PREFIX}/faults", _admin(admin_faults), methods=["GET", "PUT", "PATCH"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={WireError: _on_wire_error, HTTPException: _on_http_error, Exception: _on_crash},
    )
    # An unknown path is a 404 in the API's error form, never a redirect to the slash variant.
    app.router.redirect_slashes = False
    app.state.emulator = Emulator.from_config(config)
    return app
