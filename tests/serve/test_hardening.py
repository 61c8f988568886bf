"""Black-box hardening: a running app behind a token, sent what careless or hostile clients send, over real HTTP on
127.0.0.1 (raw sockets where a client library would tidy the request up). Each gets the 4xx it names, never a
500, and the app answers afterwards."""

import contextlib
import io
import json
import re
import socket
import threading
import time
from urllib.parse import unquote

import pandas as pd
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from raykd.cli import main
from raykd.serve.config import ServeConfig
from raykd.serve.launch import build_app

TOKEN = "hardening-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POST_ROUTES = ("/v1/score", "/v1/score/file", "/v1/simulate")
MB = 1_000_000


@pytest.fixture(scope="module")
def hard(ray_session, asap1_student, endpoint, monkeypatch_module):
    """The ASAP-SAS set 1 student at /hard, behind TOKEN, with default body limits (8 MB JSON, 20 MB files)."""
    from ray import serve

    monkeypatch_module.setenv("RAYKD_SERVE_TOKEN", TOKEN + "\n")  # a Secret made with --from-file: stripped
    serve.run(build_app(ServeConfig(model=str(asap1_student[0]), poll_interval_s=0, max_responses=50)),
              name="hard", route_prefix="/hard")
    host, port = endpoint.removeprefix("http://").split(":")
    yield f"{endpoint}/hard", (host, int(port))
    serve.delete("hard")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def raw(address, head: str, body: bytes = b"", timeout: float = 10) -> bytes:
    """Send a request's head and `body` on a fresh socket; the first response. The socket is not shut down, so a
    server that waited for more of a body than was sent would hang here (and time out the test)."""
    with socket.create_connection(address, timeout=timeout) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused midway: the answer is there
            s.sendall(head.encode("latin-1") + body)
        out = b""
        while b"\r\n\r\n" not in out or len(out) < _response_length(out):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def _response_length(out: bytes) -> int:
    """Bytes of the whole response once its head has arrived (head + Content-Length)."""
    head, _, _ = out.partition(b"\r\n\r\n")
    lengths = re.findall(rb"(?im)^content-length:\s*(\d+)", head)
    return len(head) + 4 + (int(lengths[0]) if lengths else 0)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def still_answers(url: str) -> None:
    assert requests.get(f"{url}/healthz", timeout=30).json()["status"] == "ok"
    r = requests.post(f"{url}/v1/score", json={"task": "asap_1", "text": "vinegar"}, headers=AUTH, timeout=30)
    assert r.status_code == 200


@pytest.mark.parametrize("route", POST_ROUTES)
def test_a_large_body_without_a_token_is_refused_before_it_is_read(hard, route):
    url, address = hard
    t0 = time.perf_counter()
    # 50 MB announced, 64 KB sent: the answer comes without the server waiting for (or reading) the rest.
    out = raw(address, f"POST /hard{route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {50 * MB}\r\n\r\n", b"[" * 65536)
    assert status_of(out) == 401 and b"www-authenticate: bearer" in out.lower()
    assert time.perf_counter() - t0 < 5
    still_answers(url)


@pytest.mark.parametrize("route,limit", [("/v1/score", 8 * MB), ("/v1/score/file", 20 * MB), ("/v1/simulate", 8 * MB)])
def test_a_body_over_the_routes_limit_is_refused_from_its_content_length(hard, route, limit):
    url, address = hard
    out = raw(address, f"POST /hard{route}?name=a.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                       f"Content-Length: {limit + 1}\r\n\r\n", b"x" * 1024)
    assert status_of(out) == 413 and f"{limit:,} bytes".encode() in out
    still_answers(url)


def test_a_25_mb_upload_is_413_declared_or_streamed(hard):
    url, address = hard
    chunk = b"1,vinegar " * 10_000 + b"\n"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(250)) + b"0\r\n\r\n"
    out = raw(address, f"POST /hard/v1/score/file?name=big.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                       "\r\nTransfer-Encoding: chunked\r\n\r\n", chunked)  # no Content-Length: counted as it streams
    assert status_of(out) == 413 and b"20,000,000 bytes" in out
    out = raw(address, f"POST /hard/v1/score/file?name=big.csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                       f"\r\nContent-Length: {25 * MB}\r\n\r\n", b"id,text\n")
    assert status_of(out) == 413
    still_answers(url)


@pytest.mark.parametrize("head,body,status", [
    ("Content-Length: abc", b"{}", 400),
    ("Content-Length: 5\r\nContent-Length: 7", b"{}", 400),
    ("Content-Length: -3", b"{}", 400),
    # fewer bytes announced than sent: the 5 bytes are invalid JSON, the rest never becomes a request
    ("Content-Length: 5", b'{"task": "asap_1", "text": "vinegar"}', 422),
])
def test_a_false_content_length_is_a_4xx(hard, head, body, status):
    url, address = hard
    out = raw(address, f"POST /hard/v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                       f"Content-Type: application/json\r\n{head}\r\n\r\n", body)
    assert status_of(out) == status
    still_answers(url)


def class_file(ds, rows: int) -> bytes:
    test = ds.frame[ds.frame["split"] != "unlabelled"]
    texts = (test["text"].tolist() * (rows // len(test) + 1))[:rows]
    return pd.DataFrame({"id": [f"r{i}" for i in range(rows)], "text": texts}).to_csv(index=False).encode()


def test_two_uploads_at_once_one_waits_its_turn(hard, asap1_student):
    url, _ = hard
    big = class_file(asap1_student[1], 30_000)
    results, start = [], threading.Barrier(2)

    def upload() -> None:
        start.wait()
        r = requests.post(f"{url}/v1/score/file", params={"name": "class.csv"}, data=big, headers=AUTH, timeout=120)
        results.append((r.status_code, r.headers.get("retry-after")))

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200, 429], results
    assert all(int(ra) >= 1 for s, ra in results if s == 429)
    still_answers(url)


@pytest.mark.parametrize("name,data,needle", [
    ("keys.jsonl", b"\n".join(json.dumps({f"k{i}": 1}).encode() for i in range(30_000)), "more than 32 distinct keys"),
    ("deep.jsonl", b"[" * 100_000, "recursion limit exceeded"),
    ("nested.jsonl", b'{"id": "1", "text": {"a": 1}}', "nested value"),
    ("surrogate.jsonl", b'{"id": "\\ud800", "text": "vinegar"}', "invalid JSON"),
    ("long-id.csv", b"id,text\n" + b"x" * 10_000 + b",vinegar\n", "column 'id' has 10,000 characters; at most 200"),
    ("long-text.csv", b"id,text\n1," + b"v" * 6000 + b"\n", "column 'text' has 6,000 characters; at most 5,000"),
    ("wide.csv", b",".join(b"c%d" % i for i in range(40)) + b"\n", "40 columns; at most 32"),
    ("fields.csv", b"id,text\n1,a,b\n", "row 2: expected 2 fields, saw 3"),
    ("latin1.csv", b"id,text\n1,caf\xe9\n", "not valid UTF-8"),
    ("scores.parquet", b"PAR1....PAR1", "not .parquet"),
])
def test_bad_uploads_are_4xx_naming_the_problem(hard, name, data, needle):
    url, _ = hard
    r = requests.post(f"{url}/v1/score/file", params={"name": name}, data=data, headers=AUTH, timeout=60)
    assert r.status_code in (415, 422) and needle in r.json()["detail"], (r.status_code, r.text[:300])
    still_answers(url)


def test_an_upload_over_the_row_cap_stops_parsing_with_413(ray_session, asap1_student, endpoint, hard):
    from ray import serve

    url = f"{endpoint}/capped"
    serve.run(build_app(ServeConfig(model=str(asap1_student[0]), poll_interval_s=0, max_file_responses=100)),
              name="capped", route_prefix="/capped")
    try:
        r = requests.post(f"{url}/v1/score/file", params={"name": "c.csv"}, data=class_file(asap1_student[1], 101),
                          headers=AUTH, timeout=60)
        assert r.status_code == 413 and "more than 100 responses" in r.json()["detail"]
        ok = requests.post(f"{url}/v1/score/file", params={"name": "c.csv"}, data=class_file(asap1_student[1], 100),
                           headers=AUTH, timeout=60)
        assert ok.status_code == 200
    finally:
        serve.delete("capped")


@pytest.mark.parametrize("route,body,status,needle", [
    ("/v1/score", b"[" * 100_000, 422, "recursion limit exceeded"),
    ("/v1/score", b'{"id": "\\ud800", "task": "asap_1", "text": "x"}', 422, "JSON decode error"),
    ("/v1/score", json.dumps({"id": "x" * 10_000, "task": "asap_1", "text": "x"}).encode(), 422, "at most 200"),
    ("/v1/simulate", b"[" * 100_000, 404, "no simulator"),  # no simulator here: refused before the body is read
])
def test_hostile_json_is_a_4xx(hard, route, body, status, needle):
    url, _ = hard
    r = requests.post(f"{url}{route}", data=body, headers={**AUTH, "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == status and needle in r.text
    still_answers(url)


def test_a_non_latin1_file_name_comes_back_per_rfc_6266(hard, asap1_student):
    url, _ = hard
    r = requests.post(f"{url}/v1/score/file", params={"name": "作文 (Klasse 7ä).csv"}, headers=AUTH, timeout=60,
                      data=class_file(asap1_student[1], 3))
    assert r.status_code == 200
    disposition = r.headers["content-disposition"]
    assert 'filename="Klasse_7a.scored.csv"' in disposition
    (encoded,) = re.findall(r"filename\*=UTF-8''(\S+)", disposition)
    assert unquote(encoded) == "作文 (Klasse 7ä).scored.csv"
    for hostile in ("a\r\nSet-Cookie: x=1.csv", "../../etc/passwd.csv", "\u202eevil.csv"):
        r = requests.post(f"{url}/v1/score/file", params={"name": hostile}, headers=AUTH, timeout=60,
                          data=class_file(asap1_student[1], 2))
        assert r.status_code == 200 and "set-cookie" not in r.headers and "/" not in r.headers["content-disposition"]


@pytest.mark.parametrize("authorization,status", [
    (f"Bearer {TOKEN} ", 200),  # trailing space: HTTP strips it from the header value
    (f"bearer {TOKEN}", 200),  # the scheme is case-insensitive (RFC 7235)
    (f"Bearer  {TOKEN}", 200),
    (f"Bearer {TOKEN}x", 401),
    (f"Bearer {TOKEN[:-1]}", 401),
    ("Bearer", 401),
    ("Basic aGFyZGVuaW5nOnRva2Vu", 401),
    (TOKEN, 401),
])
def test_token_variants(hard, authorization, status):
    url, _ = hard
    r = requests.post(f"{url}/v1/score", json={"task": "asap_1", "text": "vinegar"},
                      headers={"Authorization": authorization}, timeout=30)
    assert r.status_code == status, r.text


def test_two_authorization_headers_are_refused(hard):
    url, address = hard
    body = b'{"task": "asap_1", "text": "vinegar"}'
    for second in (f"Bearer {TOKEN}", "Bearer wrong"):
        out = raw(address, f"POST /hard/v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                           f"Authorization: {second}\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(body)}\r\n\r\n", body)
        assert status_of(out) == 400 and b"one Authorization header" in out
    assert requests.get(f"{url}/v1/tasks", timeout=30).status_code == 401  # reads need the token too
    assert requests.get(f"{url}/no/such/route", timeout=30).status_code == 401  # nothing learnt without it
    assert requests.get(f"{url}/", timeout=30).status_code == 200  # the page itself is public


FORMULAS = ['=HYPERLINK("http://x";"y")', "+SUM(A1)", "-2+3", "@cmd", "=1+1"]


def test_formula_looking_ids_come_back_neutralised(hard, asap1_student, tmp_path):
    url, _ = hard
    ids = [*FORMULAS, "-7", "plain"]
    frame = pd.DataFrame({"id": ids, "text": ["vinegar and containers"] * len(ids)})
    frame.to_csv(tmp_path / "in.csv", index=False)
    r = requests.post(f"{url}/v1/score/file", params={"name": "in.csv"}, data=(tmp_path / "in.csv").read_bytes(),
                      headers=AUTH, timeout=60)
    served = pd.read_csv(io.StringIO(r.text), dtype=str)
    expected = ["'" + f for f in FORMULAS] + ["-7", "plain"]  # a plain number is a number, never run
    assert served["id"].tolist() == expected
    assert main(["predict", "--model", str(asap1_student[0]), "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    offline = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert offline["id"].tolist() == expected
    pd.testing.assert_frame_equal(served, offline)
    assert main(["predict", "--model", str(asap1_student[0]), "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.parquet")]) == 0
    assert pd.read_parquet(tmp_path / "out.parquet")["id"].tolist() == ids  # machine formats keep the values


@pytest.mark.parametrize("app,with_token", [("hard", True), ("hard", False), ("open", False)],
                         ids=["token", "no-token", "endpoint-without-a-token"])
def test_fuzz_every_route_no_5xx(hard, endpoint, app, with_token):
    """Schemathesis cases from the served OpenAPI schema (bounded per operation), on the app behind a token with
    and without it, and on the suite's endpoint that has none: never a 5xx."""
    url = hard[0] if app == "hard" else endpoint
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    calls = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(timeout=30, headers=AUTH if with_token else None)
            calls.append(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text[:300]}"

        check()
    assert len(calls) >= 60 and any(400 <= c < 500 for c in calls)
    assert any(c == 200 for c in calls) if app == "open" or with_token else 401 in calls
    still_answers(hard[0])


def test_nothing_listens_beyond_loopback_and_haproxys_admin_socket_is_private(hard):
    """The endpoint binds 127.0.0.1, and so do HAProxy's stats page and exporter (raykd.runtime); its admin
    socket sits in a folder only this user can enter."""
    import os
    import stat

    import psutil

    haproxy = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "haproxy"]
    assert haproxy
    listening = [c.laddr for p in haproxy for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 3 and {a.ip for a in listening} == {"127.0.0.1"}, listening
    socket_path = os.environ["RAY_SERVE_HAPROXY_SOCKET_PATH"]
    folder = os.path.dirname(socket_path)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700 and os.stat(folder).st_uid == os.getuid()
