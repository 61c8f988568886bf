"""raykd's benchmarks, run as modules from the repository root (`python -m bench.quality ...`): the stage runner
shared by the benchmark scripts (run_all), the quality, leave-questions-out and serving benchmarks, the baselines
they compare with, their targets and the report they write. Not imported by the library; never in timed tests."""
