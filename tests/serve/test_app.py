"""The scoring endpoint over real HTTP on 127.0.0.1: answers, errors, auth, fuzzing, champion updates."""

import io
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests

from raykd.cli import main
from raykd.serve.config import ServeConfig
from raykd.serve.launch import build_app


def asap_tsv(ds, path, n=30):
    test = ds.frame[ds.frame["split"] == "test"].head(n)
    pd.DataFrame({"Id": test["id"], "EssaySet": 1, "EssayText": test["text"], "Score1": test["y"].astype(int)}).to_csv(
        path, sep="\t", index=False)
    return test


def test_curl_and_score_client_equal_offline_predict(endpoint, asap1_student, tmp_path):
    model_dir, ds = asap1_student
    test = asap_tsv(ds, tmp_path / "in.tsv")
    assert main(["predict", "--model", str(model_dir), "--input", str(tmp_path / "in.tsv"),
                 "--output", str(tmp_path / "offline.csv")]) == 0
    offline = pd.read_csv(tmp_path / "offline.csv", dtype={"id": str, "prediction": str})

    assert main(["score", str(tmp_path / "in.tsv"), "--url", endpoint, "--output", str(tmp_path / "served.csv"),
                 "--batch-size", "7"]) == 0
    served = pd.read_csv(tmp_path / "served.csv", dtype={"id": str, "prediction": str})
    pd.testing.assert_frame_equal(served, offline, check_exact=False, atol=1e-5)

    body = json.dumps({"responses": [{"id": test["id"].iloc[0], "task": "asap_1", "text": test["text"].iloc[0]}]})
    out = subprocess.run(["curl", "-sS", "-X", "POST", f"{endpoint}/v1/score", "-H", "content-type: application/json",
                          "-d", body], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)["results"][0]
    assert result["prediction"] == offline["prediction"].iloc[0]
    assert result["probabilities"]["2"] == pytest.approx(offline["p_2"].iloc[0], abs=1e-5)
    assert json.loads(out)["model"]["kind"] == "student"


def test_tasks_and_health(endpoint):
    tasks = requests.get(f"{endpoint}/v1/tasks", timeout=30).json()
    assert tasks["tasks"] == [{"name": "asap_1", "kind": "multiclass", "labels": ["0", "1", "2", "3"],
                               "ordinal": True, "score_range": [0, 3], "low": None, "high": None, "step": None}]
    assert requests.get(f"{endpoint}/healthz", timeout=30).json()["status"] == "ok"
    assert "/v1/score" in requests.get(f"{endpoint}/openapi.json", timeout=30).json()["paths"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"task": "asap_9", "text": "vinegar"}, 422, "unknown task 'asap_9'"),
        ({"task": "asap_1", "text": ""}, 422, "empty text"),
        ({"task": "asap_1", "text": "   \n\t "}, 422, "empty text"),
        ({"task": "asap_1", "text": "x" * 2001}, 422, "at most 2000"),
        ({"responses": [{"task": "asap_1", "text": "a"}] * 51}, 413, "at most 50"),
        ({"responses": []}, 422, "at least 1"),
        ({"task": "asap_1", "text": 42}, 422, "valid string"),
        ({"task": "asap_1", "text": "ok", "grade": 7}, 422, "Extra inputs"),
        (b'{"task": "asap_1", "text": ', 422, "JSON decode error"),
        (b'{"task": "asap_1", "text": "caf\xe9"}', 400, "not valid UTF-8"),
    ],
)
def test_bad_requests_get_4xx_not_crashes(endpoint, body, status, needle):
    if isinstance(body, bytes):
        r = requests.post(f"{endpoint}/v1/score", data=body, headers={"content-type": "application/json"}, timeout=30)
    else:
        r = requests.post(f"{endpoint}/v1/score", json=body, timeout=30)
    assert r.status_code == status
    assert needle in json.dumps(r.json())
    if isinstance(body, dict) and isinstance(body.get("text"), str) and len(body["text"]) > 5:
        assert body["text"] not in r.text  # student text is never echoed back in errors
    assert requests.get(f"{endpoint}/healthz", timeout=30).status_code == 200


def test_bearer_token(ray_session, asap1_student, endpoint, monkeypatch):
    from ray import serve

    monkeypatch.setenv("RAYKD_SERVE_TOKEN", "s3cret-token-0123456789")
    serve.run(build_app(ServeConfig(model=str(asap1_student[0]), poll_interval_s=0)), name="secure",
              route_prefix="/secure")
    url = f"{endpoint}/secure"
    payload = {"task": "asap_1", "text": "how much vinegar"}
    assert requests.post(f"{url}/v1/score", json=payload, timeout=30).status_code == 401
    bad = {"Authorization": "Bearer wrong"}
    assert requests.post(f"{url}/v1/score", json=payload, headers=bad, timeout=30).status_code == 401
    ok = {"Authorization": "Bearer s3cret-token-0123456789"}
    assert requests.post(f"{url}/v1/score", json=payload, headers=ok, timeout=30).status_code == 200
    assert requests.get(f"{url}/healthz", timeout=30).status_code == 200
    serve.delete("secure")


def test_public_bind_needs_a_token(monkeypatch):
    from raykd.errors import ConfigError
    from raykd.serve.auth import check_exposure, serve_token
    from raykd.serve.launch import app_builder

    monkeypatch.delenv("RAYKD_SERVE_TOKEN", raising=False)
    public = ServeConfig(model="/nowhere", host="0.0.0.0")
    assert serve_token(public) is None
    with pytest.raises(ConfigError, match="without a bearer token"):
        check_exposure(public, None)
    with pytest.raises(ConfigError, match="without a bearer token"):  # the RayService's entry, the same rule
        app_builder({"model": "/nowhere", "host": "0.0.0.0"})
    check_exposure(ServeConfig(host="127.0.0.1"), None)
    check_exposure(ServeConfig(host="0.0.0.0", allow_public_without_auth=True), None)
    for value, needle in (("", "set but blank"), ("  \n", "set but blank"), ("short-token", "11 characters"),
                          ("a token with spaces in it", "printable ASCII without spaces")):
        monkeypatch.setenv("RAYKD_SERVE_TOKEN", value)
        with pytest.raises(ConfigError, match=needle):
            serve_token(public)
        with pytest.raises(ConfigError, match=needle):  # on loopback too: a broken token is never "no token"
            app_builder({"model": "/nowhere"})
    monkeypatch.setenv("RAYKD_SERVE_TOKEN", " a-long-enough-token-0123\n")  # a Secret made with --from-file
    assert serve_token(public) == "a-long-enough-token-0123"
    check_exposure(public, serve_token(public))


def test_new_champion_is_picked_up_without_dropping_requests(ray_session, asap1_student, tracking_uri, endpoint):
    from ray import serve

    from raykd.registry import log_model, register_champion

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("swap-test")  # not whichever experiment an earlier test left active
    name = f"swap-test-{os.getpid()}"
    versions = []
    for _ in range(2):
        with mlflow.start_run():
            info = log_model(asap1_student[0])
        versions.append(register_champion(info.model_uri, name, {"raykd.data_digest": "test"}).version)
    client = mlflow.tracking.MlflowClient(tracking_uri)
    client.set_registered_model_alias(name, "champion", versions[0])
    serve.run(build_app(ServeConfig(model=f"models:/{name}@champion", tracking_uri=tracking_uri,
                                    poll_interval_s=0.5)), name="swap", route_prefix="/swap")
    url = f"{endpoint}/swap/v1/score"
    payload = {"task": "asap_1", "text": "the amount of vinegar"}
    assert requests.post(url, json=payload, timeout=30).json()["model"]["version"] == str(versions[0])

    statuses, seen = [], set()
    stop = threading.Event()
    lock = threading.Lock()

    def hammer() -> None:
        session = requests.Session()
        while not stop.is_set():
            r = session.post(url, json=payload, timeout=30)
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 200:
                    seen.add(r.json()["model"]["version"])

    workers = [threading.Thread(target=hammer) for _ in range(16)]  # real concurrency through the swap
    for w in workers:
        w.start()
    time.sleep(1)
    client.set_registered_model_alias(name, "champion", versions[1])
    deadline = time.time() + 60
    while str(versions[1]) not in seen and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # keep the load on after the swap
    stop.set()
    for w in workers:
        w.join()
    serve.delete("swap")
    assert str(versions[1]) in seen and str(versions[0]) in seen
    assert len(statuses) > 100 and set(statuses) == {200}


def serve_logs() -> list:
    """The Serve log files of the test cluster (controller, replicas)."""
    import ray

    node = ray._private.worker._global_node
    return sorted((Path(node.get_logs_dir_path()) / "serve").glob("*.log"))


def read_new(before: dict) -> dict:
    out = {}
    for path in serve_logs():
        with open(path, encoding="utf-8", errors="replace") as f:
            f.seek(before.get(path, 0))
            out[path.name] = f.read()
    return out


def test_overload_is_refused_at_once_with_retry_after(ray_session, asap1_student, endpoint, tmp_path):
    from ray import serve

    serve.run(build_app(ServeConfig(model=str(asap1_student[0]), poll_interval_s=0, max_batch_size=1,
                                    max_ongoing_requests=1, max_queued_requests=2, max_queue_wait_s=0.05,
                                    max_responses=50)), name="busy", route_prefix="/busy")
    _, ds = asap1_student
    texts = ds.frame["text"].head(50).tolist()
    body = {"responses": [{"task": "asap_1", "text": t} for t in texts]}
    url = f"{endpoint}/busy/v1/score"
    assert requests.post(url, json=body, timeout=60).status_code == 200
    results = []
    start = threading.Barrier(40)

    def shoot() -> None:
        start.wait()
        t0 = time.perf_counter()
        r = requests.post(url, json=body, timeout=60)
        results.append((r.status_code, time.perf_counter() - t0, r.headers.get("retry-after")))

    threads = [threading.Thread(target=shoot) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    serve.delete("busy")
    statuses = [s for s, _, _ in results]
    refused = [(s, dt, ra) for s, dt, ra in results if s == 503]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1
    assert len(refused) >= 10, statuses  # one slot, two queue places: most of 40 simultaneous requests are refused
    assert all(ra is not None and int(ra) >= 1 for _, _, ra in refused)
    assert max(dt for _, dt, _ in refused) < 2.0  # answered at once, not after a time-out


def test_disconnecting_clients_leave_no_500(endpoint):
    host, port = endpoint.removeprefix("http://").split(":")
    before = {p: p.stat().st_size for p in serve_logs()}
    body = json.dumps({"responses": [{"task": "asap_1", "text": "vinegar " * 50}] * 40}).encode()
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    head %= len(body)
    for whole in (False, True):  # gone halfway through the body; gone before the answer
        for _ in range(5):
            with socket.create_connection((host, int(port))) as s:
                s.sendall(head + (body if whole else body[: len(body) // 2]))
                time.sleep(0.0 if whole else 0.3)
    statuses: list[str] = []
    deadline = time.time() + 20
    while time.time() < deadline and "499" not in statuses:
        time.sleep(0.5)
        new = read_new(before)
        replica = "".join(text for name, text in new.items() if name.startswith("replica_raykd_"))
        statuses = re.findall(r"POST /v1/score (\d{3}) ", replica)
    everything = "".join(new.values())
    # What reached the replica was answered (200) or, the client gone, cancelled (499): never a 500.
    assert "499" in statuses and set(statuses) <= {"200", "499"}, statuses
    assert " 500 " not in everything and "Traceback" not in everything and "ClientDisconnect" not in everything
    assert requests.get(f"{endpoint}/healthz", timeout=30).status_code == 200


def test_file_upload_scores_like_predict(endpoint, asap1_student, tmp_path):
    model_dir, ds = asap1_student
    asap_tsv(ds, tmp_path / "in.tsv", n=25)
    assert main(["predict", "--model", str(model_dir), "--input", str(tmp_path / "in.tsv"),
                 "--output", str(tmp_path / "offline.csv")]) == 0
    r = requests.post(f"{endpoint}/v1/score/file", params={"name": "in.tsv"}, data=(tmp_path / "in.tsv").read_bytes(),
                      headers={"content-type": "text/tab-separated-values"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="in.scored.csv"' in r.headers["content-disposition"]
    served = pd.read_csv(io.StringIO(r.text), dtype={"id": str, "prediction": str})
    offline = pd.read_csv(tmp_path / "offline.csv", dtype={"id": str, "prediction": str})
    pd.testing.assert_frame_equal(served, offline, check_exact=False, atol=1e-6)

    bad = requests.post(f"{endpoint}/v1/score/file", params={"name": "answers.csv"}, data=b"answer\nvinegar\n",
                        timeout=60)
    assert bad.status_code == 422
    assert "answers.csv" in bad.json()["detail"] and "expected columns" in bad.json()["detail"]
    empty = requests.post(f"{endpoint}/v1/score/file", params={"name": "a.csv"},
                          data=b"id,text\n1,vinegar amount\n2,   \n", timeout=60)
    assert empty.status_code == 422 and "a.csv, row 3: empty text for id '2'" in empty.json()["detail"]


def test_server_timing_names_where_a_request_spends_its_time(endpoint):
    r = requests.post(f"{endpoint}/v1/score", json={"task": "asap_1", "text": "the type of vinegar"}, timeout=30)
    timing = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
    assert set(timing) == {"queue", "model", "app"}
    assert 0 < float(timing["model"]) <= float(timing["app"]) and float(timing["queue"]) >= 0


@pytest.mark.parametrize("student", [{"include_question": True, "overlap": True}, {"arch": "pair", "overlap": True}],
                         ids=["lstm", "pair"])
def test_question_aware_student_scores_the_same_through_predict_and_http(shared_data, endpoint, tmp_path, student):
    """A student that reads question and reference answer (SemEval-style) gets them from `raykd predict`'s
    columns, the request schema and the client alike, with the same answers; the question is really read."""
    from ray import serve

    from raykd.data import make_splits, read_semeval
    from raykd.distill.config import DistillConfig, StudentConfig
    from raykd.distill.train import fit_student, save_fit
    from raykd.heads import TaskLayout
    from raykd.serve.client import score_file

    ds = make_splits(read_semeval(shared_data / "semeval2013_task7", "sciEntsBank", 2), seed=0)
    f = ds.frame
    fit = fit_student(StudentConfig(**student, hidden=16, min_freq=1),
                      DistillConfig(kd_weight=0.0, epochs=2), f[f["split"] == "train"].head(600),
                      f[f["split"] == "validation"].head(100), TaskLayout.of(ds.tasks))
    model = save_fit(fit, tmp_path / "qa")
    rows = f[f["split"] == "test"].head(20)
    rows[["id", "task", "text", "question", "reference"]].to_csv(tmp_path / "qa.csv", index=False)
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "qa.csv"),
                 "--output", str(tmp_path / "offline.csv")]) == 0
    offline = pd.read_csv(tmp_path / "offline.csv", dtype={"id": str, "prediction": str})

    serve.run(build_app(ServeConfig(model=str(model), poll_interval_s=0)), name="qa", route_prefix="/qa")
    try:
        served = score_file(f"{endpoint}/qa", str(tmp_path / "qa.csv"), str(tmp_path / "served.csv"))
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "served.csv", dtype={"id": str, "prediction": str}),
                                      offline, check_exact=False, atol=1e-5)
        assert len(served) == 20
        one = rows.iloc[0]
        item = {"task": one["task"], "text": one["text"], "question": one["question"], "reference": one["reference"]}
        got = requests.post(f"{endpoint}/qa/v1/score", json=item, timeout=30).json()["results"][0]["probabilities"]
        assert list(got.values()) == pytest.approx(offline.filter(like="p_").iloc[0].tolist(), abs=1e-5)
        other = {**item, "question": "Why is the sky blue?", "reference": "Rayleigh scattering of sunlight."}
        moved = requests.post(f"{endpoint}/qa/v1/score", json=other, timeout=30).json()["results"][0]["probabilities"]
        assert moved != pytest.approx(got, abs=1e-6)  # the question and reference are part of what it reads
    finally:
        serve.delete("qa")
