"""`POST /v1/simulate` and `GET /v1/skills` over real HTTP: equal to the offline simulator, 4xx for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from raykd.config import from_dict
from raykd.serve.config import ServeConfig
from raykd.serve.launch import build_app


@pytest.fixture(scope="module")
def kt_url(endpoint, asap1_student, tiny_kt):
    from ray import serve

    from raykd.kt.job import distill_dir

    cfg, _ = tiny_kt
    serve.run(build_app(ServeConfig(model=str(asap1_student[0]), simulator=str(Path(distill_dir(cfg), "champion")),
                                    poll_interval_s=0, max_history=60)), name="kt", route_prefix="/kt")
    yield endpoint.rstrip("/") + "/kt", Path(distill_dir(cfg)) / "champion"
    serve.delete("kt")


def test_simulate_over_http_equals_offline(kt_url):
    from raykd.kt.simulator import Simulator

    url, champion = kt_url
    offline = Simulator.load(champion)
    skills = requests.get(f"{url}/v1/skills", timeout=30).json()
    assert [s["id"] for s in skills["skills"]] == offline.skill_ids and skills["skills"][0]["name"]
    ids = offline.skill_ids
    history = [{"skill": ids[0], "correct": 1}, {"skill": ids[1], "correct": 0}, {"skill": ids[0], "correct": 1}]
    body = {"history": history, "next_skills": [ids[0], ids[1], ids[2]]}
    got = requests.post(f"{url}/v1/simulate", json=body, timeout=30).json()
    expected = offline.predict([(a["skill"], a["correct"]) for a in history], body["next_skills"])
    assert got["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6) and got["answers"] is None
    sampled = {**body, "sample": True, "seed": 7}
    a = requests.post(f"{url}/v1/simulate", json=sampled, timeout=30).json()
    b = requests.post(f"{url}/v1/simulate", json=sampled, timeout=30).json()
    assert a == b and set(a["answers"]) <= {0, 1} and len(a["answers"]) == 3
    assert a["answers"] == offline.predict([(h["skill"], h["correct"]) for h in history], body["next_skills"],
                                           sample=True, seed=7).answers
    empty = requests.post(f"{url}/v1/simulate", json={"next_skills": [ids[0]]}, timeout=30)
    assert empty.status_code == 200 and 0 < empty.json()["probabilities"][0] < 1


@pytest.mark.parametrize("body, needle", [
    ({"history": [{"skill": 99999, "correct": 1}], "next_skills": [None]}, "next_skills"),
    ({"history": [{"skill": 99999, "correct": 1}], "next_skills": "FIRST"}, "history[0]: unknown skill 99999"),
    ({"history": [], "next_skills": [-5]}, "next_skills[0]: unknown skill -5"),
    ({"history": [{"skill": "FIRST", "correct": 2}], "next_skills": "FIRST"}, "correct"),
    ({"history": [{"skill": "FIRST", "correct": True}], "next_skills": "FIRST"}, "correct"),
    ({"history": [{"skill": "FIRST", "correct": 1}] * 61, "next_skills": "FIRST"}, "history has 61 items; at most 60"),
    ({"history": [], "next_skills": []}, "next_skills"),
    ({"history": [], "next_skills": "FIRST", "extra": 1}, "extra"),
    ({"history": [], "next_skills": "FIRST", "sample": True, "seed": -1}, "greater than or equal to 0"),
    ({"history": [], "next_skills": "FIRST", "sample": True, "seed": 2**64}, "seed"),
    ({"history": [], "next_skills": "FIRST", "sample": True, "seed": 1.5}, "seed"),
])
def test_bad_simulate_requests_get_422(kt_url, body, needle):
    from raykd.kt.simulator import Simulator

    url, champion = kt_url
    first = Simulator.load(champion).skill_ids[0]
    body = {k: ([first] if v == "FIRST" else v) for k, v in body.items()}
    body["history"] = [{**a, "skill": first if a["skill"] == "FIRST" else a["skill"]} for a in body.get("history", [])]
    r = requests.post(f"{url}/v1/simulate", json=body, timeout=30)
    assert r.status_code == 422, r.text
    assert needle in r.text


def test_no_simulator_is_a_404(endpoint):
    r = requests.post(f"{endpoint.rstrip('/')}/v1/simulate", json={"next_skills": [1]}, timeout=30)
    assert r.status_code == 404 and "no simulator" in r.text
    assert requests.get(f"{endpoint.rstrip('/')}/v1/skills", timeout=30).status_code == 404


def test_a_missing_simulator_folder_is_a_config_error(tmp_path):
    from raykd.errors import ConfigError

    with pytest.raises(ConfigError, match="serve.simulator: .* not a simulator folder"):
        from_dict(ServeConfig, {"model": "x", "simulator": str(tmp_path)}, "serve")
    ServeConfig(model="x", simulator="models:/kt@champion")  # fetched when the replica starts
