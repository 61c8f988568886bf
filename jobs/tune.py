"""Ray Tune search over student hyperparameters; registers the champion in MLflow.

    python jobs/tune.py --config configs/tune_asap1.yaml
    ray job submit --working-dir . -- python jobs/tune.py --config configs/tune_asap1.yaml
Running the same command again after an interruption resumes the search.
"""

from __future__ import annotations

import sys

from _common import job_parser


def main() -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--teacher", help="teacher output folder (overrides teacher)")
    args = parser.parse_args()
    from raykd.cli import run_guarded
    from raykd.config import TuneJobConfig, load_config
    from raykd.tune.search import run_tune

    def run() -> int:
        overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else []) \
            + ([f"teacher={args.teacher}"] if args.teacher else [])
        run_tune(load_config(args.config, TuneJobConfig, overrides), tracking_uri=args.tracking_uri)
        return 0

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
