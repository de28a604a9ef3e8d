"""Errors in OpenAI's shape, with the status code that says whose mistake it was.

Every error answer is `{"error": {"message", "type", "param", "code"}}`, as OpenAI's API (and vLLM's
server) send it, so clients raise their usual exceptions (`openai.BadRequestError`, ...):

    400 invalid_request_error   bad JSON, a wrong type, a value out of range, an unknown field, a
                                prompt too long for the context, characters the tokenizer lacks,
                                an illegal game position
    404 invalid_request_error   an unknown model (code model_not_found) or game, an unknown route
    405 invalid_request_error   a route called with the wrong method
    413 invalid_request_error   a body over the size limit
    503 server_error            too many requests waiting
    500 server_error            a bug of the server's own (never a malformed request)

Pydantic's 422 for a body that fails validation becomes a 400 naming the field, what was expected
and what was given.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("alphaloop.serve")

# What a field of a union type expects, for the message when a value fits none of its members.
EXPECTED = {
    "stop": "a string or a list of strings",
    "prompt": "a string, a list of strings, a list of token ids or a list of lists of token ids",
    "content": "a string or a list of text parts ({'type': 'text', 'text': ...})",
    "max_tokens": "an integer >= 1 or null",
    "seed": "an integer or null",
}


class APIError(Exception):
    """An error to answer with: HTTP status, message, OpenAI type, the parameter at fault, a code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or ("server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def _shown(value) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list, str, int, float, bool, type(None))) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field_path(loc: tuple) -> tuple[str, bool]:
    """The parameter a pydantic error location names (messages.0.content), and whether the location
    went through a union member (a part like 'list[str]', which is a type, not a field)."""
    parts, through_union = [], False
    for part in loc:
        if part == "body" and not parts:
            continue
        if isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "dict", "list")):
            through_union = True
            break
        if isinstance(part, str) and part.startswith("function-"):
            continue
        parts.append(str(part))
    return ".".join(parts), through_union


def validation_error(exc: RequestValidationError) -> APIError:
    """The first problem of a failed validation as one 400, in words a person can act on."""
    errors = exc.errors()
    if not errors:
        return APIError(400, "the request body is not valid")
    first = errors[0]
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return APIError(400, f"the request body is not valid JSON ({detail})" if detail else
                        "the request body is not valid JSON")
    param, through_union = _field_path(tuple(first.get("loc", ())))
    if kind == "missing" and param in ("", "body"):
        return APIError(400, "the request needs a JSON object body")
    if kind in ("model_attributes_type", "dict_type", "model_type") and param in ("", "body"):
        return APIError(400, f"the request body must be a JSON object, got {_shown(first.get('input'))}")
    message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    if not param:  # a check across fields: its message starts with the field it is about
        head = message.split(":", 1)[0]
        return APIError(400, message, param=head if head.isidentifier() else None)
    leaf = param.rsplit(".", 1)[-1]
    if kind == "extra_forbidden":
        return APIError(400, f"{param}: unrecognized request argument (this server does not know it)", param=param)
    if kind == "missing":
        return APIError(400, f"{param}: required", param=param)
    if through_union:
        expected = EXPECTED.get(leaf, "a value of another type")
        return APIError(400, f"{param}: expected {expected}, got {_shown(first.get('input'))}", param=param)
    return APIError(400, f"{param}: {message[:1].lower() + message[1:]}, got {_shown(first.get('input'))}", param=param)


def install(app: FastAPI) -> None:
    """Answer every error in OpenAI's shape."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error = APIError(404, f"no route {request.method} {request.url.path}; see GET /v1/models and /docs")
        elif exc.status_code == 405:
            error = APIError(405, f"{request.url.path} does not take {request.method}")
        else:
            error = APIError(exc.status_code, str(exc.detail))
        return JSONResponse(error.body(), status_code=error.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return APIError(500, f"internal error: {type(exc).__name__}: {exc}").response()
