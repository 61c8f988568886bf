"""What every Ray worker raykd starts runs first (raykd.runtime.worker_setup)."""

from __future__ import annotations

import logging

from raykd import runtime


def test_worker_setup_is_every_workers_hook_and_drops_the_repeated_train_warning(caplog):
    assert runtime.RUNTIME_ENV["worker_process_setup_hook"] == "raykd.runtime.worker_setup"
    (name, prefix), = runtime.QUIET.items()
    log = logging.getLogger(name)
    runtime.worker_setup()
    runtime.worker_setup()  # a second call adds nothing twice
    assert sum(isinstance(f, runtime._DropMessage) for f in log.filters) == 1
    with caplog.at_level(logging.WARNING, logger=name):
        log.warning(prefix + ". State API may be temporarily unavailable. Continuing to monitor.")
        log.warning("Placement group removed")  # anything else still gets through
    assert [r.getMessage() for r in caplog.records] == ["Placement group removed"]
