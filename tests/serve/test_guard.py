"""The guard in front of every route, driven as an ASGI app (no Ray, no sockets): it refuses before anything reads
the body, and counts a streamed body against the route's limit."""

import asyncio

import pytest
from fastapi import FastAPI, Request

from raykd.serve.auth import check_credentials, token_digest
from raykd.serve.guard import Guard, GuardPolicy

TOKEN = "a-token-of-sixteen+"
POLICY = GuardPolicy(token_digest(TOKEN), {"/v1/score": 100})
inner = FastAPI()


@inner.post("/v1/score")
async def echo(request: Request) -> dict:
    return {"bytes": len(await request.body())}


@inner.get("/healthz")
async def health() -> dict:
    return {"status": "ok"}


def call(path: str, headers: dict[str, str], chunks: list[bytes], method: str = "POST", root: str = ""):
    """Run one request through Guard(inner); (status, body, how many body chunks were read)."""
    app = Guard(inner, policy=lambda: POLICY)
    read = []

    async def receive():
        if len(read) < len(chunks):
            read.append(chunks[len(read)])
            return {"type": "http.request", "body": read[-1], "more_body": len(read) < len(chunks)}
        return {"type": "http.disconnect"}

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": root + path, "root_path": root, "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()], "http_version": "1.1",
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, len(read)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_no_token_is_refused_before_the_body_is_read():
    status, body, read = call("/v1/score", {"Content-Length": "50000000"}, [b"x" * 50])
    assert (status, read) == (401, 0) and b"missing bearer token" in body


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read():
    status, body, read = call("/v1/score", {**AUTH, "Content-Length": "101"}, [b"x" * 101])
    assert (status, read) == (413, 0) and b"100 bytes" in body


def test_a_streamed_body_is_counted_while_it_arrives():
    status, _, read = call("/v1/score", AUTH, [b"x" * 60, b"x" * 60, b"x" * 60])
    assert (status, read) == (413, 2)  # stopped at the chunk that crossed the limit
    assert call("/v1/score", AUTH, [b"x" * 50, b"x" * 50])[:2] == (200, b'{"bytes":100}')


def test_public_paths_need_no_token_and_unknown_ones_do():
    assert call("/healthz", {}, [], method="GET")[0] == 200
    assert call("/nowhere", {}, [], method="GET")[0] == 401
    assert call("/nowhere", AUTH, [], method="GET")[0] == 404
    assert call("/healthz", {}, [], method="GET", root="/prefix")[0] == 200  # under a Serve route prefix
    assert call("/v1/score", {}, [], root="/prefix")[0] == 401


@pytest.mark.parametrize("headers,status", [
    ([f"Bearer {TOKEN}"], None), ([f"bearer {TOKEN}"], None), ([f"Bearer {TOKEN} "], None),
    ([f"Bearer {TOKEN}", f"Bearer {TOKEN}"], 400), ([], 401), (["Bearer"], 401), (["Basic dXNlcjpwYXNz"], 401),
    ([f"Bearer {TOKEN}x"], 401), ([TOKEN], 401), (["Bearer \xff\xfe"], 401)])
def test_credentials(headers, status):
    refusal = check_credentials([h.encode("latin-1") for h in headers], token_digest(TOKEN))
    assert (refusal.status if refusal else None) == status


def test_malformed_lengths_are_400():
    for length in ("abc", "-1", "1e3"):
        assert call("/v1/score", {**AUTH, "Content-Length": length}, [b"{}"])[0] == 400
