"""Request bodies as the routes read them: strict UTF-8 JSON, parsed with bounded nesting, validated by pydantic,
every failure a 4xx that names the problem and never echoes the input."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from raykd.serve.schemas import validation_detail

M = TypeVar("M", bound=BaseModel)
SECURED = {"security": [{"bearer": []}]}  # OpenAPI: the route needs the bearer token (raykd.serve.guard checks it)


def decode_json(body: bytes) -> Any:
    """400 for non-UTF-8, 422 for invalid JSON (pydantic-core's parser: lone surrogates and nesting past its
    recursion limit are errors, not crashes)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status_code=400, detail="request body is not valid UTF-8") from None
    try:
        return from_json(text)
    except ValueError as e:
        raise HTTPException(status_code=422, detail=[{"loc": ["body"], "msg": f"JSON decode error: {e}",
                                                      "type": "json_invalid"}]) from None


def validated(model: type[M], obj: Any) -> M:
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise HTTPException(status_code=422, detail=validation_detail(e)) from None


def json_body(body: bytes, model: type[M]) -> M:
    return validated(model, decode_json(body))


async def client_gone(request: Request, exc: Exception) -> Response:
    """Starlette raises ClientDisconnect when the client left before its body was read: nobody is left to
    answer, so the access log records 499 and nothing else is logged."""
    return Response(status_code=499)
