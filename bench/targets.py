"""The benchmarks' targets, defined once (the student goals come from raykd.goals): the reports check these."""

from __future__ import annotations

from raykd.goals import GAP, MAX_PARAM_SHARE, PARAM_RATIO, SPEEDUP, verdict

__all__ = ["GAP", "MAX_PARAM_SHARE", "PARAM_RATIO", "SPEEDUP", "verdict"]

# Serving under load (bench/serve_load.py, a 2-core machine).
SINGLE_RPS_AT_32 = 300.0  # one-response requests per second at 32 connections
SINGLE_P99_MS_AT_32 = 100.0
BATCH64_RESPONSES_PER_S = 10_000.0  # responses per second in requests of 64
PREDICT_RESPONSES_PER_S = 20_000.0  # `raykd predict` on 1,000,000 responses
PREDICT_PEAK_GB = 2.0
FAULT_FAILED_SHARE = 0.01  # one of two replicas killed under load
FAULT_RECOVERY_S = 30.0

# Quality on all 10 ASAP-SAS sets (bench/quality.py).
TEACHER_QWK = 0.78  # the best teacher's mean test QWK (AutoSAS: 0.791)
STUDENT_QWK = 0.76  # the champion's mean test QWK
CHAMPION_GAP = 0.02  # the champion within this of that teacher
KD_GAIN = 0.01  # the champion at least this above its no-KD twin
CPU_MINUTES = 100  # the whole CPU benchmark (representations cached by an earlier run are reused)

# Scores a school can act on (bench/quality.py, the champion on the test split).
REVIEW_QUEUE_GAIN = 0.01  # test QWK of a student retrained on review-queue picks over random picks
AUTO_QWK = 0.85  # mean QWK of the 70% of responses the champion is most sure of (human-human: 0.881)
COVERAGE = (0.88, 0.93)  # the empirical coverage of the 90% conformal score sets (raykd's default level)
MAX_ECE = 0.03  # expected calibration error after calibration, every set
