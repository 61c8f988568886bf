"""`raykd score`: send a file of responses to a running endpoint, write the scores."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from raykd.data.dataset import TaskSpec
from raykd.errors import RaykdError
from raykd.heads import TaskLayout
from raykd.io import write_table_atomic


class ScoringClient:
    """A session to one endpoint. A 503 or 429 (the endpoint is busy) is retried after the seconds its `Retry-After`
    header names, up to `retries` times; scoring the same responses again is harmless."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 60.0, retries: int = 5):
        from requests.adapters import HTTPAdapter
        from urllib3.util import Retry

        self.url = url.rstrip("/")
        self.session = requests.Session()
        busy = Retry(total=retries, connect=0, read=0, status_forcelist=[429, 503], allowed_methods=["GET", "POST"],
                     respect_retry_after_header=True, backoff_factor=0.5, raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=busy))
        self.session.mount("https://", HTTPAdapter(max_retries=busy))
        token = token or os.environ.get("RAYKD_SERVE_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            r = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise RaykdError(f"{self.url}{path}: cannot reach the endpoint ({e.__class__.__name__})") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text[:200]
            raise RaykdError(f"{self.url}{path}: HTTP {r.status_code}: {detail}")
        return r.json()

    def tasks(self) -> dict[str, Any]:
        return self._call("GET", "/v1/tasks")

    def score(self, responses: list[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/v1/score", json={"responses": responses})


def score_file(url: str, input_path: str, output_path: str | None = None, token: str | None = None,
               batch_size: int = 64) -> pd.DataFrame:
    from tqdm import tqdm

    from raykd.predict.rows import read_for_scoring
    from raykd.scoring import prob_columns, prob_matrix, set_text

    client = ScoringClient(url, token)
    info = client.tasks()
    layout = TaskLayout.of([TaskSpec.from_dict(t) for t in info["tasks"]])
    ds = read_for_scoring(input_path, layout)
    frame = ds.frame
    results: list[dict[str, Any]] = []
    with tqdm(total=len(frame), desc="scoring", unit="resp") as bar:
        for start in range(0, len(frame), batch_size):
            chunk = frame.iloc[start:start + batch_size]
            payload = [{"id": rid, "task": task, "text": text,
                        **({"question": q} if q else {}), **({"reference": r} if r else {})}
                       for rid, task, text, q, r in zip(chunk["id"], chunk["task"], chunk["text"], chunk["question"],
                                                         chunk["reference"], strict=True)]
            results.extend(client.score(payload)["results"])
            bar.update(len(chunk))
    tasks = [r["task"] for r in results]
    probs = [np.array([r["probabilities"][lab] for lab in layout.spec(r["task"]).labels]) for r in results]
    out = pd.DataFrame({"id": [r["id"] for r in results], "task": tasks,
                        "prediction": [r["prediction"] if isinstance(r["prediction"], str)
                                       else ";".join(r["prediction"]) for r in results],
                        "confidence": np.array([r["confidence"] for r in results], dtype=np.float64),
                        "score_set": [set_text(tuple(r["score_set"]), layout.spec(r["task"]).ranged)
                                      for r in results],
                        "needs_review": np.array([r["needs_review"] for r in results], dtype=bool)})
    matrix = prob_matrix(layout, tasks, probs)
    for j, c in enumerate(prob_columns(layout)):
        out[c] = matrix[:, j]
    output_path = output_path or str(Path(input_path).with_suffix("").as_posix() + ".scored.csv")
    write_table_atomic(out, output_path)
    print(f"scored {len(out)} responses with {info['model']['name']} version {info['model']['version']} "
          f"-> {output_path}")
    return out
