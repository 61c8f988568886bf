"""The gate in front of every route (an ASGI middleware): the token, then the body's size, before any body is read.

    request ──> path public? ──no──> token (401 / 400) ──> Content-Length over the route's limit? (413)
                                                      └──> while streaming: more bytes than the limit (413)

Public paths are the page, `/healthz` and the API schema; every other path, unknown ones included, needs the
token when the endpoint has one, so nothing learns what exists without it. A refusal is sent without reading
the body: the client's upload stops there and the connection closes. The policy comes from the replica that
runs this app (`ScoringDeployment.guard`), so `raykd serve` and the RayService enforce the same rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException
from starlette.responses import JSONResponse

from raykd.serve.auth import Refusal, check_credentials

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/", "/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
NO_BODY_BYTES = 1024  # routes that read no body (GET and unknown paths)


@dataclass(frozen=True)
class GuardPolicy:
    """What a replica lets in: the token's sha256 (None: no token) and the body limit of each route."""

    token_sha256: str | None
    body_limits: dict[str, int] = field(default_factory=dict)

    def limit(self, path: str) -> int:
        return self.body_limits.get(path, NO_BODY_BYTES)


def route_path(scope: Scope) -> str:
    """The path inside the application (Serve mounts it under its route prefix, given as root_path)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return path or "/"


def too_large(limit: int) -> str:
    return f"request body over {limit:,} bytes, the limit of this route"


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None | Refusal:
    """Content-Length as an int; None when absent (a chunked body); a Refusal when malformed or repeated."""
    values = [v for k, v in headers if k == b"content-length"]
    if not values:
        return None
    if len(set(values)) > 1 or not values[0].strip().isdigit():
        return Refusal(400, "malformed Content-Length header")
    return int(values[0])


class Guard:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]],
                 policy: Callable[[], GuardPolicy]):
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.policy()
        path = route_path(scope)
        headers = scope.get("headers", [])
        if policy.token_sha256 and path not in PUBLIC_PATHS:
            refusal = check_credentials([v for k, v in headers if k == b"authorization"], policy.token_sha256)
            if refusal is not None:
                await refuse(refusal, scope, receive, send,
                             {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None)
                return
        limit = policy.limit(path)
        length = declared_length(headers)
        if isinstance(length, Refusal):
            await refuse(length, scope, receive, send)
            return
        if length is not None and length > limit:
            await refuse(Refusal(413, too_large(limit)), scope, receive, send)
            return
        received = 0

        async def bounded() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # a chunked body (or one longer than it said): stop reading it here
                    raise HTTPException(status_code=413, detail=too_large(limit))
            return message

        await self.app(scope, bounded, send)


async def refuse(refusal: Refusal, scope: Scope, receive: Receive, send: Send,
                 headers: dict[str, str] | None = None) -> None:
    # Connection: close, since the body that may follow is not read.
    response = JSONResponse({"detail": refusal.detail}, status_code=refusal.status,
                            headers={**(headers or {}), "Connection": "close"})
    await response(scope, receive, send)
