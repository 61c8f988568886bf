"""Combine several teachers' soft labels into one teacher output (mean, or per-task weights fit on validation).

    python jobs/ensemble.py --set 'teachers=[runs/teacher_minilm, runs/teacher_mpnet]' --set weights=fit
    ray job submit --working-dir . -- python jobs/ensemble.py --config configs/ensemble.yaml
"""

import sys

from _common import run_stage

if __name__ == "__main__":
    from raykd.teacher.config import EnsembleJobConfig
    from raykd.teacher.ensemble import run_ensemble

    sys.exit(run_stage(__doc__, EnsembleJobConfig, run_ensemble))
