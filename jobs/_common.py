"""Shared argument parsing for the job entry points (`python jobs/<stage>.py --config FILE`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# `ray job submit --working-dir .` runs this file from a copy of the checkout: import raykd from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def job_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML config file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--output-dir", help="where results go (overrides output_dir)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: SQLite under $RAYKD_HOME or ./runs)")
    return parser
