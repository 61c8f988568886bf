"""Knowledge tracing, every stage: skill knowledge and the teacher's members (Ray Train), soft labels, DKT students
on Ray Tune with their no-KD twins, the calibrated and registered champion, the simulated test cohort (see
raykd/kt/job.py).

    python jobs/kt.py --config configs/kt_assist2009.yaml
    ray job submit --working-dir . -- python jobs/kt.py --config configs/kt_assist2009.yaml
"""

import sys

from _common import run_stage

if __name__ == "__main__":
    from raykd.kt.config import KTJobConfig
    from raykd.kt.job import run_kt

    sys.exit(run_stage(__doc__, KTJobConfig, run_kt))
