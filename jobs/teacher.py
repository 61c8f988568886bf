"""Fine-tune the teacher on Ray Train + DeepSpeed and export soft labels.

    python jobs/teacher.py --config configs/teacher_asap1_minilm.yaml
    ray job submit --working-dir . -- python jobs/teacher.py --config configs/teacher_asap1_minilm.yaml
"""

import sys

from _common import run_stage

if __name__ == "__main__":
    from raykd.teacher.config import TeacherJobConfig
    from raykd.teacher.job import run_teacher

    sys.exit(run_stage(__doc__, TeacherJobConfig, run_teacher))
