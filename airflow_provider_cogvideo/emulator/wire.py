"""The error wire format: ``{"error": {"code": "<digits>", "message": "..."}}`` with the HTTP status
taken from the shared error table, so the emulator and the hook agree on what each code means."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from airflow_provider_cogvideo.errors import API_ERROR_CODES

# Codes the emulator sends that the business-code table does not list: a plain HTTP status whose
# code is the status itself (the real gateway's 5xx and routing errors carry no business code).
# 502 and 504 are what a gateway answers when the service behind it did not (the job may exist).
_HTTP_ONLY_CODES = {"404": 404, "405": 405, "502": 502, "503": 503, "504": 504}

INVALID_FIELD_ZH = "参数非法。请检查文档"


def http_status_for(code: str) -> int:
    """HTTP status for an error code (the table's, or the status itself for HTTP-only codes)."""
    row = API_ERROR_CODES.get(code)
    if row is not None:
        return row.http_status
    return _HTTP_ONLY_CODES[code]


def default_message(code: str) -> str:
    row = API_ERROR_CODES.get(code)
    return row.message if row else f"HTTP {http_status_for(code)}"


def known_code(code: str) -> bool:
    return code in API_ERROR_CODES or code in _HTTP_ONLY_CODES


class WireError(Exception):
    """An error answer. Raised anywhere in a handler, turned into the nested JSON body by the app."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self.code = code
        self.status = status or http_status_for(code)
        self.message = message or default_message(code)
        self.headers = dict(headers or {})
        super().__init__(f"{code}: {self.message}")


def invalid(field: str, detail: str) -> WireError:
    """1214 for one field, in the observed Chinese form followed by an English explanation."""
    return WireError("1214", f"{field} {INVALID_FIELD_ZH}。{field} is invalid: {detail}")


def missing(field: str, detail: str) -> WireError:
    """1213: a required field was not received."""
    return WireError("1213", f"{field} 参数未收到。{field} is required: {detail}")


def error_response(error: WireError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}}, status_code=error.status, headers=error.headers
    )
