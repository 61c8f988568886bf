"""Fine-tune the teacher on Ray Train + DeepSpeed and export soft labels.

    python jobs/teacher.py --config configs/teacher_asap1_minilm.yaml
    ray job submit --working-dir . -- python jobs/teacher.py --config configs/teacher_asap1_minilm.yaml
"""

from __future__ import annotations

import sys

from _common import job_parser


def main() -> int:
    args = job_parser(__doc__).parse_args()
    from raykd.cli import run_guarded
    from raykd.config import TeacherJobConfig, load_config
    from raykd.teacher.job import run_teacher

    def run() -> int:
        overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
        cfg = load_config(args.config, TeacherJobConfig, overrides)
        run_teacher(cfg, tracking_uri=args.tracking_uri)
        return 0

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
