"""Typed results of the serving load benchmark (bench/serve_load.py) and their Markdown and PNG rendering.

The benchmark drives `raykd serve`'s application with wrk; bench.report renders a saved `LoadReport` with
the functions here, so the report never depends on the shape of a JSON file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHAPES = {"single": 1, "batch64": 64}
WARMUP_S = 3


@dataclass
class LoadPoint:
    """One wrk run: `connections` clients posting requests of `responses_per_request` responses."""

    model: str
    shape: str
    connections: int
    seconds: float
    requests_per_s: float  # answered 2xx per second
    responses_per_s: float
    p50_ms: float
    p99_ms: float
    ok: int
    overload_503: int  # refused at once by admission, with Retry-After
    failed: int  # time-outs, socket errors and non-503 errors
    timeouts: int
    statuses: dict[str, int]
    passes: int = 1  # wrk runs pooled: counts and rates over all, p50/p99 the larger of the runs'


@dataclass
class Breakdown:
    """Median milliseconds of one request at one connection: the client's total and the replica's parts."""

    model: str
    shape: str
    total_ms: float
    app_ms: float  # inside the replica's handler: parsing, validation, batching, model, response
    queue_ms: float  # waiting in @serve.batch for the batch to start
    model_ms: float  # the model call of the batch that held the request
    outside_ms: float  # total - app: HTTP, the proxy, routing to the replica and back


@dataclass
class FaultRun:
    connections: int
    seconds: float
    killed_at_s: float
    requests: int
    failed: int
    failed_fraction: float
    baseline_per_s: float
    recovery_s: float | None  # from the kill until a second at >= 90% of the baseline, None if never
    timeline: list[dict[str, int]]


@dataclass
class StreamPredict:
    responses: int
    seconds: float
    responses_per_s: float
    peak_memory_gb: float
    model: str


@dataclass
class LoadReport:
    machine: dict[str, Any]
    wrk_timeout_s: float
    serve_config: dict[str, Any]
    sweep: list[LoadPoint] = field(default_factory=list)
    breakdown: list[Breakdown] = field(default_factory=list)
    fault: FaultRun | None = None
    predict: list[StreamPredict] = field(default_factory=list)


def load_report(data: dict[str, Any]) -> LoadReport:
    """A `LoadReport` from its saved JSON form (`dataclasses.asdict`)."""
    return LoadReport(machine=data["machine"], wrk_timeout_s=data["wrk_timeout_s"],
                      serve_config=data["serve_config"],
                      sweep=[LoadPoint(**p) for p in data.get("sweep", [])],
                      breakdown=[Breakdown(**b) for b in data.get("breakdown", [])],
                      fault=FaultRun(**data["fault"]) if data.get("fault") else None,
                      predict=[StreamPredict(**p) for p in data.get("predict", [])])


def models(r: LoadReport) -> list[str]:
    """The measured models in order: students first, the teacher last."""
    names = list(dict.fromkeys(p.model for p in r.sweep))
    return sorted(names, key=lambda n: n == "teacher")


def point(r: LoadReport, model: str, shape: str, connections: int) -> LoadPoint | None:
    return next((p for p in r.sweep if (p.model, p.shape, p.connections) == (model, shape, connections)), None)


def ratios(r: LoadReport, student: str) -> list[tuple[str, int, float]]:
    """Student / teacher throughput at equal connections, per request shape."""
    out = []
    for shape in SHAPES:
        for p in (q for q in r.sweep if q.model == student and q.shape == shape):
            t = point(r, "teacher", shape, p.connections)
            if t is not None and t.responses_per_s > 0:
                out.append((shape, p.connections, p.responses_per_s / t.responses_per_s))
    return out


def passes_note(r: LoadReport) -> str:
    passes = max((p.passes for p in r.sweep), default=1)
    if passes < 2:
        return ""
    return (f", in {passes} passes over the levels (ascending, then descending), rates over all passes and "
            "p50/p99 the larger of the passes'")


def markdown(r: LoadReport, command: str) -> str:
    from raykd.tables import markdown as table

    lines = [f"All figures from one run of `{command}` on {r.machine.get('cpus')} CPU cores; wrk as the client "
             f"(--timeout {r.wrk_timeout_s:g}s), on the same machine; each level measured after a {WARMUP_S} s "
             f"warm-up at that concurrency{passes_note(r)}. Failures are time-outs, socket errors and 5xx other "
             "than 503; 503s are overload refusals answered at once with Retry-After.", ""]
    for model in models(r):
        for shape in SHAPES:
            rows = [p for p in r.sweep if p.model == model and p.shape == shape]
            if rows:
                lines += [f"**{model}, {'one response' if shape == 'single' else '64 responses'} per request**", "",
                          table(["connections", "requests/s", "responses/s", "p50 ms", "p99 ms", "503s", "failures"],
                                [[p.connections, p.requests_per_s, p.responses_per_s, p.p50_ms, p.p99_ms,
                                  p.overload_503, p.failed] for p in rows]), ""]
    for student in (m for m in models(r) if m != "teacher"):
        parts = [f"{c} conn. {'1' if shape == 'single' else '64'}/req {x:,.1f}x" for shape, c, x in ratios(r, student)
                 if c in (1, 32, 64)]
        if parts:
            lines += [f"{student} / teacher responses/s at equal connections: " + "; ".join(parts) + ".", ""]
    if r.breakdown:
        lines += ["**Where one request's time goes** (median ms at one connection; outside = HTTP and the ingress)",
                  "", table(["model", "request", "total", "outside the replica", "in the replica", "batch queue",
                             "model"],
                            [[b.model, b.shape, b.total_ms, b.outside_ms, b.app_ms, b.queue_ms, b.model_ms]
                             for b in r.breakdown]), ""]
    if r.fault:
        f = r.fault
        rec = "never" if f.recovery_s is None else f"{f.recovery_s:.1f} s"
        lines += [f"**One of two replicas killed** at {f.killed_at_s:.1f} s of a {f.seconds:g} s run at "
                  f"{f.connections} connections: {f.failed} of {f.requests:,} requests failed "
                  f"({f.failed_fraction:.2%}); throughput back at 90% of its {f.baseline_per_s:.0f} requests/s "
                  f"after {rec}.", ""]
    for p in r.predict:
        lines += [f"**`raykd predict --stream on`, {p.model}**, {p.responses:,} responses: {p.seconds:.1f} s wall "
                  f"clock (Ray start-up included), {p.responses_per_s:,.0f} responses/s, peak memory "
                  f"{p.peak_memory_gb:.2f} GiB (PSS of the whole process tree).", ""]
    return "\n".join(lines)


def plot(r: LoadReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = dict(zip(models(r), ("tab:blue", "tab:green", "tab:purple", "tab:orange"), strict=False))
    colors["teacher"] = "tab:orange"
    for model in models(r):
        for shape, style in (("single", "o-"), ("batch64", "s--")):
            rows = [p for p in r.sweep if p.model == model and p.shape == shape]
            if not rows:
                continue
            c = [p.connections for p in rows]
            label = f"{model}, {'1' if shape == 'single' else '64'} per request"
            axes[0].plot(c, [max(p.requests_per_s, 1e-2) for p in rows], style, color=colors[model], label=label)
            axes[1].plot(c, [max(p.responses_per_s, 1e-2) for p in rows], style, color=colors[model], label=label)
            axes[2].plot(c, [p.p99_ms for p in rows], style, color=colors[model], label=label)
    for ax, title in zip(axes, ("requests/s (2xx)", "responses/s (2xx)", "p99 latency ms"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent connections")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def targets(r: LoadReport) -> list[str]:
    """Each serving target against this run, met or **MISSED** (bench.targets)."""
    from bench import targets as t

    lines = []
    for student in (m for m in models(r) if m != "teacher"):
        single = [p for p in r.sweep if p.model == student and p.shape == "single"]
        at32 = point(r, student, "single", 32)
        rising = [p.requests_per_s for p in single if p.connections <= 64]
        holds = all(b >= 0.95 * max(rising[: i + 1]) for i, b in enumerate(rising))  # within 5% of the best so far
        busiest = max(single, key=lambda p: p.connections, default=None)
        if at32 is not None:
            ok = at32.requests_per_s >= t.SINGLE_RPS_AT_32 and at32.p99_ms < t.SINGLE_P99_MS_AT_32
            lines.append(f"- {student}, one response per request: {at32.requests_per_s:,.0f} requests/s at 32 "
                         f"connections, p99 {at32.p99_ms:.0f} ms ({t.verdict(ok)} >= {t.SINGLE_RPS_AT_32:.0f} with "
                         f"p99 < {t.SINGLE_P99_MS_AT_32:.0f} ms); throughput from 1 to 64 connections "
                         f"{'holds (never 5% below the best so far)' if holds else '**falls**'}.")
        if busiest is not None:
            clean = busiest.timeouts == 0 and busiest.failed == 0
            lines.append(f"  At {busiest.connections} connections: {busiest.timeouts} time-outs, {busiest.failed} "
                         f"failures, {busiest.overload_503} overload 503s ({t.verdict(clean)}: no time-outs or 5xx).")
        batch = [p for p in r.sweep if p.model == student and p.shape == "batch64"]
        if batch:
            best = max(batch, key=lambda p: p.responses_per_s)
            ok = best.responses_per_s >= t.BATCH64_RESPONSES_PER_S
            lines.append(f"- {student}, 64 responses per request: {best.responses_per_s:,.0f} responses/s at "
                         f"{best.connections} connections ({t.verdict(ok)} >= {t.BATCH64_RESPONSES_PER_S:,.0f}).")
    if r.fault:
        f = r.fault
        back = f.recovery_s is not None and f.recovery_s <= t.FAULT_RECOVERY_S
        ok = f.failed_fraction <= t.FAULT_FAILED_SHARE and back
        lines.append(f"- One of two replicas killed under load: {f.failed_fraction:.2%} failed, full throughput after "
                     f"{'never' if f.recovery_s is None else f'{f.recovery_s:.0f} s'} ({t.verdict(ok)} <= "
                     f"{t.FAULT_FAILED_SHARE:.0%} and <= {t.FAULT_RECOVERY_S:.0f} s).")
    for p in r.predict:
        ok = p.responses_per_s >= t.PREDICT_RESPONSES_PER_S and p.peak_memory_gb < t.PREDICT_PEAK_GB
        lines.append(f"- `raykd predict` on {p.responses:,} responses ({p.model}): {p.responses_per_s:,.0f}/s, peak "
                     f"{p.peak_memory_gb:.2f} GiB ({t.verdict(ok)} >= {t.PREDICT_RESPONSES_PER_S:,.0f}/s under "
                     f"{t.PREDICT_PEAK_GB:g} GB).")
    return lines
