"""Ray Tune search over student hyperparameters; registers the champion in MLflow.

    python jobs/tune.py --config configs/tune_asap1.yaml
    ray job submit --working-dir . -- python jobs/tune.py --config configs/tune_asap1.yaml
Running the same command again after an interruption resumes the search.
"""

import sys

from _common import run_stage

if __name__ == "__main__":
    from raykd.tune.config import TuneJobConfig
    from raykd.tune.job import run_tune

    sys.exit(run_stage(__doc__, TuneJobConfig, run_tune, takes_teacher=True))
