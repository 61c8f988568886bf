"""Shared entry-point logic for the jobs (`python jobs/<stage>.py --config FILE`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `ray job submit --working-dir .` runs these files from a copy of the checkout: import raykd from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_stage(description: str, config_cls: type, runner: Callable[..., Any], takes_teacher: bool = False) -> int:
    """Parse `--config/--set/--output-dir/--tracking-uri` (and `--teacher`), load the validated config,
    run the stage; user errors print one line and exit 2."""
    from raykd.cli import add_job_args, config_overrides, run_guarded
    from raykd.config import load_config

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_args(parser, takes_teacher)
    args = parser.parse_args()

    def run() -> int:
        runner(load_config(args.config, config_cls, config_overrides(args)), tracking_uri=args.tracking_uri)
        return 0

    return run_guarded(run)
