"""Admission control: a replica refuses at once (503 + Retry-After) the work it could not start in time."""

from __future__ import annotations

import math

from fastapi import HTTPException


class Admission:
    """Refuses work a replica could not start within `max_wait_s`: the responses already accepted, divided by
    the rate the model has been scoring them (an average over recent model calls), is the expected wait."""

    def __init__(self, max_wait_s: float, retry_after_s: float):
        self.max_wait_s, self.retry_after_s = max_wait_s, retry_after_s
        self.pending = 0  # responses accepted and not yet answered
        self.rate = math.inf  # responses per second of model time; unknown until the first call

    def wait_s(self, n: int) -> float:
        return (self.pending + n) / self.rate

    def admit(self, n: int) -> None:
        """Accept `n` responses, or raise 503 (n = 0: could anything at all be accepted now?)."""
        wait = self.wait_s(n)
        if self.pending and wait > self.max_wait_s:
            retry = max(self.retry_after_s, wait - self.max_wait_s)
            raise HTTPException(status_code=503, detail=f"busy: about {wait:.1f}s of scoring is queued here "
                                                        f"(limit {self.max_wait_s:g}s); retry later",
                                headers={"Retry-After": str(math.ceil(retry))})
        self.pending += n

    def done(self, n: int) -> None:
        self.pending -= n

    def observe(self, responses: int, seconds: float) -> None:
        rate = responses / max(seconds, 1e-6)
        self.rate = rate if math.isinf(self.rate) else 0.8 * self.rate + 0.2 * rate
