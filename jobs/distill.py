"""Distil students from a teacher's soft labels (KD students and their no-KD baselines, side by side).

    python jobs/distill.py --config configs/distill_asap_science.yaml
    ray job submit --working-dir . -- python jobs/distill.py --config configs/distill_asap_science.yaml
"""

import sys

from _common import run_stage

if __name__ == "__main__":
    from raykd.distill.config import DistillJobConfig
    from raykd.distill.job import run_distill

    sys.exit(run_stage(__doc__, DistillJobConfig, run_distill, takes_teacher=True))
