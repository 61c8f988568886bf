"""What every Ray worker raykd starts runs first (raykd.runtime.worker_setup)."""

from __future__ import annotations

import logging

import pytest

from raykd import runtime


def test_worker_setup_is_every_workers_hook():
    assert runtime.RUNTIME_ENV["worker_process_setup_hook"] == "raykd.runtime.worker_setup"


@pytest.mark.parametrize("module", ["ray.train.v2._internal.execution.controller.placement_group_cleaner",
                                    "ray.train.v2._internal.execution.context",
                                    "ray.train.v2._internal.execution.storage",
                                    "ray.train._internal.storage"])
def test_worker_setup_drops_ray_trains_repeated_lines_and_nothing_else(module):
    import importlib

    mod = importlib.import_module(module)
    log = mod.logger  # the logger Ray's module writes to, whatever it is named
    (prefix,) = [p for name, p in runtime.QUIET.items() if runtime._logger_name(name) == log.name]
    runtime.worker_setup()
    runtime.worker_setup()  # a second call adds nothing twice
    assert sum(isinstance(f, runtime._DropMessage) for f in log.filters) == 1
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # Ray's loggers may not propagate to root
    log.addHandler(handler)
    level, log.level = log.level, logging.INFO
    try:
        log.warning(prefix + ". State API may be temporarily unavailable. Continuing to monitor.")
        log.info(prefix + " 1: TrainingReport(...) from rank 0")
        log.warning("Placement group removed")  # anything else still gets through
    finally:
        log.removeHandler(handler)
        log.level = level
    assert seen == ["Placement group removed"]
