"""Distil students from a teacher's soft labels (KD student and its no-KD baseline, side by side).

    python jobs/distill.py --config configs/distill_asap_science.yaml
    ray job submit --working-dir . -- python jobs/distill.py --config configs/distill_asap_science.yaml
"""

from __future__ import annotations

import sys

from _common import job_parser


def main() -> int:
    parser = job_parser(__doc__)
    parser.add_argument("--teacher", help="teacher output folder (overrides teacher)")
    args = parser.parse_args()
    from raykd.cli import run_guarded
    from raykd.config import DistillJobConfig, load_config
    from raykd.distill.job import run_distill

    def run() -> int:
        overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else []) \
            + ([f"teacher={args.teacher}"] if args.teacher else [])
        run_distill(load_config(args.config, DistillJobConfig, overrides), tracking_uri=args.tracking_uri)
        return 0

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
