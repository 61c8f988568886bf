"""Knowledge tracing, stage kt-simulate (see raykd/kt/job.py).

    python jobs/kt_simulate.py --config configs/kt_assist2009.yaml
    ray job submit --working-dir . -- python jobs/kt_simulate.py --config configs/kt_assist2009.yaml
"""

import sys

from _common import run_stage

if __name__ == "__main__":
    from raykd.kt.config import KTJobConfig
    from raykd.kt.job import run_kt_simulate

    sys.exit(run_stage(__doc__, KTJobConfig, run_kt_simulate))
