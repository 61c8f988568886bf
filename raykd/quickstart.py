"""`raykd quickstart`: the whole pipeline that exists so far, end to end, on a small ASAP-SAS slice."""

from __future__ import annotations

import argparse

from raykd.data import load_dataset, make_splits


def run_quickstart(args: argparse.Namespace) -> int:
    ds = make_splits(load_dataset("asap_sas", sets=[1]), seed=0)
    print(f"data: ASAP-SAS set 1, {len(ds)} responses, digest {ds.digest()[:16]}")
    return 0
