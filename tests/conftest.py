"""Shared fixtures: the real data folder, and one local Ray session for every test that needs Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raykd.data import data_dir

# Offline by construction: nothing in the suite may fetch weights or data.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets. Absent: skip with the reason, except in CI where their absence is a failure."""
    root = data_dir()
    if not (root / "asap_sas").is_dir():
        msg = f"shared data not found at {root} (set RAYKD_DATA_DIR)"
        if os.environ.get("RAYKD_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return root
