"""raykd.training: the Ray Train trainer every recipe builds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from raykd.config import ScalingConfig
from raykd.training import POLL_ENV, torch_trainer


def _reports(config: dict) -> None:
    import ray.train

    start = time.monotonic()
    for i in range(config["reports"]):
        ray.train.report({"i": i})
    if ray.train.get_context().get_world_rank() == 0:  # the loop's own time and the setting its worker was given
        Path(config["out"]).write_text(json.dumps({"seconds": time.monotonic() - start,
                                                   "poll": os.environ.get(POLL_ENV)}))


def test_reports_are_collected_at_the_configured_poll(ray_session, tmp_path):
    # Each report waits until the controller has collected the one before it: at Ray's default 2 s poll,
    # six quick reports take at least 10 s inside the loop.
    scaling = ScalingConfig(num_workers=2, cpus_per_worker=0.5, report_poll_s=0.25)
    out = tmp_path / "loop.json"
    torch_trainer(_reports, {"reports": 6, "out": str(out)}, scaling, "poll", tmp_path / "runs").fit()
    seen = json.loads(out.read_text())
    assert seen["poll"] == "0.25" and seen["seconds"] < 4.0, seen
