"""The scoring client against a real HTTP server on 127.0.0.1 that answers 503 + Retry-After."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from raykd.errors import RaykdError
from raykd.serve.client import ScoringClient


class Busy(BaseHTTPRequestHandler):
    """503 with `Retry-After: 1` for the first `busy` requests, then a score."""

    busy = 1
    seen: list[float] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        Busy.seen.append(time.monotonic())
        if len(Busy.seen) <= Busy.busy:
            body, status, extra = b'{"detail": "busy"}', 503, {"Retry-After": "1"}
        else:
            body, status, extra = json.dumps({"results": [{"task": "t", "prediction": "1"}]}).encode(), 200, {}
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(body)), **extra}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Busy.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_busy_endpoint_is_retried_after_its_retry_after(busy_server):
    Busy.busy = 1
    out = ScoringClient(busy_server).score([{"task": "t", "text": "x"}])
    assert out["results"][0]["prediction"] == "1"
    assert len(Busy.seen) == 2 and Busy.seen[1] - Busy.seen[0] >= 0.95  # waited as told, not at once


def test_an_endpoint_that_stays_busy_is_a_clear_error(busy_server):
    Busy.busy = 10
    with pytest.raises(RaykdError, match="HTTP 503: busy"):
        ScoringClient(busy_server, retries=1).score([{"task": "t", "text": "x"}])
    assert len(Busy.seen) == 2
